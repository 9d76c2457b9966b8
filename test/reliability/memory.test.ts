/**
 * RELIABILITY.md §4 row 12 through the real CLI: large request bodies under a retry policy. Bodies are generated on
 * the fly (random 64 KiB chunks, hashed as they are made; nothing holds a whole body), the upstream hashes what it
 * receives, and the proxy's VmRSS is sampled from /proc while they stream.
 *
 * - 10 parallel 10 MiB POSTs and one large chunked POST (REMORA_BIG_POST_MB, default 1024: the plan's 1 GB, ~2–4 s here):
 *   sha256-identical at the upstream, RSS growth ≤ 50 MB.
 * - Bodies over --retry-buffer-bytes (64 KiB) are streamed once and never retried: a 503 to such a body reaches the
 *   client, and each one is counted in envoy_cluster_retry_or_shadow_abandoned (Envoy's name); a small body is
 *   replayed on 503, byte-identical.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createServer, type Server } from 'node:http';
import { createHash, randomFillSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { Agent, request } from 'undici';
import { startProxy, type RunningProxy } from '../support/proxy-harness.js';
import { clusterStat, serviceEntry } from '../integration/resilience/helpers.js';

const MB = 1024 * 1024;
const BIG_MB = Number(process.env.REMORA_BIG_POST_MB ?? 1024);

/** What the upstream saw of one request attempt. */
interface Seen { path: string; attempt: number; bytes: number; sha: string }

let up: Server;
const seen: Seen[] = [];
let proxy: RunningProxy;
let http: Agent;

/** A body of `size` bytes made of random chunks as the reader asks for them; `sha()` is valid once it has ended. */
function generatedBody(size: number): { stream: Readable; sha: () => string } {
  const h = createHash('sha256');
  let left = size;
  const stream = new Readable({
    highWaterMark: 64 * 1024,
    read() {
      if (left === 0) { this.push(null); return; }
      const n = Math.min(64 * 1024, left);
      const chunk = randomFillSync(Buffer.allocUnsafe(n));
      h.update(chunk);
      left -= n;
      this.push(chunk);
    },
  });
  let digest: string | undefined;
  return { stream, sha: () => (digest ??= h.digest('hex')) };
}

function vmRssKb(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

/** Sample the proxy's VmRSS every 50 ms until `stop` is called; returns the peak (kB). */
function sampleRss(pid: number): { stop: () => number } {
  let peak = vmRssKb(pid);
  const t = setInterval(() => { peak = Math.max(peak, vmRssKb(pid)); }, 50);
  return { stop: () => { clearInterval(t); return Math.max(peak, vmRssKb(pid)); } };
}

async function post(path: string, body: Readable | string, headers: Record<string, string> = {}): Promise<{ status: number; json: () => Seen }> {
  const r = await request(proxy.url(path), { method: 'POST', headers: { host: 'sink', ...headers }, body, dispatcher: http });
  const text = await r.body.text();
  return { status: r.statusCode, json: () => JSON.parse(text) as Seen };
}

beforeAll(async () => {
  up = createServer((req, res) => {
    const h = createHash('sha256');
    let bytes = 0;
    req.on('data', (c: Buffer) => { h.update(c); bytes += c.length; });
    req.on('end', () => {
      const s: Seen = { path: req.url ?? '', attempt: Number(req.headers['x-envoy-attempt-count'] ?? 1), bytes, sha: h.digest('hex') };
      seen.push(s);
      // /fail-first: 503 to the first attempt (after reading the whole body), 200 to a retry.
      const status = req.url?.startsWith('/fail-first') && s.attempt === 1 ? 503 : 200;
      const out = JSON.stringify(s);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) }).end(out);
    });
  });
  await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
  // No VirtualService: Istio's default retry policy (2 retries on 503) applies to every request here.
  proxy = await startProxy({ 'mesh.yaml': serviceEntry('sink', [{ port: (up.address() as AddressInfo).port }]) });
  http = new Agent({ connections: 16, keepAliveTimeout: 10_000, bodyTimeout: 120_000, headersTimeout: 120_000 });
});

afterAll(async () => {
  await http?.close();
  await proxy?.stop();
  up?.closeAllConnections();
  await new Promise<void>((r) => (up ? up.close(() => r()) : r()));
});

describe('row 12: large bodies stream through with bounded memory, and are not retried past the retry buffer', () => {
  it('10 parallel 10 MiB POSTs: sha256-identical at the upstream, RSS growth ≤ 50 MB, each counted as retry buffering abandoned', async () => {
    // Warm-up (one-time costs: compiled code, the heap's first growth, ten upstream connections), then the baseline.
    await Promise.all(Array.from({ length: 10 }, (_, i) => post(`/warm/${i}`, generatedBody(MB).stream, { 'content-length': String(MB) })));
    const abandoned0 = await clusterStat(proxy, 'retry_or_shadow_abandoned', 'sink');
    const base = vmRssKb(proxy.info.pid);
    const rss = sampleRss(proxy.info.pid);
    const bodies = Array.from({ length: 10 }, () => generatedBody(10 * MB));
    const t0 = performance.now();
    const replies = await Promise.all(bodies.map((b, i) => post(`/ten/${i}`, b.stream, { 'content-length': String(10 * MB) })));
    const s = (performance.now() - t0) / 1000;
    const peak = rss.stop();
    for (let i = 0; i < 10; i++) {
      expect(replies[i]!.status).toBe(200);
      const got = replies[i]!.json();
      expect(got.bytes).toBe(10 * MB);
      expect(got.sha).toBe(bodies[i]!.sha());
    }
    console.log(`row 12: 10 × 10 MiB in ${s.toFixed(2)} s (${(100 / s).toFixed(0)} MiB/s); VmRSS ${(base / 1024).toFixed(1)} → peak ${(peak / 1024).toFixed(1)} MB (+${((peak - base) / 1024).toFixed(1)})`);
    expect(peak - base).toBeLessThanOrEqual(50 * 1024);
    expect(await clusterStat(proxy, 'retry_or_shadow_abandoned', 'sink')).toBe(abandoned0 + 10);
  });

  it(`one ${BIG_MB} MiB chunked POST generated on the fly: sha256-identical, RSS growth ≤ 50 MB; throughput reported`, async () => {
    const abandoned0 = await clusterStat(proxy, 'retry_or_shadow_abandoned', 'sink');
    const base = vmRssKb(proxy.info.pid);
    const rss = sampleRss(proxy.info.pid);
    const b = generatedBody(BIG_MB * MB);
    const t0 = performance.now();
    const r = await post('/big', b.stream); // no content-length: chunked, copied for a retry only while ≤ 64 KiB
    const s = (performance.now() - t0) / 1000;
    const peak = rss.stop();
    expect(r.status).toBe(200);
    const got = r.json();
    expect(got.bytes).toBe(BIG_MB * MB);
    expect(got.sha).toBe(b.sha());
    console.log(`row 12: ${BIG_MB} MiB chunked in ${s.toFixed(2)} s (${(BIG_MB / s).toFixed(0)} MiB/s, generated, proxied and hashed twice on this machine); VmRSS ${(base / 1024).toFixed(1)} → peak ${(peak / 1024).toFixed(1)} MB (+${((peak - base) / 1024).toFixed(1)})`);
    expect(peak - base).toBeLessThanOrEqual(50 * 1024);
    // The copy kept for a retry was dropped past the buffer: counted once.
    expect(await clusterStat(proxy, 'retry_or_shadow_abandoned', 'sink')).toBe(abandoned0 + 1);
  });

  it('a 503 to a 1 MiB body is not retried (the client gets the 503, one attempt upstream); a 1 KiB body is replayed byte-identical', async () => {
    const abandoned0 = await clusterStat(proxy, 'retry_or_shadow_abandoned', 'sink');
    const large = generatedBody(MB);
    const r1 = await post('/fail-first/large', large.stream, { 'content-length': String(MB) });
    expect(r1.status).toBe(503);
    const largeSeen = seen.filter((x) => x.path === '/fail-first/large');
    expect(largeSeen).toHaveLength(1);
    expect(largeSeen[0]!.sha).toBe(large.sha());
    expect(await clusterStat(proxy, 'retry_or_shadow_abandoned', 'sink')).toBe(abandoned0 + 1);

    const small = randomFillSync(Buffer.alloc(1024)).toString('base64');
    const r2 = await post('/fail-first/small', small);
    expect(r2.status).toBe(200);
    const smallSeen = seen.filter((x) => x.path === '/fail-first/small');
    expect(smallSeen.map((x) => x.attempt)).toEqual([1, 2]);
    const want = createHash('sha256').update(small).digest('hex');
    expect(smallSeen.every((x) => x.sha === want)).toBe(true);
    expect(await clusterStat(proxy, 'retry_or_shadow_abandoned', 'sink')).toBe(abandoned0 + 1); // the small one was kept
  });

  it('the process is still up', async () => {
    expect(proxy.exitCode).toBeNull();
    expect(proxy.stderr).not.toMatch(/uncaught|unhandled|heap out of memory/i);
  });
});
