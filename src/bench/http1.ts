// Minimal HTTP/1.1 client wire format for the load generator: preformatted request bytes and an
// incremental response parser that only reads what the benchmark needs (status, framing via
// content-length or chunked, x-envoy-upstream-service-time, connection: close).

export interface RequestSpec {
  method: string;
  /** Origin-form path, e.g. `/` or `/bytes/1024?x=1`. */
  path: string;
  /** Host header value (authority), e.g. `svc.bench:8080`. */
  host: string;
  /** Extra headers in order; a `host` here overrides `host` above. */
  headers: Array<[string, string]>;
  body: Buffer | undefined;
}

/** Serializes a request once; the generator writes the same Buffer for every request. */
export function formatRequest(spec: RequestSpec): Buffer {
  let hostOverride: string | undefined;
  let head = '';
  for (const [k, v] of spec.headers) {
    const lk = k.toLowerCase();
    if (lk === 'host') hostOverride = v;
    else if (lk === 'content-length') continue; // derived from the body below
    else head += `${k}: ${v}\r\n`;
  }
  const bodyLen = spec.body?.length ?? 0;
  let start = `${spec.method} ${spec.path} HTTP/1.1\r\nhost: ${hostOverride ?? spec.host}\r\n${head}`;
  if (bodyLen > 0 || !['GET', 'HEAD', 'DELETE', 'OPTIONS'].includes(spec.method)) start += `content-length: ${bodyLen}\r\n`;
  start += '\r\n';
  const headBuf = Buffer.from(start, 'latin1');
  return bodyLen > 0 ? Buffer.concat([headBuf, spec.body!]) : headBuf;
}

export interface ParsedResponse {
  status: number;
  /** x-envoy-upstream-service-time in ms, or -1 when absent. */
  upstreamMs: number;
  /** The server asked to close the connection (or framed the body by closing it). */
  close: boolean;
  bodyBytes: number;
}

const enum State {
  Head,
  Body,
  ChunkSize,
  ChunkData,
  ChunkDataCrlf,
  Trailers,
  UntilClose,
}

const CRLFCRLF = Buffer.from('\r\n\r\n');
const CRLF = Buffer.from('\r\n');
/** Response head larger than this is a protocol error (protects the generator's memory). */
const MAX_HEAD_BYTES = 64 * 1024;

export class ParseError extends Error {}

/**
 * Feed bytes with `push`; `onResponse` is called once per complete response. HEAD requests and
 * 1xx/204/304 responses have no body. Throws ParseError on malformed input.
 */
export class ResponseParser {
  private state = State.Head;
  private pending: Buffer | undefined;
  private remaining = 0;
  private cur: ParsedResponse = { status: 0, upstreamMs: -1, close: false, bodyBytes: 0 };
  /** Set by the caller before each request: HEAD responses carry no body. */
  expectNoBody = false;

  constructor(private readonly onResponse: (r: ParsedResponse) => void) {}

  /** The connection closed: completes a close-delimited body and returns true; false otherwise. */
  end(): boolean {
    if (this.state === State.UntilClose) {
      this.finish();
      return true;
    }
    return false;
  }

  /** Forgets any partial response (after the connection was dropped). */
  reset(): void {
    this.state = State.Head;
    this.pending = undefined;
    this.remaining = 0;
  }

  /** True when no response is partially read. */
  get idle(): boolean {
    return this.state === State.Head && (this.pending === undefined || this.pending.length === 0);
  }

  push(chunk: Buffer): void {
    let buf = chunk;
    let off = 0;
    if (this.pending !== undefined && this.pending.length > 0) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = undefined;
    }
    while (off < buf.length) {
      switch (this.state) {
        case State.Head: {
          const end = buf.indexOf(CRLFCRLF, off);
          if (end < 0) {
            if (buf.length - off > MAX_HEAD_BYTES) throw new ParseError('response head too large');
            this.pending = buf.subarray(off);
            return;
          }
          this.parseHead(buf.toString('latin1', off, end));
          off = end + 4;
          break;
        }
        case State.Body: {
          const n = Math.min(this.remaining, buf.length - off);
          this.remaining -= n;
          this.cur.bodyBytes += n;
          off += n;
          if (this.remaining === 0) this.finish();
          break;
        }
        case State.ChunkSize: {
          const end = buf.indexOf(CRLF, off);
          if (end < 0) {
            if (buf.length - off > 1024) throw new ParseError('chunk size line too long');
            this.pending = buf.subarray(off);
            return;
          }
          const line = buf.toString('latin1', off, end);
          const semi = line.indexOf(';');
          const size = parseInt(semi >= 0 ? line.slice(0, semi) : line, 16);
          if (!Number.isFinite(size) || size < 0) throw new ParseError(`bad chunk size ${JSON.stringify(line)}`);
          off = end + 2;
          if (size === 0) this.state = State.Trailers;
          else {
            this.remaining = size;
            this.state = State.ChunkData;
          }
          break;
        }
        case State.ChunkData: {
          const n = Math.min(this.remaining, buf.length - off);
          this.remaining -= n;
          this.cur.bodyBytes += n;
          off += n;
          if (this.remaining === 0) {
            this.state = State.ChunkDataCrlf;
            this.remaining = 2;
          }
          break;
        }
        case State.ChunkDataCrlf: {
          const n = Math.min(this.remaining, buf.length - off);
          this.remaining -= n;
          off += n;
          if (this.remaining === 0) this.state = State.ChunkSize;
          break;
        }
        case State.Trailers: {
          const end = buf.indexOf(CRLF, off);
          if (end < 0) {
            this.pending = buf.subarray(off);
            return;
          }
          // An empty line ends the trailers (and the message).
          const empty = end === off;
          off = end + 2;
          if (empty) this.finish();
          break;
        }
        case State.UntilClose:
          this.cur.bodyBytes += buf.length - off;
          off = buf.length;
          break;
      }
    }
  }

  private parseHead(head: string): void {
    // "HTTP/1.1 200 OK"
    if (!head.startsWith('HTTP/1.')) throw new ParseError(`bad status line ${JSON.stringify(head.slice(0, 40))}`);
    const status = parseInt(head.slice(9, 12), 10);
    if (!(status >= 100 && status <= 999)) throw new ParseError(`bad status ${JSON.stringify(head.slice(0, 40))}`);
    const http10 = head.charCodeAt(7) === 0x30;
    let contentLength = -1;
    let chunked = false;
    let close = http10;
    let upstreamMs = -1;
    let i = head.indexOf('\r\n');
    while (i >= 0) {
      const next = head.indexOf('\r\n', i + 2);
      const line = head.slice(i + 2, next < 0 ? head.length : next);
      i = next;
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const nameLen = colon;
      // Only four header names matter; compare lengths first to skip the rest cheaply.
      if (nameLen === 14 || nameLen === 17 || nameLen === 10 || nameLen === 29) {
        const name = line.slice(0, colon).toLowerCase();
        const value = line.slice(colon + 1).trim();
        if (name === 'content-length') contentLength = parseInt(value, 10);
        else if (name === 'transfer-encoding') chunked = value.toLowerCase().endsWith('chunked');
        else if (name === 'connection') {
          const v = value.toLowerCase();
          if (v.includes('close')) close = true;
          else if (v.includes('keep-alive')) close = false;
        } else if (name === 'x-envoy-upstream-service-time') upstreamMs = parseFloat(value);
      }
    }
    if (status >= 100 && status < 200) {
      // Interim response (100 Continue): the real one follows on the same connection.
      this.state = State.Head;
      return;
    }
    this.cur = { status, upstreamMs: Number.isFinite(upstreamMs) ? upstreamMs : -1, close, bodyBytes: 0 };
    if (this.expectNoBody || status === 204 || status === 304) this.finish();
    else if (chunked) this.state = State.ChunkSize;
    else if (contentLength >= 0) {
      if (contentLength === 0) this.finish();
      else {
        this.remaining = contentLength;
        this.state = State.Body;
      }
    } else {
      this.cur.close = true;
      this.state = State.UntilClose;
    }
  }

  private finish(): void {
    this.state = State.Head;
    const r = this.cur;
    this.onResponse(r);
  }
}
