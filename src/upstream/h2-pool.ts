/**
 * HTTP/2 (cleartext, prior knowledge) connections to one endpoint, with the same `dispatch(req, handler)` surface as
 * H1Pool, so the forwarder's attempt/retry loop is one implementation for both protocols. Each request is a stream:
 * load balancing stays per request (the cluster's balancer picked this endpoint for this request), never per
 * connection. Streams share a connection up to the peer's SETTINGS_MAX_CONCURRENT_STREAMS; beyond it another
 * connection opens (under `tcp.maxConnections`), else the stream waits in a FIFO queue. `maxRequestsPerConnection`
 * retires a connection after that many streams, `maxConnectionDuration` after that long, `idleTimeout` closes an idle
 * one, `http2KeepAlive` pings a quiet one. Trailers (gRPC's `grpc-status`) reach the handler's onComplete; a stream
 * the server refused (REFUSED_STREAM) or reset, and a connection that fails, reach onError with a code the forwarder
 * classifies (connect failure vs reset).
 */
import net from 'node:net';
import type { Readable } from 'node:stream';
import { UpstreamError, type UpstreamHandler, type UpstreamRequest } from './h1-pool.js';
import { H2ERR, H2Session, h2RequestHeaders, type H2Stream, type H2StreamHandler } from '../http2/session.js';

export interface H2PoolOptions {
  /** Most connections open at once (tcp.maxConnections); Infinity = unbounded. */
  maxConnections: number;
  /** tcp.connectTimeout (ms). */
  connectTimeoutMs: number;
  /** Idle connection lifetime (ms): http.idleTimeout. */
  keepAliveMs: number;
  /** http.maxRequestsPerConnection; 0 = unlimited. */
  maxRequestsPerConnection: number;
  /** tcp.maxConnectionDuration (ms); 0 = unlimited. */
  maxConnectionDurationMs: number;
  /** tcp.tcpKeepalive: SO_KEEPALIVE with this idle time (ms), 0 = off. */
  tcpKeepaliveMs: number;
  /** Our own cap on streams per connection (Envoy's max_concurrent_streams); the peer's SETTINGS may lower it. */
  maxConcurrentStreams?: number;
  /** Open connections with this instead of a plain TCP connect (a TLS socket: mTLS to a sidecar). */
  connect?: (host: string, port: number) => net.Socket;
  /** connectionPool.http.http2KeepAlive: PING after this long without frames (ms), 0 = off. */
  pingIntervalMs?: number;
  /** ... and close the connection when the PING is not answered within this long (ms). */
  pingTimeoutMs?: number;
}


/** One queued or in-flight request; also its stream's event handler (one object per request). */
class Exchange implements H2StreamHandler {
  done = false;
  stream: H2Stream | undefined;
  conn: Conn | undefined;
  headersSeen = false;
  trailers: string[] | null = null;
  /** A streamed request body waiting for the stream's window. */
  private bodyPaused: Readable | null = null;
  /** The streamed request body and its listeners, until the stream closes. */
  private piped: { body: Readable; onData: (c: Buffer) => void; onEnd: () => void; onError: () => void } | null = null;
  constructor(readonly pool: H2Pool, readonly req: UpstreamRequest, readonly h: UpstreamHandler) {}
  readonly abort = (err?: Error): void => {
    this.pool.abortExchange(this, err ?? new UpstreamError('aborted', 'UND_ERR_ABORTED'));
  };
  private readonly resume = (): void => {
    this.stream?.resume();
  };

  onHeaders(st: H2Stream, flat: string[], endStream: boolean, trailers: boolean): void {
    if (trailers) { this.trailers = withoutPseudo(flat, 0); return; }
    if (this.done) return;
    this.headersSeen = true;
    const status = Number(flat[1]);
    if (!this.h.onHeaders(status, withoutPseudo(flat, 2), this.resume)) {
      // The forwarder dropped this try (a retry): cancel the stream, the connection stays.
      this.done = true;
      st.reset(H2ERR.CANCEL);
    }
    void endStream;
  }

  onData(st: H2Stream, chunk: Buffer): void {
    if (this.done) return;
    if (!this.h.onData(chunk)) st.pause();
  }

  onInformational(_st: H2Stream, status: number): void {
    if (!this.done && status === 100) this.h.onContinue?.();
  }

  onEnd(): void {
    if (this.done) return;
    this.done = true;
    this.h.onComplete(this.trailers);
  }

  onClose(st: H2Stream, code: number): void {
    const conn = this.conn!;
    conn.active--;
    if (!this.done) {
      this.done = true;
      // REFUSED_STREAM (or above a GOAWAY's last stream): the server did not process it (retryOn refused-stream);
      // any other reset, or a close with no response, is a reset (connection closed).
      const err = code === H2ERR.REFUSED_STREAM
        ? new UpstreamError('stream refused by the upstream', 'UND_ERR_REFUSED_STREAM')
        : new UpstreamError(this.headersSeen ? `stream reset (code ${code})` : `stream closed before the response (code ${code})`, 'ECONNRESET');
      this.h.onError(err);
    }
    this.unpipe();
    conn.streamDone();
  }

  /**
   * The stream is gone (complete, reset, or the upstream stopped the upload): the request body is no longer read
   * for it. Its listeners go, and the rest of it is read and dropped, so that the client's upload is not left paused.
   */
  private unpipe(): void {
    const p = this.piped;
    if (p === null) return;
    this.piped = null;
    this.bodyPaused = null;
    p.body.off('data', p.onData);
    p.body.off('end', p.onEnd);
    p.body.off('error', p.onError);
    if (!p.body.readableEnded) p.body.resume();
  }

  onDrain(): void {
    const b = this.bodyPaused;
    if (b !== null) { this.bodyPaused = null; b.resume(); }
  }

  /** Stream a request body into the stream with backpressure both ways. */
  pipeBody(body: Readable, st: H2Stream): void {
    const h = this.h;
    const onData = (c: Buffer): void => {
      h.onBodySent?.(c);
      if (!st.write(c)) { body.pause(); this.bodyPaused = body; }
    };
    const onEnd = (): void => { st.end(); h.onRequestSent?.(); };
    const onError = (): void => st.reset(H2ERR.CANCEL);
    this.piped = { body, onData, onEnd, onError };
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('error', onError);
  }
}

/** A header list without its pseudo-headers, from `from` on (a response's :status is at 0). */
function withoutPseudo(flat: string[], from: number): string[] {
  let clean = true;
  for (let i = from; i < flat.length; i += 2) if (flat[i]!.charCodeAt(0) === 58) { clean = false; break; }
  if (clean) return from === 0 ? flat : flat.slice(from);
  const out: string[] = [];
  for (let i = from; i < flat.length; i += 2) if (flat[i]!.charCodeAt(0) !== 58) out.push(flat[i]!, flat[i + 1]!);
  return out;
}


class Conn {
  readonly session: H2Session;
  readonly socket: net.Socket;
  /** Streams open now. */
  active = 0;
  /** Streams ever opened (maxRequestsPerConnection). */
  served = 0;
  connected = false;
  /** No new streams (max requests reached, duration over, GOAWAY, or the pool is closing). */
  draining = false;
  gone = false;
  private socketError: NodeJS.ErrnoException | undefined;
  private connectTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private ageTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private readonly waiting: Exchange[] = [];

  constructor(readonly pool: H2Pool) {
    const { host, port, opts } = pool;
    const socket = opts.connect !== undefined ? opts.connect(host, port) : net.connect({ host, port, noDelay: true });
    this.socket = socket;
    if (opts.tcpKeepaliveMs > 0) socket.setKeepAlive(true, opts.tcpKeepaliveMs);
    socket.on('error', (err: NodeJS.ErrnoException) => { this.socketError ??= err; });
    const conn = this;
    // The client's own window: large enough that a fast upstream is not throttled by round trips.
    this.session = new H2Session(socket, 'client', { initialWindowSize: 1 << 20 }, {
      // Streams open once the server's SETTINGS are in (its stream limit decides how many this connection takes; the
      // rest go back to the pool, which opens another connection for them): one round trip on a new connection only.
      onRemoteSettings(first) { if (first) conn.onConnected(); else if (conn.connected) pool.pump(); },
      onGoaway() { conn.draining = true; pool.pump(); },
      onClose() { conn.closed(); },
    });
    if (opts.connectTimeoutMs > 0) {
      this.connectTimer = setTimeout(() => this.fail(new UpstreamError('connect timeout', 'UND_ERR_CONNECT_TIMEOUT')), opts.connectTimeoutMs);
    }
  }

  private onConnected(): void {
    const { opts } = this.pool;
    clearTimeout(this.connectTimer);
    this.connected = true;
    if (opts.maxConnectionDurationMs > 0) {
      this.ageTimer = setTimeout(() => this.retire(), opts.maxConnectionDurationMs);
      this.ageTimer.unref();
    }
    if ((opts.pingIntervalMs ?? 0) > 0) this.startPings(opts.pingIntervalMs!, opts.pingTimeoutMs ?? 0);
    const ready = this.waiting.splice(0);
    const extra: Exchange[] = [];
    for (const ex of ready) {
      if (this.capacity() > 0) this.open(ex);
      else { ex.conn = undefined; extra.push(ex); }
    }
    this.pool.requeue(extra);
  }

  /** Streams this connection may still take. */
  capacity(): number {
    const s = this.session;
    // The session may be closing before this connection hears of it (an idle close, a GOAWAY whose refused streams
    // are told first, a socket gone): no stream for it then.
    if (this.draining || this.gone || s.destroyed || s.goawaySent || s.goawayReceived) return 0;
    const ours = this.pool.opts.maxConcurrentStreams ?? 1 << 30;
    const peer = this.connected ? this.session.peer.maxConcurrentStreams : 100;
    let cap = Math.min(ours, peer) - this.active - this.waiting.length;
    const max = this.pool.opts.maxRequestsPerConnection;
    if (max > 0) cap = Math.min(cap, max - this.served - this.waiting.length);
    return cap;
  }

  /** Take an exchange: open its stream now, or once the connection is up. */
  take(ex: Exchange): void {
    ex.conn = this;
    if (this.connected) this.open(ex);
    else this.waiting.push(ex);
  }

  private open(ex: Exchange): void {
    if (ex.done) return;
    if (this.gone) { this.pool.failExchange(ex, new UpstreamError('connection closed', 'ECONNRESET')); return; }
    if (this.idleTimer !== undefined) { clearTimeout(this.idleTimer); this.idleTimer = undefined; }
    const { req, h } = ex;
    const out = h2RequestHeaders(req.method, req.path, req.headers);
    const body = req.body;
    let stream: H2Stream;
    try {
      stream = this.session.request(out, body === null, ex);
    } catch {
      // The connection is closing after all: the request was never sent, another connection takes it.
      this.draining = true;
      ex.conn = undefined;
      this.pool.requeue([ex]);
      return;
    }
    this.active++;
    this.served++;
    h.reused = this.served > 1;
    if (this.pool.opts.maxRequestsPerConnection > 0 && this.served >= this.pool.opts.maxRequestsPerConnection) this.draining = true;
    ex.stream = stream;
    if (body !== null) {
      if (Buffer.isBuffer(body)) {
        stream.end(body);
        h.onRequestSent?.();
      } else {
        ex.pipeBody(body, stream);
      }
    } else {
      h.onRequestSent?.();
    }
  }

  /** @internal a stream closed. */
  streamDone(): void {
    if (this.gone) return;
    if (this.active === 0 && this.waiting.length === 0) {
      if (this.draining || this.pool.closed) { this.draining = true; this.session.close(); return; }
      const ms = this.pool.opts.keepAliveMs;
      if (ms > 0) {
        this.idleTimer = setTimeout(() => { if (this.active === 0) { this.draining = true; this.session.close(); } }, ms);
        this.idleTimer.unref();
      }
    }
    this.pool.pump();
  }

  private startPings(intervalMs: number, timeoutMs: number): void {
    const t = setInterval(() => {
      if (this.gone) { clearInterval(t); return; }
      // Only a quiet connection is pinged (Envoy's connection_idle_interval semantics: frames count as liveness).
      if (Date.now() - this.session.lastFrameAt < intervalMs) return;
      const timer = timeoutMs > 0 ? setTimeout(() => this.fail(new UpstreamError('HTTP/2 PING timeout', 'ECONNRESET')), timeoutMs) : undefined;
      this.session.ping((err) => { clearTimeout(timer); if (err) this.fail(new UpstreamError(err.message, 'ECONNRESET')); });
    }, intervalMs);
    t.unref();
    this.pingTimer = t;
  }

  /** No new streams; close once the open ones finish (maxConnectionDuration). */
  retire(): void {
    this.draining = true;
    if (this.active === 0 && this.waiting.length === 0) this.session.close();
    this.pool.pump();
  }

  fail(err: Error): void {
    if (this.gone) return;
    for (const ex of this.waiting.splice(0)) this.pool.failExchange(ex, err);
    this.session.destroy();
    this.closed();
  }

  private closed(): void {
    if (this.gone) return;
    this.gone = true;
    clearTimeout(this.connectTimer);
    clearTimeout(this.idleTimer);
    clearTimeout(this.ageTimer);
    clearInterval(this.pingTimer);
    const e = this.socketError;
    const err = this.connected
      ? new UpstreamError(e?.message ?? 'connection closed', e?.code ?? 'ECONNRESET')
      : new UpstreamError(e?.message ?? 'connection closed before SETTINGS', e?.code ?? 'ECONNREFUSED');
    for (const ex of this.waiting.splice(0)) this.pool.failExchange(ex, err);
    this.pool.removed(this);
  }
}

export class H2Pool {
  closed = false;
  destroyed = false;
  private readonly conns = new Set<Conn>();
  private readonly queue: Exchange[] = [];
  private closeWaiters: Array<() => void> = [];

  constructor(readonly host: string, readonly port: number, readonly opts: H2PoolOptions) {}

  dispatch(req: UpstreamRequest, h: UpstreamHandler): void {
    const ex = new Exchange(this, req, h);
    if (this.closed) { ex.done = true; h.onError(new UpstreamError('the connection pool is closed', 'UND_ERR_CLOSED')); return; }
    h.onConnect(ex.abort);
    if (ex.done) return;
    this.queue.push(ex);
    this.pump();
  }

  /** HTTP/2 has no keep-alive race to protect against (GOAWAY says which streams were not processed): same as dispatch. */
  dispatchFresh(req: UpstreamRequest, h: UpstreamHandler): void {
    this.dispatch(req, h);
  }

  /** @internal give queued exchanges to connections with room, opening new ones under maxConnections. */
  pump(): void {
    while (this.queue.length > 0) {
      const ex = this.queue[0]!;
      if (ex.done) { this.queue.shift(); continue; }
      let best: Conn | undefined;
      let room = 0;
      for (const c of this.conns) {
        const cap = c.capacity();
        if (cap > room) { room = cap; best = c; }
      }
      if (best === undefined) {
        if (this.closed || this.conns.size >= this.opts.maxConnections) return;
        best = new Conn(this);
        this.conns.add(best);
      }
      this.queue.shift();
      best.take(ex);
    }
  }

  /** @internal exchanges a new connection could not take after all (the peer's stream limit): first in line again. */
  requeue(exs: Exchange[]): void {
    if (exs.length > 0) this.queue.unshift(...exs);
    this.pump();
  }

  /** @internal */
  failExchange(ex: Exchange, err: Error): void {
    if (ex.done) return;
    ex.done = true;
    ex.h.onError(err);
  }

  /** @internal cancel a queued or in-flight exchange. */
  abortExchange(ex: Exchange, err: Error): void {
    if (ex.done) return;
    ex.done = true;
    if (ex.stream !== undefined) ex.stream.reset(H2ERR.CANCEL);
    else {
      const i = this.queue.indexOf(ex);
      if (i >= 0) this.queue.splice(i, 1);
    }
    ex.h.onError(err);
  }

  /** @internal */
  removed(c: Conn): void {
    if (!this.conns.delete(c)) return;
    if (!this.destroyed) this.pump();
    if (this.closed && this.conns.size === 0) for (const w of this.closeWaiters.splice(0)) w();
  }

  get connections(): number {
    return this.conns.size;
  }

  /** Graceful: no new requests; open streams finish, then the connections close. */
  close(): Promise<void> {
    this.closed = true;
    for (const ex of this.queue.splice(0)) this.failExchange(ex, new UpstreamError('the connection pool is closed', 'UND_ERR_CLOSED'));
    for (const c of this.conns) c.retire();
    if (this.conns.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.closeWaiters.push(resolve));
  }

  destroy(): Promise<void> {
    this.closed = true;
    this.destroyed = true;
    for (const ex of this.queue.splice(0)) this.failExchange(ex, new UpstreamError('the connection pool was destroyed', 'UND_ERR_DESTROYED'));
    for (const c of [...this.conns]) c.fail(new UpstreamError('the connection pool was destroyed', 'UND_ERR_DESTROYED'));
    for (const w of this.closeWaiters.splice(0)) w();
    return Promise.resolve();
  }
}
