/**
 * One HTTP/2 stream as the proxy path sees it: `Http2Request` / `Http2Response` with the surface of HTTP/1's pair
 * (flat header arrays, a body `Readable` or null, `writeHead`, `write` returning false under flow control,
 * `addTrailers`, `destroy` = RST_STREAM), and the per-connection facts the requests read. The response is also the
 * stream's event handler. The listener that makes them (./server.ts) is known only as a `StreamOwner`.
 */
import type net from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import type { OriginalDestination } from '../http1/server.js';
import { peerOf, type PeerIdentity } from '../security/mtls.js';
import { CONNECTION_SPECIFIC, H2ERR, hasUpper, type H2Session, type H2Stream, type H2StreamHandler } from './session.js';
import { idleStreamEnd } from '../proxy/stream-timeouts.js';

/** What a stream's response needs of the listener that owns it: its coarse clock, and word of the stream's close. */
export interface StreamOwner {
  /** ms, set by the listener's sweep: what progress stamps read instead of a system call per frame. */
  readonly clock: number;
  /** The stream closed (the rapid-reset check). */
  streamClosed(session: H2Session, res: Http2Response, st: H2Stream): void;
}

const CONTINUE: readonly string[] = [':status', '100'];
const REQUEST_TIMEOUT = 'Request Timeout';
const REQUEST_TIMEOUT_HEAD: readonly string[] = ['content-type', 'text/plain', 'content-length', String(REQUEST_TIMEOUT.length)];

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
  /** The client sent `expect: 100-continue` with a body to follow: the upstream's 100 is relayed (res.sendContinue). */
  readonly expectContinue: boolean;

  constructor(readonly stream: H2Stream, flat: string[], endStream: boolean, private readonly conn: H2Conn) {
    let method = 'GET';
    let url = '/';
    let expect = false;
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
      // Expect: 100-continue is forwarded, and the upstream's 100 relayed (Http2Response.sendContinue).
      if (k === 'expect' && v.trim().toLowerCase() === '100-continue') expect = true;
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
    this.expectContinue = expect && !endStream;
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
  private continued = false;
  /** @internal last time a byte of this stream moved either way (the listener's coarse clock): the stream idle timeout. */
  lastProgress = 0;
  /** Ended by the stream idle timeout (408, or a reset once it had started): the record says SI. */
  streamIdleTimedOut = false;
  /** The listener answered this stream itself (408 after the stream idle timeout): the handler's later calls do nothing. */
  answeredByServer = false;

  constructor(readonly stream: H2Stream, readonly req: Http2Request, private readonly listener: StreamOwner, private readonly session: H2Session) {}

  writeHead(status: number, headers: readonly string[]): this {
    if (this.answeredByServer) return this;
    if (this.headersSent) throw new Error('headers already sent');
    this.lastProgress = this.listener.clock;
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
    if (this.finished || this.destroyed || this.answeredByServer) return false;
    if (!this.headersSent) this.writeHead(200, []);
    if (this.stream.closed) return false;
    this.lastProgress = this.listener.clock;
    return this.stream.write(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  }

  end(chunk?: Buffer | string): void {
    if (this.finished || this.destroyed || this.answeredByServer) return;
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

  /** Relay the upstream's `100 Continue` (a `:status 100` header block) to a stream that expects it; once, before the final headers. */
  sendContinue(): void {
    if (!this.req.expectContinue || this.continued || this.headersSent || this.finished || this.destroyed || this.answeredByServer) return;
    this.continued = true;
    this.stream.sendInformational(CONTINUE);
  }

  /**
   * HTTP/2 has no 101 (WebSocket over HTTP/2 is RFC 8441's extended CONNECT, not supported): a stream never asks for
   * an upgrade (`Http2Request.upgrade` is false), so the forwarder never calls this.
   */
  switchProtocols(): never {
    throw new Error('HTTP/2 streams cannot switch protocols');
  }

  /**
   * @internal The stream idle timeout fired: 408 if nothing was answered yet (the request body, if any, is cut and
   * the stream ends), else the stream is reset. The handler's own calls on this response do nothing from here on.
   */
  timeOut(): void {
    this.streamIdleTimedOut = true;
    const body = this.req.body;
    if (body !== null && !this.req.complete) body.destroy(new Error('stream idle timeout'));
    if (idleStreamEnd(this.headersSent || this.finished) === 'answer-408') {
      this.writeHead(408, REQUEST_TIMEOUT_HEAD);
      this.end(REQUEST_TIMEOUT);
      this.answeredByServer = true;
      return;
    }
    this.destroy();
    this.answeredByServer = true;
  }

  /** Reset the stream (a response that started cannot be finished cleanly): RST_STREAM INTERNAL_ERROR. */
  destroy(): void {
    if (this.destroyed || this.answeredByServer) return;
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
    this.lastProgress = this.listener.clock;
    const body = this.req.body;
    if (body !== null && !body.push(chunk)) this.stream.pause();
  }

  onEnd(): void {
    this.req.complete = true;
    this.req.body?.push(null);
  }

  onDrain(): void {
    this.lastProgress = this.listener.clock;
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
export class H2Conn {
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
