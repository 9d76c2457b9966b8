/**
 * A recording upstream for the framing tests (issue #14, RELIABILITY.md §4 rows 1, 2, 5, 11): a raw `net` server on
 * 127.0.0.1:0 that keeps every byte each connection sent, parses what arrived with its own strict HTTP/1.1 request
 * parser (independent of llhttp, the parser under test), and answers each complete request 200 with the request's
 * `x-seq` header (or its method and path) as the body. A request the strict parser finds ambiguous — CL and TE
 * together, several Content-Length, a Transfer-Encoding other than `chunked`, a header name that is not a token,
 * obs-fold, a bare CR or LF, a control byte in a value — is recorded as such (`violations`) and answered 400 + close.
 */
import net from 'node:net';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

export interface UpstreamRequest {
  method: string;
  target: string;
  version: string;
  /** [name, value] as received. */
  headers: Array<[string, string]>;
  body: Buffer;
  sha256: string;
  chunked: boolean;
  /** Index of the upstream connection it arrived on, and its place on that connection. */
  conn: number;
  index: number;
}

export class RecordingUpstream {
  readonly server: net.Server;
  port = 0;
  /** Per connection, every byte received, in accept order. */
  readonly raw: Buffer[][] = [];
  readonly requests: UpstreamRequest[] = [];
  /** Strict-parser findings: what made a received request ambiguous or invalid. */
  readonly violations: string[] = [];
  private readonly sockets = new Set<net.Socket>();

  constructor() {
    this.server = net.createServer((sock) => this.accept(sock));
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  /** Bytes received on every connection so far. */
  get bytes(): number {
    let n = 0;
    for (const c of this.raw) for (const b of c) n += b.length;
    return n;
  }

  /** Forget what was recorded (connections stay open: the proxy's pool keeps them). */
  reset(): void {
    for (const c of this.raw) c.length = 0;
    this.requests.length = 0;
    this.violations.length = 0;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private accept(sock: net.Socket): void {
    const id = this.raw.length;
    const chunks: Buffer[] = [];
    this.raw.push(chunks);
    this.sockets.add(sock);
    let buf: Buffer = Buffer.alloc(0);
    let index = 0;
    sock.on('error', () => { /* the proxy may reset a connection whose request it cut */ });
    sock.on('close', () => this.sockets.delete(sock));
    sock.on('data', (d: Buffer) => {
      chunks.push(d);
      buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
      for (;;) {
        let r: ParseResult;
        try {
          r = parseRequest(buf);
        } catch (err) {
          this.violations.push(`conn ${id}: ${(err as Error).message}`);
          sock.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
          buf = Buffer.alloc(0);
          return;
        }
        if (r === undefined) return;
        buf = buf.subarray(r.length);
        const req: UpstreamRequest = { ...r.request, conn: id, index: index++ };
        this.requests.push(req);
        const seq = req.headers.find(([k]) => k.toLowerCase() === 'x-seq')?.[1] ?? `${req.method} ${req.target}`;
        const body = `${seq} ${req.sha256}`;
        sock.write(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${req.method === 'HEAD' ? '' : body}`);
      }
    });
  }
}

type ParseResult = { request: Omit<UpstreamRequest, 'conn' | 'index'>; length: number } | undefined;

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** A field value: VCHAR, obs-text, SP and HTAB inside; no CTL (NUL, CR, LF, …). */
const VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * Parse one request at the front of `buf` the strict way (RFC 9112, no leniency): undefined when incomplete; throws
 * on anything a second parser could read differently.
 */
export function parseRequest(buf: Buffer): ParseResult {
  const s = buf.toString('latin1');
  const end = s.indexOf('\r\n\r\n');
  if (end < 0) {
    if (/[^\r]\n|\r[^\n]/.test(s.slice(0, -1))) throw new Error(`bare CR or LF in head ${JSON.stringify(s.slice(0, 200))}`);
    return undefined;
  }
  const head = s.slice(0, end);
  if (/\r(?!\n)|(?<!\r)\n/.test(head)) throw new Error(`bare CR or LF in head ${JSON.stringify(head.slice(0, 200))}`);
  const lines = head.split('\r\n');
  const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) (HTTP\/1\.[01])$/.exec(lines[0]!);
  if (m === null) throw new Error(`bad request line ${JSON.stringify(lines[0])}`);
  const headers: Array<[string, string]> = [];
  for (const l of lines.slice(1)) {
    if (l.startsWith(' ') || l.startsWith('\t')) throw new Error(`obs-fold ${JSON.stringify(l)}`);
    const i = l.indexOf(':');
    if (i <= 0) throw new Error(`header line without a name ${JSON.stringify(l)}`);
    const name = l.slice(0, i);
    const value = l.slice(i + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (!TOKEN.test(name)) throw new Error(`header name is not a token ${JSON.stringify(name)}`);
    if (!VALUE.test(value)) throw new Error(`control byte in the value of ${name}`);
    headers.push([name, value]);
  }
  const all = (n: string): string[] => headers.filter(([k]) => k.toLowerCase() === n).map(([, v]) => v);
  const te = all('transfer-encoding');
  const cl = all('content-length');
  if (te.length > 0 && cl.length > 0) throw new Error('Content-Length and Transfer-Encoding together');
  if (te.length > 1 || (te.length === 1 && te[0]!.toLowerCase() !== 'chunked')) throw new Error(`Transfer-Encoding ${JSON.stringify(te)}`);
  if (cl.length > 1) throw new Error(`several Content-Length ${JSON.stringify(cl)}`);
  if (cl.length === 1 && !/^\d{1,15}$/.test(cl[0]!)) throw new Error(`bad Content-Length ${JSON.stringify(cl[0])}`);
  // A name that a lenient reader would take for a framing header (case, underscores, spaces, control bytes).
  for (const [k] of headers) {
    const loose = k.toLowerCase().replace(/[^a-z]/g, '');
    if ((loose === 'contentlength' || loose === 'transferencoding') && k.toLowerCase() !== 'content-length' && k.toLowerCase() !== 'transfer-encoding') {
      throw new Error(`header name ${JSON.stringify(k)} reads as a framing header to a lenient parser`);
    }
  }
  if (all('host').length !== 1) throw new Error(`${all('host').length} Host headers`);
  let p = end + 4;
  let body: Buffer;
  const chunked = te.length === 1;
  if (chunked) {
    const parts: Buffer[] = [];
    for (;;) {
      const le = s.indexOf('\r\n', p);
      if (le < 0) return undefined;
      const line = s.slice(p, le);
      if (!/^[0-9a-fA-F]{1,15}$/.test(line)) throw new Error(`chunk size line ${JSON.stringify(line.slice(0, 60))}`);
      const size = parseInt(line, 16);
      if (size === 0) {
        const t = s.indexOf('\r\n\r\n', le);
        if (s.slice(le, le + 4) === '\r\n\r\n') { p = le + 4; break; }
        if (t < 0) return undefined;
        p = t + 4;
        break;
      }
      if (s.length < le + 2 + size + 2) return undefined;
      if (s.slice(le + 2 + size, le + 4 + size) !== '\r\n') throw new Error('chunk data not followed by CRLF');
      parts.push(buf.subarray(le + 2, le + 2 + size));
      p = le + 4 + size;
    }
    body = Buffer.concat(parts);
  } else {
    const n = cl.length === 1 ? Number(cl[0]) : 0;
    if (s.length < p + n) return undefined;
    body = Buffer.from(buf.subarray(p, p + n));
    p += n;
  }
  return {
    request: { method: m[1]!, target: m[2]!, version: m[3]!, headers, body, sha256: sha256(body), chunked },
    length: p,
  };
}

export function sha256(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex');
}

/** CPU seconds (user + system) a process has used, from /proc/PID/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 (utime, stime) are the 12th and 13th after the state field; in clock ticks (100 per second on Linux).
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** Resident set size of a process in bytes, from /proc/PID/status. */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
  return Number(m?.[1] ?? 0) * 1024;
}
