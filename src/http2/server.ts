/**
 * Cleartext HTTP/2 (prior knowledge) on the data-plane listeners: a connection whose first bytes are the HTTP/2
 * preface is handed to a `node:http2` server session, and each stream becomes a request/response pair with the same
 * surface the proxy path reads from HTTP/1 (`Http2Request` / `Http2Response` mirror `Http1Request` /
 * `Http1Response`), so routing, retries, outlier detection, circuit breaking, tracing, metrics and access logs stay
 * one implementation. Trailers pass through both ways (gRPC's `grpc-status` / `grpc-message`), bodies stream with
 * HTTP/2 flow control (a `false` from `write` means the stream's window is full; 'drain' follows).
 * The `Upgrade: h2c` dance of HTTP/1.1 is not offered: such a request is served as HTTP/1.1, which RFC 9113 allows
 * (h2c upgrade was removed from HTTP/2's current definition).
 */
import http2, { constants as H2 } from 'node:http2';
import type net from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { OriginalDestination } from '../http1/server.js';
import { peerOf, type PeerIdentity } from '../security/mtls.js';

export type Http2Handler = (req: Http2Request, res: Http2Response) => void;

/** Response headers a proxy must not send on HTTP/2 (connection-specific, RFC 9113 §8.2.2). */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

/** A stream's request, shaped like Http1Request. */
export class Http2Request {
  readonly method: string;
  readonly url: string;
  readonly httpVersion = '2.0';
  /** Flat, lowercase names (HTTP/2 has no case); `:authority` becomes `host`. */
  readonly rawHeaders: string[];
  readonly headers: IncomingHttpHeaders;
  readonly body: Readable | null;
  complete = false;
  readonly upgrade = false;

  constructor(readonly stream: http2.ServerHttp2Stream, h: http2.IncomingHttpHeaders, private readonly conn: H2Conn) {
    this.method = String(h[':method'] ?? 'GET');
    this.url = String(h[':path'] ?? '/');
    const raw: string[] = [];
    const authority = h[':authority'] ?? h.host;
    if (authority !== undefined) raw.push('host', String(authority));
    for (const k of Object.keys(h)) {
      if (k.charCodeAt(0) === 58 /* : */ || k === 'host') continue;
      const v = h[k];
      if (v === undefined) continue;
      if (Array.isArray(v)) { for (const x of v) raw.push(k, x); if (k !== 'set-cookie') h[k] = v.join(', '); }
      else raw.push(k, String(v));
    }
    this.rawHeaders = raw;
    // node:http2's own header object serves as the headers view (one object less per request): lowercase names as
    // node:http's, `host` from :authority; its pseudo-headers stay but no header match or operator reads them.
    if (authority !== undefined) h.host = String(authority);
    this.headers = h as IncomingHttpHeaders;
    // A body unless the client ended the stream with its headers (HEADERS with END_STREAM): the stream itself is
    // the body's Readable (its DATA frames, with HTTP/2 flow control: not reading stops WINDOW_UPDATEs).
    if (stream.readableEnded || stream.endAfterHeaders) {
      this.body = null;
      this.complete = true;
    } else {
      this.body = stream;
      stream.once('end', () => { this.complete = true; });
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

/** A stream's response, shaped like Http1Response: flat header arrays in, trailers, backpressure, reset. */
export class Http2Response {
  statusCode = 0;
  headersSent = false;
  finished = false;
  destroyed = false;
  /** HTTP/2 frames its own body: trailers can always follow (the forwarder checks this before addTrailers). */
  readonly chunkedEncoding = true;
  private trailers: http2.OutgoingHttpHeaders | undefined;
  private closeListeners: Listener[] = [];
  private closed = false;

  constructor(readonly stream: http2.ServerHttp2Stream, private readonly req: Http2Request) {
    stream.once('close', () => this.fireClose());
    stream.on('error', () => { /* 'close' follows */ });
  }

  writeHead(status: number, headers: readonly string[]): this {
    if (this.headersSent) throw new Error('headers already sent');
    const out: http2.OutgoingHttpHeaders = { ':status': status };
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!.toLowerCase();
      if (CONNECTION_SPECIFIC.has(name)) continue;
      const value = headers[i + 1]!;
      const cur = out[name];
      if (cur === undefined) out[name] = value;
      else if (Array.isArray(cur)) cur.push(value);
      else out[name] = [String(cur), value];
    }
    this.statusCode = status;
    this.headersSent = true;
    // No body and nothing after the headers: HEAD, 204, 304, an explicit empty body, and a gRPC "trailers-only"
    // response (grpc-status in the first headers, never there otherwise): HEADERS with END_STREAM, as it came.
    const noBody = this.req.method === 'HEAD' || status === 204 || status === 304 || out['content-length'] === '0' || out['grpc-status'] !== undefined;
    if (this.stream.destroyed || this.stream.closed) return this;
    // waitForTrailers: the stream stays open after the last DATA frame so that trailers (grpc-status) can follow.
    this.stream.respond(out, { endStream: noBody, waitForTrailers: !noBody });
    if (!noBody) {
      this.stream.once('wantTrailers', () => {
        // The stream must end with END_STREAM: trailers when the upstream sent some, else an empty trailer block
        // (what node:http2's own compatibility layer sends).
        this.stream.sendTrailers(this.trailers ?? {});
      });
    }
    return this;
  }

  write(chunk: Buffer | string): boolean {
    if (this.finished || this.destroyed) return false;
    if (!this.headersSent) this.writeHead(200, []);
    if (this.stream.destroyed) return false;
    return this.stream.write(chunk);
  }

  end(chunk?: Buffer | string): void {
    if (this.finished || this.destroyed) return;
    if (!this.headersSent) this.writeHead(200, []);
    this.finished = true;
    if (this.stream.destroyed || this.stream.writableEnded) return;
    if (chunk !== undefined && chunk.length > 0) this.stream.end(chunk);
    else this.stream.end();
  }

  addTrailers(t: Record<string, string>): void {
    const out: http2.OutgoingHttpHeaders = {};
    for (const k of Object.keys(t)) out[k.toLowerCase()] = t[k]!;
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
    if (!this.stream.destroyed) this.stream.close(H2.NGHTTP2_INTERNAL_ERROR);
  }

  /** Set when Remora reset the stream itself (destroy()), so that a reset is not taken for the client's. */
  private localReset = false;

  /** The client reset the stream (RST_STREAM from the peer) before the response was complete. */
  get resetByPeer(): boolean {
    return this.closed && !this.localReset && !this.finished && this.stream.rstCode !== H2.NGHTTP2_NO_ERROR;
  }

  on(event: 'close' | 'drain', fn: Listener): this {
    if (event === 'close') {
      // Called with `this` = the response, as Http1Response does (the forwarder's shared listener reads it).
      if (this.closed) queueMicrotask(() => fn.call(this));
      else this.closeListeners.push(fn);
    } else {
      this.stream.on('drain', fn);
    }
    return this;
  }

  once(event: 'close' | 'drain', fn: Listener): this {
    if (event === 'close') return this.on('close', fn);
    this.stream.once('drain', fn);
    return this;
  }

  private fireClose(): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.finished) this.destroyed = true;
    for (const f of this.closeListeners.splice(0)) f.call(this);
  }
}

/** Per-connection facts the requests read (addresses once per connection, the original destination). */
class H2Conn {
  readonly remoteAddress: string;
  readonly remoteKey: string;
  readonly localKey: string;
  readonly peer: PeerIdentity | undefined;
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
 * (GOAWAY ENHANCE_YOUR_CALM, then the socket). nghttp2's own limit (a token bucket of 1,000 RST_STREAMs refilled at
 * 33/s) answers such a flood with a GOAWAY but, under node:http2, leaves the connection open and idle until its
 * idle timeout: this check closes it first.
 */
export const PREMATURE_RESET_MIN_STREAMS = 500;
export const PREMATURE_RESET_LIFETIME_MS = 1000;

/** What a listener's sessions went through; read by the metrics. */
export interface Http2ListenerStats {
  /** HTTP/2 connections served. */
  sessions: number;
  /** Connections closed by a protocol error or a flood node:http2/nghttp2 caught (SETTINGS/PING flood, CONTINUATION flood, invalid frames). */
  protocolErrors: number;
  /** Connections closed for too many premature stream resets (Envoy `downstream_rq_too_many_premature_resets`). */
  prematureResetCloses: number;
  /** Streams the client reset before their response was complete (Envoy `downstream_rq_rx_reset`). */
  streamsResetByPeer: number;
}

interface SessionCounts { closed: number; premature: number }
const kCounts = Symbol('remora.h2counts');

export interface Http2ListenerOptions {
  /** Streams a client may open at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS). Default 1024. */
  maxConcurrentStreams?: number;
  /** A connection with no open stream for this long is closed with GOAWAY (ms). Default 65 s, as HTTP/1 keep-alive. */
  idleTimeoutMs?: number;
  /** Largest header block (bytes), as HTTP/1's maxHeaderSize. Default 16 KiB. */
  maxHeaderListSize?: number;
}

/** The HTTP/2 side of a data-plane listener: sessions for the connections handed to it. */
export class Http2Listener {
  private readonly server: http2.Http2Server;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  draining = false;
  readonly stats: Http2ListenerStats = { sessions: 0, protocolErrors: 0, prematureResetCloses: 0, streamsResetByPeer: 0 };

  constructor(handler: Http2Handler, opts: Http2ListenerOptions = {}) {
    this.server = http2.createServer({
      settings: { maxConcurrentStreams: opts.maxConcurrentStreams ?? 1024, maxHeaderListSize: opts.maxHeaderListSize ?? 16_384, initialWindowSize: 1 << 20 },
      maxSessionMemory: 64,
    });
    const idle = opts.idleTimeoutMs ?? 65_000;
    this.server.on('session', (session: http2.ServerHttp2Session) => {
      this.sessions.add(session);
      this.stats.sessions++;
      (session as unknown as { [kCounts]: SessionCounts })[kCounts] = { closed: 0, premature: 0 };
      session.setTimeout(idle, () => session.close());
      // nghttp2 refused the peer's frames (a flood of SETTINGS or PING it does not read the answers to, endless
      // CONTINUATION, too many invalid frames): node:http2 sends GOAWAY and destroys the session.
      session.on('error', () => { this.stats.protocolErrors++; });
      session.once('close', () => this.sessions.delete(session));
      if (this.draining) session.close();
    });
    this.server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
      // node:http2 emits 'stream' on a later tick: by then the session may be gone (destroyed for a flood or for
      // premature resets, the socket closed), and the stream with it.
      const session = stream.session;
      if (session === undefined || session.destroyed || stream.destroyed) return;
      const conn = (session as unknown as { [kConn]?: H2Conn })[kConn] ?? new H2Conn(session.socket as net.Socket, undefined);
      const req = new Http2Request(stream, headers, conn);
      const res = new Http2Response(stream, req);
      const opened = Date.now();
      stream.once('close', () => this.onStreamClose(session, res, opened));
      try {
        handler(req, res);
      } catch {
        stream.close(H2.NGHTTP2_INTERNAL_ERROR);
      }
    });
  }

  private onStreamClose(session: http2.Http2Session | undefined, res: Http2Response, opened: number): void {
    if (session === undefined || session.destroyed) return;
    const counts = (session as unknown as { [kCounts]?: SessionCounts })[kCounts];
    if (counts === undefined) return;
    counts.closed++;
    if (!res.resetByPeer) return;
    this.stats.streamsResetByPeer++;
    if (Date.now() - opened >= PREMATURE_RESET_LIFETIME_MS) return;
    counts.premature++;
    if (counts.closed >= PREMATURE_RESET_MIN_STREAMS && counts.premature * 2 >= counts.closed) {
      this.stats.prematureResetCloses++;
      session.goaway(H2.NGHTTP2_ENHANCE_YOUR_CALM);
      session.destroy();
    }
  }

  /** Serve HTTP/2 on an accepted socket; `head` holds the bytes already read from it (the preface). */
  serveSocket(sock: net.Socket, head: Buffer | undefined, originalDst: OriginalDestination | undefined): void {
    const conn = new H2Conn(sock, originalDst);
    // Paused, with the bytes already read put back: the session takes the socket's handle over and reads what is
    // buffered first. (In flowing mode the unshifted bytes would be emitted to nobody.)
    sock.pause();
    if (head !== undefined && head.length > 0) sock.unshift(head);
    this.server.once('session', (s: http2.ServerHttp2Session) => { (s as unknown as { [kConn]?: H2Conn })[kConn] = conn; });
    this.server.emit('connection', sock);
  }

  /** Drain: GOAWAY to every session (open streams finish), and to new ones at once. */
  closeIdleConnections(): void {
    this.draining = true;
    for (const s of this.sessions) s.close();
  }

  closeAllConnections(): void {
    for (const s of this.sessions) s.destroy();
  }

  get connections(): number {
    return this.sessions.size;
  }
}

const kConn = Symbol('remora.h2conn');
