/**
 * RELIABILITY.md §4 row 3 through the real CLI, raw bytes in, a recording upstream (node:http, every header as
 * received in rawHeaders) behind: header names with underscores under each --headers-with-underscores action
 * (Envoy's headers_with_underscores_action), duplicate Host, absolute-form target against Host (RFC 9112 §3.2.2),
 * hop-by-hop and Connection-nominated headers, nominations of the headers Remora is responsible for
 * (CVE-2024-45806 family, Envoy's sanitizeConnectionHeader), and internal headers sent by an untrusted peer on
 * the inbound listener.
 *
 * Pass criteria are counts: what the upstream received (requests, connections, each header's occurrences), the
 * status and Connection: close of a rejection, nothing behind a rejected request served, and the counters.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { fakeUpstream, type FakeUpstream, type SeenRequest } from '../support/fake-upstream.js';
import { startProxy, type RunningProxy } from '../support/proxy-harness.js';
import { RawClient, cleanup, header, settle, type RawResponse } from '../integration/http1/raw.js';
import { serviceEntry } from '../integration/resilience/helpers.js';
import { FLAG, FRAME, RawH2, frame, requestHeaders } from '../support/h2-raw.js';

const vsSvc = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: svc, namespace: default}
spec:
  hosts: [svc.default.svc.cluster.local]
  http:
  - name: underscore-match
    match: [{headers: {x_user: {exact: admin}}}]
    directResponse: {status: 403, body: {string: matched-underscore}}
  - name: to-svc
    route: [{destination: {host: svc.default.svc.cluster.local}}]
`;

let svc: FakeUpstream;
let other: FakeUpstream;
let app: FakeUpstream;
const proxies: RunningProxy[] = [];

function files(): Record<string, string> {
  return { 'svc.yaml': serviceEntry('svc', [{ port: svc.port }]), 'other.yaml': serviceEntry('other', [{ port: other.port }]), 'vs.yaml': vsSvc };
}

async function proxy(args: string[] = []): Promise<RunningProxy> {
  const p = await startProxy(files(), ['--app-port', String(app.port), ...args]);
  proxies.push(p);
  return p;
}

beforeAll(async () => {
  svc = await fakeUpstream('svc');
  other = await fakeUpstream('other');
  app = await fakeUpstream('app');
});

afterAll(async () => {
  await cleanup();
  for (const p of proxies) await p.stop();
  await Promise.all([svc.close(), other.close(), app.close()]);
});

/** Send raw bytes on a fresh connection and wait for `n` responses (and, when asked, for the close). */
async function exchange(port: number, bytes: string, n = 1, waitClose = false): Promise<{ c: RawClient; res: RawResponse[] }> {
  const c = await RawClient.connect(port);
  c.send(bytes);
  const res = await c.responses(n);
  if (waitClose) await c.waitClosed();
  return { c, res };
}

/** Occurrences of a header (case-insensitive) in what the upstream received. */
function count(seen: SeenRequest, name: string): number {
  let n = 0;
  for (let i = 0; i < seen.rawHeaders.length; i += 2) if (seen.rawHeaders[i]!.toLowerCase() === name) n++;
  return n;
}

/** The value of one series of a counter on /stats/prometheus (0 when absent). */
async function counter(p: RunningProxy, name: string, direction: string): Promise<number> {
  const body = (await p.admin('/stats/prometheus')).body;
  const m = new RegExp(`^${name}\\{[^}]*direction="${direction}"[^}]*\\} (\\S+)$`, 'm').exec(body);
  return m ? Number(m[1]) : 0;
}

/** One HTTP/2 request (prior knowledge) with extra fields; its :status (HPACK static index: 0x88 = 200, 0x8c = 400). */
async function h2(port: number, extra: Array<[string, string]>): Promise<number> {
  const c = await RawH2.connect(port);
  c.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, requestHeaders('svc', '/h2', 'GET', extra)));
  await c.until(() => c.closed || c.streamFrames(1).some((f) => f.type === FRAME.HEADERS || f.type === FRAME.RST_STREAM), 3000, 'a response');
  const h = c.streamFrames(1).find((f) => f.type === FRAME.HEADERS);
  c.destroy();
  return h === undefined ? -1 : h.payload[0] === 0x88 ? 200 : h.payload[0] === 0x8c ? 400 : -2;
}

/** A 400 that closes the connection, with nothing pipelined behind it served and nothing sent upstream. */
async function expectRejected(port: number, head: string, upstream: FakeUpstream): Promise<RawResponse> {
  const before = { requests: upstream.requests.length, connections: upstream.connections };
  const follow = 'GET /must-not-be-served HTTP/1.1\r\nHost: svc\r\n\r\n';
  const { c, res } = await exchange(port, head + follow, 1, true);
  await settle(50);
  expect(res.length).toBe(1);
  expect(res[0]!.status).toBe(400);
  expect(header(res[0]!, 'connection')).toBe('close');
  expect(c.text).not.toContain('must-not-be-served');
  expect(c.text.match(/HTTP\/1\.1 /g)?.length).toBe(1);
  expect({ requests: upstream.requests.length, connections: upstream.connections }).toEqual(before);
  return res[0]!;
}

describe('header names with underscores (--headers-with-underscores)', () => {
  it('allow (the default, as Envoy and Istio sidecars): forwarded as sent, and a route may match on it', async () => {
    const p = await proxy();
    const n = svc.requests.length;
    const { res } = await exchange(p.info.outbound, 'GET /u HTTP/1.1\r\nHost: svc\r\nX_Trace: t1\r\n\r\n');
    expect(res[0]!.status).toBe(200);
    expect(svc.requests.length).toBe(n + 1);
    expect(svc.requests.at(-1)!.rawHeaders).toContain('X_Trace');
    const { res: m } = await exchange(p.info.outbound, 'GET /u HTTP/1.1\r\nHost: svc\r\nx_user: admin\r\n\r\n');
    expect([m[0]!.status, m[0]!.body.toString()]).toEqual([403, 'matched-underscore']);
  });

  it('reject: 400 + Connection: close on both listeners, the upstream sees no byte, counted', async () => {
    const p = await proxy(['--headers-with-underscores', 'reject']);
    for (const name of ['x_user', 'X_Forwarded_For', 'a_']) {
      await expectRejected(p.info.outbound, `GET /r HTTP/1.1\r\nHost: svc\r\n${name}: admin\r\n\r\n`, svc);
    }
    await expectRejected(p.info.inbound, 'GET /r HTTP/1.1\r\nHost: app\r\nx_user: admin\r\n\r\n', app);
    // HTTP/2 as well (the stream gets the 400; HTTP/2 has no Connection: close).
    const n = svc.requests.length;
    expect(await h2(p.info.outbound, [['x_user', 'admin']])).toBe(400);
    expect(svc.requests.length).toBe(n);
    expect(await counter(p, 'remora_requests_rejected_with_underscores_in_headers_total', 'outbound')).toBe(4);
    expect(await counter(p, 'remora_requests_rejected_with_underscores_in_headers_total', 'inbound')).toBe(1);
    // Names without underscores still pass on the same proxy.
    const { res } = await exchange(p.info.outbound, 'GET /ok HTTP/1.1\r\nHost: svc\r\nx-user: admin\r\n\r\n');
    expect(res[0]!.status).toBe(200);
  });

  it('drop: removed before routing (the underscore route no longer matches) and before the upstream, counted', async () => {
    const p = await proxy(['--headers-with-underscores', 'drop']);
    const n = svc.requests.length;
    const { res } = await exchange(p.info.outbound, 'GET /d HTTP/1.1\r\nHost: svc\r\nx_user: admin\r\nX_Other: 1\r\nx-kept: 2\r\n\r\n');
    expect(res[0]!.status).toBe(200);
    expect(svc.requests.length).toBe(n + 1);
    const seen = svc.requests.at(-1)!;
    expect([count(seen, 'x_user'), count(seen, 'x_other'), count(seen, 'x-kept')]).toEqual([0, 0, 1]);
    expect(await h2(p.info.outbound, [['x_user', 'admin'], ['x-kept', '3']])).toBe(200);
    expect([count(svc.requests.at(-1)!, 'x_user'), svc.requests.at(-1)!.headers['x-kept']]).toEqual([0, '3']);
    const { res: inRes } = await exchange(p.info.inbound, 'GET /d HTTP/1.1\r\nHost: app\r\nx_user: admin\r\n\r\n');
    expect(inRes[0]!.status).toBe(200);
    expect(count(app.requests.at(-1)!, 'x_user')).toBe(0);
    expect(await counter(p, 'remora_dropped_headers_with_underscores_total', 'outbound')).toBe(3);
    expect(await counter(p, 'remora_dropped_headers_with_underscores_total', 'inbound')).toBe(1);
  });
});

describe('Host and the request target', () => {
  let p: RunningProxy;
  beforeAll(async () => { p = await proxy(); });

  it('duplicate Host: 400 + close, nothing upstream', async () => {
    await expectRejected(p.info.outbound, 'GET /dup HTTP/1.1\r\nHost: svc\r\nHost: other\r\n\r\n', svc);
    expect(other.requests.filter((r) => r.url === '/dup')).toEqual([]);
  });

  it('absolute-form authority wins over Host (RFC 9112 §3.2.2): routed there, and the one Host the upstream sees', async () => {
    const before = other.requests.length;
    for (const [target, host] of [['http://svc/abs', 'other'], ['HTTP://svc:80/abs2', 'other:80'], ['http://svc/abs3', 'svc.evil']] as const) {
      const { res } = await exchange(p.info.outbound, `GET ${target} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
      expect(res[0]!.status).toBe(200);
      const seen = svc.requests.at(-1)!;
      expect(seen.url).toBe(target.replace(/^http:\/\/[^/]+/i, ''));
      expect(count(seen, 'host')).toBe(1);
      expect(seen.headers.host).toBe(target.replace(/^http:\/\//i, '').replace(/\/.*$/, ''));
    }
    expect(other.requests.length).toBe(before);
    // Inbound too: the app sees the absolute-form authority as its only Host.
    const { res } = await exchange(p.info.inbound, 'GET http://app.local:8080/in HTTP/1.1\r\nHost: spoofed\r\n\r\n');
    expect(res[0]!.status).toBe(200);
    const seen = app.requests.at(-1)!;
    expect([seen.url, seen.headers.host, count(seen, 'host')]).toEqual(['/in', 'app.local:8080', 1]);
  });
});

describe('hop-by-hop and Connection-nominated headers', () => {
  let p: RunningProxy;
  beforeAll(async () => { p = await proxy(); });

  it('hop-by-hop headers and every header Connection names are not forwarded; TE: trailers is', async () => {
    const { res } = await exchange(p.info.outbound, 'GET /hop HTTP/1.1\r\nHost: svc\r\nConnection: keep-alive, x-secret, X-Other\r\n'
      + 'x-secret: s\r\nx-other: o\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\n'
      + 'TE: trailers\r\nx-end-to-end: e\r\n\r\n');
    expect(res[0]!.status).toBe(200);
    const seen = svc.requests.at(-1)!;
    const dropped = ['x-secret', 'x-other', 'keep-alive', 'proxy-connection', 'proxy-authorization'].map((h) => count(seen, h));
    expect(dropped).toEqual([0, 0, 0, 0, 0]);
    expect([count(seen, 'x-end-to-end'), seen.headers.te]).toEqual([1, 'trailers']);
    expect(seen.headers.connection === undefined || seen.headers.connection === 'keep-alive').toBe(true);
  });

  it('nominating a header Remora sets (Host, x-request-id) leaves exactly one, Remora\'s (never none)', async () => {
    const { res } = await exchange(p.info.outbound, 'GET /nom HTTP/1.1\r\nHost: svc\r\nConnection: host, x-request-id\r\nx-request-id: rid-1\r\n\r\n');
    expect(res[0]!.status).toBe(200);
    const seen = svc.requests.at(-1)!;
    expect([count(seen, 'host'), count(seen, 'x-request-id'), count(seen, 'x-forwarded-proto'), count(seen, 'x-forwarded-for')]).toEqual([1, 1, 1, 1]);
    expect([seen.headers.host, seen.headers['x-request-id']]).toEqual(['svc', 'rid-1']);
  });

  it('nominating x-forwarded-for / -proto / -host or a pseudo-header, or 10+ tokens: 400 + close (as Envoy), nothing upstream', async () => {
    const noms = ['x-forwarded-for', 'keep-alive, X-Forwarded-Proto', 'x-forwarded-host', ':authority', Array.from({ length: 10 }, (_, i) => `x-h${i}`).join(', ')];
    for (const c of noms) await expectRejected(p.info.outbound, `GET /nom HTTP/1.1\r\nHost: svc\r\nConnection: ${c}\r\nX-Forwarded-For: 10.9.9.9\r\n\r\n`, svc);
    await expectRejected(p.info.inbound, 'GET /nom HTTP/1.1\r\nHost: app\r\nConnection: x-forwarded-for\r\nX-Forwarded-For: 10.9.9.9\r\n\r\n', app);
    expect(await counter(p, 'remora_requests_rejected_connection_header_total', 'outbound')).toBe(noms.length);
    expect(await counter(p, 'remora_requests_rejected_connection_header_total', 'inbound')).toBe(1);
  });
});

describe('internal headers from an untrusted peer (inbound)', () => {
  it('x-envoy-*, x-remora-* and x-forwarded-client-cert never reach the app; the local app\'s outbound requests keep what is theirs', async () => {
    const p = await proxy();
    const internal = 'x-envoy-peer-metadata: Cg==\r\nx-envoy-peer-metadata-id: sidecar~evil\r\nx-envoy-max-retries: 9\r\nx-envoy-internal: true\r\n'
      + 'X-Remora-Proxy-Error: UF forged\r\nx-remora-anything: 1\r\nx-forwarded-client-cert: By=spiffe://cluster.local/ns/x/sa/admin;URI=spiffe://evil\r\n';
    const { res } = await exchange(p.info.inbound, `GET /int HTTP/1.1\r\nHost: app\r\n${internal}x-app: kept\r\n\r\n`);
    expect(res[0]!.status).toBe(200);
    const seen = app.requests.at(-1)!;
    // What the peer sent never arrives (x-envoy-attempt-count, which Remora adds itself, is not the peer's).
    const sent = new Set(internal.split('\r\n').filter(Boolean).map((l) => l.slice(0, l.indexOf(':')).toLowerCase()));
    const leaked = seen.rawHeaders.filter((h, i) => i % 2 === 0 && sent.has(h.toLowerCase()));
    expect(sent.size).toBe(7);
    expect(leaked).toEqual([]);
    expect(seen.rawHeaders.filter((h, i) => i % 2 === 0 && /^(x-remora-|x-forwarded-client-cert$)/i.test(h))).toEqual([]);
    expect(seen.headers['x-app']).toBe('kept');
    // Outbound (the local app, trusted): the request controls Remora honoured are consumed; the rest is the app's.
    const { res: out } = await exchange(p.info.outbound, `GET /int HTTP/1.1\r\nHost: svc\r\nx-envoy-max-retries: 0\r\nx-envoy-peer-metadata: Cg==\r\n\r\n`);
    expect(out[0]!.status).toBe(200);
    const o = svc.requests.at(-1)!;
    expect([count(o, 'x-envoy-max-retries'), count(o, 'x-envoy-peer-metadata')]).toEqual([0, 1]);
  });
});
