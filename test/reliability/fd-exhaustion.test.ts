/**
 * Reliability row 10 (RELIABILITY.md §4): a connection flood past the listener limit and past `ulimit -n`, through the
 * real CLI with its fd limit lowered to 256 (prlimit on the running PID).
 *  - Without a limit the flood reaches EMFILE: libuv accepts and closes the waiting connections with its reserve
 *    descriptor (uv__emfile_trick; node's server sees no 'error'), the process stays up, accepting resumes on its own
 *    once fds are free, admin answers again, and a config read that failed with EMFILE meanwhile is retried, not
 *    counted as a rejected config (it used to be: remora_config_reload_failures_total +1 every 100 ms of the flood).
 *  - With --max-connections 200 the flood stops at the limit: connections past it are closed at accept and counted
 *    (remora_listener_connections_overflow_total), fds stay below the limit, admin and an established keep-alive
 *    client keep being served during the flood.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { execFileSync } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { Agent, request } from 'undici';
import { startProxy, waitFor, type RunningProxy } from '../support/proxy-harness.js';
import { serviceEntry } from '../integration/resilience/helpers.js';
import { fdCount, PlainUpstream, sleep } from './support/proc.js';

const NOFILE = 256;
const FLOOD = 600;

let proxy: RunningProxy | undefined;
let upstream: PlainUpstream | undefined;
let flood: Socket[] = [];

afterEach(async () => {
  for (const s of flood) s.destroy();
  flood = [];
  await proxy?.stop();
  await upstream?.close();
  proxy = undefined;
  upstream = undefined;
});

async function start(args: string[] = []): Promise<RunningProxy> {
  upstream = await new PlainUpstream().start();
  const p = await startProxy({ 'mesh.yaml': serviceEntry('svc', [{ port: upstream.port }]) }, args);
  proxy = p;
  execFileSync('prlimit', ['--pid', String(p.info.pid), `--nofile=${NOFILE}:${NOFILE}`]);
  expect(execFileSync('prlimit', ['--pid', String(p.info.pid), '--nofile', '-o', 'SOFT', '--noheadings'], { encoding: 'utf8' }).trim()).toBe(String(NOFILE));
  return p;
}

/** Open `n` connections to the outbound port and keep them; resolves after `settleMs` with how many the proxy closed. */
async function openFlood(p: RunningProxy, n: number, settleMs: number): Promise<{ closedByProxy: () => number }> {
  let closed = 0;
  for (let i = 0; i < n; i++) {
    const s = connect({ host: '127.0.0.1', port: p.info.outbound });
    s.on('error', () => {});
    s.on('close', () => { closed++; });
    flood.push(s);
  }
  await sleep(settleMs);
  return { closedByProxy: () => closed };
}

/** One request on a fresh connection: the status, or the error code. */
async function once(url: string, host?: string): Promise<number | string> {
  const d = new Agent({ connections: 1, pipelining: 0, connect: { timeout: 2000 } });
  try {
    const r = await request(url, { headers: host ? { host } : {}, dispatcher: d, headersTimeout: 2000, bodyTimeout: 2000 });
    await r.body.text();
    return r.statusCode;
  } catch (err) {
    return (err as { code?: string }).code ?? (err as Error).message;
  } finally {
    await d.destroy();
  }
}

async function metric(p: RunningProxy, name: string, labels = ''): Promise<number> {
  const body = (await p.admin('/stats/prometheus')).body;
  const re = new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'gm');
  let sum = 0;
  for (const m of body.matchAll(re)) if ((m[1] ?? '').includes(labels)) sum += Number(m[2]);
  return sum;
}

describe('row 10: connection flood past ulimit -n', () => {
  it('no connection limit: EMFILE does not crash it, accepting resumes when fds free up, config reads are retried', async () => {
    const p = await start();
    const base = fdCount(p.info.pid);
    const failures0 = await metric(p, 'remora_config_reload_failures_total');
    // Held 3 s: the file watcher's 2 s poll runs out of descriptors meanwhile and retries.
    const f = await openFlood(p, FLOOD, 3000);
    const during = fdCount(p.info.pid);
    const closedDuring = f.closedByProxy();
    const duringProxy = await once(p.url('/'), 'svc');
    expect(p.exitCode).toBeNull();
    for (const s of flood) s.destroy();
    flood = [];
    // Accepting resumes by itself: new connections are served again.
    await waitFor(async () => (await once(p.url('/'), 'svc')) === 200, 5000, 100);
    const admin = await p.admin('/ready');
    const after = await once(p.url('/'), 'svc');
    // A config change after the flood applies (the watcher survived), and nothing in the flood counted as a bad config.
    const reloads0 = await metric(p, 'remora_config_reloads_total');
    p.writeConfig('mesh.yaml', serviceEntry('svc', [{ port: upstream!.port }]) + '---\n' + serviceEntry('other', [{ port: upstream!.port }]));
    await waitFor(async () => (await metric(p, 'remora_config_reloads_total')) > reloads0, 5000, 100);
    const failures1 = await metric(p, 'remora_config_reload_failures_total');
    await waitFor(() => fdCount(p.info.pid) <= base + 3, 5000, 100);
    console.log(`row 10 EMFILE: fds base ${base}, during the flood ${during} (limit ${NOFILE}); of ${FLOOD} flood connections the proxy closed ${closedDuring} (accepted past the fd limit and closed); a new request during the flood: ${duringProxy}; after: proxy ${after}, admin /ready ${admin.status}; config reload failures ${failures0} → ${failures1}; stderr: ${JSON.stringify(p.stderr.slice(0, 300))}`);
    expect(during).toBeGreaterThan(NOFILE - 10); // the flood did reach the fd limit
    expect(during).toBeLessThanOrEqual(NOFILE);
    expect(closedDuring).toBeGreaterThan(FLOOD - NOFILE - 10);
    expect(after).toBe(200);
    expect(admin.status).toBe(200);
    expect(failures1).toBe(failures0);
    expect(p.exitCode).toBeNull();
    expect(p.stderr).not.toMatch(/uncaught|unhandled|TypeError|RangeError/i);
  });

  it('--max-connections 200: the flood stops at the limit, overflow counted, admin and an established client served throughout', async () => {
    const p = await start(['--max-connections', '200']);
    const base = fdCount(p.info.pid);
    // A well-behaved client with a keep-alive connection from before the flood.
    const ka = new Agent({ connections: 1, keepAliveTimeout: 30_000 });
    try {
      const get = async (): Promise<number> => { const r = await request(p.url('/'), { headers: { host: 'svc' }, dispatcher: ka }); await r.body.text(); return r.statusCode; };
      expect(await get()).toBe(200);
      const f = await openFlood(p, FLOOD, 2000);
      const during = fdCount(p.info.pid);
      const statuses: number[] = [];
      for (let i = 0; i < 20; i++) statuses.push(await get());
      const admin = await p.admin('/ready');
      const overflow = await metric(p, 'remora_listener_connections_overflow_total', 'listener="outbound"');
      const closed = f.closedByProxy();
      for (const s of flood) s.destroy();
      flood = [];
      await waitFor(async () => (await once(p.url('/'), 'svc')) === 200, 5000, 100);
      console.log(`row 10 --max-connections 200: fds base ${base}, during the flood ${during} (fd limit ${NOFILE}); ${closed} of ${FLOOD} flood connections closed at accept, overflow counter ${overflow}; the established client got ${JSON.stringify([...new Set(statuses)])} ×${statuses.length}; admin /ready ${admin.status}`);
      expect(during).toBeLessThan(NOFILE - 20); // fds to spare: the limit, not EMFILE, stopped the flood
      expect(closed).toBeGreaterThanOrEqual(FLOOD - 200);
      expect(overflow).toBeGreaterThanOrEqual(FLOOD - 200);
      expect(statuses.every((s) => s === 200)).toBe(true);
      expect(admin.status).toBe(200);
      expect(p.exitCode).toBeNull();
    } finally {
      await ka.destroy();
    }
  });
});
