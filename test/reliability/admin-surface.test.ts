/**
 * RELIABILITY.md §4 row 22 through the real CLI: the admin API listens on 127.0.0.1 only and is never reachable
 * through the proxy listeners, whatever the spelling of the loopback address (absolute form, Host, localhost, ::1,
 * inet_aton forms such as 127.1 and 2130706433); the proxy's other own ports are no passthrough destination either
 * (a request looping back into the outbound listener); and every state-changing admin endpoint is POST-only: a GET
 * (or PUT/DELETE) gets 405 with `Allow: POST` and changes nothing, while the POST works.
 *
 * Istio reaches the admin port only from inside the pod: Envoy binds it to 127.0.0.1, iptables never redirects
 * loopback traffic, and Istio's inbound passthrough dials the pod IP, where admin does not listen. Remora's outbound
 * listener also serves explicit (HTTP_PROXY) clients, so it answers a passthrough to its own loopback ports with
 * 403 (`proxy_port_not_routable`) instead of dialling them.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import { request } from 'undici';
import { fakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import { startProxy, type RunningProxy } from '../support/proxy-harness.js';
import { RawClient, cleanup, header } from '../integration/http1/raw.js';

let app: FakeUpstream;
let local: FakeUpstream;
let p: RunningProxy;

beforeAll(async () => {
  [app, local] = await Promise.all([fakeUpstream('app'), fakeUpstream('local')]);
  p = await startProxy({}, ['--app-port', String(app.port)]);
});

afterAll(async () => {
  await cleanup();
  await p.stop();
  await Promise.all([app.close(), local.close()]);
});

async function raw(port: number, text: string): Promise<{ status: number; body: string; error: string | undefined }> {
  const c = await RawClient.connect(port);
  c.send(text);
  const [r] = await c.responses(1);
  c.sock.destroy();
  return { status: r!.status, body: r!.body.toString(), error: header(r!, 'x-remora-proxy-error') };
}

async function adminCall(path: string, method: string): Promise<{ status: number; allow: string | undefined; body: string }> {
  const r = await request(`http://127.0.0.1:${p.info.admin}${path}`, { method: method as 'GET' });
  const allow = r.headers.allow;
  return { status: r.statusCode, allow: typeof allow === 'string' ? allow : undefined, body: await r.body.text() };
}

const ready = async (): Promise<number> => (await adminCall('/ready', 'GET')).status;
const level = async (): Promise<string> => (await adminCall('/logging', 'POST')).body.trim();

describe('the admin listener', () => {
  it('is bound to 127.0.0.1 only: another loopback address of this host is refused on the admin port', async () => {
    const l = JSON.parse((await adminCall('/listeners?format=json', 'GET')).body) as Array<{ name: string; address: string; port: number }>;
    expect(l.find((x) => x.name === 'admin')).toMatchObject({ address: '127.0.0.1', port: p.info.admin });
    const err = await new Promise<string>((resolve) => {
      const s = net.connect({ host: '127.0.0.2', port: p.info.admin });
      s.once('connect', () => { s.destroy(); resolve('connected'); });
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });
    expect(err).toBe('ECONNREFUSED');
  });
});

describe('the proxy listeners never reach the admin API or loop into themselves', () => {
  it('outbound: every spelling of loopback:<own port>, absolute form or Host, is answered 403 and nothing is executed', async () => {
    const a = p.info.admin;
    const spellings = [
      `POST http://127.0.0.1:${a}/quitquitquit HTTP/1.1\r\nHost: 127.0.0.1:${a}\r\ncontent-length: 0\r\n\r\n`,
      `POST /quitquitquit HTTP/1.1\r\nHost: 127.0.0.1:${a}\r\ncontent-length: 0\r\n\r\n`,
      `POST /healthcheck/fail HTTP/1.1\r\nHost: localhost:${a}\r\ncontent-length: 0\r\n\r\n`,
      `POST /healthcheck/fail HTTP/1.1\r\nHost: LocalHost.:${a}\r\ncontent-length: 0\r\n\r\n`,
      `POST http://[::1]:${a}/quitquitquit HTTP/1.1\r\nHost: x\r\ncontent-length: 0\r\n\r\n`,
      `POST http://127.1:${a}/quitquitquit HTTP/1.1\r\nHost: x\r\ncontent-length: 0\r\n\r\n`,
      `POST http://2130706433:${a}/quitquitquit HTTP/1.1\r\nHost: x\r\ncontent-length: 0\r\n\r\n`,
      `POST http://0x7f.0.0.1:${a}/drain_listeners HTTP/1.1\r\nHost: x\r\ncontent-length: 0\r\n\r\n`,
      `POST http://0.0.0.0:${a}/quitquitquit HTTP/1.1\r\nHost: x\r\ncontent-length: 0\r\n\r\n`,
      `GET http://127.0.0.1:${a}/config_dump HTTP/1.1\r\nHost: 127.0.0.1:${a}\r\n\r\n`,
      `GET /stats/prometheus HTTP/1.1\r\nHost: 127.0.0.1:${p.info.stats}\r\n\r\n`,
      `GET /healthz/ready HTTP/1.1\r\nHost: 127.0.0.1:${p.info.health}\r\n\r\n`,
      // A loop: the outbound listener as its own passthrough destination.
      `GET /loop HTTP/1.1\r\nHost: 127.0.0.1:${p.info.outbound}\r\n\r\n`,
      `GET /loop HTTP/1.1\r\nHost: 127.0.0.1:${p.info.inbound}\r\n\r\n`,
    ];
    const answers: Array<[number, string | undefined]> = [];
    for (const s of spellings) {
      const r = await raw(p.info.outbound, s);
      answers.push([r.status, r.error]);
    }
    expect(answers).toEqual(spellings.map(() => [403, '- proxy_port_not_routable']));
    // Nothing happened: still ready (no drain, no health-check failure, no exit), the app saw no loop.
    expect(await ready()).toBe(200);
    expect(p.exitCode).toBeNull();
    expect(app.requests.filter((r) => r.url === '/loop')).toEqual([]);
  });

  // The stats and health ports listen on every address: reached through the pod's own (non-loopback) address, a
  // passthrough to them is the same loop into the proxy, refused as on loopback (the rule the L4 path applies).
  const podAddress = Object.values(networkInterfaces()).flat().find((i) => i !== undefined && !i.internal && i.family === 'IPv4')?.address;
  it.skipIf(podAddress === undefined)('outbound: a passthrough to a proxy port on this host\'s own non-loopback address is 403 too', async () => {
    const answers: Array<[number, string | undefined]> = [];
    for (const port of [p.info.stats, p.info.health]) {
      const r = await raw(p.info.outbound, `GET http://${podAddress}:${port}/stats/prometheus HTTP/1.1\r\nHost: x\r\n\r\n`);
      answers.push([r.status, r.error]);
      const h = await raw(p.info.outbound, `GET /healthz/ready HTTP/1.1\r\nHost: ${podAddress}:${port}\r\n\r\n`);
      answers.push([h.status, h.error]);
    }
    expect(answers).toEqual([0, 1, 2, 3].map(() => [403, '- proxy_port_not_routable']));
  });

  it('a loopback port that is not the proxy\'s own is still a passthrough destination (ALLOW_ANY)', async () => {
    const r = await raw(p.info.outbound, `GET /mine HTTP/1.1\r\nHost: 127.0.0.1:${local.port}\r\n\r\n`);
    expect(r.status).toBe(200);
    expect(local.requests.at(-1)?.url).toBe('/mine');
  });

  it('inbound: Host naming the admin port goes to the app, never to admin', async () => {
    const before = app.requests.length;
    const r = await raw(p.info.inbound, `POST /quitquitquit HTTP/1.1\r\nHost: 127.0.0.1:${p.info.admin}\r\ncontent-length: 0\r\n\r\n`);
    expect(r.status).toBe(200);
    expect(app.requests.length - before).toBe(1);
    expect(app.requests.at(-1)!.url).toBe('/quitquitquit');
    expect(await ready()).toBe(200);
  });
});

describe('state-changing admin endpoints are POST-only', () => {
  const MUTATING = ['/quitquitquit', '/drain_listeners', '/drain_listeners?inboundonly', '/logging?level=debug', '/healthcheck/fail', '/healthcheck/ok', '/reset_counters'];

  it('/help lists each of them as POST', async () => {
    const help = (await adminCall('/help', 'GET')).body;
    for (const path of new Set(MUTATING.map((m) => m.split('?')[0]!))) expect(help).toContain(`POST ${path}\n`);
  });

  it('GET, HEAD, PUT and DELETE get 405 with Allow: POST and change nothing; the POST then works', async () => {
    // A counter that /reset_counters would zero.
    await raw(p.info.outbound, `GET /count HTTP/1.1\r\nHost: 127.0.0.1:${local.port}\r\n\r\n`);
    const requests = async (): Promise<number> => {
      const m = /^istio_requests_total\{[^}]*\} (\d+)$/m.exec((await adminCall('/stats/prometheus', 'GET')).body);
      return m ? Number(m[1]) : 0;
    };
    const counted = await requests();
    expect(counted).toBeGreaterThan(0);
    const levelBefore = await level();
    const refused: Array<[string, string, number, string | undefined]> = [];
    for (const path of MUTATING) {
      for (const method of ['GET', 'HEAD', 'PUT', 'DELETE']) {
        const r = await adminCall(path, method);
        refused.push([method, path, r.status, r.allow]);
      }
    }
    expect(refused).toEqual(MUTATING.flatMap((path) => ['GET', 'HEAD', 'PUT', 'DELETE'].map((m) => [m, path, 405, 'POST'])));
    expect(await ready()).toBe(200);
    expect(await level()).toBe(levelBefore);
    expect(await requests()).toBe(counted);
    expect(p.exitCode).toBeNull();
    // The POSTs do what they say.
    expect((await adminCall('/healthcheck/fail', 'POST')).status).toBe(200);
    expect(await ready()).toBe(503);
    expect((await adminCall('/healthcheck/ok', 'POST')).status).toBe(200);
    expect(await ready()).toBe(200);
    expect((await adminCall('/reset_counters', 'POST')).status).toBe(200);
    expect(await requests()).toBe(0);
    expect((await adminCall('/quitquitquit', 'POST')).status).toBe(200);
    expect(await p.exited).toBe(0);
  });
});
