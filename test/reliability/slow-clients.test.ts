/**
 * Reliability rows 8 and 9 (RELIABILITY.md §4) through the real CLI: slow and abusive clients on the outbound listener
 * while a well-behaved open-loop client (src/bench/generator.ts) measures the service side by side.
 *  - Row 8, slowloris (`slowhttptest -H -c 500`): the service stays available, --request-headers-timeout closes every
 *    trickling head (408), the good client's p99 under attack stays within a bound of its clean p99 measured just
 *    before, and the proxy's fds return to their baseline.
 *  - Row 9, slow POST (`slowhttptest -B`) and slow read: the route timeout ends a body that never completes; a client
 *    that reads nothing of a large response makes the proxy stop reading from the upstream (backpressure), its RSS
 *    stays bounded, and `slowhttptest -X` readers are cut by the route timeout.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startProxy, waitFor, type RunningProxy } from '../support/proxy-harness.js';
import { serviceEntry } from '../integration/resilience/helpers.js';
import { fdCount, openLoop, PlainUpstream, rssBytes, sleep, SlowHttpTest } from './support/proc.js';

const HEAD_TIMEOUT_S = 5;
const ROUTE_TIMEOUT_S = 4;
const BIG = 256 * 1024 * 1024; // the slow reader's response: far more than any socket buffer

let upstream: PlainUpstream;
let proxy: RunningProxy;
let tmp: string;
/** Bytes the big-body upstream managed to write into its socket, per request. */
const bigWritten: number[] = [];

function config(): string {
  return `${serviceEntry('svc', [{ port: upstream.port }])}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: svc, namespace: default}
spec:
  hosts: [svc]
  http:
  - timeout: ${ROUTE_TIMEOUT_S}s
    route: [{destination: {host: svc}}]
`;
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'remora-slow-'));
  upstream = await new PlainUpstream((req, res) => {
    if (req.url === '/big') {
      // Writes until the socket pushes back, then only when it drains: what reached the proxy is what it read.
      const i = bigWritten.push(0) - 1;
      res.writeHead(200, { 'content-length': String(BIG) });
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      const pump = (): void => {
        while (bigWritten[i]! < BIG) {
          bigWritten[i]! += chunk.length;
          if (!res.write(chunk)) { res.once('drain', pump); return; }
        }
        res.end();
      };
      res.on('close', () => res.removeAllListeners('drain'));
      pump();
      return;
    }
    req.resume();
    req.on('end', () => res.end('ok'));
  }).start();
  proxy = await startProxy({ 'mesh.yaml': config() }, ['--request-headers-timeout', `${HEAD_TIMEOUT_S}s`]);
});

afterAll(async () => {
  await proxy?.stop();
  await upstream?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** Proxy fds once nothing is open but the pooled upstream connections (a short settle, then the minimum of a few reads). */
async function settledFds(): Promise<number> {
  let min = Infinity;
  for (let i = 0; i < 5; i++) { await sleep(100); min = Math.min(min, fdCount(proxy.info.pid)); }
  return min;
}

describe('row 8: slowloris against the outbound listener', () => {
  it('500 trickling heads: available throughout, closed by the header timeout, p99 of a good client within bound, fds back', async () => {
    const url = proxy.url('/');
    // Warm-up (JIT, the upstream pool), then the baseline fd count and a clean run measured just before the attack.
    await openLoop(url, 'svc', { rate: 200, durationMs: 1500, connections: 16 });
    const baseFds = await settledFds();
    const clean = await openLoop(url, 'svc', { rate: 200, durationMs: 6000, connections: 16 });

    const attackStart = Date.now();
    const slow = new SlowHttpTest(['-H', '-c', '500', '-r', '250', '-i', '1', '-x', '24', '-p', '2', '-l', '16', '-u', url], join(tmp, 'slowloris'));
    let peakFds = 0;
    const fdTimer = setInterval(() => { peakFds = Math.max(peakFds, fdCount(proxy.info.pid)); }, 200);
    try {
      await sleep(1500); // let the 500 connections open (250/s)
      const attacked = await openLoop(url, 'svc', { rate: 200, durationMs: 6000, connections: 16 });
      // Every slow connection is closed by the proxy: its fds fall back well before slowhttptest's own end (-l 16).
      await waitFor(() => fdCount(proxy.info.pid) <= baseFds + 2, 15_000, 100);
      const closedAfterS = (Date.now() - attackStart) / 1000;
      const afterFds = await settledFds();
      clearInterval(fdTimer);
      // slowhttptest writes its CSV when it ends; "Service Available" is 0 when its probe failed, else a plot level.
      await slow.exited;
      const exitedAfterS = (Date.now() - attackStart) / 1000;
      const rows = slow.rows();
      const maxConnected = Math.max(...rows.map((r) => r.connected));
      const maxClosed = Math.max(...rows.map((r) => r.closed));
      const unavailable = rows.filter((r) => r.available === 0).length;
      // A bound that a 2-core machine shared with other jobs can hold without flaking: 2× the clean p99, or the clean
      // p99 plus 50 ms where that is larger. A clean p99 of a few ms moves by tens of ms with a few deschedulings of the
      // generator, the proxy, the upstream or slowhttptest itself (which shares the 2 cores): 21.7 ms against a clean
      // 11.5 was seen with another job running, 32.7 ms against a clean 5.7 in CI. A listener starved by the slow
      // connections shows seconds, up to the head timeout, so the bound still tells the two apart.
      const bound = Math.max(2 * clean.p99, clean.p99 + 50);
      console.log(`row 8 slowloris: clean ${JSON.stringify(clean)}\n  attacked ${JSON.stringify(attacked)}\n  bound p99 ${bound.toFixed(2)} ms; slow connections open at peak ${maxConnected}, closed ${maxClosed}, all closed ${closedAfterS.toFixed(1)} s after (slowhttptest ended at ${exitedAfterS.toFixed(1)} s) the attack began (head timeout ${HEAD_TIMEOUT_S} s); probe unavailable in ${unavailable}/${rows.length} samples; proxy fds base ${baseFds}, peak ${peakFds}, after ${afterFds}`);
      // slowhttptest stops by itself once the server closed all of its connections: it ended before its -l 16 s.
      expect(exitedAfterS).toBeLessThan(15);
      expect(rows.length).toBeGreaterThan(3);
      expect(maxConnected).toBeGreaterThanOrEqual(400); // the attack was real: hundreds of heads open at once
      expect(maxClosed).toBeGreaterThanOrEqual(400); // closed by the proxy (its last sample may precede the last few closes)
      expect(peakFds).toBeGreaterThan(baseFds + 300); // and they reached the proxy
      expect(unavailable).toBe(0);
      expect(clean.errors).toBe(0);
      expect(attacked.errors).toBe(0);
      expect(attacked.completed).toBe(attacked.scheduled);
      expect(attacked.statusCounts).toEqual({ '200': attacked.completed });
      expect(attacked.p99).toBeLessThanOrEqual(bound);
      // Opened over 2 s, each closed once its head is HEAD_TIMEOUT_S old (+ the 1 s sweep, + scheduling).
      expect(closedAfterS).toBeLessThan(2 + HEAD_TIMEOUT_S + 6);
      expect(afterFds).toBeLessThanOrEqual(baseFds + 2);
    } finally {
      clearInterval(fdTimer);
      await slow.stop();
    }
  });
});

describe('row 9: slow POST and slow read', () => {
  // Remora has no request-body or stream-idle timeout yet (the route timeout starts once a buffered body is complete
  // and ends at the response head): a body that never completes, or a response nobody reads, holds its connection
  // until the client goes. What these tests hold is availability, bounded memory through backpressure and clean-up;
  // how long the slow connections stayed open is printed (see the report of issue #14, row 9).
  it('slow POST bodies (slowhttptest -B): the service stays available, fds back once the clients go', async () => {
    // Through -d (slowhttptest's web-proxy mode): absolute-form requests for http://svc/, as an app with HTTP_PROXY sends.
    const via = `127.0.0.1:${proxy.info.outbound}`;
    const baseFds = await settledFds();
    // 200 POSTs announcing 8 KiB bodies, sending 1-10 bytes a second for 8 s: never complete.
    const slow = new SlowHttpTest(['-B', '-c', '200', '-r', '200', '-i', '1', '-x', '10', '-s', '8192', '-t', 'POST', '-p', '2', '-l', '8', '-u', 'http://svc/upload', '-d', via], join(tmp, 'slowpost'));
    let peakFds = 0;
    const fdTimer = setInterval(() => { peakFds = Math.max(peakFds, fdCount(proxy.info.pid)); }, 200);
    try {
      await sleep(1500);
      const good = await openLoop(proxy.url('/'), 'svc', { rate: 100, durationMs: 3000, connections: 8 });
      await sleep(ROUTE_TIMEOUT_S * 1000 + 1000 - 4500);
      const heldPastRouteTimeout = fdCount(proxy.info.pid) - baseFds;
      await slow.exited;
      await waitFor(() => fdCount(proxy.info.pid) <= baseFds + 2, 5000, 100);
      clearInterval(fdTimer);
      const rows = slow.rows();
      const unavailable = rows.filter((r) => r.available === 0).length;
      console.log(`row 9 slow POST: good client ${JSON.stringify(good)}; proxy fds base ${baseFds}, peak ${peakFds}, ~${heldPastRouteTimeout} still open ${ROUTE_TIMEOUT_S + 1} s after they began (no body timeout); back to base after slowhttptest left; probe unavailable ${unavailable}/${rows.length}`);
      expect(Math.max(...rows.map((r) => r.connected))).toBeGreaterThanOrEqual(150);
      expect(peakFds).toBeGreaterThan(baseFds + 150);
      expect(good.errors).toBe(0);
      expect(good.statusCounts).toEqual({ '200': good.completed });
      expect(unavailable).toBe(0);
    } finally {
      clearInterval(fdTimer);
      await slow.stop();
    }
  });

  it('a client that reads nothing of a 256 MiB response: the proxy stops reading from the upstream, RSS bounded', async () => {
    const N = 8;
    const baseFds = await settledFds();
    const rss0 = rssBytes(proxy.info.pid);
    const first = bigWritten.length;
    const socks: Socket[] = [];
    try {
      for (let i = 0; i < N; i++) {
        const s = connect({ host: '127.0.0.1', port: proxy.info.outbound });
        s.on('error', () => {});
        s.write('GET /big HTTP/1.1\r\nhost: svc\r\n\r\n');
        s.pause(); // read nothing: the kernel buffers fill, then the proxy's writes return false
        socks.push(s);
      }
      await waitFor(() => bigWritten.length - first === N, 5000);
      let peakRss = rss0;
      // Let every buffer on the way fill, then watch the upstream: it must stall.
      for (let i = 0; i < 10; i++) { await sleep(200); peakRss = Math.max(peakRss, rssBytes(proxy.info.pid)); }
      const w1 = bigWritten.slice(first).reduce((a, b) => a + b, 0);
      for (let i = 0; i < 5; i++) { await sleep(200); peakRss = Math.max(peakRss, rssBytes(proxy.info.pid)); }
      const w2 = bigWritten.slice(first).reduce((a, b) => a + b, 0);
      const perConn = w2 / N;
      console.log(`row 9 slow read: ${N} clients reading nothing of ${BIG / 2 ** 20} MiB each: the upstream wrote ${(perConn / 2 ** 20).toFixed(1)} MiB per connection, then stalled (+${((w2 - w1) / 2 ** 20).toFixed(2)} MiB in the last second); proxy RSS ${(rss0 / 2 ** 20).toFixed(0)} → peak ${(peakRss / 2 ** 20).toFixed(0)} MB (+${((peakRss - rss0) / 2 ** 20).toFixed(1)} MB)`);
      // Backpressure: the upstream is stopped after what the socket buffers on the way hold (loopback autotuning allows
      // a few MiB per socket), not after the 256 MiB it has to send.
      expect(perConn).toBeLessThan(24 * 2 ** 20);
      expect(w2 - w1).toBeLessThan(N * 256 * 1024); // stalled: next to nothing moved in the last second
      // The proxy keeps at most a few of its reads per connection in memory: RSS does not follow the bytes.
      expect(peakRss - rss0).toBeLessThan(48 * 2 ** 20);
    } finally {
      for (const s of socks) s.destroy();
    }
    // The clients gone, the proxy lets go of both sides: the upstream's response is aborted, fds back.
    await waitFor(() => fdCount(proxy.info.pid) <= baseFds + 2 && upstream.sockets.size <= 2, 5000, 100);
  });

  it('slowhttptest -X slow readers: the service stays available, RSS bounded, fds back once they go', async () => {
    const baseFds = await settledFds();
    const rss0 = rssBytes(proxy.info.pid);
    let peakRss = rss0;
    const rssTimer = setInterval(() => { peakRss = Math.max(peakRss, rssBytes(proxy.info.pid)); }, 200);
    const slow = new SlowHttpTest(['-X', '-c', '100', '-r', '100', '-w', '512', '-y', '1024', '-n', '5', '-z', '32', '-k', '3', '-p', '2', '-l', '8', '-u', 'http://svc/big', '-d', `127.0.0.1:${proxy.info.outbound}`], join(tmp, 'slowread'));
    try {
      await sleep(1500);
      const good = await openLoop(proxy.url('/'), 'svc', { rate: 100, durationMs: 3000, connections: 8 });
      await slow.exited;
      await waitFor(() => fdCount(proxy.info.pid) <= baseFds + 2, 5000, 100);
      clearInterval(rssTimer);
      const rows = slow.rows();
      console.log(`row 9 slowhttptest -X: good client ${JSON.stringify(good)}; slow readers connected at peak ${Math.max(...rows.map((r) => r.connected))}; proxy RSS +${((peakRss - rss0) / 2 ** 20).toFixed(1)} MB at peak; fds back to ${fdCount(proxy.info.pid)} (base ${baseFds})`);
      expect(good.errors).toBe(0);
      expect(Math.max(...rows.map((r) => r.connected))).toBeGreaterThanOrEqual(50);
      expect(rows.filter((r) => r.available === 0).length).toBe(0);
      expect(peakRss - rss0).toBeLessThan(64 * 2 ** 20);
    } finally {
      clearInterval(rssTimer);
      await slow.stop();
    }
  });
});
