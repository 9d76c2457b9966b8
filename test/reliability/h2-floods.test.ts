// HTTP/2 from a hostile client, through the real CLI (RELIABILITY.md §4, "every new protocol path gets the same
// treatment"): rapid reset (CVE-2023-44487), CONTINUATION flood (CVE-2024-27983), SETTINGS and PING floods whose
// answers the client never reads, invalid-frame floods, more streams than SETTINGS_MAX_CONCURRENT_STREAMS, and
// resets mid-response from either side. Each is bounded (the connection is closed, the upstream sees a bounded number
// of requests, memory stays flat), counted in /stats/prometheus, and leaves the proxy serving everyone else.
import http from 'node:http';
import http2 from 'node:http2';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProxy, waitFor, type RunningProxy } from '../support/proxy-harness.js';
import { serviceEntry } from '../integration/resilience/helpers.js';
import { RawH2, FRAME, FLAG, frame, requestHeaders, rstStream, ping, settingsFrame, headerBlock } from '../support/h2-raw.js';

const HOST = 'echo.default.svc.cluster.local';
const ENHANCE_YOUR_CALM = 0xb;
const REFUSED_STREAM = 0x7;

let proxy: RunningProxy;
let upstream: http.Server;
let seen = 0;
let upstreamAborted = 0;

beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    seen++;
    if (req.url === '/stream') {
      // A long response the client resets halfway: the proxy must abort this upstream request.
      res.on('close', () => { if (!res.writableFinished) upstreamAborted++; });
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const timer = setInterval(() => res.write(Buffer.alloc(16 * 1024, 0x61)), 5);
      res.on('close', () => clearInterval(timer));
      return;
    }
    if (req.url === '/broken') {
      // The upstream dies mid-body: the client's stream must be reset, never ended cleanly.
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial');
      setTimeout(() => req.socket.destroy(), 20);
      return;
    }
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const port = (upstream.address() as { port: number }).port;
  proxy = await startProxy({ 'se.yaml': serviceEntry('echo', [{ port }]) });
});
afterAll(async () => {
  await proxy?.stop();
  upstream?.closeAllConnections();
  upstream?.close();
});

async function metric(name: string): Promise<number> {
  const body = (await proxy.admin('/stats/prometheus')).body;
  const m = new RegExp(`^${name}\\{listener="outbound"\\} (\\S+)$`, 'm').exec(body);
  return m === null ? 0 : Number(m[1]);
}

function rssKiB(): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${proxy.info.pid}/status`, 'utf8'));
  return Number(m![1]);
}

/** A well-behaved HTTP/2 request and an HTTP/1 request: both must still be answered after each attack. */
async function stillServes(): Promise<void> {
  const s = http2.connect(`http://127.0.0.1:${proxy.info.outbound}`);
  try {
    const status = await new Promise<number>((resolve, reject) => {
      const st = s.request({ ':path': '/', ':authority': HOST });
      st.on('response', (h) => resolve(Number(h[':status'])));
      st.on('error', reject);
      st.resume();
      st.end();
    });
    expect(status).toBe(200);
  } finally {
    s.close();
  }
  expect((await proxy.get('/', { host: HOST })).status).toBe(200);
}

/** Write `n` frames from `gen` as fast as the socket takes them, yielding now and then; stop once the proxy closed. */
async function flood(c: RawH2, n: number, gen: (i: number) => Buffer): Promise<number> {
  let sent = 0;
  for (let i = 0; i < n && !c.closed; i++) {
    c.write(gen(i));
    sent++;
    if (i % 256 === 0) await new Promise((r) => setImmediate(r));
  }
  return sent;
}

describe('HTTP/2 floods are bounded and counted', () => {
  it('rapid reset: HEADERS then RST_STREAM, 5,000 times → GOAWAY ENHANCE_YOUR_CALM, the connection closed, counted', async () => {
    const before = await metric('remora_http2_premature_reset_closes_total');
    const seenBefore = seen;
    const c = await RawH2.connect(proxy.info.outbound);
    const hb = requestHeaders(HOST);
    const sent = await flood(c, 5000, (i) => Buffer.concat([frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1 + 2 * i, hb), rstStream(1 + 2 * i)]));
    await c.until(() => c.closed, 5000, 'the proxy to close the connection');
    expect(c.goawayCode).toBe(ENHANCE_YOUR_CALM);
    // The streams the proxy took before it closed are bounded by the check (500 closed streams, half of them reset).
    const last = c.frames.find((f) => f.type === FRAME.GOAWAY)!.payload.readUInt32BE(0);
    expect(last).toBeLessThan(2 * 1100);
    expect(seen - seenBefore).toBeLessThan(1100);
    expect(sent).toBeGreaterThan(500);
    expect(await metric('remora_http2_premature_reset_closes_total')).toBe(before + 1);
    expect(await metric('remora_http2_streams_reset_by_peer_total')).toBeGreaterThanOrEqual(250);
    await stillServes();
  });

  it('a client that resets some streams (under half) keeps its connection', async () => {
    const before = await metric('remora_http2_premature_reset_closes_total');
    const c = await RawH2.connect(proxy.info.outbound);
    const hb = requestHeaders(HOST);
    // 600 streams, one in three reset at once; the others are answered (the client reads).
    for (let i = 0; i < 600; i++) {
      const id = 1 + 2 * i;
      c.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, id, hb));
      if (i % 3 === 0) c.write(rstStream(id));
      if (i % 50 === 49) await c.until(() => c.frames.filter((f) => f.type === FRAME.DATA && (f.flags & FLAG.END_STREAM) !== 0).length >= Math.floor(((i + 1) * 2) / 3) - 20, 5000, 'answers');
    }
    await c.until(() => c.frames.filter((f) => f.type === FRAME.HEADERS).length >= 390, 5000, 'answers');
    expect(c.closed).toBe(false);
    expect(c.goawayCode).toBeUndefined();
    expect(await metric('remora_http2_premature_reset_closes_total')).toBe(before);
    c.destroy();
  });

  it('CONTINUATION flood: a header block that never ends is cut off within a few KiB, counted', async () => {
    const before = await metric('remora_http2_protocol_error_closes_total');
    const rss = rssKiB();
    const c = await RawH2.connect(proxy.info.outbound);
    const piece = frame(FRAME.CONTINUATION, 0, 1, headerBlock([['x-flood', 'a'.repeat(100)]]));
    const sent = await flood(c, 100_000, (i) => (i === 0 ? frame(FRAME.HEADERS, 0, 1, requestHeaders(HOST)) : piece));
    await c.until(() => c.closed, 5000, 'the proxy to close the connection');
    expect(sent).toBeLessThan(100_000);
    await waitFor(async () => (await metric('remora_http2_protocol_error_closes_total')) === before + 1, 3000);
    expect(rssKiB() - rss).toBeLessThan(30 * 1024);
    await stillServes();
  });

  for (const [name, gen] of [
    ['SETTINGS', () => settingsFrame([[4, 65535]])],
    ['PING', () => ping()],
  ] as const) {
    it(`${name} flood from a client that never reads the ACKs: the connection is closed, counted, memory flat`, async () => {
      const before = await metric('remora_http2_protocol_error_closes_total');
      const rss = rssKiB();
      const c = await RawH2.connect(proxy.info.outbound, { read: false });
      const sent = await flood(c, 200_000, gen);
      c.sock.resume();
      await c.until(() => c.closed, 5000, 'the proxy to close the connection');
      expect(sent).toBeLessThan(200_000);
      await waitFor(async () => (await metric('remora_http2_protocol_error_closes_total')) === before + 1, 3000);
      expect(rssKiB() - rss).toBeLessThan(30 * 1024);
      await stillServes();
    });
  }

  it('a flood of invalid frames (empty DATA frames) is closed after nghttp2\'s invalid-frame budget, counted', async () => {
    const before = await metric('remora_http2_protocol_error_closes_total');
    const c = await RawH2.connect(proxy.info.outbound);
    const sent = await flood(c, 100_000, (i) => (i === 0 ? frame(FRAME.HEADERS, FLAG.END_HEADERS, 1, requestHeaders(HOST, '/', 'POST')) : frame(FRAME.DATA, 0, 1)));
    await c.until(() => c.closed, 5000, 'the proxy to close the connection');
    expect(sent).toBeLessThan(100_000);
    await waitFor(async () => (await metric('remora_http2_protocol_error_closes_total')) === before + 1, 3000);
    await stillServes();
  });

  it('more streams than SETTINGS_MAX_CONCURRENT_STREAMS (1,024): the connection is closed, the upstream sees at most 1,024, the rest reset', async () => {
    // node:http2 (nghttp2) ends the whole connection (GOAWAY, its open streams reset) when a client opens a stream
    // past the limit it advertised, rather than refusing that one stream: bounded either way.
    const seenBefore = seen;
    const c = await RawH2.connect(proxy.info.outbound);
    // POSTs whose bodies never come: every stream stays open; 20 more than the limit.
    const hb = requestHeaders(HOST, '/', 'POST');
    for (let i = 0; i < 1044 && !c.closed; i++) c.write(frame(FRAME.HEADERS, FLAG.END_HEADERS, 1 + 2 * i, hb));
    await c.until(() => c.goawayCode !== undefined, 5000, 'GOAWAY');
    const last = c.frames.find((f) => f.type === FRAME.GOAWAY)!.payload.readUInt32BE(0);
    expect(last).toBeLessThanOrEqual(2 * 1024 - 1);
    await c.until(() => c.frames.filter((f) => f.type === FRAME.RST_STREAM).length >= 1000, 5000, 'the open streams reset');
    await new Promise((r) => setTimeout(r, 200));
    expect(seen - seenBefore).toBeLessThanOrEqual(1024);
    c.destroy();
    await stillServes();
  });
});

describe('HTTP/2 resets mid-response', () => {
  it('the client resets a stream mid-download: the upstream request is aborted, counted', async () => {
    const before = await metric('remora_http2_streams_reset_by_peer_total');
    const abortedBefore = upstreamAborted;
    const c = await RawH2.connect(proxy.info.outbound);
    c.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, requestHeaders(HOST, '/stream')));
    await c.until(() => c.frames.filter((f) => f.type === FRAME.DATA && f.streamId === 1).length >= 2, 5000, 'body data');
    c.write(rstStream(1));
    await waitFor(() => upstreamAborted === abortedBefore + 1, 5000);
    await waitFor(async () => (await metric('remora_http2_streams_reset_by_peer_total')) === before + 1, 3000);
    c.destroy();
  });

  it('the upstream dies mid-body: the client gets RST_STREAM, never a clean END_STREAM', async () => {
    const c = await RawH2.connect(proxy.info.outbound);
    c.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, requestHeaders(HOST, '/broken')));
    await c.until(() => c.streamFrames(1).some((f) => f.type === FRAME.RST_STREAM), 5000, 'RST_STREAM on stream 1');
    const frames = c.streamFrames(1);
    expect(frames.some((f) => f.type === FRAME.HEADERS)).toBe(true);
    expect(frames.some((f) => (f.type === FRAME.DATA || f.type === FRAME.HEADERS) && (f.flags & FLAG.END_STREAM) !== 0)).toBe(false);
    expect(c.closed).toBe(false);
    c.destroy();
  });

  it('no uncaught exception in the proxy after all of it', () => {
    if (proxy.exitCode !== null) console.log(proxy.stderr.slice(-3000));
    expect(proxy.exitCode).toBeNull();
    expect(proxy.stderr).not.toMatch(/uncaught|unhandled/i);
  });
});
