// Row 9 with the stream idle timeout (Envoy's stream_idle_timeout; --stream-idle-timeout, default 5 min, 2 s here):
// slow POSTs that stop sending and clients that stop reading are ended once nothing moves for that long — 408 +
// close for a request not answered yet, a reset for a response under way — and the upstream work is abandoned, while
// a well-behaved client is served throughout. Through the real CLI.
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProxy, waitFor, type RunningProxy } from '../support/proxy-harness.js';
import { serviceEntry } from '../integration/resilience/helpers.js';

let upstream: http.Server;
let proxy: RunningProxy;
let bigAborted = 0;
let uploadsSeen = 0;

beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    if (req.url === '/big') {
      // 256 MiB, written as fast as the proxy takes it.
      const chunk = Buffer.alloc(1 << 20, 0x61);
      let left = 256;
      res.writeHead(200, { 'content-length': String(left << 20) });
      res.on('close', () => { if (!res.writableFinished) bigAborted++; });
      const pump = (): void => { while (left > 0 && res.write(chunk)) left--; if (left > 0) res.once('drain', () => { left--; pump(); }); else res.end(); };
      pump();
      return;
    }
    if (req.url === '/upload') uploadsSeen++;
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  proxy = await startProxy({ 'se.yaml': serviceEntry('svc', [{ port: (upstream.address() as net.AddressInfo).port }]) }, ['--stream-idle-timeout', '2s']);
});
afterAll(async () => {
  await proxy?.stop();
  upstream?.closeAllConnections();
  upstream?.close();
});

async function metric(name: string): Promise<number> {
  const m = new RegExp(`^${name}\\{listener="outbound"\\} (\\S+)$`, 'm').exec((await proxy.admin('/stats/prometheus')).body);
  return m === null ? 0 : Number(m[1]);
}

describe('row 9: the stream idle timeout ends slow POSTs and slow readers', () => {
  it('50 POSTs that stop sending their body: each gets 408 + Connection: close after ~2 s of silence; a good client is served meanwhile', async () => {
    const before = await metric('remora_http1_stream_idle_timeouts_total');
    const t0 = Date.now();
    const results = Array.from({ length: 50 }, () => new Promise<{ text: string; ms: number }>((resolve) => {
      const s = net.connect(proxy.info.outbound, '127.0.0.1');
      let text = '';
      s.on('data', (d: Buffer) => { text += d.toString('latin1'); });
      s.on('error', () => {});
      s.on('close', () => resolve({ text, ms: Date.now() - t0 }));
      s.write('POST /upload HTTP/1.1\r\nhost: svc\r\ncontent-length: 8192\r\n\r\n0123456789');
    }));
    // Meanwhile a well-behaved client.
    let good = 0;
    for (let i = 0; i < 20; i++) {
      if ((await proxy.get('/', { host: 'svc' })).status === 200) good++;
      await new Promise((r) => setTimeout(r, 50));
    }
    const done = await Promise.all(results);
    expect(good).toBe(20);
    for (const r of done) {
      expect(r.text).toMatch(/^HTTP\/1\.1 408 /);
      expect(r.text.toLowerCase()).toContain('connection: close');
      // 2 s of silence, found by a sweep of at most 1 s: never before 2 s, well before the 5 min default.
      expect(r.ms).toBeGreaterThanOrEqual(1900);
      expect(r.ms).toBeLessThan(8000);
    }
    expect(await metric('remora_http1_stream_idle_timeouts_total')).toBe(before + 50);
    console.log(`row 9 stream idle: 50 slow POSTs answered 408 after ${Math.min(...done.map((r) => r.ms))}-${Math.max(...done.map((r) => r.ms))} ms; the upstream saw ${uploadsSeen} of them begin`);
  });

  it('4 clients that read nothing of a 256 MiB response: reset once nothing moves, and the upstream response is abandoned', async () => {
    const before = bigAborted;
    const timeouts = await metric('remora_http1_stream_idle_timeouts_total');
    const t0 = Date.now();
    const socks = Array.from({ length: 4 }, () => {
      const s = net.connect(proxy.info.outbound, '127.0.0.1');
      s.on('error', () => {});
      s.write('GET /big HTTP/1.1\r\nhost: svc\r\n\r\n');
      s.pause(); // never reads (so it does not see the reset either; the proxy's side is what counts)
      return s;
    });
    try {
      await waitFor(async () => (await metric('remora_http1_stream_idle_timeouts_total')) === timeouts + 4, 10_000, 100);
      const ms = Date.now() - t0;
      await waitFor(() => bigAborted === before + 4, 5000);
      expect(ms).toBeGreaterThanOrEqual(1900);
      console.log(`row 9 stream idle: 4 stalled readers reset after ~${ms} ms, their upstream responses abandoned`);
    } finally {
      for (const s of socks) s.destroy();
    }
  });
});
