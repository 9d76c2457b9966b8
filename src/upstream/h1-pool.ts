/**
 * Keep-alive HTTP/1.1 connections to one upstream endpoint, with Node's native llhttp parser (the one
 * node:http uses) over `net` sockets: one request per connection at a time, idle connections reused
 * most-recent-first, a FIFO queue when `maxConnections` are busy. It replaced undici's Pool on the data path
 * (docs/architecture.md "Upstream connections": undici cost ~40 CPU ms per 1,000 requests at 3,000 req/s and
 * ~25 MB RSS more on this workload). The proxy's own retry loop decides everything else; this layer never retries.
 * One cohesive state machine, hence one file past 500 lines: a connection goes connecting → busy (head written, body
 * streaming, response parsed by llhttp callbacks) → idle (keep-alive timer) → busy … → closed or handed over on 101,
 * and an exchange queued → sent → answered, failed or aborted; the Exchange, the Connection, the parser callbacks
 * and the pool act on the same few fields and would only be split along their calls. What the pool offers its
 * callers (UpstreamHandler, UpstreamRequest, UpstreamPool, UpstreamError) is ./upstream-pool.ts, re-exported here.
 * Hot path: the parser callbacks are module functions and a connection's idle timer is refreshed, not re-created.
 */
import net from 'node:net';
import { onDirectDrain, startReading, stopReading, writeDirect } from '../http1/socket-io.js';
import { consumeSocket, createParser, freeParser, unconsumeSocket, type NativeParser } from '../http1/native-parser.js';
import { UpstreamError, type UpstreamHandler, type UpstreamRequest } from './upstream-pool.js';

export { UpstreamError, type UpstreamHandler, type UpstreamPool, type UpstreamRequest } from './upstream-pool.js';

export interface H1PoolOptions {
  /** Most connections open at once (DestinationRule tcp.maxConnections); Infinity = unbounded. */
  maxConnections: number;
  /** tcp.connectTimeout (ms). */
  connectTimeoutMs: number;
  /** Longest idle keep-alive time (ms); a server's `Keep-Alive: timeout=N` hint lowers it. */
  keepAliveMs: number;
  /** Subtracted from a server's keep-alive hint so the proxy closes first (the 503 UC race), ms. */
  keepAliveThresholdMs: number;
  /** http.maxRequestsPerConnection; 0 = unlimited. */
  maxRequestsPerConnection: number;
  /** tcp.maxConnectionDuration (ms); 0 = unlimited. */
  maxConnectionDurationMs: number;
  /** tcp.tcpKeepalive: SO_KEEPALIVE with this idle time (ms), 0 = off. */
  tcpKeepaliveMs: number;
  /** Open connections with this instead of a plain TCP connect: a TLS socket (mTLS to a sidecar), usable at 'secureConnect'. */
  connect?: (host: string, port: number) => net.Socket;
}

const ABORTED = new UpstreamError('request aborted', 'UND_ERR_ABORTED');

/** One queued or in-flight request. */
class Exchange {
  conn: Connection | undefined;
  done = false;
  headersSeen = false;
  /** Inside a 1xx informational head: skip to the next head. */
  informational = false;
  /** The whole request (head and body) was handed to the socket. */
  sent = false;
  trailers: string[] | null = null;
  readonly abort: (err?: Error) => void;

  constructor(readonly pool: H1Pool, readonly req: UpstreamRequest, readonly h: UpstreamHandler, readonly fresh: boolean) {
    this.abort = (err?: Error): void => this.pool.abortExchange(this, err ?? ABORTED);
  }
}

/** One upstream connection and its parser. */
class Connection {
  readonly sock: net.Socket;
  readonly parser: NativeParser<Connection>;
  readonly createdAt: number;
  ex: Exchange | undefined;
  requests = 0;
  connected = false;
  /** Do not reuse after the current exchange (Connection: close, limits, errors). */
  noReuse = false;
  closed = false;
  /** One keep-alive timer per connection, re-armed with refresh() at each release (not a new Timeout per request). */
  idleTimer: NodeJS.Timeout | undefined;
  idleTimerMs = 0;
  /** When the connection last went idle (Date.now()): a reuse checks it, as the idle timer may fire late on a busy loop. */
  idleSince = 0;
  /** Idle keep-alive time for this connection (ms), from the pool setting and the server's hint. */
  keepAliveMs: number;
  partialHeaders: string[] | undefined;
  bodyPaused = false;
  /** The exchange completed inside `execute`: hand the connection back once that call returns (see 'data'). */
  releaseAfterParse = false;
  /** A 101 to an upgrade request was parsed: the handover waits until `execute` returns (afterParse), with the rest of the read. */
  upgradeEx: Exchange | undefined;
  upgradeHeaders: string[] | undefined;
  readonly resume: () => void;

  constructor(readonly pool: H1Pool, host: string, port: number, now: number) {
    this.createdAt = now;
    this.keepAliveMs = pool.opts.keepAliveMs;
    const tls = pool.opts.connect !== undefined;
    const sock = tls ? pool.opts.connect!(host, port) : net.connect({ host, port, noDelay: true });
    this.sock = sock;
    this.parser = createParser('response', this, 0, { onHeaders, onHeadersComplete, onBody, onMessageComplete, onExecute });
    this.resume = (): void => {
      if (!this.bodyPaused) return;
      this.bodyPaused = false;
      if (!this.closed) startReading(this.sock);
    };
    if (pool.opts.connectTimeoutMs > 0) sock.setTimeout(pool.opts.connectTimeoutMs);
    // Over TLS the connection is up once the handshake is done (a failed handshake is a connect failure, UF).
    sock.on(tls ? 'secureConnect' : 'connect', () => {
      this.connected = true;
      sock.setTimeout(0);
      if (pool.opts.tcpKeepaliveMs > 0) sock.setKeepAlive(true, pool.opts.tcpKeepaliveMs);
      // The parser reads straight from the handle; the 'data' listener below starts reading and is the fallback
      // (and the only path over TLS).
      if (!this.closed && !tls) consumeSocket(this.parser, sock);
      if (this.bodyPaused) stopReading(sock);
    });
    sock.on('timeout', () => {
      if (!this.connected) this.fail(new UpstreamError(`connect timeout after ${pool.opts.connectTimeoutMs} ms`, 'UND_ERR_CONNECT_TIMEOUT'));
    });
    sock.on('data', (d: Buffer) => {
      // Bytes with no request outstanding (a stray or unsolicited response) would be read as the answer to the
      // next request: the connection is out of step and is dropped, as undici and Envoy do.
      if (this.ex === undefined) { this.close(); return; }
      this.afterParse(this.parser.execute(d), d);
    });
    sock.on('end', () => {
      // A close-delimited body ends here; anything else in flight was cut short.
      if (this.ex !== undefined && this.ex.headersSeen) this.parser.finish();
      this.fail(new UpstreamError('upstream closed the connection', 'ECONNRESET'));
    });
    sock.on('error', (err: NodeJS.ErrnoException) => this.fail(new UpstreamError(err.message, err.code ?? 'ECONNRESET')));
    sock.on('close', () => {
      this.fail(new UpstreamError('upstream connection closed', 'ECONNRESET'));
      freeParser(this.parser); // only here (see freeParser): close() may run inside a parser callback
    });
    const drained = (): void => {
      const b = this.ex?.req.body;
      if (b !== null && b !== undefined && !Buffer.isBuffer(b)) b.resume();
    };
    sock.on('drain', drained);
    onDirectDrain(sock, drained);
  }

  /**
   * After the parser took one read (from `execute` with its buffer or, consumed, from the handle): errors, then the
   * release, or the handover of an upgraded connection.
   */
  afterParse(r: number | Error, buf: Buffer | undefined): void {
    if (typeof r !== 'number') {
      this.fail(new UpstreamError(`invalid response: ${r.message}`, (r as Error & { code?: string }).code ?? 'HPE_INVALID'));
    } else if (this.releaseAfterParse) {
      // Released only now, not from the parser callback: bytes after the response in the same read must not
      // reach the next exchange (onHeadersComplete drops the connection when they start another message).
      this.releaseAfterParse = false;
      if (!this.closed) this.pool.released(this);
    } else if (this.ex === undefined && !this.closed) {
      if (this.upgradeEx !== undefined) this.upgradeNow(r, buf);
      // Bytes while idle (consumed: they were parsed before anyone could look): out of step, dropped.
      else this.close();
    }
  }

  /**
   * The upstream switched protocols: llhttp stopped at the end of the 101 head (`parsed` bytes of this read), and
   * what follows is the new protocol's (as node:http's 'upgrade' head). The connection leaves the pool for good:
   * `closed` makes every listener of ours a no-op, the parser leaves the handle (it is freed on 'close' as usual),
   * and the pool may open another connection in its place.
   */
  private upgradeNow(parsed: number, buf: Buffer | undefined): void {
    const ex = this.upgradeEx!;
    const headers = this.upgradeHeaders!;
    this.upgradeEx = undefined;
    this.upgradeHeaders = undefined;
    buf ??= this.parser.getCurrentBuffer();
    const rest = buf.subarray(parsed);
    this.closed = true;
    if (this.idleTimer !== undefined) { clearTimeout(this.idleTimer); this.idleTimer = undefined; }
    this.parser.conn = undefined;
    unconsumeSocket(this.parser);
    ex.done = true;
    this.sock.allowHalfOpen = true; // a FIN from one side of the tunnel is passed on, not answered with ours
    this.pool.removed(this);
    ex.h.onUpgrade!(101, headers, this.sock, rest);
  }

  /** Write the request: the head (and a small buffered body) in one write. */
  send(ex: Exchange): void {
    this.ex = ex;
    ex.conn = this;
    this.requests++;
    // The idle timer stays armed while busy: if it fires now, idleExpired sees the exchange and does nothing.
    const o = this.pool.opts;
    if (o.maxRequestsPerConnection > 0 && this.requests >= o.maxRequestsPerConnection) this.noReuse = true;
    const r = ex.req;
    let head = `${r.method} ${r.path} HTTP/1.1\r\n`;
    let hasLength = false;
    const hs = r.headers;
    for (let i = 0; i < hs.length; i += 2) {
      const n = hs[i]!;
      if (n.length === 14 && n.toLowerCase() === 'content-length') hasLength = true;
      head += `${n}: ${hs[i + 1]!}\r\n`;
    }
    const body = r.body;
    if (r.upgrade === true) this.noReuse = true; // a tunnel, or closed after the refusal; no `connection: close` beside the upgrade
    else if (this.noReuse) head += 'connection: close\r\n';
    if (body === null) {
      if (!hasLength && BODY_METHODS.has(r.method)) head += 'content-length: 0\r\n';
      writeDirect(this.sock, `${head}\r\n`);
      ex.sent = true;
      ex.h.onRequestSent?.();
      return;
    }
    if (Buffer.isBuffer(body)) {
      if (!hasLength) head += `content-length: ${body.length}\r\n`;
      if (body.length <= 2048) writeDirect(this.sock, `${head}\r\n${body.toString('latin1')}`);
      else {
        writeDirect(this.sock, `${head}\r\n`);
        writeDirect(this.sock, body);
      }
      ex.sent = true;
      ex.h.onRequestSent?.();
      return;
    }
    const chunked = !hasLength;
    if (chunked) head += 'transfer-encoding: chunked\r\n';
    writeDirect(this.sock, `${head}\r\n`);
    const sock = this.sock;
    const onData = (c: Buffer): void => {
      if (ex.done || this.closed) return;
      const ok = chunked ? writeDirect(sock, `${c.length.toString(16)}\r\n${c.toString('latin1')}\r\n`) : writeDirect(sock, c);
      ex.h.onBodySent?.(c);
      if (!ok) body.pause();
    };
    const onEnd = (): void => {
      cleanup();
      if (ex.done || this.closed) return;
      if (chunked) writeDirect(sock, '0\r\n\r\n');
      ex.sent = true;
      ex.h.onRequestSent?.();
    };
    const onErr = (): void => {
      cleanup();
      this.pool.abortExchange(ex, new UpstreamError('request body stream failed', 'ECONNRESET'));
    };
    const cleanup = (): void => {
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onErr);
    };
    body.on('data', onData);
    body.on('end', onEnd);
    body.on('error', onErr);
    body.resume();
  }

  /** The exchange finished with a complete response: reuse or close the connection. */
  finishExchange(): void {
    const ex = this.ex!;
    this.ex = undefined;
    ex.done = true;
    ex.h.onComplete(ex.trailers);
    // The server answered before the whole request body went out (an early 413/401): the request is unfinished
    // on the wire, so the next one cannot follow it (undici closes the same way).
    if (!ex.sent) this.noReuse = true;
    const o = this.pool.opts;
    if (!this.noReuse && o.maxConnectionDurationMs > 0 && Date.now() - this.createdAt >= o.maxConnectionDurationMs) this.noReuse = true;
    if (this.noReuse || ex.fresh || this.closed) { this.close(); return; }
    if (this.bodyPaused) {
      // Paused by this exchange's reader, whose last chunk came with the end: the next exchange starts unpaused.
      this.bodyPaused = false;
      startReading(this.sock);
    }
    this.releaseAfterParse = true;
  }

  /** A socket or parser failure: fail the exchange in flight and drop the connection. */
  fail(err: Error): void {
    if (this.closed) return;
    this.close();
    const ex = this.ex;
    this.ex = undefined;
    if (ex !== undefined && !ex.done) {
      ex.done = true;
      ex.h.onError(err);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.idleTimer !== undefined) { clearTimeout(this.idleTimer); this.idleTimer = undefined; }
    this.parser.conn = undefined;
    this.sock.destroy(); // the parser is freed on 'close'
    this.pool.removed(this);
  }

  /** Apply a `Keep-Alive: timeout=N` hint (seconds) from the response. */
  keepAliveHint(value: string): void {
    const m = /timeout\s*=\s*(\d+)/i.exec(value);
    if (m === null) return;
    const t = Number(m[1]) * 1000 - this.pool.opts.keepAliveThresholdMs;
    if (t <= 0) this.noReuse = true;
    else this.keepAliveMs = Math.min(this.keepAliveMs, t);
  }
}

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

function onExecute(this: NativeParser<Connection>, ret: number | Error): void {
  this.conn?.afterParse(ret, undefined);
}
/** How long `c` may stay idle (ms): its keep-alive time, cut to what is left of tcp.maxConnectionDuration. */
function idleTimeFor(c: Connection, now: number): number {
  const max = c.pool.opts.maxConnectionDurationMs;
  return max > 0 ? Math.min(c.keepAliveMs, c.createdAt + max - now) : c.keepAliveMs;
}
function idleExpired(c: Connection): void {
  if (c.ex === undefined && !c.releaseAfterParse) c.close();
}

// Parser callbacks run with `this` = the parser.
function onHeaders(this: NativeParser<Connection>, headers: string[]): void {
  const c = this.conn;
  if (c === undefined) return;
  const ex = c.ex;
  if (ex !== undefined && ex.headersSeen) {
    // Headers after a chunked body are trailers.
    ex.trailers = ex.trailers === null ? headers.slice() : ex.trailers.concat(headers);
    return;
  }
  c.partialHeaders = c.partialHeaders === undefined ? headers.slice() : c.partialHeaders.concat(headers);
}
function onHeadersComplete(this: NativeParser<Connection>, _major: number, _minor: number, headers: string[] | undefined, _method: number, _url: string | undefined, status: number, _msg: string, upgrade: boolean, keepAlive: boolean): number {
  const c = this.conn;
  const ex = c?.ex;
  if (c === undefined || ex === undefined || ex.done) {
    if (c !== undefined && ex === undefined) c.close(); // a response with no request: out of step (see 'data')
    return 1;
  }
  if (headers === undefined || c.partialHeaders !== undefined) {
    headers = headers === undefined ? (c.partialHeaders ?? []) : (c.partialHeaders ?? []).concat(headers);
    c.partialHeaders = undefined;
  }
  if (status < 200 && status !== 101) {
    ex.informational = true; // 100 Continue, 103 Early Hints: wait for the real response
    if (status === 100) ex.h.onContinue?.();
    return 1;
  }
  if (upgrade || status === 101) {
    if (status === 101 && ex.req.upgrade === true && ex.h.onUpgrade !== undefined) {
      // Asked for: handed over once this read is parsed (afterParse), with the bytes after the head. The exchange
      // leaves `ex` so the message-complete callback llhttp makes next passes it by.
      c.upgradeEx = ex;
      c.upgradeHeaders = headers;
      c.ex = undefined;
      return 0;
    }
    // Not asked for: the connection is out of step and is dropped (the forwarder answers 502 UPE).
    c.fail(new UpstreamError('unexpected protocol upgrade from upstream', 'UND_ERR_UPGRADE'));
    return 1;
  }
  if (!keepAlive) c.noReuse = true;
  for (let i = 0; i < headers.length; i += 2) {
    const n = headers[i]!;
    if (n.length === 10 && n.toLowerCase() === 'keep-alive') c.keepAliveHint(headers[i + 1]!);
  }
  ex.headersSeen = true;
  const ok = ex.h.onHeaders(status, headers, c.resume);
  if (ok === false && !c.bodyPaused && !c.closed) { c.bodyPaused = true; stopReading(c.sock); }
  // HEAD (and 204/304, which llhttp knows) carry no body.
  return ex.req.method === 'HEAD' ? 1 : 0;
}
function onBody(this: NativeParser<Connection>, chunk: Buffer): void {
  const c = this.conn;
  const ex = c?.ex;
  if (c === undefined || ex === undefined || ex.done) return;
  if (!ex.h.onData(chunk) && !c.bodyPaused && !c.closed) {
    c.bodyPaused = true;
    stopReading(c.sock);
  }
}
function onMessageComplete(this: NativeParser<Connection>): void {
  const c = this.conn;
  const ex = c?.ex;
  if (c === undefined || ex === undefined || ex.done) return;
  if (ex.informational) { ex.informational = false; return; }
  c.finishExchange();
}

/** The keep-alive connections to one endpoint. */
export class H1Pool {
  closed = false;
  destroyed = false;
  private readonly idle: Connection[] = [];
  private readonly all = new Set<Connection>();
  private readonly queue: Exchange[] = [];
  private qHead = 0;
  private closeWaiters: Array<() => void> = [];

  constructor(readonly host: string, readonly port: number, readonly opts: H1PoolOptions) {}

  /** Send one request on an idle connection, a new one (under maxConnections), or queue it. */
  dispatch(req: UpstreamRequest, h: UpstreamHandler): void {
    this.start(new Exchange(this, req, h, false));
  }

  /**
   * Send one request on a new connection of its own, closed after the response: the keep-alive race retry must not
   * ride another pooled connection that may be as close to the server's idle close. Not counted against maxConnections.
   */
  dispatchFresh(req: UpstreamRequest, h: UpstreamHandler): void {
    const ex = new Exchange(this, req, h, true);
    if (this.closed) return this.reject(ex);
    h.onConnect(ex.abort);
    if (ex.done) return;
    const c = new Connection(this, this.host, this.port, Date.now());
    this.all.add(c);
    c.noReuse = true;
    h.reused = false;
    c.send(ex);
  }

  private start(ex: Exchange): void {
    if (this.closed) return this.reject(ex);
    ex.h.onConnect(ex.abort);
    if (ex.done) return;
    const c = this.takeIdle();
    if (c !== undefined) {
      ex.h.reused = true;
      c.send(ex);
      return;
    }
    if (this.all.size < this.opts.maxConnections) {
      const n = new Connection(this, this.host, this.port, Date.now());
      this.all.add(n);
      ex.h.reused = false;
      n.send(ex);
      return;
    }
    this.queue.push(ex);
  }

  /**
   * The most recently used idle connection still within its idle time. The idle timer closes expired ones, but a
   * timer fires late when the event loop is busy, and a connection kept past the server's keep-alive (the time the
   * pool's idle timeout is set below) is the keep-alive race: one past its time is closed here instead of reused.
   */
  private takeIdle(): Connection | undefined {
    for (;;) {
      const c = this.idle.pop();
      if (c === undefined) return undefined;
      if (Date.now() - c.idleSince < c.idleTimerMs) return c;
      c.close();
    }
  }

  private reject(ex: Exchange): void {
    ex.done = true;
    ex.h.onError(new UpstreamError('the connection pool is closed', 'UND_ERR_CLOSED'));
  }

  /** @internal a connection finished its exchange and may be reused. */
  released(c: Connection): void {
    const next = this.nextQueued();
    if (next !== undefined) {
      next.h.reused = true;
      c.send(next);
      return;
    }
    if (this.closed) { c.close(); return; }
    this.idle.push(c);
    c.idleSince = Date.now();
    // Idle until the keep-alive time or, sooner, the connection's max duration (Envoy closes an idle connection then).
    const ms = idleTimeFor(c, Date.now());
    if (c.idleTimer !== undefined && c.idleTimerMs === ms) {
      c.idleTimer.refresh();
    } else {
      if (c.idleTimer !== undefined) clearTimeout(c.idleTimer);
      c.idleTimer = setTimeout(idleExpired, ms, c);
      c.idleTimer.unref();
      c.idleTimerMs = ms;
    }
  }

  /** @internal a connection closed: forget it, and open a replacement for queued work. */
  removed(c: Connection): void {
    if (!this.all.delete(c)) return;
    const i = this.idle.indexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
    if (!this.destroyed) {
      const next = this.nextQueued();
      if (next !== undefined) {
        const n = new Connection(this, this.host, this.port, Date.now());
        this.all.add(n);
        next.h.reused = false;
        n.send(next);
      }
    }
    if (this.closed && this.all.size === 0 && this.pending() === 0) for (const w of this.closeWaiters.splice(0)) w();
  }

  /** @internal cancel a queued or in-flight exchange. */
  abortExchange(ex: Exchange, err: Error): void {
    if (ex.done) return;
    ex.done = true;
    const c = ex.conn;
    if (c !== undefined) {
      if (c.ex === ex) c.ex = undefined;
      c.close(); // a response may still be on its way: the connection cannot be reused
    } else {
      const i = this.queue.indexOf(ex, this.qHead);
      if (i >= 0) this.queue.splice(i, 1);
    }
    ex.h.onError(err);
  }

  private nextQueued(): Exchange | undefined {
    while (this.qHead < this.queue.length) {
      const ex = this.queue[this.qHead++]!;
      if (this.qHead > 1024 && this.qHead * 2 > this.queue.length) { this.queue.splice(0, this.qHead); this.qHead = 0; }
      if (!ex.done) return ex;
    }
    if (this.qHead > 0) { this.queue.length = 0; this.qHead = 0; }
    return undefined;
  }

  private pending(): number {
    return this.queue.length - this.qHead;
  }

  /** Open connections (busy and idle). */
  get connections(): number {
    return this.all.size;
  }

  /** Open connections with no request on them. */
  get idleConnections(): number {
    return this.idle.length;
  }

  /** Requests waiting for a connection (beyond maxConnections). */
  get queued(): number {
    return this.pending();
  }

  /** Graceful: no new requests; queued and in-flight ones finish, then the connections close. */
  close(): Promise<void> {
    this.closed = true;
    for (const c of this.idle.splice(0)) c.close();
    if (this.all.size === 0 && this.pending() === 0) return Promise.resolve();
    return new Promise((resolve) => this.closeWaiters.push(resolve));
  }

  /** Immediate: every connection is closed and every request fails. */
  destroy(): Promise<void> {
    this.closed = true;
    this.destroyed = true;
    for (const ex of this.queue.splice(0)) if (!ex.done) { ex.done = true; ex.h.onError(new UpstreamError('the connection pool was destroyed', 'UND_ERR_DESTROYED')); }
    this.qHead = 0;
    for (const c of [...this.all]) c.fail(new UpstreamError('the connection pool was destroyed', 'UND_ERR_DESTROYED'));
    for (const w of this.closeWaiters.splice(0)) w();
    return Promise.resolve();
  }
}
