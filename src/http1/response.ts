/**
 * One downstream HTTP/1.x response and how it is written: the head built from a flat header list (names and values
 * checked, framing chosen: Content-Length, chunked or close-delimited), held until the first body bytes so a small
 * response leaves in one write, output held behind an unfinished pipelined response, 100 Continue, trailers, and the
 * hand-over of the connection on 101 or CONNECT. Its connection (./connection.ts) orders and writes the responses.
 */
import type net from 'node:net';
import { STATUS_CODES } from 'node:http';
import type { Http1Request } from './request.js';

/** What a response reads and calls on its connection (./connection.ts's Connection, the only implementation). */
export interface ResponseConnection {
  readonly server: { readonly stats: { responsesBeforeRequestComplete: number } };
  readonly sock: net.Socket;
  /** Responses not yet fully written, oldest first; only the first writes to the socket. */
  readonly queue: readonly Http1Response[];
  readonly closing: boolean;
  readonly draining: boolean;
  readonly gone: boolean;
  readonly upgrading: boolean;
  front(): Http1Response | undefined;
  write(data: string | Buffer): boolean;
  /** The upgrade was accepted: the bytes read past the request, the socket the tunnel's from now on. */
  switched(): Buffer[];
  /** This response ended: the connection drops it, lets the next one write, closes or goes idle. */
  responseFinished(res: Http1Response): void;
}

type Listener = () => void;

/**
 * One downstream response. `writeHead` takes a flat [name, value, …] array (original case kept), chooses the
 * framing (Content-Length as given, else chunked on HTTP/1.1, else close-delimited) and holds the head until the
 * first body bytes or `end`, so a small response leaves in one write.
 */
export class Http1Response {
  statusCode = 0;
  headersSent = false;
  finished = false;
  destroyed = false;
  chunkedEncoding = false;
  /** Close the connection once this response is written (request asked, response said so, or close-delimited). */
  closeAfter: boolean;
  /**
   * The server answered this response itself (the request's framing broke after it was handed to the handler): the
   * handler's later calls on it do nothing, so its reaction to the body error cannot reset the connection and lose
   * the responses queued before this one.
   */
  answeredByServer = false;
  /** Ended by the stream idle timeout (408, or a reset once it had started): the record says SI. */
  streamIdleTimedOut = false;
  /** The upstream's 100 Continue was relayed (sendContinue). */
  private continued = false;
  private noBody = false;
  private head: string | undefined;
  /** Output held while an earlier pipelined response on the connection is still being written. */
  private held: Array<string | Buffer> | undefined;
  private heldBytes = 0;
  /** The writer was told to wait (held output over HELD_LIMIT): it gets 'drain' once the output has left. */
  private heldFull = false;
  private trailers: string | undefined;
  private closeListeners: Listener | Listener[] | undefined;
  private drainListeners: Listener[] | undefined;
  private closed = false;

  constructor(private readonly conn: ResponseConnection, readonly req: Http1Request, keepAlive: boolean) {
    this.closeAfter = !keepAlive;
  }

  writeHead(status: number, headers: readonly string[]): this {
    if (this.answeredByServer) return this;
    if (this.headersSent) throw new Error('headers already sent');
    let s = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Unknown'}\r\n`;
    let hasLength = false;
    let hasDate = false;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      const value = headers[i + 1]!;
      if (!validName(name)) throw new InvalidHeaderError(`invalid header name ${JSON.stringify(name)}`);
      if (INVALID_VALUE.test(value)) throw new InvalidHeaderError(`invalid value for header ${name}`);
      const n = name.length;
      if (n === 14 && name.toLowerCase() === 'content-length') hasLength = true;
      else if (n === 10 && name.toLowerCase() === 'connection') {
        if (/(^|[\s,])close($|[\s,])/i.test(value)) this.closeAfter = true;
        continue; // written below, once, from closeAfter
      } else if (n === 4 && name.toLowerCase() === 'date') hasDate = true;
      else if (n === 17 && name.toLowerCase() === 'transfer-encoding') continue; // framing is ours to choose
      s += `${name}: ${value}\r\n`;
    }
    this.statusCode = status;
    // A response that starts before its request's body has all arrived closes the connection after it (Envoy's
    // HCM does the same for HTTP/1: downstream_rq_response_before_rq_complete): the rest of the body would have to
    // be read and thrown away to reach the next request, and a client that reads `Connection: close` (curl) stops
    // sending it (an upload refused with 413, a local reply, a stream idle timeout).
    if (this.req.body !== null && !this.req.complete && !this.closeAfter) {
      this.closeAfter = true;
      this.conn.server.stats.responsesBeforeRequestComplete++;
    }
    this.noBody = this.req.method === 'HEAD' || status === 204 || status === 304 || status < 200;
    if (!this.noBody && !hasLength) {
      if (this.req.httpVersion === '1.1') {
        this.chunkedEncoding = true;
        s += 'Transfer-Encoding: chunked\r\n';
      } else {
        this.closeAfter = true; // HTTP/1.0: the body ends when the connection does
      }
    }
    if (!hasDate) s += `Date: ${httpDate()}\r\n`;
    // The connection reads no further request (closing, draining): the last response queued says so and closes it;
    // earlier pipelined ones are still answered keep-alive, or the close would cut the responses queued behind them.
    if (this.closeAfter || ((this.conn.closing || this.conn.draining) && this.conn.queue[this.conn.queue.length - 1] === this)) {
      this.closeAfter = true;
      s += 'Connection: close\r\n';
    } else if (this.req.httpVersion === '1.0') {
      s += 'Connection: keep-alive\r\n';
    }
    this.head = `${s}\r\n`;
    this.headersSent = true;
    return this;
  }

  /** Write body bytes. Returns false when the socket's buffer is full ('drain' follows). */
  write(chunk: Buffer | string): boolean {
    if (this.finished || this.destroyed) return false;
    if (!this.headersSent) this.writeHead(200, EMPTY);
    if (this.noBody || chunk.length === 0) return this.flushHead();
    if (this.chunkedEncoding) {
      const len = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
      return this.out(chunk, `${len.toString(16)}\r\n`, '\r\n');
    }
    return this.out(chunk, '', '');
  }

  end(chunk?: Buffer | string): void {
    if (this.finished || this.destroyed) return;
    if (!this.headersSent) this.writeHead(200, EMPTY);
    if (chunk !== undefined && chunk.length > 0 && !this.noBody) {
      if (this.chunkedEncoding) {
        const len = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
        this.out(chunk, `${len.toString(16)}\r\n`, `\r\n0\r\n${this.trailers ?? ''}\r\n`);
      } else {
        this.out(chunk, '', '');
      }
    } else if (this.chunkedEncoding && !this.noBody) {
      // The head may still be held (writeHead then end() with no body): it leaves with the last chunk.
      const h = this.head ?? '';
      this.head = undefined;
      this.emit(`${h}0\r\n${this.trailers ?? ''}\r\n`);
    } else {
      this.flushHead();
    }
    this.finished = true;
    this.conn.responseFinished(this);
  }

  /**
   * Answer an upgrade request (`req.upgrade`) with 101 Switching Protocols and give the connection up: the head is
   * written now, `headers` as given (Connection and Upgrade included, no Date added), and the caller gets the socket
   * and the bytes the client sent after its request head. Reading stays stopped until the caller starts it
   * (`startReading`); the socket's bytes are the caller's from then on. This response counts as finished but stays
   * the connection's until the socket closes, when its 'close' fires. Throws on an invalid header (nothing written).
   */
  switchProtocols(headers: readonly string[]): { socket: net.Socket; head: Buffer[] } {
    const c = this.conn;
    // c.upgrading: still inside the read that carried the request (the handler itself): the bytes after it are not known yet.
    if (this.headersSent || this.destroyed || !this.req.upgrade || c.gone || c.upgrading) throw new Error('switchProtocols: not an upgrade request awaiting its answer');
    let s = 'HTTP/1.1 101 Switching Protocols\r\n';
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      const value = headers[i + 1]!;
      if (!validName(name)) throw new InvalidHeaderError(`invalid header name ${JSON.stringify(name)}`);
      if (INVALID_VALUE.test(value)) throw new InvalidHeaderError(`invalid value for header ${name}`);
      s += `${name}: ${value}\r\n`;
    }
    this.statusCode = 101;
    this.headersSent = true;
    this.noBody = true;
    this.finished = true;
    c.write(`${s}\r\n`);
    return { socket: c.sock, head: c.switched() };
  }

  /**
   * Give the connection up without answering here: a CONNECT request (`req.upgrade`) whose answer — 200 once the
   * tunnel's upstream is connected, or an error status — its new owner writes on the socket itself. As after
   * `switchProtocols`, the caller gets the socket and the bytes read after the request head, reading stays stopped
   * until the caller starts it, and the response counts as finished (status 200) until the socket closes.
   */
  takeOver(): { socket: net.Socket; head: Buffer[] } {
    const c = this.conn;
    if (this.headersSent || this.destroyed || !this.req.upgrade || c.gone || c.upgrading) throw new Error('takeOver: not an upgrade request awaiting its answer');
    this.statusCode = 200;
    this.headersSent = true;
    this.noBody = true;
    this.finished = true;
    return { socket: c.sock, head: c.switched() };
  }

  /**
   * Relay the upstream's `100 Continue` to a request that expects it (`req.expectContinue`): once, and never after
   * the final head. Behind an unfinished pipelined response it waits its turn with the rest of this response's output.
   */
  sendContinue(): void {
    if (!this.req.expectContinue || this.continued || this.headersSent || this.finished || this.destroyed || this.answeredByServer) return;
    this.continued = true;
    this.emit(CONTINUE);
  }

  /** Trailers for a chunked response (sent with the last chunk). */
  addTrailers(t: Record<string, string>): void {
    let s = '';
    for (const k of Object.keys(t)) {
      const v = t[k]!;
      if (!validName(k) || INVALID_VALUE.test(v)) continue;
      s += `${k}: ${v}\r\n`;
    }
    this.trailers = s;
  }

  /** Abort: the connection is closed (a response that started cannot be finished cleanly any other way). */
  destroy(): void {
    if (this.destroyed || this.answeredByServer) return;
    this.destroyed = true;
    this.conn.sock.destroy();
  }

  on(event: 'close' | 'drain', fn: Listener): this {
    if (event === 'close') {
      const c = this.closeListeners;
      if (c === undefined) this.closeListeners = fn;
      else if (typeof c === 'function') this.closeListeners = [c, fn];
      else c.push(fn);
    } else {
      (this.drainListeners ??= []).push(fn);
    }
    return this;
  }

  /** 'drain' listeners fire once anyway; 'close' fires once by nature. */
  once(event: 'close' | 'drain', fn: Listener): this {
    return this.on(event, fn);
  }

  /** @internal the socket drained: the writer may go on. */
  drained(): void {
    const d = this.drainListeners;
    if (d === undefined) return;
    this.drainListeners = undefined;
    for (const f of d) f();
  }

  /** @internal fired once: after the response was written, or when the connection closed before that. */
  fireClose(): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.finished) this.destroyed = true;
    const c = this.closeListeners;
    this.closeListeners = undefined;
    if (c === undefined) return;
    if (typeof c === 'function') c.call(this);
    else for (const f of c) f.call(this);
  }

  /** @internal this response reached the front of the connection's queue: write what it held. */
  release(): void {
    const h = this.held;
    if (h === undefined) return;
    this.held = undefined;
    this.heldBytes = 0;
    let ok = true;
    for (const x of h) ok = this.conn.write(x);
    if (this.heldFull) {
      this.heldFull = false;
      // Told to wait while held: now at the front, it may go on once the socket took the bytes (else on its drain).
      if (ok) this.drained();
    }
  }

  private flushHead(): boolean {
    const h = this.head;
    if (h === undefined) return true;
    this.head = undefined;
    return this.emit(h);
  }

  private out(chunk: Buffer | string, pre: string, post: string): boolean {
    const h = this.head ?? '';
    this.head = undefined;
    if (typeof chunk === 'string') {
      // Output strings are written as latin1 (one byte per char), which is UTF-8 only for ASCII: other text goes
      // through a UTF-8 buffer, so the bytes match the length (Buffer.byteLength) the caller and the chunk size count.
      if (Buffer.byteLength(chunk) === chunk.length) return this.emit(h + pre + chunk + post);
      chunk = Buffer.from(chunk);
    }
    // Small bodies join the head in one latin1 string (bytes survive the round trip): one write, one syscall.
    if (chunk.length <= 2048) return this.emit(h + pre + chunk.toString('latin1') + post);
    if (h !== '' || pre !== '') this.emit(h + pre);
    const ok = this.emit(chunk);
    return post === '' ? ok : this.emit(post);
  }

  private emit(data: string | Buffer): boolean {
    if (this.conn.front() !== this) {
      // Behind an unfinished pipelined response: held in memory, but only up to HELD_LIMIT before the writer is told
      // to wait (a pipelining client must not make the proxy buffer whole responses).
      (this.held ??= []).push(data);
      this.heldBytes += data.length;
      if (this.heldBytes < HELD_LIMIT) return true;
      this.heldFull = true;
      return false;
    }
    return this.conn.write(data);
  }
}

class InvalidHeaderError extends Error {
  readonly code = 'ERR_INVALID_HTTP_TOKEN';
}

const EMPTY: readonly string[] = [];
const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';

/** Output a pipelined response may hold while waiting its turn before its writer is paused (bytes). */
const HELD_LIMIT = 64 * 1024;
/** RFC 9110 token characters. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** What node:http refuses in a header value (control characters but HTAB; CR/LF would split the response). */
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const validNames = new Set<string>();
function validName(n: string): boolean {
  if (validNames.has(n)) return true;
  if (!TOKEN.test(n)) return false;
  if (validNames.size < 4096) validNames.add(n);
  return true;
}

let dateString = '';
let dateSecond = 0;
/** The IMF-fixdate of this second, built once per second. */
function httpDate(): string {
  const now = Date.now();
  const sec = Math.floor(now / 1000);
  if (sec !== dateSecond) {
    dateSecond = sec;
    dateString = new Date(sec * 1000).toUTCString();
  }
  return dateString;
}

export const STATUS_TEXT: Record<number, string | undefined> = STATUS_CODES;
