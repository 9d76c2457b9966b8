/**
 * RELIABILITY.md §4 row 18 through the real CLI: a client that goes away at a random point — inside the request
 * head, during the body upload (a body small enough to be buffered for retries, or one streamed through), while the
 * upstream thinks, or in the middle of a 4 MiB response download — by FIN or by RST. fast-check draws the phase,
 * the offset, the delay and the way out; each run checks, once things settle:
 *   - the proxy is alive and wrote no uncaught exception or unhandled rejection to stderr;
 *   - nothing is left busy: remora_upstream_connections{state="active"} and {state="queued"} back to 0, idle ≤ 1,
 *     the cluster's admitted requests (/clusters activeRequests, what circuit breaking counts) back to 0
 *     (one client at a time), and the upstream holds no more open connections than the pool's idle ones;
 *   - the upstream request was aborted, never completed: a request the upstream had started (waiting, mid-upload,
 *     mid-download) sees its connection closed before its response finished; one that never left the proxy (a
 *     partial head, a body still being buffered) never reaches it. A FIN before the answer is the client going
 *     away, as a reset is (Envoy resets the stream, nginx finalizes the upstream request with 499, node:http
 *     aborts it): the upstream request is abandoned too.
 * REMORA_ABORT_RUNS sets the number of runs (default 200, ~25–30 s here; the plan's 10k is a soak count),
 * REMORA_ABORT_SEED replays a failure (fast-check prints the seed and the shrunk case).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import { createServer, type Server, type ServerResponse } from 'node:http';
import net from 'node:net';
import { startProxy, type RunningProxy } from '../support/proxy-harness.js';
import { clusterStat, serviceEntry } from '../integration/resilience/helpers.js';

const RUNS = Number(process.env.REMORA_ABORT_RUNS ?? 200);
const SEED = process.env.REMORA_ABORT_SEED === undefined ? undefined : Number(process.env.REMORA_ABORT_SEED);
const BIG = 4 * 1024 * 1024; // the /big response
const WAIT_MS = 800; // /wait answers after this; clients abort within 300 ms
const SMALL_BODY = 32 * 1024; // ≤ --retry-buffer-bytes (64 KiB): buffered before the upstream is asked
const LARGE_BODY = 256 * 1024; // streamed to the upstream as it arrives

interface UpRecord { received: boolean; bodyBytes: number; completed: boolean; aborted: boolean }

let up: Server;
const upSockets = new Set<net.Socket>();
const records = new Map<string, UpRecord>();
let proxy: RunningProxy;

function slowBody(res: ServerResponse): void {
  let sent = 0;
  const chunk = Buffer.alloc(16 * 1024, 0x61);
  const step = (): void => {
    if (res.destroyed) return;
    if (sent >= BIG) { res.end(); return; }
    sent += chunk.length;
    res.write(chunk);
    setTimeout(step, 2); // ~8 MiB/s: 4 MiB take ~0.5 s, however fast the client reads
  };
  step();
}

beforeAll(async () => {
  up = createServer((req, res) => {
    const id = req.url ?? '';
    const rec: UpRecord = { received: true, bodyBytes: 0, completed: false, aborted: false };
    records.set(id, rec);
    res.on('finish', () => { rec.completed = true; });
    res.on('close', () => { if (!res.writableFinished) rec.aborted = true; });
    req.on('data', (c: Buffer) => { rec.bodyBytes += c.length; });
    req.on('end', () => {
      if (id.startsWith('/wait/')) {
        setTimeout(() => { if (!res.destroyed) res.end('late'); }, WAIT_MS);
      } else if (id.startsWith('/big/')) {
        res.writeHead(200, { 'content-length': String(BIG) });
        slowBody(res);
      } else {
        res.end('ok');
      }
    });
  });
  up.keepAliveTimeout = 10_000;
  up.on('connection', (s: net.Socket) => { upSockets.add(s); s.on('close', () => upSockets.delete(s)); });
  await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
  proxy = await startProxy({ 'mesh.yaml': serviceEntry('abort', [{ port: (up.address() as net.AddressInfo).port }]) });
});

afterAll(async () => {
  await proxy?.stop();
  up?.closeAllConnections();
  await new Promise<void>((r) => (up ? up.close(() => r()) : r()));
});

async function gauges(): Promise<{ active: number; idle: number; queued: number }> {
  const body = (await proxy.admin('/stats/prometheus')).body;
  const g = (s: string) => Number(new RegExp(`^remora_upstream_connections\\{state="${s}"\\} (\\S+)$`, 'm').exec(body)?.[1] ?? NaN);
  return { active: g('active'), idle: g('idle'), queued: g('queued') };
}

/** Requests holding an admission slot of the cluster (Envoy rq_active + rq_pending_active), from /clusters. */
async function admitted(): Promise<number> {
  const views = JSON.parse((await proxy.admin('/clusters?format=json')).body) as { clusters: Array<{ name: string; activeRequests: number }> };
  return views.clusters.filter((v) => v.name.includes('abort')).reduce((n, v) => n + v.activeRequests, 0);
}

async function until(pred: () => boolean | Promise<boolean>, ms: number, what: () => string): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await pred()) return;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms: ${what()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

type Phase = 'head' | 'upload-buffered' | 'upload-streamed' | 'wait' | 'download';
interface Case { phase: Phase; frac: number; delayMs: number; rst: boolean }

let seq = 0;
const tally = new Map<string, number>();
const count = (k: string) => tally.set(k, (tally.get(k) ?? 0) + 1);

/** Open a connection, get as far as the case says, then leave by FIN (destroy) or RST. */
async function runCase(c: Case): Promise<string> {
  const id = `${c.phase}-${seq++}`;
  const sock = net.connect(proxy.info.outbound, '127.0.0.1');
  sock.on('error', () => { /* our own reset */ });
  await new Promise<void>((r, j) => { sock.once('connect', r); sock.once('error', j); });
  let received = 0;
  sock.on('data', (d: Buffer) => { received += d.length; });
  const leave = () => (c.rst ? sock.resetAndDestroy() : sock.destroy());
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  let path = '';
  switch (c.phase) {
    case 'head': {
      path = `/head/${id}`;
      const head = Buffer.from(`GET ${path} HTTP/1.1\r\nhost: abort\r\nx-pad: ${'p'.repeat(200)}\r\n\r\n`);
      const k = Math.floor(c.frac * (head.length - 1)); // never the whole head
      sock.write(head.subarray(0, k));
      await sleep(c.delayMs % 20);
      break;
    }
    case 'upload-buffered':
    case 'upload-streamed': {
      const size = c.phase === 'upload-buffered' ? SMALL_BODY : LARGE_BODY;
      path = `/upload/${id}`;
      sock.write(`POST ${path} HTTP/1.1\r\nhost: abort\r\ncontent-length: ${size}\r\n\r\n`);
      const k = Math.floor(c.frac * (size - 1)); // never the whole body
      if (k > 0) sock.write(Buffer.alloc(k, 0x62));
      await sleep(c.delayMs % 50);
      break;
    }
    case 'wait':
      path = `/wait/${id}`;
      sock.write(`GET ${path} HTTP/1.1\r\nhost: abort\r\n\r\n`);
      await sleep(c.delayMs); // < 300 ms, well before the upstream's answer at 0.8 s
      break;
    case 'download': {
      path = `/big/${id}`;
      sock.write(`GET ${path} HTTP/1.1\r\nhost: abort\r\n\r\n`);
      const k = Math.max(1, Math.floor(c.frac * (BIG / 4))); // within the first MiB of 4, after the first byte
      await until(() => received >= k || sock.destroyed, 5000, () => `${received} of ${k} bytes`);
      break;
    }
  }
  leave();
  // Settle: nothing busy in the pool, every admission slot (circuit-breaker count) returned, the proxy alive.
  await until(async () => { const g = await gauges(); return g.active === 0 && g.queued === 0 && (await admitted()) === 0; }, 5000, () => `pool or admission still busy after ${JSON.stringify(c)}`);
  expect(proxy.exitCode).toBeNull();
  // The upstream side of this request.
  const rec = () => records.get(path);
  if (c.phase === 'head' || c.phase === 'upload-buffered') {
    expect(rec()).toBeUndefined(); // never left the proxy
    count(`${c.phase}: never reached the upstream`);
  } else {
    // Started upstream → aborted there; the proxy may also have dropped it before dispatching (absent). A FIN before
    // the answer counts as the client going away, as a reset does (Envoy resets the stream, nginx answers 499).
    await until(() => rec() === undefined || rec()!.aborted || rec()!.completed, 3000, () => `upstream record ${JSON.stringify(rec())}`);
    const r = rec();
    expect(r?.completed ?? false).toBe(false);
    count(`${c.phase}+${c.rst ? 'RST' : 'FIN'}: ${r === undefined ? 'never reached the upstream' : 'aborted at the upstream'}`);
  }
  const g = await gauges();
  expect(g.idle).toBeLessThanOrEqual(1);
  // No upstream connection leaked: the upstream's open connections are the pool's idle ones.
  await until(() => upSockets.size <= g.idle, 3000, () => `upstream has ${upSockets.size} open connections, pool idle ${g.idle}`);
  return id;
}

describe('row 18: clients aborting at random points', () => {
  it(`${RUNS} fast-check runs over head / upload / wait / download × FIN / RST: proxy alive, pool back to baseline, upstream aborted`, async () => {
    const before = await gauges();
    expect(before).toEqual({ active: 0, idle: 0, queued: 0 });
    const t0 = performance.now();
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          phase: fc.constantFrom<Phase>('head', 'upload-buffered', 'upload-streamed', 'wait', 'download'),
          frac: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
          delayMs: fc.integer({ min: 0, max: 299 }),
          rst: fc.boolean(),
        }),
        async (c) => { await runCase(c); },
      ),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
    const s = (performance.now() - t0) / 1000;
    console.log(`row 18: ${RUNS} runs in ${s.toFixed(1)} s: ${[...tally].sort().map(([k, v]) => `${k} ${v}`).join('; ')}`);
    // The phases that reach the upstream did reach it and were aborted there, not only dropped early.
    for (const phase of ['wait', 'download', 'upload-streamed']) {
      expect((tally.get(`${phase}+RST: aborted at the upstream`) ?? 0) + (tally.get(`${phase}+FIN: aborted at the upstream`) ?? 0), phase).toBeGreaterThan(0);
    }
    // The client went away, not the upstream: no upstream reset is counted for any of it.
    expect(await clusterStat(proxy, 'upstream_rq_rx_reset', 'abort')).toBe(0);
    expect(proxy.exitCode).toBeNull();
    expect(proxy.stderr).not.toMatch(/uncaught|unhandled|TypeError|RangeError/i);
    expect((await proxy.admin('/ready')).status).toBe(200);
    const after = await gauges();
    expect(after.active).toBe(0);
    expect(after.queued).toBe(0);
    expect(after.idle).toBeLessThanOrEqual(1);
  });
});
