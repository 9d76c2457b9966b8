/**
 * One downstream HTTP/1.x request as the proxy reads it (its connection makes it from the parser's head): method,
 * target, raw headers with a node:http-compatible `headers` view built on first use, the connection's addresses, a
 * body Readable when the head announces one, and the checks on a head's header lines the connection applies.
 */
import type net from 'node:net';
import { Readable } from 'node:stream';
import type { IncomingHttpHeaders } from 'node:http';

/** Where a captured connection was really going (SO_ORIGINAL_DST), when the listener knows it. */
export interface OriginalDestination {
  address: string;
  port: number;
}

/** What a request reads of its connection (./connection.ts's Connection, the only implementation). */
export interface RequestConnection {
  readonly originalDst: OriginalDestination | undefined;
  addresses(): { remoteAddress: string; remoteKey: string; localKey: string };
  /** The body's consumer wants more: reading resumes if the body had paused it. */
  resumeReading(): void;
}

/** Header names whose repeats node:http drops (first wins), so `headers` reads the same as IncomingMessage's. */
const SINGLE = new Set([
  'content-type', 'content-length', 'user-agent', 'referer', 'host', 'authorization', 'proxy-authorization',
  'if-modified-since', 'if-unmodified-since', 'from', 'location', 'max-forwards', 'retry-after', 'etag',
  'last-modified', 'server', 'age', 'expires',
]);

/** Flat raw headers → node:http's `headers` object (lowercase keys; set-cookie array; cookie joined by '; '). */
export function headersObject(raw: readonly string[]): Record<string, string | string[] | undefined> {
  // A prototype with no properties (so `constructor` or `__proto__` are just header names) that is not null: V8 keeps
  // these objects in fast mode with shared hidden classes, where Object.create(null) makes a dictionary per request.
  const o = Object.create(HEADERS_PROTO) as Record<string, string | string[] | undefined>;
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!.toLowerCase();
    const v = raw[i + 1]!;
    const cur = o[k];
    if (cur === undefined) {
      o[k] = k === 'set-cookie' ? [v] : v;
    } else if (k === 'set-cookie') {
      (cur as string[]).push(v);
    } else if (!SINGLE.has(k)) {
      o[k] = k === 'cookie' ? `${cur as string}; ${v}` : `${cur as string}, ${v}`;
    }
  }
  return o;
}

const HEADERS_PROTO = Object.create(null) as object;

/** One downstream request. The body, when the request has one, is a Readable created at the head. */
export class Http1Request {
  readonly method: string;
  readonly url: string;
  readonly httpVersion: '1.0' | '1.1';
  readonly rawHeaders: string[];
  readonly socket: net.Socket;
  /** The request body stream, or null when the head says there is none (no Content-Length > 0, no Transfer-Encoding). */
  readonly body: Readable | null;
  /** The whole message (head and body) was read. */
  complete = false;
  /**
   * The client asked to switch protocols (`Connection: upgrade` + `Upgrade: …`, HTTP/1.1, no body, nothing else in
   * flight on the connection). Answer it with `res.switchProtocols` (101, the connection becomes the caller's) or
   * with any other response, after which the connection closes.
   */
  upgrade = false;
  /** `Expect: 100-continue` on an HTTP/1.1 request with a body: forwarded, and the upstream's 100 relayed (res.sendContinue). */
  expectContinue = false;
  private headerObject: IncomingHttpHeaders | undefined;
  private readonly conn: RequestConnection;

  constructor(socket: net.Socket, method: string, url: string, minor: number, raw: string[], hasBody: boolean, conn: RequestConnection) {
    this.socket = socket;
    this.conn = conn;
    this.method = method;
    this.url = url;
    this.httpVersion = minor === 0 ? '1.0' : '1.1';
    this.rawHeaders = raw;
    this.body = hasBody ? new BodyStream(conn) : null;
  }

  /** node:http's `headers` view, built on first use. */
  get headers(): IncomingHttpHeaders {
    return (this.headerObject ??= headersObject(this.rawHeaders) as IncomingHttpHeaders);
  }

  /** The peer's IP ('' if unknown); with the ports below, read from the socket once per connection. */
  get remoteAddress(): string {
    return this.conn.addresses().remoteAddress;
  }

  /** "ip:port" of the peer, as access logs and spans print it. */
  get remoteKey(): string {
    return this.conn.addresses().remoteKey;
  }

  /** "ip:port" of the listener side of the connection. */
  get localKey(): string {
    return this.conn.addresses().localKey;
  }

  /** The address the client dialled before iptables redirected it, or undefined (not captured, or unknown). */
  get originalDst(): OriginalDestination | undefined {
    return this.conn.originalDst;
  }

  /** Discard the rest of the body (the proxy answered without reading it), so the connection stays usable. */
  resume(): void {
    if (this.body !== null && !this.complete) this.body.resume();
  }
}

/** A request body: pushes parser chunks; reading pauses the socket when the consumer is slower than the peer. */
class BodyStream extends Readable {
  constructor(private readonly conn: RequestConnection) {
    super();
    // The server destroys a body with an error when its framing breaks or the client goes; a handler that answered
    // without reading it (a local reply) has no 'error' listener, and an unhandled one would end the process.
    this.on('error', noop);
  }

  override _read(): void {
    this.conn.resumeReading();
  }
}

function noop(): void { /* a body's error reaches whoever reads it; the connection cleans up on its own */ }

/** Remove every `Expect: 100-continue` field from a flat header list, in place. */
export function removeExpectContinue(raw: string[]): void {
  for (let i = raw.length - 2; i >= 0; i -= 2) {
    const n = raw[i]!;
    if (n.length === 6 && n.toLowerCase() === 'expect' && raw[i + 1]!.trim().toLowerCase() === '100-continue') raw.splice(i, 2);
  }
}

/** A name other than Content-Length/Transfer-Encoding whose letters alone spell one of them (any case). */
export function framingLookalike(n: string): boolean {
  const c = n.charCodeAt(0) | 0x20;
  if (c !== 0x63 /* c */ && c !== 0x74 /* t */) return false;
  const l = n.toLowerCase();
  if (l === 'content-length' || l === 'transfer-encoding') return false;
  const k = l.replace(/[^a-z]/g, '');
  return k === 'contentlength' || k === 'transferencoding';
}
