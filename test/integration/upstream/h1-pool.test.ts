/**
 * H1Pool against raw loopback servers that answer (and misbehave) byte by byte: reuse and queueing, connection
 * limits and lifetimes, response framings, request bodies and backpressure, aborts, close/destroy and failures.
 */
import { describe, it, expect, afterEach } from 'vitest';
import net from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { H1Pool, type H1PoolOptions, type UpstreamHandler, type UpstreamRequest } from '../../../src/upstream/h1-pool.js';
import { RawServer, RequestReader, cleanup, poll, settle } from '../http1/raw.js';

const pools: H1Pool[] = [];

afterEach(async () => {
  for (const p of pools.splice(0)) await p.destroy();
  await cleanup();
});

const BASE: H1PoolOptions = {
  maxConnections: 10, connectTimeoutMs: 1000, keepAliveMs: 5000, keepAliveThresholdMs: 0,
  maxRequestsPerConnection: 0, maxConnectionDurationMs: 0, tcpKeepaliveMs: 0,
};

function pool(port: number, opts: Partial<H1PoolOptions> = {}): H1Pool {
  const p = new H1Pool('127.0.0.1', port, { ...BASE, ...opts });
  pools.push(p);
  return p;
}

/** A handler that records what the pool told it; `done` settles on onComplete or onError. */
class Rec implements UpstreamHandler {
  reused?: boolean;
  abort: ((err?: Error) => void) | undefined;
  status = 0;
  headers: string[] = [];
  body = Buffer.alloc(0);
  trailers: string[] | null | undefined;
  error: (Error & { code?: string }) | undefined;
  events: string[] = [];
  resume: (() => void) | undefined;
  /** onData's answer: false asks the pool to stop reading. */
  accept = true;
  readonly done: Promise<void>;
  private settle!: () => void;

  constructor() {
    // Bounded: a request the pool never settles fails its test in 5 s instead of hanging it.
    this.done = new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`request never settled; events: ${this.events.join(', ')}`)), 5000);
      this.settle = () => { clearTimeout(t); resolve(); };
    });
  }

  onConnect(abort: (err?: Error) => void): void { this.abort = abort; this.events.push('connect'); }
  onHeaders(status: number, raw: string[], resume: () => void): boolean {
    this.events.push(`headers ${status}`);
    this.status = status;
    this.headers = raw;
    this.resume = resume;
    return true;
  }
  onData(chunk: Buffer): boolean {
    if (this.events.at(-1) !== 'data') this.events.push('data');
    this.body = Buffer.concat([this.body, chunk]);
    return this.accept;
  }
  onComplete(trailers: string[] | null): void { this.events.push('complete'); this.trailers = trailers; this.settle(); }
  onError(err: Error): void { this.events.push(`error ${(err as { code?: string }).code}`); this.error = err; this.settle(); }
  onRequestSent(): void { this.events.push('sent'); }
  onUpgrade?: UpstreamHandler['onUpgrade'];
}

function get(path = '/', headers: string[] = ['Host', 'up']): UpstreamRequest {
  return { method: 'GET', path, headers, body: null };
}

/** A server that answers every request on every connection with `respond(request, index on the connection)`. */
async function answering(respond: (req: { lines: string[]; body: string }, n: number, sock: net.Socket) => string | undefined): Promise<RawServer> {
  const s = new RawServer((sock) => {
    const r = new RequestReader(sock);
    void (async () => {
      for (let n = 0; ; n++) {
        const req = await r.next(10_000).catch(() => undefined);
        if (req === undefined) return;
        const out = respond(req, n, sock);
        if (out !== undefined) sock.write(out);
      }
    })();
  });
  return s.start();
}

const OK = (body = 'ok'): string => `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`;

describe('requests and reuse', () => {
  it('writes the request head as given, delivers the response in order and reuses the connection', async () => {
    const seen: string[][] = [];
    const s = await answering((req) => { seen.push(req.lines); return 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Up: Yes\r\n\r\nhello'; });
    const p = pool(s.port);
    const a = new Rec();
    p.dispatch(get('/a?b=1', ['Host', 'svc', 'X-Mixed-Case', 'V']), a);
    await a.done;
    expect(a.events).toEqual(['connect', 'sent', 'headers 200', 'data', 'complete']);
    expect(a.headers).toEqual(['Content-Length', '5', 'X-Up', 'Yes']);
    expect(a.body.toString()).toBe('hello');
    expect(a.trailers).toBeNull();
    expect(a.reused).toBe(false);
    expect(seen[0]).toEqual(['GET /a?b=1 HTTP/1.1', 'Host: svc', 'X-Mixed-Case: V']); // no framing header on a GET
    const b = new Rec();
    p.dispatch(get('/b'), b);
    await b.done;
    expect(b.reused).toBe(true);
    expect(s.sockets).toHaveLength(1);
    expect(p.connections).toBe(1);
  });

  it('a bodiless POST/PUT/PATCH gets content-length: 0; one given by the caller is not doubled', async () => {
    const seen: string[][] = [];
    const s = await answering((req) => { seen.push(req.lines); return OK(); });
    const p = pool(s.port);
    for (const r of [{ method: 'POST', headers: [] }, { method: 'PUT', headers: ['Content-Length', '0'] }, { method: 'DELETE', headers: [] }]) {
      const h = new Rec();
      p.dispatch({ method: r.method, path: '/', headers: r.headers, body: null }, h);
      await h.done;
    }
    expect(seen.map((l) => l.filter((x) => /^content-length/i.test(x)))).toEqual([['content-length: 0'], ['Content-Length: 0'], []]);
  });

  it('idle connections are reused most-recent-first', async () => {
    const s = await answering(() => OK());
    const p = pool(s.port);
    const a = new Rec();
    const b = new Rec();
    p.dispatch(get(), a);
    p.dispatch(get(), b);
    await Promise.all([a.done, b.done]);
    expect(s.sockets).toHaveLength(2);
    // Which socket ended last decides: the next request must go to the one released last.
    const before = s.sockets.map((x) => x.bytesRead);
    const c = new Rec();
    p.dispatch(get('/third'), c);
    await c.done;
    const grew = s.sockets.map((x, i) => x.bytesRead > before[i]!);
    expect(grew.filter(Boolean)).toHaveLength(1);
    const d = new Rec();
    p.dispatch(get('/fourth'), d);
    await d.done;
    const after = s.sockets.map((x) => x.bytesRead);
    const used4 = after.map((x, i) => x > before[i]! && grew[i] === true);
    expect(used4.filter(Boolean)).toHaveLength(1); // the same (most recently released) connection again
  });

  it('beyond maxConnections requests wait in FIFO order on the busy connection', async () => {
    const order: string[] = [];
    const s = await answering((req) => { order.push(req.lines[0]!); return OK(req.lines[0]!.split(' ')[1]); });
    const p = pool(s.port, { maxConnections: 1 });
    const hs = [1, 2, 3, 4].map(() => new Rec());
    hs.forEach((h, i) => p.dispatch(get(`/${i + 1}`), h));
    expect(p.connections).toBe(1);
    await Promise.all(hs.map((h) => h.done));
    expect(order).toEqual(['GET /1 HTTP/1.1', 'GET /2 HTTP/1.1', 'GET /3 HTTP/1.1', 'GET /4 HTTP/1.1']);
    expect(hs.map((h) => h.body.toString())).toEqual(['/1', '/2', '/3', '/4']);
    expect(hs.map((h) => h.reused)).toEqual([false, true, true, true]);
    expect(s.sockets).toHaveLength(1);
  });

  it('dispatchFresh opens a dedicated connection (Connection: close sent), closed after, even with an idle one available', async () => {
    const seen: string[][] = [];
    const s = await answering((req) => { seen.push(req.lines); return OK(); });
    const p = pool(s.port, { maxConnections: 1 });
    const a = new Rec();
    p.dispatch(get(), a);
    await a.done;
    const f = new Rec();
    p.dispatchFresh(get('/fresh'), f);
    await f.done;
    expect(f.reused).toBe(false);
    expect(s.sockets).toHaveLength(2);
    expect(seen[1]).toContain('connection: close');
    await poll(() => s.sockets[1]!.destroyed || s.sockets[1]!.readableEnded, 2000, 'the fresh connection to close');
    expect(p.connections).toBe(1); // the pooled idle one remains
    const b = new Rec();
    p.dispatch(get(), b);
    await b.done;
    expect(b.reused).toBe(true);
  });
});

describe('connection lifetimes', () => {
  it('an idle connection is closed after keepAliveMs', async () => {
    const s = await answering(() => OK());
    const p = pool(s.port, { keepAliveMs: 100 });
    const a = new Rec();
    p.dispatch(get(), a);
    await a.done;
    expect(p.connections).toBe(1);
    const t0 = Date.now();
    await poll(() => p.connections === 0, 2000, 'the idle close');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(80);
    await poll(() => s.sockets[0]!.readableEnded || s.sockets[0]!.destroyed, 1000, 'the server to see the close');
  });

  it('a connection idle past keepAliveMs is not reused even when its idle timer has not fired yet (a blocked loop)', async () => {
    const s = await answering((req) => OK(req.lines[0]!.split(' ')[1]));
    const p = pool(s.port, { keepAliveMs: 100 });
    const a = new Rec();
    p.dispatch(get('/a'), a);
    await a.done;
    expect(p.idleConnections).toBe(1);
    // Block the event loop past the idle time: the timer cannot fire before the next dispatch.
    const until = Date.now() + 150;
    while (Date.now() < until) { /* busy */ }
    const b = new Rec();
    p.dispatch(get('/b'), b);
    await b.done;
    expect(b.reused).toBe(false); // a new connection: the stale one was closed at reuse (the 503 UC race)
    expect(b.body.toString()).toBe('/b');
    expect(s.sockets).toHaveLength(2);
  });

  it('Keep-Alive: timeout=N lowers the idle time to N s minus the threshold', async () => {
    const s = await answering(() => 'HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1, max=100\r\nContent-Length: 0\r\n\r\n');
    const p = pool(s.port, { keepAliveMs: 60_000, keepAliveThresholdMs: 900 });
    const a = new Rec();
    p.dispatch(get(), a);
    await a.done;
    const t0 = Date.now();
    await poll(() => p.connections === 0, 2000, 'the hinted idle close');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(80);
    expect(Date.now() - t0).toBeLessThan(900);
  });

  it('a Keep-Alive hint not above the threshold closes the connection right after the response', async () => {
    const s = await answering(() => 'HTTP/1.1 200 OK\r\nkeep-alive: timeout=1\r\nContent-Length: 0\r\n\r\n');
    const p = pool(s.port, { keepAliveThresholdMs: 1000 });
    const a = new Rec();
    p.dispatch(get(), a);
    await a.done;
    expect(p.connections).toBe(0);
    const b = new Rec();
    p.dispatch(get(), b);
    await b.done;
    expect(b.reused).toBe(false);
    expect(s.sockets).toHaveLength(2);
  });

  it('Connection: close from the server: the connection is not reused', async () => {
    const s = await answering(() => 'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok');
    const p = pool(s.port);
    const a = new Rec();
    p.dispatch(get(), a);
    await a.done;
    expect(a.body.toString()).toBe('ok');
    expect(p.connections).toBe(0);
    const b = new Rec();
    p.dispatch(get(), b);
    await b.done;
    expect(b.reused).toBe(false);
  });

  it('maxRequestsPerConnection: the last request says Connection: close and the next opens a new connection', async () => {
    const seen: string[][] = [];
    const s = await answering((req) => { seen.push(req.lines); return OK(); });
    const p = pool(s.port, { maxRequestsPerConnection: 2 });
    const hs = [new Rec(), new Rec(), new Rec()];
    for (const h of hs) { p.dispatch(get(), h); await h.done; }
    expect(hs.map((h) => h.reused)).toEqual([false, true, false]);
    expect(seen.map((l) => l.includes('connection: close'))).toEqual([false, true, false]);
    expect(s.sockets).toHaveLength(2);
  });

  it('maxConnectionDurationMs: a connection past its lifetime is not reused, idle or not', async () => {
    const s = await answering((req, _n, sock) => {
      if (!req.lines[0]!.startsWith('GET /slow ')) return OK();
      setTimeout(() => sock.write(OK()), 200);
      return undefined;
    });
    const p = pool(s.port, { maxConnectionDurationMs: 150 });
    const a = new Rec();
    p.dispatch(get(), a);
    await a.done;
    expect(p.connections).toBe(1);
    // Idle across its lifetime end: closed then, not handed to the next request.
    await poll(() => p.connections === 0, 1000, 'the connection to reach its max duration while idle');
    const b = new Rec();
    p.dispatch(get(), b);
    await b.done;
    expect(b.reused).toBe(false);
    // Busy across its lifetime end (the answer takes 200 ms): closed after the response.
    const c = new Rec();
    p.dispatch(get('/slow'), c);
    await c.done;
    expect(c.reused).toBe(true);
    expect(p.connections).toBe(0);
  });

  it('the server closing an idle connection removes it from the pool', async () => {
    const s = await answering((_req, _n, sock) => { setImmediate(() => sock.end()); return OK(); });
    const p = pool(s.port);
    const a = new Rec();
    p.dispatch(get(), a);
    await a.done;
    await poll(() => p.connections === 0, 1000, 'the pool to notice the close');
    const b = new Rec();
    p.dispatch(get(), b);
    await b.done;
    expect(b.status).toBe(200);
    expect(b.reused).toBe(false);
  });
});

describe('connect failures', () => {
  it('ECONNREFUSED is reported as such', async () => {
    const tmp = net.createServer();
    await new Promise<void>((r) => tmp.listen(0, '127.0.0.1', () => r()));
    const port = (tmp.address() as net.AddressInfo).port;
    await new Promise<void>((r) => tmp.close(() => r()));
    const p = pool(port);
    const a = new Rec();
    p.dispatch(get(), a);
    await a.done;
    expect(a.error?.code).toBe('ECONNREFUSED');
    expect(a.events).toEqual(['connect', 'sent', 'error ECONNREFUSED']);
    expect(p.connections).toBe(0);
  });

  it('a connect that does not complete in connectTimeoutMs fails with UND_ERR_CONNECT_TIMEOUT', async () => {
    // A listener whose accept queue is full (backlog 1, two queued connections, its thread blocked so it never
    // accepts): the kernel drops further SYNs, so a connect hangs, all on loopback.
    const shared = new Int32Array(new SharedArrayBuffer(8));
    const w = new Worker(`
      const { workerData } = require('node:worker_threads');
      const net = require('node:net');
      const s = net.createServer();
      s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
        Atomics.store(workerData, 1, s.address().port);
        Atomics.notify(workerData, 1);
        Atomics.wait(workerData, 0, 0, 10000); // blocked: no accept until the test wakes it
      });
    `, { eval: true, workerData: shared });
    try {
      await poll(() => Atomics.load(shared, 1) !== 0, 3000, 'the blocked listener');
      const port = Atomics.load(shared, 1);
      const fillers = [0, 1, 2].map(() => net.connect({ port, host: '127.0.0.1' }).on('error', () => undefined));
      await settle(50);
      const p = pool(port, { connectTimeoutMs: 150 });
      const a = new Rec();
      const t0 = Date.now();
      p.dispatch(get(), a);
      await a.done;
      expect(a.error?.code).toBe('UND_ERR_CONNECT_TIMEOUT');
      expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
      for (const f of fillers) f.destroy();
    } finally {
      Atomics.store(shared, 0, 1);
      Atomics.notify(shared, 0);
      await w.terminate();
    }
  });
});

describe('response framings', () => {
  it('a close-delimited response (no length) ends at EOF and completes', async () => {
    const s = await answering((_req, _n, sock) => { sock.write('HTTP/1.1 200 OK\r\n\r\npart1,'); setImmediate(() => sock.end('part2')); return undefined; });
    const p = pool(s.port);
    const a = new Rec();
    p.dispatch(get(), a);
    await a.done;
    expect(a.events.at(-1)).toBe('complete');
    expect(a.body.toString()).toBe('part1,part2');
    expect(p.connections).toBe(0);
  });

  it('a chunked response with trailers; then the connection is reused', async () => {
    const s = await answering(() => 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nGrpc-Status: 0\r\nX-T: 1\r\n\r\n');
    const p = pool(s.port);
    const a = new Rec();
    p.dispatch(get(), a);
    await a.done;
    expect(a.body.toString()).toBe('abcde');
    expect(a.trailers).toEqual(['Grpc-Status', '0', 'X-T', '1']);
    const b = new Rec();
    p.dispatch(get(), b);
    await b.done;
    expect(b.reused).toBe(true);
    expect(b.trailers).toEqual(['Grpc-Status', '0', 'X-T', '1']); // not accumulated across exchanges
  });

  it('1xx informational heads (100, 103) are skipped: one onHeaders with the final status', async () => {
    const s = await answering(() => 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx');
    const p = pool(s.port);
    const a = new Rec();
    p.dispatch(get(), a);
    await a.done;
    expect(a.events).toEqual(['connect', 'sent', 'headers 201', 'data', 'complete']);
    expect(a.headers).toEqual(['Content-Length', '1']);
    const b = new Rec();
    p.dispatch(get(), b);
    await b.done;
    expect(b.status).toBe(201);
    expect(b.reused).toBe(true);
  });

  it('HEAD: the Content-Length is not read as a body; the connection stays in sync', async () => {
    const s = await answering((req) => (req.lines[0]!.startsWith('HEAD') ? 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n' : OK('next')));
    const p = pool(s.port);
    const a = new Rec();
    p.dispatch({ method: 'HEAD', path: '/', headers: [], body: null }, a);
    await a.done;
    expect(a.events.at(-1)).toBe('complete');
    expect(a.body.length).toBe(0);
    const b = new Rec();
    p.dispatch(get(), b);
    await b.done;
    expect(b.body.toString()).toBe('next');
    expect(b.reused).toBe(true);
  });

  it('204 and 304 have no body even with a Content-Length', async () => {
    const s = await answering((_req, n) => (n === 0 ? 'HTTP/1.1 204 No Content\r\n\r\n' : n === 1 ? 'HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n' : OK('third')));
    const p = pool(s.port, { maxConnections: 1 });
    const hs = [new Rec(), new Rec(), new Rec()];
    hs.forEach((h) => p.dispatch(get(), h));
    await Promise.all(hs.map((h) => h.done));
    expect(hs.map((h) => `${h.status}:${h.body.toString()}`)).toEqual(['204:', '304:', '200:third']);
  });

  it('more than 32 response header lines arrive whole', async () => {
    const lines = Array.from({ length: 50 }, (_, i) => `X-H${i}: v${i}\r\n`).join('');
    const s = await answering(() => `HTTP/1.1 200 OK\r\n${lines}Content-Length: 0\r\n\r\n`);
    const p = pool(s.port);
    const a = new Rec();
    p.dispatch(get(), a);
    await a.done;
    expect(a.headers).toHaveLength(102);
    expect(a.headers.slice(0, 4)).toEqual(['X-H0', 'v0', 'X-H1', 'v1']);
    expect(a.headers.slice(-2)).toEqual(['Content-Length', '0']);
  });

  it('101 Switching Protocols is an error (UND_ERR_UPGRADE)', async () => {
    const s = await answering(() => 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    const p = pool(s.port);
    const a = new Rec();
    p.dispatch(get(), a);
    await a.done;
    expect(a.error?.code).toBe('UND_ERR_UPGRADE');
    expect(p.connections).toBe(0);
  });

  it('101 to an upgrade request hands the connection over with the bytes after the head; it leaves the pool', async () => {
    const seen: string[][] = [];
    const s = await answering((req, _n, sock) => {
      seen.push(req.lines);
      // The 101 head and the new protocol's first bytes in one write; more after the client speaks.
      sock.on('data', (d: Buffer) => sock.write(`echo:${d.toString()}`));
      return 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nfirst-bytes';
    });
    const p = pool(s.port, { maxRequestsPerConnection: 1 });
    let handed: { status: number; headers: string[]; socket: net.Socket; head: Buffer } | undefined;
    const a = new Rec();
    a.onUpgrade = (status, headers, socket, head) => { a.events.push('upgrade'); handed = { status, headers, socket, head }; };
    p.dispatch({ ...get('/ws', ['Host', 'up', 'Upgrade', 'echo', 'Connection', 'Upgrade']), upgrade: true }, a);
    await poll(() => handed !== undefined);
    expect(a.events).toEqual(['connect', 'sent', 'upgrade']);
    // No `connection: close` beside the upgrade, though maxRequestsPerConnection 1 makes the connection single-use.
    expect(seen[0]).toEqual(['GET /ws HTTP/1.1', 'Host: up', 'Upgrade: echo', 'Connection: Upgrade']);
    expect(handed!.status).toBe(101);
    expect(handed!.headers).toEqual(['Upgrade', 'echo', 'Connection', 'Upgrade']);
    expect(handed!.head.toString()).toBe('first-bytes');
    expect(p.connections).toBe(0);
    // The socket is the handler's: raw bytes both ways, nothing of the pool reacts (no parse error, no close).
    const got: Buffer[] = [];
    handed!.socket.on('data', (d: Buffer) => got.push(d));
    handed!.socket.write('ping');
    await poll(() => Buffer.concat(got).toString() === 'echo:ping');
    expect(handed!.socket.destroyed).toBe(false);
    // Half-close is the handler's to pass on: the upstream's FIN does not make the socket end its side.
    expect(handed!.socket.allowHalfOpen).toBe(true);
    handed!.socket.destroy();
    // The pool goes on with new connections.
    const b = new Rec();
    p.dispatch(get(), b);
    await b.done;
    expect(b.error?.code).toBe('UND_ERR_UPGRADE'); // this server answers 101 to everything: not asked, an error
  });

  it('an upgrade request answered without 101 is a plain response, and its connection is not reused', async () => {
    const s = await answering(() => 'HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno');
    const p = pool(s.port);
    const a = new Rec();
    a.onUpgrade = () => { a.events.push('upgrade'); };
    p.dispatch({ ...get('/ws', ['Host', 'up', 'Upgrade', 'websocket', 'Connection', 'Upgrade']), upgrade: true }, a);
    await a.done;
    expect(a.events).toEqual(['connect', 'sent', 'headers 403', 'data', 'complete']);
    expect(a.body.toString()).toBe('no');
    await poll(() => p.connections === 0);
    expect(s.sockets.length).toBe(1);
  });

  it('an invalid response is an error with the parser code, and the connection is dropped', async () => {
    const s = await answering(() => 'HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n');
    const p = pool(s.port);
    const a = new Rec();
    p.dispatch(get(), a);
    await a.done;
    expect(a.error?.code).toMatch(/^HPE_/);
    expect(p.connections).toBe(0);
  });
});

describe('request bodies', () => {
  it('a Buffer body gets Content-Length, small (joined with the head) and large', async () => {
    const bodies: string[] = [];
    const lens: string[] = [];
    const s = await answering((req) => {
      bodies.push(req.body);
      lens.push(req.lines.find((l) => /^content-length/i.test(l)) ?? '');
      return OK();
    });
    const p = pool(s.port);
    const big = Buffer.alloc(100_000, 'b');
    for (const body of [Buffer.from('small'), big, Buffer.from([0xe9, 0x00, 0xff])]) {
      const h = new Rec();
      p.dispatch({ method: 'POST', path: '/', headers: [], body }, h);
      await h.done;
    }
    expect(lens).toEqual(['content-length: 5', 'content-length: 100000', 'content-length: 3']);
    expect(bodies[0]).toBe('small');
    expect(bodies[1]).toBe(big.toString('latin1'));
    expect(Buffer.from(bodies[2]!, 'latin1')).toEqual(Buffer.from([0xe9, 0x00, 0xff]));
  });

  it('a Readable body is sent chunked; with a content-length header it is sent as is', async () => {
    const got: Array<{ lines: string[]; body: string }> = [];
    const s = await answering((req) => { got.push(req); return OK(); });
    const p = pool(s.port);
    const a = new Rec();
    p.dispatch({ method: 'POST', path: '/', headers: [], body: Readable.from([Buffer.from('ab'), Buffer.from('cde')]) }, a);
    await a.done;
    const b = new Rec();
    p.dispatch({ method: 'POST', path: '/', headers: ['Content-Length', '4'], body: Readable.from([Buffer.from('wx'), Buffer.from('yz')]) }, b);
    await b.done;
    expect(got[0]!.lines).toContain('transfer-encoding: chunked');
    expect(got[0]!.body).toBe('abcde');
    expect(got[1]!.lines).not.toContain('transfer-encoding: chunked');
    expect(got[1]!.body).toBe('wxyz');
    expect(a.events).toContain('sent');
    expect(b.reused).toBe(true);
  });

  it('backpressure: a body the server does not read is paused, and resumes when it does', async () => {
    let serverSock: net.Socket | undefined;
    const s = new RawServer((sock) => { serverSock = sock; sock.pause(); });
    await s.start();
    const p = pool(s.port);
    const body = new PassThrough();
    const a = new Rec();
    p.dispatch({ method: 'POST', path: '/', headers: [], body }, a);
    const chunk = Buffer.alloc(64 * 1024, 1);
    const cap = 64 * 1024 * 1024;
    let written = 0;
    // A well-behaved producer: writes until write() says stop, resumes on 'drain'. Without the pool pausing the
    // body when the socket is full, it would be drained all the way to the cap.
    const feed = (): void => {
      while (written < cap) {
        written += chunk.length;
        if (!body.write(chunk)) return;
      }
    };
    body.on('drain', feed);
    feed();
    await s.waitConnections(1);
    // Settled: paused, and nothing more pulled over 50 ms (the kernel buffers take a few MB first).
    let last = -1;
    for (let i = 0; i < 100 && !(written === last && body.isPaused() && body.writableNeedDrain); i++) {
      last = written;
      await settle(50);
    }
    expect(body.isPaused()).toBe(true);
    expect(written).toBe(last);
    expect(written).toBeLessThan(cap);
    body.off('drain', feed);
    let received = 0;
    serverSock!.on('data', (d: Buffer) => { received += d.length; });
    serverSock!.resume();
    body.end();
    await poll(() => received > written, 5000, 'the whole body to arrive');
    await poll(() => a.events.includes('sent'), 2000, 'onRequestSent');
    serverSock!.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    await a.done;
    expect(a.status).toBe(200);
  });

  it('a failing body stream aborts the exchange and drops the connection', async () => {
    const s = await answering(() => undefined);
    const p = pool(s.port);
    const body = new PassThrough();
    const a = new Rec();
    p.dispatch({ method: 'POST', path: '/', headers: [], body }, a);
    body.write('start');
    await s.waitConnections(1);
    body.destroy(new Error('downstream went away'));
    await a.done;
    expect(a.error?.code).toBe('ECONNRESET');
    expect(p.connections).toBe(0);
  });

  it('a response that completes before the request body was sent does not leave the connection reusable', async () => {
    // The server answers (413-style) after reading only the head; the rest of the body never went out, so the
    // connection is mid-message and must not carry the next request.
    const heads: string[] = [];
    const s = new RawServer((sock) => {
      let buf = '';
      sock.on('data', (d: Buffer) => {
        buf += d.toString('latin1');
        if (buf.includes('\r\n\r\n') && heads.length < s.sockets.length) {
          heads.push(buf.slice(0, buf.indexOf('\r\n')));
          sock.write('HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n');
        }
      });
    });
    await s.start();
    const p = pool(s.port);
    const body = new PassThrough();
    const a = new Rec();
    p.dispatch({ method: 'POST', path: '/upload', headers: [], body }, a);
    body.write('first part');
    await a.done;
    expect(a.status).toBe(413);
    expect(a.events).not.toContain('sent');
    const b = new Rec();
    p.dispatch(get('/next'), b);
    await b.done;
    expect(b.reused).toBe(false);
    expect(heads).toEqual(['POST /upload HTTP/1.1', 'GET /next HTTP/1.1']);
    body.end('late');
  });
});

describe('aborts', () => {
  it('abort while queued: onError, and the request is never written', async () => {
    const order: string[] = [];
    let first: net.Socket | undefined;
    const s = await answering((req, _n, sock) => { order.push(req.lines[0]!); first ??= sock; return req.lines[0]!.startsWith('GET /1 ') ? undefined : OK(); });
    const p = pool(s.port, { maxConnections: 1 });
    const a = new Rec();
    const b = new Rec();
    const c = new Rec();
    p.dispatch(get('/1'), a);
    p.dispatch(get('/2'), b);
    p.dispatch(get('/3'), c);
    b.abort!();
    await b.done;
    expect(b.error?.code).toBe('UND_ERR_ABORTED');
    await poll(() => first !== undefined);
    first!.write(OK());
    await Promise.all([a.done, c.done]);
    expect(order).toEqual(['GET /1 HTTP/1.1', 'GET /3 HTTP/1.1']);
    expect(b.events).toEqual(['connect', 'error UND_ERR_ABORTED']);
  });

  it('abort in flight: onError with the given error, the connection is closed, not reused', async () => {
    const s = await answering(() => undefined);
    const p = pool(s.port);
    const a = new Rec();
    p.dispatch(get(), a);
    await s.waitConnections(1);
    const why = new Error('per-try timeout');
    a.abort!(why);
    await a.done;
    expect(a.error).toBe(why);
    await poll(() => s.sockets[0]!.readableEnded || s.sockets[0]!.destroyed, 1000, 'the server to see the close');
    expect(p.connections).toBe(0);
    a.abort!(); // a second abort is a no-op
    expect(a.events.filter((e) => e.startsWith('error'))).toHaveLength(1);
  });

  it('abort from inside onHeaders (after headers) closes the connection and reports once', async () => {
    const s = await answering(() => 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial');
    const p = pool(s.port);
    const a = new Rec();
    a.onHeaders = function (status: number): boolean {
      this.events.push(`headers ${status}`);
      this.abort!();
      return false;
    };
    p.dispatch(get(), a);
    await a.done;
    await settle();
    expect(a.events).toEqual(['connect', 'sent', 'headers 200', 'error UND_ERR_ABORTED']);
    expect(p.connections).toBe(0);
  });

  it('an abort of a queued request before onConnect returns never reaches a connection', async () => {
    const s = await answering(() => OK());
    const p = pool(s.port);
    const a = new Rec();
    a.onConnect = function (abort): void { this.events.push('connect'); abort(); };
    p.dispatch(get(), a);
    await a.done;
    expect(a.events).toEqual(['connect', 'error UND_ERR_ABORTED']);
    await settle();
    expect(s.sockets).toHaveLength(0);
  });
});

describe('failures after headers and response backpressure', () => {
  it('the server dies mid-body (Content-Length): onHeaders then onError', async () => {
    const s = await answering((_req, _n, sock) => { sock.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part'); return undefined; });
    const p = pool(s.port);
    const a = new Rec();
    p.dispatch(get(), a);
    await a.done;
    expect(a.events).toEqual(['connect', 'sent', 'headers 200', 'data', 'error ECONNRESET']);
    expect(a.body.toString()).toBe('only part');
  });

  it('the server resets mid-chunked-body: onError after onHeaders', async () => {
    const s = await answering((_req, _n, sock) => {
      sock.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n');
      setImmediate(() => sock.resetAndDestroy());
      return undefined;
    });
    const p = pool(s.port);
    const a = new Rec();
    p.dispatch(get(), a);
    await a.done;
    expect(a.events[2]).toBe('headers 200');
    expect(a.events.at(-1)).toMatch(/^error /);
  });

  it('the server closes before any response byte: ECONNRESET before headers', async () => {
    const s = await answering((_req, _n, sock) => { sock.end(); return undefined; });
    const p = pool(s.port);
    const a = new Rec();
    p.dispatch(get(), a);
    await a.done;
    expect(a.events).toEqual(['connect', 'sent', 'error ECONNRESET']);
  });

  it('onData returning false stops reading until resume()', async () => {
    let sock: net.Socket | undefined;
    const s = await answering((_req, _n, so) => { sock = so; so.write('HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabc'); return undefined; });
    const p = pool(s.port);
    const a = new Rec();
    a.accept = false;
    p.dispatch(get(), a);
    await poll(() => a.body.length === 3);
    sock!.write('def');
    await settle();
    expect(a.body.toString()).toBe('abc'); // paused: 'def' waits in the socket
    a.accept = true;
    a.resume!();
    await a.done;
    expect(a.body.toString()).toBe('abcdef');
  });

  it('a response that ends while its reader is paused does not leave the connection paused for the next request', async () => {
    const s = await answering((_req, n) => OK(n === 0 ? 'first' : 'second'));
    const p = pool(s.port, { maxConnections: 1 });
    const a = new Rec();
    a.accept = false; // never resumes: its downstream is gone or slow
    p.dispatch(get(), a);
    await a.done;
    const b = new Rec();
    p.dispatch(get(), b);
    await b.done;
    expect(b.reused).toBe(true);
    expect(b.body.toString()).toBe('second');
  });

  it('bytes from the server on an idle connection: the connection is dropped, not handed to the next request', async () => {
    let sock: net.Socket | undefined;
    let n = 0;
    const s = await answering((_req, _i, so) => { sock = so; return OK(n++ === 0 ? 'one' : 'two'); });
    const p = pool(s.port, { maxConnections: 1 });
    const a = new Rec();
    p.dispatch(get(), a);
    await a.done;
    sock!.write('HTTP/1.1 404 Not Found\r\nX-Stray: 1\r\n'); // unsolicited, and a head left unfinished
    await settle();
    const b = new Rec();
    p.dispatch(get(), b);
    await b.done;
    expect(b.body.toString()).toBe('two');
    expect(b.reused).toBe(false);
  });

  it('a second response in the same packet is not given to the next queued request', async () => {
    let n = 0;
    const s = await answering(() => (n++ === 0 ? OK('one') + OK('EXTRA') : OK('two')));
    const p = pool(s.port, { maxConnections: 1 });
    const a = new Rec();
    const b = new Rec();
    p.dispatch(get('/1'), a);
    p.dispatch(get('/2'), b);
    await Promise.all([a.done, b.done]);
    expect(a.body.toString()).toBe('one');
    expect(b.body.toString()).toBe('two');
  });
});

describe('close and destroy', () => {
  it('close(): in-flight and queued requests finish, new ones are refused, then it resolves', async () => {
    let sock: net.Socket | undefined;
    const s = await answering((req, _n, so) => { sock = so; return req.lines[0]!.startsWith('GET /2 ') ? OK('2') : undefined; });
    const p = pool(s.port, { maxConnections: 1 });
    const a = new Rec();
    const b = new Rec();
    p.dispatch(get('/1'), a);
    p.dispatch(get('/2'), b);
    await poll(() => sock !== undefined);
    let closed = false;
    const done = p.close().then(() => { closed = true; });
    const c = new Rec();
    p.dispatch(get('/3'), c);
    await c.done;
    expect(c.error?.code).toBe('UND_ERR_CLOSED');
    await settle();
    expect(closed).toBe(false);
    sock!.write(OK('1'));
    await Promise.all([a.done, b.done, done]);
    expect([a.body.toString(), b.body.toString()]).toEqual(['1', '2']);
    expect(p.connections).toBe(0);
    const f = new Rec();
    p.dispatchFresh(get(), f);
    await f.done;
    expect(f.error?.code).toBe('UND_ERR_CLOSED');
  });

  it('close() with only idle connections resolves at once and closes them', async () => {
    const s = await answering(() => OK());
    const p = pool(s.port);
    const a = new Rec();
    p.dispatch(get(), a);
    await a.done;
    await p.close();
    expect(p.connections).toBe(0);
    await poll(() => s.sockets[0]!.readableEnded || s.sockets[0]!.destroyed, 1000);
  });

  it('destroy(): in-flight and queued requests fail with UND_ERR_DESTROYED, each once', async () => {
    const s = await answering(() => undefined);
    const p = pool(s.port, { maxConnections: 1 });
    const a = new Rec();
    const b = new Rec();
    p.dispatch(get('/1'), a);
    p.dispatch(get('/2'), b);
    await s.waitConnections(1);
    await p.destroy();
    await Promise.all([a.done, b.done]);
    expect(a.error?.code).toBe('UND_ERR_DESTROYED');
    expect(b.error?.code).toBe('UND_ERR_DESTROYED');
    expect(a.events.filter((e) => e.startsWith('error'))).toHaveLength(1);
    expect(p.connections).toBe(0);
    await settle();
    expect(s.sockets).toHaveLength(1); // no replacement connection for the queue
  });
});
