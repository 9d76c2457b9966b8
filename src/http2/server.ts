/**
 * Cleartext HTTP/2 (prior knowledge) on the data-plane listeners: a connection whose first bytes are the HTTP/2
 * preface is served by an `H2Session` (./session.ts, Remora's own HTTP/2 framing), and each stream becomes a
 * request/response pair with the same surface the proxy path reads from HTTP/1 (`Http2Request` / `Http2Response`
 * mirror `Http1Request` / `Http1Response`), so routing, retries, outlier detection, circuit breaking, tracing,
 * metrics and access logs stay one implementation. Trailers pass through both ways (gRPC's `grpc-status` /
 * `grpc-message`), bodies stream with HTTP/2 flow control (a `false` from `write` means the stream's window is full;
 * 'drain' follows).
 * HTTP/1.1's `Upgrade: h2c` (RFC 7540 §3.2; deprecated by RFC 9113, still sent by `curl --http2` and older
 * clients) is taken too, see `Http2Listener.upgrade`: 101, then the connection is HTTP/2 with the request as stream 1.
 */
import type net from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import type { Http1Request, Http1Response, OriginalDestination } from '../http1/server.js';
import { startReading } from '../http1/socket-io.js';
import { peerOf, type PeerIdentity } from '../security/mtls.js';
import { h2cSettings } from './h2c.js';
import { CONNECTION_SPECIFIC, H2ERR, H2Session, h2RequestHeaders, hasUpper, type H2ConnectionError, type H2Stream, type H2StreamHandler } from './session.js';

export type Http2Handler = (req: Http2Request, res: Http2Response) => void;


/** A request body: DATA frames pushed in; reading slower than the client stops the stream's WINDOW_UPDATEs. */
class H2Body extends Readable {
  constructor(private readonly stream: H2Stream) {
    super();
    this.on('error', () => { /* a reset body with no reader must not end the process */ });
  }

  override _read(): void {
    this.stream.resume();
  }
}

/** A stream's request, shaped like Http1Request. */
export class Http2Request {
  readonly method: string;
  readonly url: string;
  readonly httpVersion = '2.0';
  /** Flat, lowercase names (HTTP/2 has no case); `:authority` becomes `host`. */
  readonly rawHeaders: string[];
  readonly headers: IncomingHttpHeaders;
  readonly body: H2Body | null;
  complete = false;
  readonly upgrade = false;

  constructor(readonly stream: H2Stream, flat: string[], endStream: boolean, private readonly conn: H2Conn) {
    let method = 'GET';
    let url = '/';
    let authority: string | undefined;
    let host: string | undefined;
    const raw: string[] = [];
    const h: IncomingHttpHeaders = Object.create(null) as IncomingHttpHeaders;
    for (let i = 0; i < flat.length; i += 2) {
      const k = flat[i]!;
      const v = flat[i + 1]!;
      if (k.charCodeAt(0) === 58 /* : */) {
        if (k === ':method') method = v;
        else if (k === ':path') url = v;
        else if (k === ':authority') authority = v;
        continue;
      }
      if (k === 'host') { host ??= v; continue; }
      raw.push(k, v);
      const cur = h[k];
      if (cur === undefined) h[k] = k === 'set-cookie' ? [v] : v;
      else if (Array.isArray(cur)) cur.push(v);
      // Repeated fields join as node:http does (cookie crumbs with '; ', RFC 9113 §8.2.3).
      else h[k] = k === 'cookie' ? `${cur}; ${v}` : `${cur}, ${v}`;
    }
    this.method = method;
    this.url = url;
    const a = authority ?? host;
    if (a !== undefined) { raw.unshift('host', a); h.host = a; }
    this.rawHeaders = raw;
    this.headers = h;
    // A body unless the client ended the stream with its headers (HEADERS with END_STREAM).
    if (endStream) {
      this.body = null;
      this.complete = true;
    } else {
      this.body = new H2Body(stream);
    }
  }

  get remoteAddress(): string { return this.conn.remoteAddress; }
  get remoteKey(): string { return this.conn.remoteKey; }
  get localKey(): string { return this.conn.localKey; }
  get originalDst(): OriginalDestination | undefined { return this.conn.originalDst; }
  /** The mTLS peer of the connection (inbound, after PeerAuthentication terminated it). */
  get peer(): PeerIdentity | undefined { return this.conn.peer; }

  /** Discard the rest of the body (the proxy answered without reading it). */
  resume(): void {
    if (this.body !== null && !this.complete) this.body.resume();
  }
}

type Listener = () => void;

/**
 * A stream's response, shaped like Http1Response: flat header arrays in, trailers, backpressure, reset. It is also
 * the stream's event handler (one object per stream): data for the request body, drain and close for the response.
 */
export class Http2Response implements H2StreamHandler {
  statusCode = 0;
  headersSent = false;
  finished = false;
  destroyed = false;
  /** HTTP/2 frames its own body: trailers can always follow (the forwarder checks this before addTrailers). */
  readonly chunkedEncoding = true;
  private trailers: string[] | null = null;
  private closeListeners: Listener[] | null = null;
  private drainListeners: Listener[] | null = null;
  private closed = false;
  /** Set when Remora reset the stream itself (destroy()), so that a reset is not taken for the client's. */
  private localReset = false;
  /** @internal when the stream opened (ms): the premature-reset check. */
  openedAt = 0;

  constructor(readonly stream: H2Stream, readonly req: Http2Request, private readonly listener: Http2Listener, private readonly session: H2Session) {}

  writeHead(status: number, headers: readonly string[]): this {
    if (this.headersSent) throw new Error('headers already sent');
    const out: string[] = [':status', String(status)];
    let noBody = this.req.method === 'HEAD' || status === 204 || status === 304;
    for (let i = 0; i < headers.length; i += 2) {
      let name = headers[i]!;
      if (hasUpper(name)) name = name.toLowerCase();
      if (CONNECTION_SPECIFIC.has(name)) continue;
      const value = headers[i + 1]!;
      // No body and nothing after the headers: an explicit empty body, and a gRPC "trailers-only" response
      // (grpc-status in the first headers, never there otherwise): HEADERS with END_STREAM, as it came.
      if ((name === 'content-length' && value === '0') || name === 'grpc-status') noBody = true;
      out.push(name, value);
    }
    this.statusCode = status;
    this.headersSent = true;
    if (this.stream.closed) return this;
    this.stream.sendHeaders(out, noBody);
    return this;
  }

  write(chunk: Buffer | string): boolean {
    if (this.finished || this.destroyed) return false;
    if (!this.headersSent) this.writeHead(200, []);
    if (this.stream.closed) return false;
    return this.stream.write(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  }

  end(chunk?: Buffer | string): void {
    if (this.finished || this.destroyed) return;
    if (!this.headersSent) this.writeHead(200, []);
    this.finished = true;
    if (this.stream.closed) return;
    const c = chunk === undefined ? undefined : typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    // Trailers when the upstream sent some (grpc-status), else END_STREAM on the last DATA frame.
    this.stream.end(c, this.trailers);
  }

  addTrailers(t: Record<string, string>): void {
    const out: string[] = [];
    for (const k of Object.keys(t)) {
      const name = k.toLowerCase();
      if (CONNECTION_SPECIFIC.has(name)) continue;
      out.push(name, t[k]!);
    }
    this.trailers = out;
  }

  /**
   * HTTP/2 has no 101 (WebSocket over HTTP/2 is RFC 8441's extended CONNECT, not supported): a stream never asks for
   * an upgrade (`Http2Request.upgrade` is false), so the forwarder never calls this.
   */
  switchProtocols(): never {
    throw new Error('HTTP/2 streams cannot switch protocols');
  }

  /** Reset the stream (a response that started cannot be finished cleanly): RST_STREAM INTERNAL_ERROR. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.localReset = true;
    this.stream.reset(H2ERR.INTERNAL_ERROR);
  }

  /** The client reset the stream (RST_STREAM from the peer, or the connection went) before the response was complete. */
  get resetByPeer(): boolean {
    return this.closed && !this.localReset && !this.finished && this.stream.rstCode !== H2ERR.NO_ERROR;
  }

  on(event: 'close' | 'drain', fn: Listener): this {
    if (event === 'close') {
      // Called with `this` = the response, as Http1Response does (the forwarder's shared listener reads it).
      if (this.closed) queueMicrotask(() => fn.call(this));
      else (this.closeListeners ??= []).push(fn);
    } else {
      (this.drainListeners ??= []).push(fn);
    }
    return this;
  }

  once(event: 'close' | 'drain', fn: Listener): this {
    if (event === 'close') return this.on('close', fn);
    const once = (): void => {
      const l = this.drainListeners;
      if (l !== null) { const i = l.indexOf(once); if (i >= 0) l.splice(i, 1); }
      fn();
    };
    return this.on('drain', once);
  }

  // H2StreamHandler: the stream's events.
  onHeaders(): void { /* request trailers: nothing on the proxy path reads them */ }

  onData(_st: H2Stream, chunk: Buffer): void {
    const body = this.req.body;
    if (body !== null && !body.push(chunk)) this.stream.pause();
  }

  onEnd(): void {
    this.req.complete = true;
    this.req.body?.push(null);
  }

  onDrain(): void {
    const l = this.drainListeners;
    if (l === null) return;
    for (const f of l.slice()) f();
  }

  onClose(st: H2Stream): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.finished) this.destroyed = true;
    const body = this.req.body;
    if (body !== null && !this.req.complete) body.destroy();
    this.listener.streamClosed(this.session, this, st);
    const l = this.closeListeners;
    this.closeListeners = null;
    // Told on the next tick, as a Node stream's 'close' is: the stream closes inside our own end(), and the
    // forwarder marks the exchange finished only after end() returns (else a clean close reads as the client's, DC).
    if (l !== null) process.nextTick(emitClose, this, l);
  }
}

function emitClose(res: Http2Response, listeners: Listener[]): void {
  for (const f of listeners) f.call(res);
}


/** Per-connection facts the requests read (addresses once per connection, the original destination). */
class H2Conn {
  readonly remoteAddress: string;
  readonly remoteKey: string;
  readonly localKey: string;
  readonly peer: PeerIdentity | undefined;
  /** Streams closed and, of them, premature resets (the rapid-reset check). */
  closedStreams = 0;
  prematureResets = 0;
  constructor(sock: net.Socket, readonly originalDst: OriginalDestination | undefined) {
    this.peer = peerOf(sock);
    this.remoteAddress = sock.remoteAddress ?? '';
    this.remoteKey = `${this.remoteAddress}:${sock.remotePort ?? 0}`;
    this.localKey = `${sock.localAddress ?? ''}:${sock.localPort ?? 0}`;
  }
}

/**
 * Envoy's defence against HTTP/2 "rapid reset" (CVE-2023-44487), with Envoy's defaults
 * (`overload.premature_reset_total_stream_count` 500, `overload.premature_reset_min_stream_lifetime_seconds` 1): a
 * stream the client resets within a second of opening it, before its response is complete, is a premature reset;
 * once a connection has closed at least 500 streams and half or more of them were premature resets, it is closed
 * (GOAWAY ENHANCE_YOUR_CALM, then the socket).
 */
export const PREMATURE_RESET_MIN_STREAMS = 500;
export const PREMATURE_RESET_LIFETIME_MS = 1000;

/** What a listener's sessions went through; read by the metrics. */
export interface Http2ListenerStats {
  /** HTTP/2 connections served. */
  sessions: number;
  /** Connections closed by a protocol error or a flood (SETTINGS/PING flood, CONTINUATION flood, invalid frames). */
  protocolErrors: number;
  /** Connections closed for too many premature stream resets (Envoy `downstream_rq_too_many_premature_resets`). */
  prematureResetCloses: number;
  /** Streams the client reset before their response was complete (Envoy `downstream_rq_rx_reset`). */
  streamsResetByPeer: number;
}

export interface Http2ListenerOptions {
  /** Streams a client may open at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS). Default 1024. */
  maxConcurrentStreams?: number;
  /** A connection with no open stream for this long is closed with GOAWAY (ms). Default 65 s, as HTTP/1 keep-alive. */
  idleTimeoutMs?: number;
  /** Largest header list (bytes, RFC 9113's size), as HTTP/1's maxHeaderSize. Default 16 KiB. */
  maxHeaderListSize?: number;
}

/** The HTTP/2 side of a data-plane listener: sessions for the connections handed to it. */
export class Http2Listener {
  private readonly sessions = new Map<H2Session, H2Conn>();
  draining = false;
  readonly stats: Http2ListenerStats = { sessions: 0, protocolErrors: 0, prematureResetCloses: 0, streamsResetByPeer: 0 };
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly idleMs: number;

  constructor(private readonly handler: Http2Handler, private readonly opts: Http2ListenerOptions = {}) {
    this.idleMs = opts.idleTimeoutMs ?? 65_000;
  }

  /** Serve HTTP/2 on an accepted socket; `head` holds the bytes already read from it (the preface). */
  serveSocket(sock: net.Socket, head: Buffer | undefined, originalDst: OriginalDestination | undefined): void {
    const session = this.open(sock, originalDst);
    if (head !== undefined && head.length > 0) session.receive(head);
    sock.resume();
    if (this.draining) session.close();
  }

  /**
   * An HTTP/1.1 request asking for cleartext HTTP/2 (`Upgrade: h2c`, RFC 7540 §3.2): when it may be taken, 101
   * Switching Protocols, and the connection is served as HTTP/2 from here on, the request itself as stream 1 (its
   * response goes out as HTTP/2). True when taken. False, with nothing done, for anything else: an upgrade to
   * another protocol, or an h2c upgrade that RFC 7540 says not to take (no `HTTP2-Settings` or more than one, one
   * that is not base64url SETTINGS, `HTTP2-Settings` not named in `Connection`, a TLS connection): that request
   * goes on as HTTP/1.1 (the proxy path then treats it as any other upgrade request).
   */
  upgrade(req: Http1Request, res: Http1Response): boolean {
    if (!req.upgrade || this.draining || (req.socket as { encrypted?: boolean }).encrypted === true) return false;
    const settings = h2cSettings(req.rawHeaders);
    if (settings === null) return false;
    const flat = h2RequestHeaders(req.method, req.url, req.rawHeaders);
    let sw: { socket: net.Socket; head: Buffer[] };
    try {
      sw = res.switchProtocols(['Connection', 'Upgrade', 'Upgrade', 'h2c']);
    } catch {
      res.destroy(); // the client went meanwhile
      return true;
    }
    const { socket, head } = sw;
    const session = this.open(socket, req.originalDst);
    if (!session.acceptUpgrade(settings, flat)) return true;
    for (const b of head) session.receive(b);
    startReading(socket);
    return true;
  }

  private open(sock: net.Socket, originalDst: OriginalDestination | undefined): H2Session {
    const conn = new H2Conn(sock, originalDst);
    const listener = this;
    const session: H2Session = new H2Session(sock, 'server', {
      maxConcurrentStreams: this.opts.maxConcurrentStreams ?? 1024,
      maxHeaderListSize: this.opts.maxHeaderListSize ?? 16_384,
      initialWindowSize: 1 << 20,
    }, {
      onStream(stream, flat, endStream) { listener.onStream(session, conn, stream, flat, endStream); },
      onError(_err: H2ConnectionError) { listener.stats.protocolErrors++; },
      onClose() { listener.sessions.delete(session); },
    });
    this.sessions.set(session, conn);
    this.stats.sessions++;
    if (this.idleTimer === undefined) {
      this.idleTimer = setInterval(() => this.sweepIdle(), Math.min(1000, this.idleMs));
      this.idleTimer.unref();
    }
    return session;
  }

  private onStream(session: H2Session, conn: H2Conn, stream: H2Stream, flat: string[], endStream: boolean): void {
    const req = new Http2Request(stream, flat, endStream, conn);
    const res = new Http2Response(stream, req, this, session);
    res.openedAt = Date.now();
    stream.handler = res;
    try {
      this.handler(req, res);
    } catch {
      stream.reset(H2ERR.INTERNAL_ERROR);
    }
  }

  /** @internal a stream closed: the rapid-reset check (Envoy's premature reset rule). */
  streamClosed(session: H2Session, res: Http2Response, st: H2Stream): void {
    if (session.destroyed) return;
    const conn = this.sessions.get(session);
    if (conn === undefined) return;
    conn.closedStreams++;
    if (!(st.resetByPeer && res.resetByPeer)) return;
    this.stats.streamsResetByPeer++;
    if (Date.now() - res.openedAt >= PREMATURE_RESET_LIFETIME_MS) return;
    conn.prematureResets++;
    if (conn.closedStreams >= PREMATURE_RESET_MIN_STREAMS && conn.prematureResets * 2 >= conn.closedStreams) {
      this.stats.prematureResetCloses++;
      session.destroy(H2ERR.ENHANCE_YOUR_CALM);
    }
  }

  private sweepIdle(): void {
    if (this.sessions.size === 0) {
      clearInterval(this.idleTimer);
      this.idleTimer = undefined;
      return;
    }
    const now = Date.now();
    for (const s of this.sessions.keys()) if (s.active === 0 && now - s.idleSince >= this.idleMs) s.close();
  }

  /** Drain: GOAWAY to every session (open streams finish), and to new ones at once. */
  closeIdleConnections(): void {
    this.draining = true;
    for (const s of this.sessions.keys()) s.close();
  }

  closeAllConnections(): void {
    for (const s of [...this.sessions.keys()]) s.destroy();
  }

  get connections(): number {
    return this.sessions.size;
  }
}


