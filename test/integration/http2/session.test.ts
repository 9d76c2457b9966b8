// H2Session (src/http2/session.ts), Remora's own HTTP/2 frame layer, over real loopback sockets and against
// independent implementations: as a server against node:http2 clients and a raw-frame client (test/support/h2-raw.ts),
// as a client against node:http2 servers. Bodies are checked byte for byte (sha256), flow control both ways (paused
// readers stall the writer after about the announced window, then everything arrives), trailers both ways,
// CONTINUATION, padding, malformed requests (stream errors, the connection stays), connection errors (GOAWAY codes),
// PING / SETTINGS answers, graceful GOAWAY both ways, 1xx, HEAD, RST_STREAM and PING round trips.
import http2 from 'node:http2';
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { H2ERR, H2Session, type H2ConnectionError, type H2SessionOptions, type H2Stream, type H2StreamHandler } from '../../../src/http2/session.js';
import { HpackDecoder } from '../../../src/http2/hpack.js';
import { FLAG, FRAME, RawH2, frame, headerBlock, ping, requestHeaders, settingsFrame, type Frame } from '../../support/h2-raw.js';

const KiB = 1024;
const MiB = 1024 * 1024;
const PRIORITY_FLAG = 0x20;

// ------------------------------------------------------------------------------------------------------ helpers --

/** Everything a test opened, closed after it (reverse order), whatever the test's outcome. */
const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) {
    try { await c(); } catch { /* already closed */ }
  }
});

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A promise bounded in time: a hung exchange fails the test with a message instead of hitting the test timeout. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<never>((_, rej) => { t = setTimeout(() => rej(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms); }),
  ]);
}

async function until(pred: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** The value of `name` in a flat header list. */
function hdr(flat: readonly string[], name: string): string | undefined {
  for (let i = 0; i < flat.length; i += 2) if (flat[i] === name) return flat[i + 1];
  return undefined;
}

/** A stream handler that records everything (server streams and client requests alike). */
class Collector implements H2StreamHandler {
  readonly headers: Array<{ flat: string[]; endStream: boolean; trailers: boolean }> = [];
  readonly chunks: Buffer[] = [];
  bytes = 0;
  ended = false;
  closeCode = -1;
  byPeer = false;
  drains = 0;
  onEndHook: ((st: H2Stream) => void) | undefined;
  onDrainHook: ((st: H2Stream) => void) | undefined;
  onDataHook: ((st: H2Stream, chunk: Buffer) => void) | undefined;
  readonly closed: Promise<{ code: number; byPeer: boolean }>;
  private resolveClosed!: (v: { code: number; byPeer: boolean }) => void;

  constructor() {
    this.closed = new Promise((r) => { this.resolveClosed = r; });
  }

  onHeaders(_st: H2Stream, flat: string[], endStream: boolean, trailers: boolean): void {
    this.headers.push({ flat, endStream, trailers });
  }

  onData(st: H2Stream, chunk: Buffer): void {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    this.onDataHook?.(st, chunk);
  }

  onEnd(st: H2Stream): void {
    this.ended = true;
    this.onEndHook?.(st);
  }

  onClose(_st: H2Stream, code: number, byPeer: boolean): void {
    this.closeCode = code;
    this.byPeer = byPeer;
    this.resolveClosed({ code, byPeer });
  }

  onDrain(st: H2Stream): void {
    this.drains++;
    this.onDrainHook?.(st);
  }

  get body(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

// --- server role: our H2Session behind a net.Server ---

type OnStream = (st: H2Stream, flat: string[], endStream: boolean, session: H2Session) => void;

interface OurServer {
  port: number;
  sessions: H2Session[];
  errors: H2ConnectionError[];
  /** Streams announced with onStream. */
  streams: number;
  /** Bytes read from the clients' sockets (all connections). */
  bytesIn: number;
  sessionsClosed: number;
}

async function startOurServer(onStream: OnStream, opts: H2SessionOptions = {}): Promise<OurServer> {
  const ctx: OurServer = { port: 0, sessions: [], errors: [], streams: 0, bytesIn: 0, sessionsClosed: 0 };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('data', (d: Buffer) => { ctx.bytesIn += d.length; });
    // The session reads the socket itself (the preface included): nothing was read before, so no receive(head).
    const session: H2Session = new H2Session(sock, 'server', opts, {
      onStream(st, flat, endStream) { ctx.streams++; onStream(st, flat, endStream, session); },
      onError(err) { ctx.errors.push(err); },
      onClose() { ctx.sessionsClosed++; },
    });
    ctx.sessions.push(session);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  ctx.port = (server.address() as net.AddressInfo).port;
  cleanups.push(() => new Promise<void>((r) => {
    for (const s of sockets) s.destroy();
    server.close(() => r());
  }));
  return ctx;
}

/** Echo: a request without a body gets `hello <path>`, a request with one gets it back, with its size and sha256. */
function echo(st: H2Stream, flat: string[], endStream: boolean): void {
  const c = new Collector();
  st.handler = c;
  const path = hdr(flat, ':path') ?? '';
  const respond = (): void => {
    const body = c.body;
    st.sendHeaders([':status', '200', 'x-method', hdr(flat, ':method') ?? '', 'x-path', path, 'x-bytes', String(body.length), 'x-sha256', sha(body)], false);
    st.end(endStream ? Buffer.from(`hello ${path}`) : body);
  };
  if (endStream) respond();
  else c.onEndHook = respond;
}

function nodeClient(port: number, opts: http2.ClientSessionOptions = {}): http2.ClientHttp2Session {
  const c = http2.connect(`http://127.0.0.1:${port}`, opts);
  c.on('error', () => { /* asserted through the streams */ });
  cleanups.push(() => { c.destroy(); });
  return c;
}

interface NodeResponse {
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
  trailers?: http2.IncomingHttpHeaders;
  error?: string;
  rstCode: number;
}

function nodeRequest(client: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: Buffer): Promise<NodeResponse> {
  return new Promise((resolve) => {
    const s = client.request(headers, { endStream: body === undefined });
    const chunks: Buffer[] = [];
    let rh: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders | undefined;
    s.on('response', (h) => { rh = h; });
    s.on('trailers', (t) => { trailers = t; });
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('close', () => resolve({ headers: rh, body: Buffer.concat(chunks), ...(trailers ? { trailers } : {}), rstCode: s.rstCode ?? 0 }));
    s.on('error', (e: NodeJS.ErrnoException) => resolve({ headers: rh, body: Buffer.concat(chunks), error: e.code ?? e.message, rstCode: s.rstCode ?? -1 }));
    if (body !== undefined) s.end(body);
  });
}

async function rawClient(port: number): Promise<RawH2> {
  const raw = await RawH2.connect(port);
  cleanups.push(() => raw.destroy());
  return raw;
}

/** Decodes the header blocks a raw client received, in connection order (HPACK is stateful per connection). */
class RawHeaders {
  private readonly decoder = new HpackDecoder(4096);
  private seen = 0;
  private parts: Buffer[] = [];
  private partsStream = 0;
  private readonly blocks = new Map<number, string[][]>();

  constructor(private readonly raw: RawH2) {}

  /** The header blocks received on stream `id` so far. */
  of(id: number): string[][] {
    const fr = this.raw.frames;
    for (; this.seen < fr.length; this.seen++) {
      const f = fr[this.seen]!;
      if (f.type === FRAME.HEADERS) {
        let p = f.payload;
        if ((f.flags & FLAG.PADDED) !== 0) p = p.subarray(1, p.length - p[0]!);
        if ((f.flags & PRIORITY_FLAG) !== 0) p = p.subarray(5);
        this.parts = [p];
        this.partsStream = f.streamId;
      } else if (f.type === FRAME.CONTINUATION) {
        this.parts.push(f.payload);
      } else {
        continue;
      }
      if ((f.flags & FLAG.END_HEADERS) === 0) continue;
      const list = this.decoder.decode(Buffer.concat(this.parts));
      const l = this.blocks.get(this.partsStream) ?? [];
      l.push(list);
      this.blocks.set(this.partsStream, l);
      this.parts = [];
    }
    return this.blocks.get(id) ?? [];
  }

  status(id: number): string | undefined {
    const b = this.of(id)[0];
    return b === undefined ? undefined : hdr(b, ':status');
  }
}

const rstOn = (raw: RawH2, id: number): Frame | undefined => raw.frames.find((f) => f.type === FRAME.RST_STREAM && f.streamId === id);
const rstCodeOn = (raw: RawH2, id: number): number | undefined => rstOn(raw, id)?.payload.readUInt32BE(0);
/** DATA payloads of a stream, concatenated, and whether END_STREAM came. */
function rawBody(raw: RawH2, id: number): { body: Buffer; ended: boolean } {
  const data = raw.streamFrames(id).filter((f) => f.type === FRAME.DATA);
  return { body: Buffer.concat(data.map((f) => f.payload)), ended: raw.streamFrames(id).some((f) => (f.type === FRAME.DATA || f.type === FRAME.HEADERS) && (f.flags & FLAG.END_STREAM) !== 0) };
}

// --- client role: our H2Session against node:http2 servers ---

interface NodeServer {
  port: number;
  sessions: http2.ServerHttp2Session[];
}

async function startNodeServer(onStream: (st: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, session: http2.ServerHttp2Session) => void, settings: http2.Settings = {}): Promise<NodeServer> {
  const server = http2.createServer({ settings });
  const ctx: NodeServer = { port: 0, sessions: [] };
  server.on('session', (s) => { ctx.sessions.push(s); s.on('error', () => { /* the test asserts on our side */ }); });
  server.on('stream', (st, headers) => {
    st.on('error', () => { /* resets are part of some tests */ });
    onStream(st, headers, st.session as http2.ServerHttp2Session);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  ctx.port = (server.address() as net.AddressInfo).port;
  cleanups.push(() => new Promise<void>((r) => {
    for (const s of ctx.sessions) s.destroy();
    server.close(() => r());
  }));
  return ctx;
}

interface OurClient {
  session: H2Session;
  socket: net.Socket;
  goaways: Array<{ code: number; lastStreamId: number }>;
  errors: H2ConnectionError[];
  idles: number;
  closed: Promise<void>;
  isClosed: () => boolean;
}

async function connectOurClient(port: number, opts: H2SessionOptions = {}): Promise<OurClient> {
  const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
  let settled!: () => void;
  const ready = new Promise<void>((r) => { settled = r; });
  let closedFlag = false;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => { resolveClosed = r; });
  const ctx = { goaways: [], errors: [], idles: 0, socket, closed, isClosed: () => closedFlag } as unknown as OurClient;
  ctx.session = new H2Session(socket, 'client', opts, {
    onRemoteSettings(first) { if (first) settled(); },
    onGoaway(code, lastStreamId) { ctx.goaways.push({ code, lastStreamId }); },
    onError(err) { ctx.errors.push(err); },
    onIdle() { ctx.idles++; },
    onClose() { closedFlag = true; resolveClosed(); },
  });
  cleanups.push(() => { ctx.session.destroy(); socket.destroy(); });
  // As the pool does: streams open once the server's SETTINGS are in.
  await within(ready, 5000, "the server's SETTINGS");
  return ctx;
}

const reqHeaders = (port: number, method: string, path: string, extra: string[] = []): string[] =>
  [':method', method, ':scheme', 'http', ':path', path, ':authority', `127.0.0.1:${port}`, ...extra];

// ---------------------------------------------------------------------------------------------- server role --

describe('H2Session as a server', () => {
  it('answers a GET and echoes a 1 MiB POST byte for byte (node:http2 client)', async () => {
    const srv = await startOurServer(echo);
    const client = nodeClient(srv.port);
    const get = await within(nodeRequest(client, { ':path': '/hello?x=1', 'x-custom': 'v' }), 5000, 'the GET');
    expect(get.error).toBeUndefined();
    expect(get.headers[':status']).toBe(200);
    expect(get.headers['x-method']).toBe('GET');
    expect(get.body.toString()).toBe('hello /hello?x=1');

    const up = randomBytes(MiB);
    const post = await within(nodeRequest(client, { ':method': 'POST', ':path': '/up', 'content-length': String(up.length) }, up), 5000, 'the POST');
    expect(post.error).toBeUndefined();
    expect(post.headers[':status']).toBe(200);
    expect(post.headers['x-bytes']).toBe(String(MiB));
    expect(post.headers['x-sha256']).toBe(sha(up));
    expect(post.body.length).toBe(MiB);
    expect(sha(post.body)).toBe(sha(up));
    expect(srv.errors).toEqual([]);
    expect(srv.sessions.length).toBe(1);
  }, 10_000);

  it('serves 50 concurrent streams on one connection', async () => {
    const srv = await startOurServer(echo);
    const client = nodeClient(srv.port);
    const bodies = Array.from({ length: 50 }, (_, i) => randomBytes(1000 + i * 997));
    const results = await within(Promise.all(bodies.map((b, i) =>
      i % 2 === 0
        ? nodeRequest(client, { ':method': 'POST', ':path': `/s${i}` }, b)
        : nodeRequest(client, { ':path': `/s${i}` }),
    )), 8000, '50 streams');
    results.forEach((r, i) => {
      expect(r.error).toBeUndefined();
      expect(r.headers[':status']).toBe(200);
      expect(r.headers['x-path']).toBe(`/s${i}`);
      if (i % 2 === 0) expect(sha(r.body)).toBe(sha(bodies[i]!));
      else expect(r.body.toString()).toBe(`hello /s${i}`);
    });
    expect(srv.streams).toBe(50);
    expect(srv.sessions.length).toBe(1);
    expect(srv.errors).toEqual([]);
  }, 10_000);

  it('stalls a sender while the stream is paused (no WINDOW_UPDATE), then takes all 4 MiB after resume()', async () => {
    const WINDOW = 128 * KiB;
    let held: { st: H2Stream; c: Collector } | undefined;
    const srv = await startOurServer((st, flat, endStream) => {
      expect(endStream).toBe(false);
      // The owner does not read: no window is given back for this stream.
      st.pause();
      const c = new Collector();
      st.handler = c;
      held = { st, c };
      c.onEndHook = () => {
        const body = c.body;
        st.sendHeaders([':status', '200', 'x-bytes', String(body.length), 'x-sha256', sha(body)], true);
      };
      void flat;
    }, { initialWindowSize: WINDOW });
    const client = nodeClient(srv.port);
    const up = randomBytes(4 * MiB);
    const s = client.request({ ':method': 'POST', ':path': '/up' });
    s.on('error', () => { /* asserted below */ });
    let response: http2.IncomingHttpHeaders | undefined;
    s.on('response', (h) => { response = h; });
    const closed = new Promise<void>((r) => s.on('close', () => r()));
    let accepted = 0;
    let waitingForDrain = false;
    const CHUNK = 64 * KiB;
    const pump = (): void => {
      waitingForDrain = false;
      while (accepted < up.length) {
        const ok = s.write(up.subarray(accepted, accepted + CHUNK));
        accepted += CHUNK;
        if (!ok) { waitingForDrain = true; s.once('drain', pump); return; }
      }
      s.end();
    };
    pump();
    await until(() => held !== undefined, 5000, 'the stream at the server');
    // The client fills the stream's window, and then nothing more comes while the owner does not read.
    await until(() => held!.st.recvWindow === 0, 5000, "the stream's window to fill");
    const filled = srv.bytesIn;
    await sleep(400);
    expect(srv.bytesIn).toBe(filled);
    // The client's stream stopped draining: about one window (plus framing) reached the server, not 4 MiB.
    expect(waitingForDrain).toBe(true);
    expect(accepted).toBeLessThan(up.length / 2);
    expect(srv.bytesIn).toBeGreaterThanOrEqual(WINDOW);
    expect(srv.bytesIn).toBeLessThan(WINDOW + 32 * KiB);
    expect(held!.c.bytes).toBe(0); // paused: nothing delivered to the owner yet

    held!.st.resume();
    await within(closed, 8000, 'the request to complete after resume()');
    expect(response?.[':status']).toBe(200);
    expect(response?.['x-bytes']).toBe(String(up.length));
    expect(response?.['x-sha256']).toBe(sha(up));
    expect(sha(held!.c.body)).toBe(sha(up));
    expect(srv.errors).toEqual([]);
  }, 10_000);

  it('sends a 2 MiB response to a client with a 1 KiB window that reads slowly: write() returns false, onDrain follows', async () => {
    const big = randomBytes(2 * MiB);
    let falses = 0;
    let drains = 0;
    const srv = await startOurServer((st) => {
      const c = new Collector();
      st.handler = c;
      let sent = 0;
      const CHUNK = 64 * KiB;
      const pump = (): void => {
        while (sent < big.length) {
          const ok = st.write(big.subarray(sent, sent + CHUNK));
          sent += CHUNK;
          if (!ok) { falses++; return; }
        }
        st.end();
      };
      c.onDrainHook = () => { drains++; pump(); };
      st.sendHeaders([':status', '200', 'content-type', 'application/octet-stream'], false);
      pump();
    });
    const client = nodeClient(srv.port, { settings: { initialWindowSize: 1024 } });
    const s = client.request({ ':path': '/big' });
    s.on('error', () => { /* asserted below */ });
    s.pause(); // a slow reader: nothing read for 200 ms, then pauses of 20 ms every 512 KiB
    const chunks: Buffer[] = [];
    let got = 0;
    let nextStop = 512 * KiB;
    s.on('data', (d: Buffer) => {
      chunks.push(d);
      got += d.length;
      if (got >= nextStop) {
        nextStop += 512 * KiB;
        s.pause();
        setTimeout(() => s.resume(), 20);
      }
    });
    const ended = new Promise<void>((r, rej) => { s.on('end', () => r()); s.on('error', rej); });
    let status: number | undefined;
    s.on('response', (h) => { status = h[':status']; });
    await sleep(200);
    expect(got).toBe(0);
    expect(falses).toBeGreaterThan(0); // the 1 KiB window filled at once
    s.resume();
    await within(ended, 9000, 'the 2 MiB response');
    expect(status).toBe(200);
    const body = Buffer.concat(chunks);
    expect(body.length).toBe(big.length);
    expect(sha(body)).toBe(sha(big));
    expect(drains).toBeGreaterThan(0);
    expect(drains).toBe(falses);
    expect(srv.errors).toEqual([]);
  }, 10_000);

  it('sends response trailers (grpc-status) to a node:http2 client', async () => {
    const srv = await startOurServer((st) => {
      st.handler = new Collector();
      st.sendHeaders([':status', '200', 'content-type', 'application/grpc'], false);
      st.end(Buffer.from('payload'), ['grpc-status', '0', 'grpc-message', 'ok']);
    });
    const client = nodeClient(srv.port);
    const r = await within(nodeRequest(client, { ':method': 'POST', ':path': '/pkg.Svc/Call', 'content-type': 'application/grpc', te: 'trailers' }, Buffer.from('req')), 5000, 'the call');
    expect(r.error).toBeUndefined();
    expect(r.headers[':status']).toBe(200);
    expect(r.body.toString()).toBe('payload');
    expect(r.trailers).toMatchObject({ 'grpc-status': '0', 'grpc-message': 'ok' });
  }, 10_000);

  it("passes a node:http2 client's request trailers to handler.onHeaders (trailers = true)", async () => {
    let c: Collector | undefined;
    const srv = await startOurServer((st, flat, endStream) => {
      expect(endStream).toBe(false);
      c = new Collector();
      st.handler = c;
      c.onEndHook = () => {
        st.sendHeaders([':status', '200'], false);
        st.end(Buffer.from(`got ${c!.bytes}`));
      };
      void flat;
    });
    const client = nodeClient(srv.port);
    const s = client.request({ ':method': 'POST', ':path': '/t' }, { waitForTrailers: true });
    s.on('wantTrailers', () => s.sendTrailers({ 'x-checksum': 'abc123' }));
    s.on('error', () => { /* asserted below */ });
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d));
    const done = new Promise<void>((r) => s.on('close', () => r()));
    s.end(Buffer.from('hello body'));
    await within(done, 5000, 'the request with trailers');
    expect(Buffer.concat(chunks).toString()).toBe('got 10');
    expect(c!.body.toString()).toBe('hello body');
    expect(c!.headers).toHaveLength(1);
    const t = c!.headers[0]!;
    expect(t.trailers).toBe(true);
    expect(t.endStream).toBe(true);
    expect(hdr(t.flat, 'x-checksum')).toBe('abc123');
    expect(t.flat.some((n, i) => i % 2 === 0 && n.startsWith(':'))).toBe(false);
    expect(c!.ended).toBe(true);
    expect(srv.errors).toEqual([]);
  }, 10_000);

  it('assembles a request header block split across HEADERS + 2 CONTINUATION frames', async () => {
    const srv = await startOurServer(echo);
    const raw = await rawClient(srv.port);
    const block = requestHeaders('localhost', '/continued', 'GET', [['x-a', 'a'.repeat(300)], ['x-b', 'b'.repeat(300)]]);
    const a = Math.floor(block.length / 3);
    const b = Math.floor((2 * block.length) / 3);
    raw.write(Buffer.concat([
      frame(FRAME.HEADERS, FLAG.END_STREAM, 1, block.subarray(0, a)),
      frame(FRAME.CONTINUATION, 0, 1, block.subarray(a, b)),
      frame(FRAME.CONTINUATION, FLAG.END_HEADERS, 1, block.subarray(b)),
    ]));
    const h = new RawHeaders(raw);
    await raw.until(() => rawBody(raw, 1).ended, 5000, 'the response on stream 1');
    expect(h.status(1)).toBe('200');
    expect(hdr(h.of(1)[0]!, 'x-path')).toBe('/continued');
    expect(rawBody(raw, 1).body.toString()).toBe('hello /continued');
    expect(raw.goawayCode).toBeUndefined();
    expect(srv.errors).toEqual([]);
  }, 10_000);

  it('answers 431 to a header list over maxHeaderListSize, and the connection stays usable', async () => {
    const srv = await startOurServer(echo, { maxHeaderListSize: 4096 });
    const raw = await rawClient(srv.port);
    const h = new RawHeaders(raw);
    raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, requestHeaders('localhost', '/big-header', 'GET', [['x-big', 'x'.repeat(8 * KiB)]])));
    await raw.until(() => h.of(1).length > 0, 5000, 'the answer on stream 1');
    expect(h.status(1)).toBe('431');
    expect(srv.streams).toBe(0); // never handed to the owner
    raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 3, requestHeaders('localhost', '/next')));
    await raw.until(() => rawBody(raw, 3).ended, 5000, 'the answer on stream 3');
    expect(h.status(3)).toBe('200');
    expect(rawBody(raw, 3).body.toString()).toBe('hello /next');
    expect(raw.goawayCode).toBeUndefined();
    expect(raw.closed).toBe(false);

    // The same through node:http2: a large header gets a 431 and the session goes on.
    const client = nodeClient(srv.port);
    const big = await within(nodeRequest(client, { ':path': '/big', 'x-big': 'y'.repeat(8 * KiB) }), 5000, 'the node request with a large header');
    expect(big.headers[':status']).toBe(431);
    const next = await within(nodeRequest(client, { ':path': '/after' }), 5000, 'the next node request');
    expect(next.headers[':status']).toBe(200);
    expect(next.body.toString()).toBe('hello /after');
    expect(srv.errors).toEqual([]);
  }, 10_000);

  it('accepts padded HEADERS and padded DATA; the padding is not part of the body', async () => {
    const srv = await startOurServer(echo);
    const raw = await rawClient(srv.port);
    const h = new RawHeaders(raw);
    const block = requestHeaders('localhost', '/padded', 'POST');
    const hPad = 17;
    const headersPayload = Buffer.concat([Buffer.from([hPad]), block, Buffer.alloc(hPad)]);
    const d1 = Buffer.from('first-part|');
    const d2 = Buffer.from('second-part');
    const data1 = Buffer.concat([Buffer.from([40]), d1, Buffer.alloc(40)]);
    const data2 = Buffer.concat([Buffer.from([255]), d2, Buffer.alloc(255)]);
    const data3 = Buffer.from([10, ...Buffer.alloc(10)]); // only padding, with END_STREAM
    raw.write(Buffer.concat([
      frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.PADDED, 1, headersPayload),
      frame(FRAME.DATA, FLAG.PADDED, 1, data1),
      frame(FRAME.DATA, FLAG.PADDED, 1, data2),
      frame(FRAME.DATA, FLAG.PADDED | FLAG.END_STREAM, 1, data3),
    ]));
    await raw.until(() => rawBody(raw, 1).ended, 5000, 'the echo on stream 1');
    const expected = Buffer.concat([d1, d2]);
    expect(h.status(1)).toBe('200');
    expect(hdr(h.of(1)[0]!, 'x-bytes')).toBe(String(expected.length));
    expect(hdr(h.of(1)[0]!, 'x-sha256')).toBe(sha(expected));
    expect(rawBody(raw, 1).body.toString()).toBe('first-part|second-part');
    expect(raw.goawayCode).toBeUndefined();
    expect(srv.errors).toEqual([]);
  }, 10_000);

  it('resets malformed requests with RST_STREAM PROTOCOL_ERROR and keeps the connection', async () => {
    const srv = await startOurServer(echo);
    const raw = await rawClient(srv.port);
    const h = new RawHeaders(raw);
    const base: Array<[string, string]> = [[':method', 'GET'], [':scheme', 'http'], [':path', '/m'], [':authority', 'localhost']];
    const cases: Array<{ what: string; block: Buffer }> = [
      { what: 'uppercase field name', block: headerBlock([...base, ['X-Upper', '1']]) },
      { what: 'connection: keep-alive', block: headerBlock([...base, ['connection', 'keep-alive']]) },
      { what: 'missing :path', block: headerBlock([[':method', 'GET'], [':scheme', 'http'], [':authority', 'localhost']]) },
      { what: 'pseudo-header after a regular field', block: headerBlock([[':method', 'GET'], [':scheme', 'http'], ['x-a', '1'], [':path', '/m']]) },
      { what: 'te: gzip', block: headerBlock([...base, ['te', 'gzip']]) },
      { what: 'transfer-encoding', block: headerBlock([...base, ['transfer-encoding', 'chunked']]) },
      { what: 'unknown pseudo-header', block: headerBlock([...base, [':foo', 'bar']]) },
    ];
    let id = 1;
    const ids: number[] = [];
    for (const c of cases) {
      raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, id, c.block));
      ids.push(id);
      id += 2;
    }
    // content-length against the DATA actually sent: fewer bytes, more bytes, a body promised with END_STREAM.
    const short = id; id += 2;
    raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS, short, headerBlock([...base.map(([k, v]) => [k, k === ':method' ? 'POST' : v] as [string, string]), ['content-length', '10']])));
    raw.write(frame(FRAME.DATA, FLAG.END_STREAM, short, Buffer.from('12345')));
    const long = id; id += 2;
    raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS, long, headerBlock([...base.map(([k, v]) => [k, k === ':method' ? 'POST' : v] as [string, string]), ['content-length', '3']])));
    raw.write(frame(FRAME.DATA, 0, long, Buffer.from('12345')));
    const none = id; id += 2;
    raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, none, headerBlock([...base.map(([k, v]) => [k, k === ':method' ? 'POST' : v] as [string, string]), ['content-length', '5']])));
    const all = [...ids, short, long, none];
    await raw.until(() => all.every((i) => rstOn(raw, i) !== undefined), 5000, 'RST_STREAM on every malformed stream');
    for (const [i, sid] of all.entries()) {
      expect({ stream: sid, what: cases[i]?.what ?? 'content-length', code: rstCodeOn(raw, sid) }).toEqual({ stream: sid, what: cases[i]?.what ?? 'content-length', code: H2ERR.PROTOCOL_ERROR });
      // No response headers on a malformed stream.
      expect(h.of(sid)).toEqual([]);
    }
    // Only the content-length streams with well-formed headers reached the owner (their DATA was checked later).
    expect(srv.streams).toBe(2);
    // The connection is still up and serves the next request.
    raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, id, requestHeaders('localhost', '/ok')));
    await raw.until(() => rawBody(raw, id).ended, 5000, 'the well-formed request');
    expect(h.status(id)).toBe('200');
    expect(raw.goawayCode).toBeUndefined();
    expect(raw.closed).toBe(false);
    expect(srv.errors).toEqual([]);
  }, 10_000);

  it('answers PING with an ACK carrying the same 8 bytes, and SETTINGS with an ACK', async () => {
    const srv = await startOurServer(echo, { maxConcurrentStreams: 77, initialWindowSize: 200_000, maxHeaderListSize: 8192 });
    const raw = await rawClient(srv.port);
    const settingsAcks = (): Frame[] => raw.frames.filter((f) => f.type === FRAME.SETTINGS && (f.flags & FLAG.ACK) !== 0);
    await raw.until(() => settingsAcks().length === 1, 5000, 'the ACK of the first SETTINGS');
    expect(settingsAcks()[0]!.payload.length).toBe(0);
    // The server's own SETTINGS: first frame, our options in it.
    const first = raw.frames[0]!;
    expect(first.type).toBe(FRAME.SETTINGS);
    expect(first.flags & FLAG.ACK).toBe(0);
    const announced = new Map<number, number>();
    for (let i = 0; i < first.payload.length; i += 6) announced.set(first.payload.readUInt16BE(i), first.payload.readUInt32BE(i + 2));
    expect(announced.get(0x2)).toBe(0);
    expect(announced.get(0x3)).toBe(77);
    expect(announced.get(0x4)).toBe(200_000);
    expect(announced.get(0x6)).toBe(8192);

    raw.write(settingsFrame([[0x1, 0], [0x3, 10], [0x4, 100_000], [0x5, 32 * KiB], [0xff, 7] /* unknown: ignored */]));
    await raw.until(() => settingsAcks().length === 2, 5000, 'the ACK of the second SETTINGS');

    const opaque = Buffer.from('8bytes!!');
    raw.write(ping(opaque));
    await raw.until(() => raw.frames.some((f) => f.type === FRAME.PING), 5000, 'the PING ACK');
    const pong = raw.frames.find((f) => f.type === FRAME.PING)!;
    expect(pong.flags & FLAG.ACK).toBe(FLAG.ACK);
    expect(pong.streamId).toBe(0);
    expect(pong.payload.equals(opaque)).toBe(true);
    // A PING ACK from the peer is not answered.
    raw.write(frame(FRAME.PING, FLAG.ACK, 0, Buffer.alloc(8)));
    // Requests still work after the peer's settings changed (HPACK table size 0 on our encoder).
    raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, requestHeaders('localhost', '/after-settings')));
    await raw.until(() => rawBody(raw, 1).ended, 5000, 'the response');
    expect(new RawHeaders(raw).status(1)).toBe('200');
    expect(raw.frames.filter((f) => f.type === FRAME.PING)).toHaveLength(1);
    expect(raw.goawayCode).toBeUndefined();
    expect(srv.errors).toEqual([]);
  }, 10_000);

  it('closes the connection with GOAWAY FLOW_CONTROL_ERROR on SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1', async () => {
    const srv = await startOurServer(echo);
    const raw = await rawClient(srv.port);
    raw.write(settingsFrame([[0x4, 0x80000000]]));
    await raw.until(() => raw.goawayCode !== undefined, 5000, 'GOAWAY');
    expect(raw.goawayCode).toBe(H2ERR.FLOW_CONTROL_ERROR);
    await raw.until(() => raw.closed, 5000, 'the socket to close');
    expect(srv.errors.map((e) => e.code)).toEqual([H2ERR.FLOW_CONTROL_ERROR]);
  }, 10_000);

  it('closes the connection with GOAWAY PROTOCOL_ERROR on DATA on stream 0', async () => {
    const srv = await startOurServer(echo);
    const raw = await rawClient(srv.port);
    // A stream first, so that the GOAWAY's last-stream-id has something to name.
    raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, requestHeaders('localhost', '/one')));
    await raw.until(() => rawBody(raw, 1).ended, 5000, 'the response on stream 1');
    raw.write(frame(FRAME.DATA, 0, 0, Buffer.from('nope')));
    await raw.until(() => raw.goawayCode !== undefined, 5000, 'GOAWAY');
    expect(raw.goawayCode).toBe(H2ERR.PROTOCOL_ERROR);
    const g = raw.frames.find((f) => f.type === FRAME.GOAWAY)!;
    expect(g.streamId).toBe(0);
    expect(g.payload.readUInt32BE(0)).toBe(1);
    await raw.until(() => raw.closed, 5000, 'the socket to close');
    expect(srv.errors.map((e) => e.code)).toEqual([H2ERR.PROTOCOL_ERROR]);
  }, 10_000);

  it('a response complete before the request: END_STREAM, then RST_STREAM NO_ERROR; late DATA is ignored', async () => {
    const srv = await startOurServer((st) => {
      st.handler = new Collector();
      st.sendHeaders([':status', '413', 'content-length', '0'], true);
    });
    const raw = await rawClient(srv.port);
    const h = new RawHeaders(raw);
    raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS, 1, requestHeaders('localhost', '/upload', 'POST')));
    await raw.until(() => rstOn(raw, 1) !== undefined, 5000, 'RST_STREAM on stream 1');
    // RFC 9113 §8.1: the complete response (END_STREAM) first, then RST_STREAM NO_ERROR to stop the upload.
    const frames1 = raw.streamFrames(1);
    expect(frames1.map((f) => f.type)).toEqual([FRAME.HEADERS, FRAME.RST_STREAM]);
    expect(frames1[0]!.flags & FLAG.END_STREAM).toBe(FLAG.END_STREAM);
    expect(h.status(1)).toBe('413');
    expect(rstCodeOn(raw, 1)).toBe(H2ERR.NO_ERROR);
    // DATA the client had in flight is dropped (§5.1, closed), the connection goes on.
    raw.write(frame(FRAME.DATA, 0, 1, Buffer.alloc(1000, 1)));
    raw.write(frame(FRAME.DATA, FLAG.END_STREAM, 1, Buffer.alloc(1000, 2)));
    raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 3, requestHeaders('localhost', '/next')));
    await raw.until(() => raw.streamFrames(3).some((f) => f.type === FRAME.RST_STREAM || (f.flags & FLAG.END_STREAM) !== 0), 5000, 'the answer on stream 3');
    expect(h.status(3)).toBe('413');
    expect(raw.goawayCode).toBeUndefined();
    expect(raw.frames.filter((f) => f.type === FRAME.RST_STREAM && f.streamId === 1)).toHaveLength(1);
    expect(srv.errors).toEqual([]);
  }, 10_000);

  it('close(): GOAWAY NO_ERROR naming the in-flight stream, which still completes; later streams refused; then the socket closes', async () => {
    let held: H2Stream | undefined;
    const srv = await startOurServer((st, flat) => {
      st.handler = new Collector();
      if (hdr(flat, ':path') === '/slow') { held = st; return; }
      echo(st, flat, true);
    });
    const raw = await rawClient(srv.port);
    const h = new RawHeaders(raw);
    raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, requestHeaders('localhost', '/fast')));
    raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 3, requestHeaders('localhost', '/slow')));
    await until(() => held !== undefined, 5000, 'the slow stream at the server');
    await raw.until(() => rawBody(raw, 1).ended, 5000, 'the fast response');
    srv.sessions[0]!.close();
    await raw.until(() => raw.goawayCode !== undefined, 5000, 'GOAWAY');
    const g = raw.frames.find((f) => f.type === FRAME.GOAWAY)!;
    expect(g.payload.readUInt32BE(0) & 0x7fffffff).toBe(3);
    expect(g.payload.readUInt32BE(4)).toBe(H2ERR.NO_ERROR);
    // A stream opened after the GOAWAY is not processed.
    raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 5, requestHeaders('localhost', '/late')));
    await raw.until(() => rstOn(raw, 5) !== undefined, 5000, 'RST_STREAM on stream 5');
    expect(rstCodeOn(raw, 5)).toBe(H2ERR.REFUSED_STREAM);
    expect(srv.streams).toBe(2);
    expect(raw.closed).toBe(false);

    held!.sendHeaders([':status', '200', 'x-late', 'yes'], false);
    held!.end(Buffer.from('finished after GOAWAY'));
    await raw.until(() => raw.closed, 5000, 'the socket to close after the last stream');
    expect(h.status(3)).toBe('200');
    expect(rawBody(raw, 3)).toEqual({ body: Buffer.from('finished after GOAWAY'), ended: true });
    const goawayAt = raw.frames.indexOf(g);
    const responseAt = raw.frames.findIndex((f) => f.streamId === 3 && f.type === FRAME.HEADERS);
    expect(responseAt).toBeGreaterThan(goawayAt);
    expect(raw.frames.filter((f) => f.type === FRAME.GOAWAY)).toHaveLength(1);
    await until(() => srv.sessionsClosed === 1, 3000, "the server session's onClose");
    expect(srv.errors).toEqual([]);
  }, 10_000);
});

// ---------------------------------------------------------------------------------------------- client role --

describe('H2Session as a client', () => {
  /** node:http2 echo server: GET → `hello <path>`, a body → the body back with its size and sha256. */
  const nodeEcho = (st: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void => {
    const chunks: Buffer[] = [];
    st.on('data', (c: Buffer) => chunks.push(c));
    st.on('end', () => {
      const body = Buffer.concat(chunks);
      st.respond({ ':status': 200, 'x-path': String(headers[':path']), 'x-bytes': String(body.length), 'x-sha256': sha(body) });
      st.end(headers[':method'] === 'GET' ? Buffer.from(`hello ${String(headers[':path'])}`) : body);
    });
  };

  it('GET and a 1 MiB POST round trip against a node:http2 server', async () => {
    const ns = await startNodeServer(nodeEcho);
    const cl = await connectOurClient(ns.port);
    const g = new Collector();
    cl.session.request(reqHeaders(ns.port, 'GET', '/hi'), true, g);
    await within(g.closed, 5000, 'the GET');
    expect(g.closeCode).toBe(0);
    expect(g.ended).toBe(true);
    expect(g.headers).toHaveLength(1);
    expect(hdr(g.headers[0]!.flat, ':status')).toBe('200');
    expect(g.headers[0]!.flat[0]).toBe(':status');
    expect(g.body.toString()).toBe('hello /hi');

    const up = randomBytes(MiB);
    const p = new Collector();
    const st = cl.session.request(reqHeaders(ns.port, 'POST', '/up', ['content-length', String(up.length)]), false, p);
    st.end(up);
    await within(p.closed, 8000, 'the POST');
    expect(p.closeCode).toBe(0);
    const rh = p.headers[0]!.flat;
    expect(hdr(rh, ':status')).toBe('200');
    expect(hdr(rh, 'x-bytes')).toBe(String(MiB));
    expect(hdr(rh, 'x-sha256')).toBe(sha(up));
    expect(p.body.length).toBe(MiB);
    expect(sha(p.body)).toBe(sha(up));
    expect(cl.errors).toEqual([]);
    expect(cl.session.active).toBe(0);
    expect(cl.idles).toBeGreaterThanOrEqual(2);
  }, 10_000);

  it('100 concurrent requests on one session', async () => {
    const ns = await startNodeServer(nodeEcho, { maxConcurrentStreams: 200 });
    const cl = await connectOurClient(ns.port);
    const bodies = Array.from({ length: 100 }, (_, i) => randomBytes(500 + i * 331));
    const cs = bodies.map((b, i) => {
      const c = new Collector();
      if (i % 2 === 0) cl.session.request(reqHeaders(ns.port, 'GET', `/r${i}`), true, c);
      else cl.session.request(reqHeaders(ns.port, 'PUT', `/r${i}`), false, c).end(b);
      return c;
    });
    expect(cl.session.active).toBe(100);
    await within(Promise.all(cs.map((c) => c.closed)), 8000, '100 responses');
    cs.forEach((c, i) => {
      expect(c.closeCode).toBe(0);
      expect(hdr(c.headers[0]!.flat, ':status')).toBe('200');
      expect(hdr(c.headers[0]!.flat, 'x-path')).toBe(`/r${i}`);
      if (i % 2 === 0) expect(c.body.toString()).toBe(`hello /r${i}`);
      else expect(sha(c.body)).toBe(sha(bodies[i]!));
    });
    expect(ns.sessions).toHaveLength(1);
    expect(cl.errors).toEqual([]);
  }, 10_000);

  it('skips a 103 Early Hints: the handler sees only the final 200', async () => {
    const ns = await startNodeServer((st) => {
      st.additionalHeaders({ ':status': 103, link: '</style.css>; rel=preload; as=style' });
      setTimeout(() => {
        st.respond({ ':status': 200, 'x-final': 'yes' });
        st.end('final body');
      }, 20);
    });
    const cl = await connectOurClient(ns.port);
    const c = new Collector();
    cl.session.request(reqHeaders(ns.port, 'GET', '/hints'), true, c);
    await within(c.closed, 5000, 'the response');
    expect(c.closeCode).toBe(0);
    expect(c.headers).toHaveLength(1);
    expect(c.headers[0]!.trailers).toBe(false);
    expect(hdr(c.headers[0]!.flat, ':status')).toBe('200');
    expect(hdr(c.headers[0]!.flat, 'x-final')).toBe('yes');
    expect(hdr(c.headers[0]!.flat, 'link')).toBeUndefined();
    expect(c.body.toString()).toBe('final body');
  }, 10_000);

  it('HEAD: content-length 1000 and no body ends the stream cleanly', async () => {
    let method: string | undefined;
    const ns = await startNodeServer((st, headers) => {
      method = String(headers[':method']);
      st.respond({ ':status': 200, 'content-length': '1000', 'content-type': 'text/plain' }, { endStream: true });
    });
    const cl = await connectOurClient(ns.port);
    const c = new Collector();
    cl.session.request(reqHeaders(ns.port, 'HEAD', '/head'), true, c);
    await within(c.closed, 5000, 'the HEAD response');
    expect(method).toBe('HEAD');
    expect(c.closeCode).toBe(0);
    expect(c.byPeer).toBe(false);
    expect(c.ended).toBe(true);
    expect(c.bytes).toBe(0);
    expect(c.headers).toHaveLength(1);
    expect(c.headers[0]!.endStream).toBe(true);
    expect(hdr(c.headers[0]!.flat, 'content-length')).toBe('1000');
    expect(cl.errors).toEqual([]);
  }, 10_000);

  it('a paused download blocks the server, and resume() brings all 4 MiB intact', async () => {
    const big = randomBytes(4 * MiB);
    let accepted = 0;
    let falses = 0;
    let waitingForDrain = false;
    let serverStream: http2.ServerHttp2Stream | undefined;
    const ns = await startNodeServer((st) => {
      serverStream = st;
      // Read the (empty) request: a node:http2 server stream that never reads its request closes itself with
      // RST_STREAM(NO_ERROR) once its writes are handed to nghttp2 (core.js kMaybeDestroy), which can overtake the
      // final END_STREAM DATA frame; the response then looks reset (no onEnd). That is node's doing, not ours.
      st.resume();
      st.respond({ ':status': 200 });
      const CHUNK = 64 * KiB;
      const pump = (): void => {
        waitingForDrain = false;
        while (accepted < big.length) {
          const ok = st.write(big.subarray(accepted, accepted + CHUNK));
          accepted += CHUNK;
          if (!ok) { falses++; waitingForDrain = true; st.once('drain', pump); return; }
        }
        st.end();
      };
      pump();
    });
    const WINDOW = 256 * KiB;
    const cl = await connectOurClient(ns.port, { initialWindowSize: WINDOW });
    const c = new Collector();
    const st = cl.session.request(reqHeaders(ns.port, 'GET', '/big'), true, c);
    st.pause();
    await until(() => serverStream !== undefined, 5000, 'the stream at the server');
    await until(() => st.recvWindow === 0, 5000, 'our window to fill');
    const filledAt = accepted;
    await sleep(300);
    expect(accepted).toBe(filledAt); // the server wrote nothing more meanwhile
    // Nothing delivered while paused, and the server could not write past our window (plus its own buffers).
    expect(c.bytes).toBe(0);
    expect(c.headers).toHaveLength(1);
    expect(falses).toBeGreaterThan(0);
    expect(waitingForDrain).toBe(true);
    expect(serverStream!.writableLength).toBeGreaterThan(0);
    expect(accepted).toBeLessThan(WINDOW + 256 * KiB);
    st.resume();
    await within(c.closed, 8000, 'the download after resume()');
    expect(c.closeCode).toBe(0);
    expect(c.ended).toBe(true);
    expect(c.bytes).toBe(big.length);
    expect(sha(c.body)).toBe(sha(big));
    expect(cl.errors).toEqual([]);
  }, 10_000);

  it('a response whose DATA falls short of its content-length is reset with PROTOCOL_ERROR', async () => {
    const ns = await startNodeServer((st, headers) => {
      if (headers[':path'] === '/short') { st.respond({ ':status': 200, 'content-length': '10' }); st.end('12345'); return; }
      nodeEcho(st, headers);
    });
    const cl = await connectOurClient(ns.port);
    const c = new Collector();
    cl.session.request(reqHeaders(ns.port, 'GET', '/short'), true, c);
    const closed = await within(c.closed, 5000, 'the reset');
    expect(closed).toEqual({ code: H2ERR.PROTOCOL_ERROR, byPeer: false });
    expect(c.ended).toBe(false);
    const next = new Collector();
    cl.session.request(reqHeaders(ns.port, 'GET', '/next'), true, next);
    await within(next.closed, 5000, 'the next request');
    expect(next.closeCode).toBe(0);
    expect(next.body.toString()).toBe('hello /next');
    expect(cl.errors).toEqual([]);
  }, 10_000);

  it("server GOAWAY: onGoaway fires, request() throws, the in-flight request finishes", async () => {
    let held: http2.ServerHttp2Stream | undefined;
    const ns = await startNodeServer((st, headers) => {
      if (headers[':path'] === '/slow') { held = st; return; }
      nodeEcho(st, headers);
    });
    const cl = await connectOurClient(ns.port);
    const first = new Collector();
    cl.session.request(reqHeaders(ns.port, 'GET', '/first'), true, first);
    await within(first.closed, 5000, 'the first response');
    const slow = new Collector();
    const slowSt = cl.session.request(reqHeaders(ns.port, 'GET', '/slow'), true, slow);
    await until(() => held !== undefined, 5000, 'the slow stream at the server');
    ns.sessions[0]!.close(); // graceful: GOAWAY NO_ERROR, open streams go on
    await until(() => cl.goaways.length > 0, 5000, 'onGoaway');
    expect(cl.goaways[0]!.code).toBe(H2ERR.NO_ERROR);
    expect(cl.goaways[0]!.lastStreamId).toBeGreaterThanOrEqual(slowSt.id);
    expect(() => cl.session.request(reqHeaders(ns.port, 'GET', '/refused'), true, new Collector())).toThrow();
    expect(cl.session.capacity).toBe(0);
    expect(slowSt.closed).toBe(false);
    held!.respond({ ':status': 200 });
    held!.end('slow but done');
    await within(slow.closed, 5000, 'the in-flight response');
    expect(slow.closeCode).toBe(0);
    expect(slow.body.toString()).toBe('slow but done');
    await within(cl.closed, 5000, 'the connection to close');
    expect(cl.errors).toEqual([]);
  }, 10_000);

  it('server GOAWAY with a lower last-stream-id: streams above it close as REFUSED_STREAM (retryable)', async () => {
    const held: http2.ServerHttp2Stream[] = [];
    const ns = await startNodeServer((st) => { held.push(st); });
    const cl = await connectOurClient(ns.port);
    const a = new Collector();
    const b = new Collector();
    const sa = cl.session.request(reqHeaders(ns.port, 'GET', '/a'), true, a);
    const sb = cl.session.request(reqHeaders(ns.port, 'GET', '/b'), true, b);
    await until(() => held.length === 2, 5000, 'both streams at the server');
    ns.sessions[0]!.goaway(http2.constants.NGHTTP2_NO_ERROR, sa.id);
    await within(b.closed, 5000, 'the refused stream');
    expect(cl.goaways).toEqual([{ code: H2ERR.NO_ERROR, lastStreamId: sa.id }]);
    expect(b.closeCode).toBe(H2ERR.REFUSED_STREAM);
    expect(b.byPeer).toBe(true);
    expect(sb.closed).toBe(true);
    expect(sa.closed).toBe(false);
    const first = held.find((s) => s.id === sa.id)!;
    first.respond({ ':status': 200 });
    first.end('a done');
    await within(a.closed, 5000, 'the stream below the last-stream-id');
    expect(a.closeCode).toBe(0);
    expect(a.body.toString()).toBe('a done');
  }, 10_000);

  it('RST_STREAM REFUSED_STREAM from the server: onClose gets code 7, byPeer true; the session goes on', async () => {
    const ns = await startNodeServer((st, headers) => {
      if (headers[':path'] === '/refuse') { st.close(http2.constants.NGHTTP2_REFUSED_STREAM); return; }
      nodeEcho(st, headers);
    });
    const cl = await connectOurClient(ns.port);
    const c = new Collector();
    cl.session.request(reqHeaders(ns.port, 'GET', '/refuse'), true, c);
    const closed = await within(c.closed, 5000, 'the reset');
    expect(closed).toEqual({ code: H2ERR.REFUSED_STREAM, byPeer: true });
    expect(c.headers).toHaveLength(0);
    expect(c.ended).toBe(false);
    const next = new Collector();
    cl.session.request(reqHeaders(ns.port, 'GET', '/next'), true, next);
    await within(next.closed, 5000, 'the next request');
    expect(next.closeCode).toBe(0);
    expect(next.body.toString()).toBe('hello /next');
    expect(cl.errors).toEqual([]);
  }, 10_000);

  it('ping(cb) measures a round trip', async () => {
    const ns = await startNodeServer(nodeEcho);
    const cl = await connectOurClient(ns.port);
    const rtt = await within(new Promise<{ err: Error | null; ms: number }>((r) => cl.session.ping((err, ms) => r({ err, ms }))), 5000, 'the PING ACK');
    expect(rtt.err).toBeNull();
    expect(rtt.ms).toBeGreaterThanOrEqual(0);
    expect(rtt.ms).toBeLessThan(5000);
    expect(cl.session.lastFrameAt).toBeGreaterThan(0);
  }, 10_000);
});


// ---------------------------------------------------------------------------------------------------------------
// Findings of the conformance review, each fixed in session.ts: the cases that went wrong before the fix.

/**
 * A raw HTTP/2 server for the client-role cases: it reads the client's preface, sends an empty SETTINGS, and hands
 * each complete frame from the client to `onFrame` with a writer.
 */
async function startRawServer(onFrame: (f: Frame, write: (b: Buffer) => void) => void): Promise<{ port: number; received: Frame[] }> {
  const received: Frame[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('error', () => {});
    sock.on('close', () => sockets.delete(sock));
    let buf = Buffer.alloc(0);
    let prefaceLeft = 24;
    sock.write(settingsFrame());
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (prefaceLeft > 0) {
        const n = Math.min(prefaceLeft, buf.length);
        buf = buf.subarray(n);
        prefaceLeft -= n;
      }
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        const f: Frame = { type: buf[3]!, flags: buf[4]!, streamId: buf.readUInt32BE(5) & 0x7fffffff, payload: buf.subarray(9, 9 + len) };
        buf = buf.subarray(9 + len);
        received.push(f);
        if (f.type === FRAME.SETTINGS && (f.flags & FLAG.ACK) === 0) sock.write(frame(FRAME.SETTINGS, FLAG.ACK, 0));
        onFrame(f, (b) => sock.write(b));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => {
    for (const s of sockets) s.destroy();
    server.close(() => r());
  }));
  return { port: (server.address() as net.AddressInfo).port, received };
}

const rstPayload = (code: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(code, 0); return b; };

describe('H2Session: review findings', () => {
  it('trailers on a stream we already answered and reset are ignored, not a connection error (§5.1)', async () => {
    const srv = await startOurServer((st, flat, end) => {
      if (hdr(flat, ':path') === '/early') { st.handler = new Collector(); st.sendHeaders([':status', '200'], true); return; }
      echo(st, flat, end);
    });
    const raw = await rawClient(srv.port);
    raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS, 1, requestHeaders('localhost', '/early', 'POST')));
    await raw.until(() => rstOn(raw, 1) !== undefined, 5000, 'END_STREAM then RST_STREAM NO_ERROR');
    raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, headerBlock([['x-trailer', '1']])));
    raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 3, requestHeaders('localhost', '/next')));
    await raw.until(() => rawBody(raw, 3).ended, 5000, 'the response on stream 3');
    expect(rawBody(raw, 3).body.toString()).toBe('hello /next');
    expect(raw.goawayCode).toBeUndefined();
    expect(srv.errors).toEqual([]);
  }, 10_000);

  it('a body that ends with trailers short of its content-length is reset PROTOCOL_ERROR', async () => {
    const srv = await startOurServer(echo);
    const raw = await rawClient(srv.port);
    const h = new RawHeaders(raw);
    raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS, 1, requestHeaders('localhost', '/cl', 'POST', [['content-length', '10']])));
    raw.write(frame(FRAME.DATA, 0, 1, Buffer.from('12345')));
    raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, headerBlock([['x-trailer', '1']])));
    await raw.until(() => rstOn(raw, 1) !== undefined, 5000, 'RST_STREAM');
    expect(rstCodeOn(raw, 1)).toBe(H2ERR.PROTOCOL_ERROR);
    expect(h.of(1)).toEqual([]);
    expect(raw.goawayCode).toBeUndefined();
  }, 10_000);

  it('a HEADERS frame whose stream depends on itself gets only RST_STREAM PROTOCOL_ERROR, never a response', async () => {
    const srv = await startOurServer(echo);
    const raw = await rawClient(srv.port);
    const prio = Buffer.alloc(5);
    prio.writeUInt32BE(1, 0);
    prio[4] = 15;
    raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM | PRIORITY_FLAG, 1, Buffer.concat([prio, requestHeaders('localhost', '/self')])));
    raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 3, requestHeaders('localhost', '/after')));
    await raw.until(() => rawBody(raw, 3).ended, 5000, 'the response on stream 3');
    expect(raw.streamFrames(1).map((f) => f.type)).toEqual([FRAME.RST_STREAM]);
    expect(rstCodeOn(raw, 1)).toBe(H2ERR.PROTOCOL_ERROR);
    expect(srv.streams).toBe(1);
    // The HPACK block of stream 1 was still decoded: stream 3's (literal) block reads right.
    expect(rawBody(raw, 3).body.toString()).toBe('hello /after');
  }, 10_000);

  it('§8.2.1 field rules: a colon in a name, a value with leading whitespace, a bad or conflicting content-length, CONNECT without :authority, bad trailers', async () => {
    const srv = await startOurServer(echo);
    const raw = await rawClient(srv.port);
    const blocks: Buffer[] = [
      requestHeaders('localhost', '/a', 'GET', [['a:b', '1']]),
      requestHeaders('localhost', '/a', 'GET', [['x-a', ' lead']]),
      requestHeaders('localhost', '/a', 'GET', [['x-a', 'trail\t']]),
      requestHeaders('localhost', '/a', 'GET', [['content-length', 'abc']]),
      requestHeaders('localhost', '/a', 'GET', [['content-length', '0'], ['content-length', '1']]),
      headerBlock([[':method', 'CONNECT']]),
    ];
    const ids = blocks.map((_, i) => 1 + 2 * i);
    blocks.forEach((b, i) => raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, ids[i]!, b)));
    // Trailers with an uppercase name on an otherwise fine POST.
    const t = 1 + 2 * blocks.length;
    raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS, t, requestHeaders('localhost', '/t', 'POST')));
    raw.write(frame(FRAME.DATA, 0, t, Buffer.from('x')));
    raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, t, headerBlock([['X-Upper', '1']])));
    await raw.until(() => [...ids, t].every((i) => rstOn(raw, i) !== undefined), 5000, 'RST_STREAM on each');
    for (const i of [...ids, t]) expect({ i, code: rstCodeOn(raw, i) }).toEqual({ i, code: H2ERR.PROTOCOL_ERROR });
    expect(raw.goawayCode).toBeUndefined();
    // A value with a control character other than HTAB is dropped, the request served (as nghttp2 does).
    let seen: string[] = [];
    const srv2 = await startOurServer((st, flat, end) => { seen = flat; echo(st, flat, end); });
    const raw2 = await rawClient(srv2.port);
    raw2.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, requestHeaders('localhost', '/ctl', 'GET', [['x-esc', 'a\x1bb'], ['x-ok', 'a\tb']])));
    await raw2.until(() => rawBody(raw2, 1).ended, 5000, 'the response');
    expect(hdr(seen, 'x-esc')).toBeUndefined();
    expect(hdr(seen, 'x-ok')).toBe('a\tb');
  }, 10_000);

  it('a new stream id below the last one is a connection error PROTOCOL_ERROR (§5.1.1)', async () => {
    const srv = await startOurServer(echo);
    const raw = await rawClient(srv.port);
    raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 5, requestHeaders('localhost', '/five')));
    await raw.until(() => rawBody(raw, 5).ended, 5000, 'the response on stream 5');
    raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 3, requestHeaders('localhost', '/three')));
    await raw.until(() => raw.goawayCode !== undefined, 5000, 'GOAWAY');
    expect(raw.goawayCode).toBe(H2ERR.PROTOCOL_ERROR);
    expect(srv.errors.map((e) => e.code)).toEqual([H2ERR.PROTOCOL_ERROR]);
  }, 10_000);

  it('client: a response with malformed fields is reset PROTOCOL_ERROR, the session goes on', async () => {
    const enc = (fields: Array<[string, string]>): Buffer => headerBlock(fields);
    const cases: Array<Array<[string, string]>> = [
      [[':status', '200'], ['a:b', '1']],
      [[':status', '200'], ['X-Up', '1']],
      [[':status', '200'], ['x-a', 'a\r\nset-cookie: x=1']],
      [[':status', '200'], ['connection', 'close']],
      [[':status', '200'], [':path', '/']],
      [[':status', '20']],
      [[':status', '200'], ['content-length', 'x']],
    ];
    const srv = await startRawServer((f, write) => {
      if (f.type !== FRAME.HEADERS) return;
      const i = (f.streamId - 1) / 2;
      if (i < cases.length) write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, f.streamId, enc(cases[i]!)));
      else write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, f.streamId, enc([[':status', '204']])));
    });
    const cl = await connectOurClient(srv.port);
    const results: Array<{ code: number; byPeer: boolean; headers: number }> = [];
    for (let i = 0; i < cases.length; i++) {
      const c = new Collector();
      cl.session.request(reqHeaders(srv.port, 'GET', `/${i}`), true, c);
      const r = await within(c.closed, 5000, `case ${i}`);
      results.push({ ...r, headers: c.headers.length });
    }
    expect(results).toEqual(cases.map(() => ({ code: H2ERR.PROTOCOL_ERROR, byPeer: false, headers: 0 })));
    const ok = new Collector();
    cl.session.request(reqHeaders(srv.port, 'GET', '/ok'), true, ok);
    expect(await within(ok.closed, 5000, 'the good one')).toEqual({ code: 0, byPeer: false });
    expect(hdr(ok.headers[0]!.flat, ':status')).toBe('204');
    expect(cl.errors).toEqual([]);
  }, 10_000);

  it('client: RST_STREAM NO_ERROR after a complete response does not lose it, even while paused (§8.1)', async () => {
    const srv = await startRawServer((f, write) => {
      if (f.type !== FRAME.HEADERS) return;
      write(Buffer.concat([
        frame(FRAME.HEADERS, FLAG.END_HEADERS, f.streamId, headerBlock([[':status', '200']])),
        frame(FRAME.DATA, 0, f.streamId, Buffer.from('hello ')),
        frame(FRAME.DATA, FLAG.END_STREAM, f.streamId, Buffer.from('world')),
        frame(FRAME.RST_STREAM, 0, f.streamId, rstPayload(H2ERR.NO_ERROR)),
      ]));
    });
    const cl = await connectOurClient(srv.port);
    const c = new Collector();
    // An upload that the server does not wait for: the request's side stays open until the RST_STREAM.
    const st = cl.session.request(reqHeaders(srv.port, 'POST', '/upload'), false, c);
    st.write(Buffer.from('part'));
    st.pause();
    await until(() => srv.received.some((f) => f.type === FRAME.DATA), 5000, 'the first part at the server');
    await sleep(100);
    expect(c.bytes).toBe(0);
    st.resume();
    expect(await within(c.closed, 5000, 'the stream to close')).toEqual({ code: 0, byPeer: false });
    expect(c.ended).toBe(true);
    expect(c.body.toString()).toBe('hello world');
    // Our side stopped: nothing more is sent on the stream.
    expect(st.write(Buffer.from('more'))).toBe(false);
  }, 10_000);

  it('client: GOAWAY from destroy() names no stream of ours (last-stream-id 0), and two PINGs in flight are timed apart', async () => {
    let goaway: Frame | undefined;
    const pings: Frame[] = [];
    const srv = await startRawServer((f, write) => {
      if (f.type === FRAME.GOAWAY) goaway = f;
      if (f.type === FRAME.PING && (f.flags & FLAG.ACK) === 0) {
        pings.push(f);
        // The first PING is answered 150 ms late, the second at once after it.
        if (pings.length === 2) setTimeout(() => { for (const p of pings) write(frame(FRAME.PING, FLAG.ACK, 0, p.payload)); }, 150);
      }
      if (f.type === FRAME.HEADERS) write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, f.streamId, headerBlock([[':status', '204']])));
    });
    const cl = await connectOurClient(srv.port);
    for (const p of ['/1', '/2']) {
      const c = new Collector();
      cl.session.request(reqHeaders(srv.port, 'GET', p), true, c);
      await within(c.closed, 5000, p);
    }
    const first = new Promise<number>((r) => cl.session.ping((_e, ms) => r(ms)));
    await sleep(100);
    const second = new Promise<number>((r) => cl.session.ping((_e, ms) => r(ms)));
    const [a, b] = await within(Promise.all([first, second]), 5000, 'the PING ACKs');
    expect(a).toBeGreaterThanOrEqual(200);
    expect(b).toBeLessThan(a);
    cl.session.destroy(H2ERR.INTERNAL_ERROR);
    await until(() => goaway !== undefined, 5000, 'the GOAWAY');
    expect(goaway!.payload.readUInt32BE(0)).toBe(0);
    expect(goaway!.payload.readUInt32BE(4)).toBe(H2ERR.INTERNAL_ERROR);
  }, 10_000);
});

describe('H2Session: review findings, second round', () => {
  it('a write inside onDrain that queues again is still flushed by the next connection WINDOW_UPDATE', async () => {
    const total = 170_000;
    const srv = await startOurServer((st) => {
      const c = new Collector();
      st.handler = c;
      st.sendHeaders([':status', '200'], false);
      let second = false;
      c.onDrainHook = (s) => { if (!second) { second = true; s.write(Buffer.alloc(100_000, 2)); s.end(); } };
      if (st.write(Buffer.alloc(70_000, 1))) { second = true; st.write(Buffer.alloc(100_000, 2)); st.end(); }
    });
    const raw = await rawClient(srv.port);
    // A large stream window, the connection window left at 65,535: the connection window is what runs out.
    raw.write(settingsFrame([[0x4, 1 << 20]]));
    raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, requestHeaders('localhost', '/big')));
    const got = (): number => rawBody(raw, 1).body.length;
    await raw.until(() => got() >= 65_535, 5000, 'the first window of data');
    const wu = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(n, 0); return frame(FRAME.WINDOW_UPDATE, 0, 0, b); };
    raw.write(wu(10_000)); // the rest of the 70,000: onDrain writes 100,000 more, which the window cannot take
    await raw.until(() => got() >= 70_000, 5000, 'the first write whole');
    raw.write(wu(1_000_000));
    await raw.until(() => rawBody(raw, 1).ended, 5000, `the whole response (${got()} of ${total} bytes)`);
    expect(got()).toBe(total);
  }, 10_000);

  it('a client that does not read its socket: writes wait behind about 1 MiB instead of growing the socket buffer', async () => {
    let st1: H2Stream | undefined;
    let falses = 0;
    let accepted = 0;
    const srv = await startOurServer((st) => {
      st1 = st;
      st.handler = new Collector();
      st.sendHeaders([':status', '200'], false);
      const chunk = Buffer.alloc(1 << 20, 3);
      for (let i = 0; i < 200; i++) { if (st.write(chunk)) accepted++; else { falses++; break; } }
    });
    const raw = await RawH2.connect(srv.port, { read: false });
    cleanups.push(() => raw.destroy());
    // The largest windows there are: only the socket can push back.
    const wu = Buffer.alloc(4);
    wu.writeUInt32BE(0x7fffffff - 65_535, 0);
    raw.write(Buffer.concat([settingsFrame([[0x4, 0x7fffffff]]), frame(FRAME.WINDOW_UPDATE, 0, 0, wu)]));
    raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, requestHeaders('localhost', '/flood')));
    await until(() => st1 !== undefined, 5000, 'the stream');
    await sleep(200);
    expect(falses).toBe(1);
    expect(accepted).toBeLessThan(4);
    const sock = srv.sessions[0]!.socket as net.Socket;
    expect(sock.writableLength).toBeLessThan(4 << 20);
  }, 10_000);

  it('a response that ends while the request body is held by pause(): the stream closes, nothing leaks', async () => {
    let closed = false;
    const srv = await startOurServer((st) => {
      const c = new Collector();
      st.handler = c;
      c.onDataHook = (s) => s.pause();
      const onClose = c.onClose.bind(c);
      c.onClose = (s, code, byPeer) => { closed = true; onClose(s, code, byPeer); };
    });
    const raw = await rawClient(srv.port);
    raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS, 1, requestHeaders('localhost', '/up', 'POST')));
    raw.write(frame(FRAME.DATA, 0, 1, Buffer.from('one')));
    raw.write(frame(FRAME.DATA, FLAG.END_STREAM, 1, Buffer.from('two')));
    await until(() => srv.sessions[0]?.streams.get(1)?.remoteEnded === true, 5000, 'the request to end');
    const session = srv.sessions[0]!;
    session.streams.get(1)!.sendHeaders([':status', '403'], true);
    await raw.until(() => rawBody(raw, 1).ended, 5000, 'the 403');
    expect(closed).toBe(true);
    expect(session.active).toBe(0);
    expect(session.streams.size).toBe(0);
  }, 10_000);

  it('a flood of malformed requests is a connection error ENHANCE_YOUR_CALM after 1,000 streams reset', async () => {
    const srv = await startOurServer(echo);
    const raw = await rawClient(srv.port);
    const block = headerBlock([[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'x'], ['X-Upper', '1']]);
    for (let i = 0; i < 1200 && !raw.closed; i++) raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1 + 2 * i, block));
    await raw.until(() => raw.goawayCode !== undefined || raw.closed, 5000, 'GOAWAY');
    expect(srv.errors.map((e) => [e.code, e.flood])).toEqual([[H2ERR.ENHANCE_YOUR_CALM, true]]);
    // 1,000 stream errors, then the connection error (the stream that tipped it is reset with the connection).
    expect(raw.frames.filter((f) => f.type === FRAME.RST_STREAM).length).toBeLessThanOrEqual(1001);
  }, 10_000);

  it('padding-only DATA gives its window back (a stream is never stalled by padding)', async () => {
    const srv = await startOurServer(echo, { initialWindowSize: 1000 });
    const raw = await rawClient(srv.port);
    raw.write(frame(FRAME.HEADERS, FLAG.END_HEADERS, 1, requestHeaders('localhost', '/pad', 'POST')));
    // 3 frames of 255 padding bytes and no data: 768 bytes of the 1,000-byte window, past half of it.
    const padOnly = Buffer.concat([Buffer.from([254]), Buffer.alloc(254)]);
    for (let i = 0; i < 3; i++) raw.write(frame(FRAME.DATA, FLAG.PADDED, 1, padOnly));
    await raw.until(() => raw.frames.some((f) => f.type === FRAME.WINDOW_UPDATE && f.streamId === 1), 5000, 'a WINDOW_UPDATE for stream 1');
    raw.write(frame(FRAME.DATA, FLAG.END_STREAM, 1, Buffer.alloc(500, 7)));
    await raw.until(() => rawBody(raw, 1).ended, 5000, 'the echo');
    expect(rawBody(raw, 1).body.length).toBe(500);
    expect(raw.goawayCode).toBeUndefined();
  }, 10_000);
});
