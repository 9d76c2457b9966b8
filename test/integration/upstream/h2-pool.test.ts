// H2Pool against a real node:http2 server: streams multiplexed on one connection, more connections only past the
// peer's stream limit, queueing under maxConnections, trailers, request bodies, maxRequestsPerConnection, and the
// failure codes the forwarder classifies (connect failure, reset, refused stream).
import http2, { constants as H2 } from 'node:http2';
import net from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { H2Pool, type H2PoolOptions } from '../../../src/upstream/h2-pool.js';
import type { UpstreamHandler, UpstreamRequest } from '../../../src/upstream/h1-pool.js';

interface Result { status?: number; headers?: string[]; body: Buffer; trailers: string[] | null; error?: string; reused?: boolean }

function send(pool: H2Pool, req: Partial<UpstreamRequest>): Promise<Result> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const out: Result = { body: Buffer.alloc(0), trailers: null };
    const h: UpstreamHandler = {
      onConnect() {},
      onHeaders(status, raw) { out.status = status; out.headers = raw; out.reused = h.reused; return true; },
      onData(c) { chunks.push(c); return true; },
      onComplete(t) { out.trailers = t; out.body = Buffer.concat(chunks); resolve(out); },
      onError(err) { out.error = (err as NodeJS.ErrnoException).code; resolve(out); },
    };
    pool.dispatch({ method: 'GET', path: '/', headers: ['Host', 'svc.test'], body: null, ...req }, h);
  });
}

const OPTS: H2PoolOptions = { maxConnections: Infinity, connectTimeoutMs: 2000, keepAliveMs: 5000, maxRequestsPerConnection: 0, maxConnectionDurationMs: 0, tcpKeepaliveMs: 0 };

describe('H2Pool', () => {
  let server: http2.Http2Server;
  let port = 0;
  let sessions = 0;
  const pools: H2Pool[] = [];
  const pool = (o: Partial<H2PoolOptions> = {}, p = port): H2Pool => { const x = new H2Pool('127.0.0.1', p, { ...OPTS, ...o }); pools.push(x); return x; };

  beforeAll(async () => {
    server = http2.createServer({ settings: { maxConcurrentStreams: 8 } });
    server.on('session', () => sessions++);
    server.on('stream', (stream, h) => {
      stream.on('error', () => { /* the resets below are on purpose */ });
      const path = String(h[':path']);
      if (path === '/reset') { stream.close(H2.NGHTTP2_INTERNAL_ERROR); return; }
      if (path === '/refuse') { stream.close(H2.NGHTTP2_REFUSED_STREAM); return; }
      // Answers at once, without reading the upload (node then resets the stream with NO_ERROR, RFC 9113 §8.1).
      if (path === '/early') { stream.respond({ ':status': 413 }); stream.end('too big'); return; }
      const hash = createHash('sha256');
      let n = 0;
      stream.on('data', (c: Buffer) => { hash.update(c); n += c.length; });
      stream.on('end', () => {
        const delay = path.startsWith('/slow') ? 50 : 0;
        setTimeout(() => {
          if (stream.destroyed) return;
          stream.respond({ ':status': 200, 'x-authority': String(h[':authority']), 'x-te': String(h.te ?? '-'), 'x-conn': String(h.connection ?? '-') }, { waitForTrailers: true });
          stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'x-bytes': String(n), 'x-sha': hash.digest('hex') }));
          stream.end(`ok ${path}`);
        }, delay);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as net.AddressInfo).port;
  });

  afterAll(async () => {
    for (const p of pools) await p.destroy();
    server.close();
  });

  it('multiplexes concurrent requests on one connection and passes trailers', async () => {
    const p = pool();
    const before = sessions;
    const rs = await Promise.all(Array.from({ length: 8 }, (_, i) => send(p, { path: `/slow/${i}`, headers: ['Host', 'svc.test', 'Connection', 'keep-alive', 'TE', 'trailers'] })));
    expect(sessions - before).toBe(1);
    for (const [i, r] of rs.entries()) {
      expect(r.status).toBe(200);
      expect(r.body.toString()).toBe(`ok /slow/${i}`);
      expect(r.trailers).toContain('grpc-status');
      const h = Object.fromEntries(Array.from({ length: r.headers!.length / 2 }, (_, k) => [r.headers![2 * k], r.headers![2 * k + 1]]));
      expect(h['x-authority']).toBe('svc.test'); // Host became :authority
      expect(h['x-te']).toBe('trailers'); // TE: trailers is the one TE allowed in HTTP/2
      expect(h['x-conn']).toBe('-'); // connection-specific headers are dropped
    }
    const again = await send(p, { path: '/x' });
    expect(again.reused).toBe(true);
    expect(sessions - before).toBe(1);
  });

  it('opens another connection past the peer\'s stream limit, or queues under maxConnections', async () => {
    const before = sessions;
    const wide = pool();
    await Promise.all(Array.from({ length: 20 }, (_, i) => send(wide, { path: `/slow/w${i}` })));
    expect(sessions - before).toBe(3); // 8 streams per connection
    const narrow = pool({ maxConnections: 1 });
    const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => send(narrow, { path: `/slow/n${i}` })));
    expect(rs.every((r) => r.status === 200)).toBe(true);
    expect(sessions - before).toBe(4);
    expect(narrow.connections).toBe(1);
  });

  it('streams request bodies byte-identical', async () => {
    const p = pool();
    const big = Buffer.alloc(3 * 1024 * 1024 + 7, 0x61);
    for (let i = 0; i < big.length; i += 997) big[i] = i & 0xff;
    const sha = createHash('sha256').update(big).digest('hex');
    const buffered = await send(p, { method: 'POST', path: '/b', body: big });
    const streamed = await send(p, { method: 'POST', path: '/s', body: Readable.from((function* () { for (let i = 0; i < big.length; i += 65536) yield big.subarray(i, i + 65536); })()) });
    for (const r of [buffered, streamed]) {
      const t = r.trailers!;
      expect(t[t.indexOf('x-bytes') + 1]).toBe(String(big.length));
      expect(t[t.indexOf('x-sha') + 1]).toBe(sha);
    }
  });

  it('retires a connection after maxRequestsPerConnection streams', async () => {
    const p = pool({ maxRequestsPerConnection: 1 });
    const before = sessions;
    for (let i = 0; i < 3; i++) expect((await send(p, { path: '/m' })).status).toBe(200);
    expect(sessions - before).toBe(3);
  });

  it('reports connect failures, resets and refused streams with the codes the forwarder classifies', async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const deadPort = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    expect((await send(pool({}, deadPort), {})).error).toBe('ECONNREFUSED');
    const p = pool();
    expect((await send(p, { path: '/reset' })).error).toBe('ECONNRESET');
    expect((await send(p, { path: '/refuse' })).error).toBe('UND_ERR_REFUSED_STREAM');
    expect((await send(p, { path: '/fine' })).status).toBe(200); // the connection survived its streams' resets
  });

  it('a request dispatched as the idle timer closes the connection goes to a new connection, not an error', async () => {
    const p = pool({ keepAliveMs: 50 });
    const before = sessions;
    expect((await send(p, { path: '/one' })).status).toBe(200);
    // Dispatch in the same tick as the idle close: the connection is closing, the request must not fail for it.
    const results = await new Promise<Result[]>((resolve) => {
      setTimeout(() => { void Promise.all([send(p, { path: '/two' }), send(p, { path: '/three' })]).then(resolve); }, 50);
    });
    for (const r of results) expect({ status: r.status, error: r.error }).toEqual({ status: 200, error: undefined });
    expect(sessions - before).toBeGreaterThanOrEqual(1);
  });

  it('an upstream that answers before reading the upload: the response arrives and the upload is drained, not left paused', async () => {
    const p = pool();
    const upload = new PassThrough();
    const r = send(p, { method: 'POST', path: '/early', body: upload });
    // More than the stream window, so that the body would be paused waiting for a WINDOW_UPDATE that never comes.
    let written = 0;
    const chunk = Buffer.alloc(64 * 1024, 0x62);
    for (let i = 0; i < 40; i++) { upload.write(chunk); written += chunk.length; }
    const res = await r;
    expect(res.status).toBe(413);
    expect(res.body.toString()).toBe('too big');
    // The rest of the upload is read and dropped: the client's body stream ends instead of hanging paused.
    upload.end();
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`the upload was left paused (flowing ${String(upload.readableFlowing)})`)), 3000);
      upload.once('end', () => { clearTimeout(t); resolve(); });
      if (upload.readableEnded) { clearTimeout(t); resolve(); }
    });
    expect(written).toBeGreaterThan(1024 * 1024);
  });
});
