/**
 * One downstream HTTP/1.x connection: the llhttp parser over its socket (its callbacks are module functions, no
 * closure per connection), each request head checked and made into a request/response pair (./request.ts,
 * ./response.ts), the requests of a read handed to the proxy once the read is parsed, framing and header errors
 * answered here, responses written in request order, the pipelining bound, upgrades and CONNECT detached from the
 * parser, and the per-connection checks the listener's sweep runs (head timeout, keep-alive idle, stream idle).
 */
import type net from 'node:net';
import { startReading, stopReading, writeDirect } from './socket-io.js';
import { createParser, freeParser, METHODS, unconsumeSocket, type NativeParser } from './native-parser.js';
import { headersOverdue, idleStreamEnd, streamIdle, type StreamTimeouts } from '../proxy/stream-timeouts.js';
import { framingLookalike, Http1Request, removeExpectContinue, type OriginalDestination, type RequestConnection } from './request.js';
import { Http1Response, STATUS_TEXT, type ResponseConnection } from './response.js';

/** What a connection reads and calls on its listener (./server.ts's Http1Server, the only implementation). */
export interface ConnectionServer {
  readonly handler: (req: Http1Request, res: Http1Response) => void;
  readonly keepAliveTimeoutMs: number;
  readonly timeouts: StreamTimeouts;
  readonly maxHeaderSize: number;
  readonly maxPipelined: number;
  readonly maxHeadersCount: number;
  readonly stats: { rejected: number; streamIdleTimeouts: number; responsesBeforeRequestComplete: number };
  readonly connect: boolean;
  /** The listener's coarse clock (ms), set by its sweep. */
  readonly clock: number;
  emit(event: 'handlerError', err: unknown): boolean;
}

/** One downstream connection: its parser, the request whose body is being read, and responses in request order. */
export class Connection implements RequestConnection, ResponseConnection {
  readonly parser: NativeParser<Connection>;
  /** Responses not yet fully written, oldest first; only the first writes to the socket. */
  readonly queue: Http1Response[] = [];
  /** The request whose body the parser is reading. */
  current: Http1Request | undefined;
  /** Headers and URL delivered early (more than 32 header lines arrive in pieces). */
  partialHeaders: string[] | undefined;
  partialUrl = '';
  /** When the head of the request being read started (ms), 0 between requests. */
  headStartedAt = 0;
  /** No further requests: close after the queued responses. */
  closing = false;
  /**
   * Drain (closeIdleConnections): requests already begun are still served, each answered with Connection: close,
   * and the connection ends once nothing is queued. Unlike `closing`, a request whose head was arriving is not dropped.
   */
  draining = false;
  private pausedByBody = false;
  private pausedByQueue = false;
  gone = false;
  /** An upgrade request was handed to the proxy: stop parsing once the current read is parsed (see detach). */
  upgrading = false;
  /** The parser no longer reads from this connection: an upgrade request is being answered, or was. */
  detached = false;
  /** Detached: bytes the client sent after the upgrade request, kept for the tunnel (undefined once taken or dropped). */
  held: Buffer[] | undefined;
  /** Last request start or response end (ms); the listener's sweep closes connections idle for keepAliveTimeoutMs. */
  lastActive: number;
  /** A framing or header error was answered (or is queued to be): nothing more is read as HTTP on this connection. */
  failed = false;
  /** When the proxy's FIN left after everything written (ms; 0 = not yet): the client gets LINGER_MS to close too. */
  finishedAt = 0;
  /**
   * Requests parsed in the read being parsed, [req, res, req, res…]: handed to the handler once the whole read is
   * parsed, so a request whose own bytes in that read break the framing (a bad chunk after its head) is answered
   * 400 without ever reaching the proxy, and what follows a broken request is never dispatched.
   */
  readonly ready: Array<Http1Request | Http1Response> = [];

  constructor(readonly server: ConnectionServer, readonly sock: net.Socket, readonly originalDst: OriginalDestination | undefined) {
    this.lastActive = Date.now();
    this.parser = createParser('request', this, server.maxHeaderSize, { onMessageBegin, onHeaders, onHeadersComplete, onBody, onMessageComplete, onExecute });
  }

  front(): Http1Response | undefined {
    return this.queue[0];
  }

  private addr: { remoteAddress: string; remoteKey: string; localKey: string } | undefined;
  /** The connection's addresses as strings, built on first use (each socket getter is a call into libuv). */
  addresses(): { remoteAddress: string; remoteKey: string; localKey: string } {
    if (this.addr === undefined) {
      const s = this.sock;
      const remoteAddress = s.remoteAddress ?? '';
      this.addr = { remoteAddress, remoteKey: `${remoteAddress}:${s.remotePort ?? 0}`, localKey: `${s.localAddress ?? ''}:${s.localPort ?? 0}` };
    }
    return this.addr;
  }

  write(data: string | Buffer): boolean {
    if (this.gone) return false;
    this.lastProgress = this.server.clock;
    return writeDirect(this.sock, data);
  }

  /** Last time a byte of a request in flight moved (the server's coarse clock): the stream idle timeout's reference. */
  lastProgress = 0;

  /** Envoy's stream idle timeout (the listener's StreamTimeouts, src/proxy/stream-timeouts.ts), from its sweep. */
  checkStreamIdle(now: number): void {
    if (this.tunnelled || this.gone || (this.queue.length === 0 && this.current === undefined)) return;
    if (this.lastProgress === 0) { this.lastProgress = now; return; }
    if (!streamIdle(this.server.timeouts, this.lastProgress, now)) return;
    this.server.stats.streamIdleTimeouts++;
    const res = this.queue[0];
    if (res !== undefined) res.streamIdleTimedOut = true;
    if (res !== undefined && this.queue.length === 1 && idleStreamEnd(res.headersSent || res.finished) === 'answer-408') {
      // Nothing answered yet: 408 and the connection closes; the handler's work is abandoned (its response closes).
      const req = this.current ?? res.req;
      if (req.body !== null && !req.complete) req.body.destroy(new Error('stream idle timeout'));
      this.answerError(req, res, 408);
      return;
    }
    this.sock.destroy();
  }

  onData(data: Buffer): void {
    if (this.detached) {
      // Past an upgrade request the bytes are not HTTP: kept for the tunnel, or dropped (refused, or the tunnel's).
      if (this.held !== undefined) this.held.push(data);
      return;
    }
    const r = this.parser.execute(data);
    if (typeof r !== 'number') this.clientError(r);
    else if (this.upgrading) this.detach(r, data);
    if (this.ready.length !== 0) this.dispatch();
  }

  /** Hand the requests of the read just parsed to the proxy, in order (see `ready`). */
  dispatch(): void {
    const r = this.ready;
    for (let i = 0; i < r.length; i += 2) {
      const req = r[i] as Http1Request;
      const res = r[i + 1] as Http1Response;
      // Closed meanwhile (an earlier response closed the connection, or the client went): never handled.
      if (res.finished || res.destroyed || this.gone) continue;
      try {
        this.server.handler(req, res);
      } catch (err) {
        this.server.emit('handlerError', err);
        this.sock.destroy();
        break;
      }
    }
    r.length = 0;
  }

  /**
   * The read that held an upgrade request was parsed (`parsed` bytes of `buf`; the parser stops at the end of the
   * request, as node:http's 'upgrade' bodyHead). The rest is the new protocol's: kept, and reading stops until the
   * answer. The parser leaves the handle (node:http unconsumes at the same point) and is freed on 'close' as usual.
   */
  detach(parsed: number, buf: Buffer | undefined): void {
    this.upgrading = false;
    this.detached = true;
    unconsumeSocket(this.parser);
    if (!this.gone) stopReading(this.sock);
    buf ??= this.parser.getCurrentBuffer();
    this.held = parsed < buf.length ? [buf.subarray(parsed)] : [];
    // Answered already (a local reply inside the handler): nothing will take the bytes.
    if (this.queue.length === 0) this.discardInput();
  }

  /** The connection switched protocols (101 written): its socket belongs to the tunnel now. */
  tunnelled = false;

  /** @internal the upgrade was accepted (101 written): hand over the bytes read past the request. */
  switched(): Buffer[] {
    this.tunnelled = true;
    const h = this.held ?? [];
    this.held = undefined;
    return h;
  }

  /**
   * The upgrade was refused (a plain response that closes the connection): read and drop what the client still
   * sends, so its FIN is seen and the socket closes (reading stopped, the half-closed socket would wait for the
   * idle sweep).
   */
  private discardInput(): void {
    this.held = undefined;
    if (!this.gone) startReading(this.sock);
  }

  /** A request head arrived: make the pair and hand it to the proxy. */
  request(major: number, minor: number, raw: string[], method: string, url: string, upgrade: boolean, keepAlive: boolean): void {
    let hasBody = false;
    let expectContinue = false;
    let te: string | undefined;
    let hosts = 0;
    let lookalike = false;
    for (let i = 0; i < raw.length; i += 2) {
      const n = raw[i]!;
      if (n.length > 12 && n.length < 33 && framingLookalike(n)) lookalike = true;
      if (n.length === 14) {
        if (n.toLowerCase() === 'content-length' && raw[i + 1] !== '0') hasBody = true;
      } else if (n.length === 17) {
        if (n.toLowerCase() === 'transfer-encoding') {
          hasBody = true;
          te = te === undefined ? raw[i + 1]! : `${te}, ${raw[i + 1]!}`;
        }
      } else if (n.length === 4) {
        if (n.toLowerCase() === 'host') hosts++;
      } else if (n.length === 6 && n.toLowerCase() === 'expect' && raw[i + 1]!.trim().toLowerCase() === '100-continue') {
        expectContinue = true;
      }
    }
    // Expect: 100-continue is the upstream's to answer: it is forwarded, and the upstream's `100 Continue` relayed
    // (res.sendContinue), so a client whose upload the upstream refuses sends nothing (Envoy's proxy_100_continue).
    // An HTTP/1.0 client's expectation is ignored (RFC 9110 §10.1.1: no 1xx to an HTTP/1.0 client) and removed.
    if (expectContinue && minor === 0) { removeExpectContinue(raw); expectContinue = false; }
    // Framing and header errors llhttp lets through, decided here before the proxy sees the request (so on every
    // listener), as Envoy's and nginx's codecs do: Transfer-Encoding on HTTP/1.0 (400), any Transfer-Encoding but
    // `chunked` alone (501: `gzip, chunked` is valid HTTP but no upstream may be trusted to decode it the same way),
    // more than one Host (400); a header name that reads as Content-Length or Transfer-Encoding to a lenient parser
    // (Transfer_Encoding, Content--Length: http-desync-guardian's ambiguous tier; 400 whatever the underscore policy,
    // since an upstream that folds `_` into `-` would frame the body by it); more than maxHeadersCount header lines (431, Envoy's max_headers_count: node:http
    // would drop the extra ones silently); a version other than 1.x (llhttp takes `HTTP/2.0`; 505, as nginx answers).
    // The answer closes the connection; nothing after it on the connection is served.
    const reject = raw.length > this.server.maxHeadersCount * 2 ? 431 : major !== 1 ? 505 : lookalike ? 400 : te !== undefined ? (minor === 0 ? 400 : te.trim().toLowerCase() !== 'chunked' ? 501 : 0) : hosts > 1 ? 400 : 0;
    if (reject !== 0) {
      const bad = new Http1Request(this.sock, method, url, major === 1 ? minor : 0, raw, false, this);
      this.current = bad;
      this.answerError(bad, undefined, reject);
      return;
    }
    const req = new Http1Request(this.sock, method, url, major === 1 ? minor : 0, raw, hasBody, this);
    // An upgrade (WebSocket or any other Upgrade token) is handed to the proxy flagged req.upgrade, when it is an
    // HTTP/1.1 request without a body and nothing else is in flight: the parser stops after this read (the bytes
    // that follow are the new protocol's, see detach), and the answer is either 101 (res.switchProtocols, the socket
    // becomes a tunnel) or a plain response after which the connection closes. Any other upgrade (with a body,
    // HTTP/1.0, behind pipelined requests) is served as a plain request, then the connection closes (llhttp stops
    // parsing at an upgrade anyway). No further request is read on this connection either way.
    if (upgrade) {
      this.closing = true;
      if ((method !== 'CONNECT' || this.server.connect) && !hasBody && minor === 1 && this.queue.length === 0) {
        req.upgrade = true;
        this.upgrading = true;
      }
    }
    this.lastProgress = this.server.clock;
    const res = new Http1Response(this, req, keepAlive && !upgrade && !this.closing);
    // A request that closes the connection (Connection: close, HTTP/1.0 without keep-alive) is the last one served:
    // anything pipelined behind it is never handed to the proxy (RFC 9112 §9.6).
    if (!keepAlive) this.closing = true;
    this.current = req;
    this.currentRes = res;
    this.queue.push(res);
    if (this.queue.length > this.server.maxPipelined && !this.pausedByQueue) {
      this.pausedByQueue = true;
      stopReading(this.sock);
    }
    if (expectContinue && hasBody) req.expectContinue = true;
    if (method === 'CONNECT' && !req.upgrade) {
      res.writeHead(405, ['content-length', '0']);
      res.closeAfter = true;
      res.end();
      return;
    }
    this.ready.push(req, res);
  }

  /** The response of `current`, the request being read. */
  currentRes: Http1Response | undefined;

  body(chunk: Buffer): void {
    this.lastProgress = this.server.clock;
    const b = this.current?.body;
    if (b === null || b === undefined) return;
    if (!b.push(chunk) && !this.pausedByBody) {
      this.pausedByBody = true;
      stopReading(this.sock);
    }
  }

  messageComplete(): void {
    const req = this.current;
    if (req === undefined) return;
    this.current = undefined;
    this.currentRes = undefined;
    req.complete = true;
    req.body?.push(null);
  }

  resumeReading(): void {
    if (!this.pausedByBody) return;
    this.pausedByBody = false;
    if (!this.pausedByQueue && !this.gone) startReading(this.sock);
  }

  /** The front response ended: drop it, let the next one write, close or go idle. */
  responseFinished(res: Http1Response): void {
    if (this.queue[0] !== res) return; // a later pipelined response ended first: it waits (its output is held)
    while (this.queue.length > 0 && this.queue[0]!.finished) {
      const done = this.queue.shift()!;
      this.lastActive = Date.now();
      closeLater(done);
      if (done.closeAfter) {
        this.closing = true;
        // Cut now, not at their 'close': a request of the same read still waiting for dispatch is never handled.
        for (const r of this.queue) { if (!r.finished) r.destroyed = true; closeLater(r); }
        this.queue.length = 0;
        this.sock.end();
        if (this.detached) this.discardInput();
        return;
      }
      this.queue[0]?.release();
    }
    if (this.pausedByQueue && this.queue.length <= this.server.maxPipelined) {
      this.pausedByQueue = false;
      if (!this.pausedByBody && !this.gone) startReading(this.sock);
    }
    if (this.queue.length === 0 && (this.closing || this.draining)) this.sock.end();
  }

  /**
   * A parse error (llhttp): the request it broke is answered 400 (431 for a head over maxHeaderSize) with
   * Connection: close, after the responses of the requests before it, and the connection closes. A request whose
   * body broke after it was handed to the proxy is cut there (its body errors, which aborts the upstream attempt);
   * if its response had already started, the connection is closed at once.
   */
  clientError(err: Error & { code?: string }): void {
    // llhttp stays in its error state: every later read reports the same error again.
    if (this.failed) return;
    const req = this.current;
    // Over maxHeaderSize (request line and headers together, as node:http counts): 431. Chunk extensions beyond
    // node's 16 KiB bound (CVE-2024-22019): 413, as node:http answers.
    const code = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW' ? 413 : 400;
    if (req === undefined || req.complete) {
      // The error is in a head: a placeholder request stands in for it, answered behind the earlier ones.
      this.answerError(new Http1Request(this.sock, 'GET', '/', 1, [], false, this), undefined, code);
      return;
    }
    const res = this.currentRes;
    const r = this.ready;
    const notHandled = r.length !== 0 && r[r.length - 1] === res;
    if (notHandled) r.length -= 2; // never reaches the proxy
    if (req.body !== null) req.body.destroy(err);
    if (res === undefined || res.headersSent || res.finished || res.destroyed) {
      this.failed = true;
      this.closing = true;
      // Answered already (a local reply that did not wait for the body): close once the queued output is written.
      if (res !== undefined && res.finished) {
        if (this.queue.length === 0) this.sock.end();
      } else {
        this.sock.destroy();
      }
      return;
    }
    this.answerError(req, res, code);
  }

  /**
   * Answer a request that cannot be served (`res`: its queued response, else a new one is queued): `status` with
   * Connection: close, written after the responses before it; the connection reads no further request.
   */
  answerError(req: Http1Request, res: Http1Response | undefined, status: number): void {
    this.failed = true;
    this.closing = true;
    this.server.stats.rejected++;
    if (res === undefined) {
      res = new Http1Response(this, req, false);
      this.queue.push(res);
    }
    res.closeAfter = true;
    const text = STATUS_TEXT[status] ?? 'Error';
    res.writeHead(status, ['content-type', 'text/plain', 'content-length', String(text.length), 'connection', 'close']);
    res.end(text);
    res.answeredByServer = true;
  }

  /** The slowloris guard: a head that started too long ago gets 408. */
  checkHeadTimeout(now: number): void {
    if (!headersOverdue(this.server.timeouts, this.headStartedAt, now)) return;
    this.headStartedAt = 0;
    this.failed = true;
    if (this.queue.length === 0) {
      this.closing = true;
      this.sock.end('HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    } else {
      this.sock.destroy();
    }
  }

  isIdle(): boolean {
    return this.queue.length === 0 && this.current === undefined && this.headStartedAt === 0;
  }

  onClose(): void {
    this.gone = true;
    const req = this.current;
    this.current = undefined;
    if (req !== undefined && req.body !== null && !req.complete) req.body.destroy(new Error('downstream closed'));
    for (const r of this.queue.splice(0)) r.fireClose();
    this.held = undefined;
    freeParser(this.parser); // from the socket's 'close' callback, as freeParser requires
  }

  /** The keep-alive idle check, from the listener's sweep: no per-socket timer to refresh on every request. */
  checkIdle(now: number): void {
    // After the proxy's FIN (everything written), a client that keeps its side open gets LINGER_MS to read the answer.
    if (this.finishedAt !== 0 && now - this.finishedAt >= LINGER_MS) this.sock.destroy();
    else if (this.lastActive !== 0 && now - this.lastActive >= this.server.keepAliveTimeoutMs && this.isIdle()) this.sock.destroy();
  }
}

/**
 * How long a connection the proxy has closed its side of (FIN sent, every byte written) may stay half-open, waiting
 * for the client's FIN, before it is destroyed (Envoy's delayed_close_timeout is 1 s; nginx lingers up to 5 s per read).
 */
const LINGER_MS = 2000;
function onExecute(this: NativeParser<Connection>, ret: number | Error): void {
  const c = this.conn;
  if (c === undefined) return;
  if (typeof ret !== 'number') c.clientError(ret);
  else if (c.upgrading) c.detach(ret, undefined);
  if (c.ready.length !== 0) c.dispatch();
}

/**
 * 'close' of finished responses fires after the current callback (the forwarder ends the response, then records
 * it) from one promise job for all of them: a `process.nextTick` per response would make Node run its tick queue,
 * which allocates a Map on every pass in Node 20.
 */
const closing: Http1Response[] = [];
const RESOLVED = Promise.resolve();
function closeLater(r: Http1Response): void {
  if (closing.push(r) === 1) void RESOLVED.then(flushCloses);
}
function flushCloses(): void {
  for (let i = 0; i < closing.length; i++) closing[i]!.fireClose();
  closing.length = 0;
}

// Parser callbacks run with `this` = the parser (no per-connection closures).
function onMessageBegin(this: NativeParser<Connection>): void {
  const c = this.conn;
  if (c !== undefined) c.headStartedAt = c.lastActive = Date.now();
}
function onHeaders(this: NativeParser<Connection>, headers: string[], url: string): void {
  const c = this.conn;
  // Outside a head (headStartedAt is 0 from headers-complete on), these are a chunked body's trailers: dropped,
  // as the proxy does not forward request trailers; collected, they would prefix the next request's headers and URL.
  if (c === undefined || c.headStartedAt === 0) return;
  if (c.partialHeaders === undefined) c.partialHeaders = headers.slice();
  else for (const h of headers) c.partialHeaders.push(h);
  c.partialUrl += url;
}
function onHeadersComplete(this: NativeParser<Connection>, major: number, minor: number, headers: string[] | undefined, method: number, url: string | undefined, _status: number, _msg: string, upgrade: boolean, keepAlive: boolean): number {
  const c = this.conn;
  if (c === undefined) return 0;
  c.headStartedAt = 0;
  if (headers === undefined || c.partialHeaders !== undefined) {
    const h = c.partialHeaders ?? [];
    if (headers !== undefined) for (const x of headers) h.push(x);
    headers = h;
    url = c.partialUrl + (url ?? '');
    c.partialHeaders = undefined;
    c.partialUrl = '';
  }
  if (c.closing) return 0; // after a close was decided, further pipelined requests are ignored
  c.request(major, minor, headers, METHODS[method] ?? 'GET', url ?? '/', upgrade, keepAlive);
  return 0;
}
function onBody(this: NativeParser<Connection>, chunk: Buffer): void {
  this.conn?.body(chunk);
}
function onMessageComplete(this: NativeParser<Connection>): void {
  this.conn?.messageComplete();
}
