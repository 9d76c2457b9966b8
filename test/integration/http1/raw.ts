/**
 * Byte-level socket helpers for the HTTP/1 server and upstream pool tests: a raw client and a raw server on
 * 127.0.0.1 port 0 that the test drives (and misbehaves with) byte by byte, and a small independent HTTP/1
 * response reader, so the assertions do not depend on the parser under test.
 */
import net from 'node:net';

/** Every socket and server a test opened, so `cleanup()` can close them whatever the test's outcome. */
const opened = new Set<net.Socket | net.Server>();

export async function cleanup(): Promise<void> {
  const all = [...opened];
  opened.clear();
  await Promise.all(all.map((o) => {
    if (o instanceof net.Socket) { o.destroy(); return undefined; }
    return new Promise<void>((r) => { o.close(() => r()); });
  }));
}

/** Resolve when `pred` holds, re-checked on every event `evs` of `em`; reject after `ms` (tests stay bounded). */
export function until(em: NodeJS.EventEmitter, evs: string | string[], pred: () => boolean, ms = 3000, what = 'condition'): Promise<void> {
  if (pred()) return Promise.resolve();
  const list = typeof evs === 'string' ? [evs] : evs;
  return new Promise((resolve, reject) => {
    const off = (): void => { for (const e of list) em.off(e, check); };
    const t = setTimeout(() => { off(); reject(new Error(`timed out after ${ms} ms waiting for ${what}`)); }, ms);
    function check(): void {
      if (!pred()) return;
      clearTimeout(t);
      off();
      resolve();
    }
    for (const e of list) em.on(e, check);
  });
}

/** A client connection that records every byte received and when the peer closed. */
export class RawClient {
  received = Buffer.alloc(0);
  ended = false;
  closed = false;
  readonly sock: net.Socket;

  private constructor(sock: net.Socket) {
    this.sock = sock;
    sock.on('data', (d: Buffer) => { this.received = Buffer.concat([this.received, d]); });
    sock.on('end', () => { this.ended = true; });
    sock.on('close', () => { this.closed = true; });
    sock.on('error', () => { /* the close is what the tests look at */ });
  }

  static connect(port: number, opts: { allowHalfOpen?: boolean } = {}): Promise<RawClient> {
    const sock = net.connect({ port, host: '127.0.0.1', allowHalfOpen: opts.allowHalfOpen ?? false });
    opened.add(sock);
    const c = new RawClient(sock);
    return new Promise((resolve, reject) => {
      sock.once('connect', () => resolve(c));
      sock.once('error', reject);
    });
  }

  get text(): string {
    return this.received.toString('latin1');
  }

  send(data: string | Buffer): void {
    this.sock.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** Wait until `n` complete responses were received (HEAD flags say which requests were HEAD). */
  async responses(n: number, opts: { head?: boolean[]; ms?: number } = {}): Promise<RawResponse[]> {
    let out: RawResponse[] = [];
    // A close-delimited response completes at EOF, hence 'end'/'close' as well as 'data'.
    await until(this.sock, ['data', 'end', 'close'], () => {
      out = parseResponses(this.received, opts.head ?? [], this.ended || this.closed);
      return out.length >= n;
    }, opts.ms, `${n} response(s)`).catch((err: Error) => {
      throw new Error(`${err.message}; got ${JSON.stringify(this.text.slice(0, 400))}`);
    });
    return out;
  }

  waitText(pred: (s: string) => boolean, ms = 3000): Promise<void> {
    return until(this.sock, 'data', () => pred(this.text), ms, 'text').catch((err: Error) => {
      throw new Error(`${err.message}; got ${JSON.stringify(this.text.slice(0, 400))}`);
    });
  }

  waitClosed(ms = 3000): Promise<void> {
    return until(this.sock, 'close', () => this.closed, ms, 'the server to close the connection');
  }
}

export interface RawResponse {
  status: number;
  /** [name, value] pairs as received. */
  headers: Array<[string, string]>;
  body: Buffer;
  trailers: Array<[string, string]>;
  chunked: boolean;
  /** Raw bytes of the whole response. */
  raw: string;
}

export function header(r: { headers: Array<[string, string]> }, name: string): string | undefined {
  const h = r.headers.find(([k]) => k.toLowerCase() === name);
  return h?.[1];
}

export function headerCount(r: { headers: Array<[string, string]> }, name: string): number {
  return r.headers.filter(([k]) => k.toLowerCase() === name).length;
}

function parseFields(lines: string[]): Array<[string, string]> {
  return lines.filter((l) => l !== '').map((l) => {
    const i = l.indexOf(':');
    return [l.slice(0, i), l.slice(i + 1).trim()] as [string, string];
  });
}

/**
 * Complete responses at the front of `buf`, in order. `head[i]` marks the i-th response as answering HEAD;
 * `eof` lets the last close-delimited one complete.
 */
export function parseResponses(buf: Buffer, head: boolean[], eof: boolean): RawResponse[] {
  const s = buf.toString('latin1');
  const out: RawResponse[] = [];
  let pos = 0;
  let index = 0;
  for (;;) {
    const end = s.indexOf('\r\n\r\n', pos);
    if (end < 0) return out;
    const lines = s.slice(pos, end).split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0]!)?.[1] ?? NaN);
    const headers = parseFields(lines.slice(1));
    let p = end + 4;
    const r: RawResponse = { status, headers, body: Buffer.alloc(0), trailers: [], chunked: false, raw: '' };
    if (status < 200) { // informational: not a response of its own
      r.raw = s.slice(pos, p);
      pos = p;
      continue;
    }
    const te = header(r, 'transfer-encoding');
    const cl = header(r, 'content-length');
    if (head[index] === true || status === 204 || status === 304) {
      // no body
    } else if (te !== undefined && /chunked/i.test(te)) {
      r.chunked = true;
      const parts: Buffer[] = [];
      for (;;) {
        const le = s.indexOf('\r\n', p);
        if (le < 0) return out;
        const size = parseInt(s.slice(p, le), 16);
        if (!/^[0-9a-fA-F]+$/.test(s.slice(p, le))) throw new Error(`bad chunk size line ${JSON.stringify(s.slice(p, p + 40))} in ${JSON.stringify(s.slice(0, 300))}`);
        if (size === 0) {
          const te2 = s.indexOf('\r\n\r\n', le);
          if (s.slice(le, le + 4) === '\r\n\r\n') { p = le + 4; break; }
          if (te2 < 0) return out;
          r.trailers = parseFields(s.slice(le + 2, te2).split('\r\n'));
          p = te2 + 4;
          break;
        }
        if (s.length < le + 2 + size + 2) return out;
        parts.push(buf.subarray(le + 2, le + 2 + size));
        p = le + 2 + size + 2;
      }
      r.body = Buffer.concat(parts);
    } else if (cl !== undefined) {
      const n = Number(cl);
      if (s.length < p + n) return out;
      r.body = buf.subarray(p, p + n);
      p += n;
    } else {
      if (!eof) return out;
      r.body = buf.subarray(p);
      p = s.length;
    }
    r.raw = s.slice(pos, p);
    out.push(r);
    pos = p;
    index++;
  }
}

/** A server whose connections the test handles itself; `sockets` lists them in accept order. */
export class RawServer {
  readonly sockets: net.Socket[] = [];
  readonly server: net.Server;
  port = 0;

  constructor(onConnection: (sock: net.Socket, index: number) => void, opts: { allowHalfOpen?: boolean } = {}) {
    this.server = net.createServer({ allowHalfOpen: opts.allowHalfOpen ?? false }, (sock) => {
      opened.add(sock);
      sock.on('error', () => { /* tests look at closes */ });
      this.sockets.push(sock);
      onConnection(sock, this.sockets.length - 1);
    });
    opened.add(this.server);
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  waitConnections(n: number, ms = 3000): Promise<void> {
    return until(this.server, 'connection', () => this.sockets.length >= n, ms, `${n} connection(s)`);
  }
}

/** Reads requests off one server-side socket: the whole head, and a body framed by Content-Length or chunked. */
export class RequestReader {
  buf = '';
  closed = false;

  constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => { this.buf += d.toString('latin1'); });
    sock.on('close', () => { this.closed = true; });
  }

  /** The next complete request, removed from the buffer. */
  async next(ms = 3000): Promise<{ head: string; lines: string[]; body: string; trailers: string }> {
    let got: { head: string; lines: string[]; body: string; trailers: string; len: number } | undefined;
    await until(this.sock, 'data', () => (got = takeRequest(this.buf)) !== undefined, ms, 'a request').catch((err: Error) => {
      throw new Error(`${err.message}; have ${JSON.stringify(this.buf.slice(0, 300))}`);
    });
    this.buf = this.buf.slice(got!.len);
    return got!;
  }
}

function takeRequest(s: string): { head: string; lines: string[]; body: string; trailers: string; len: number } | undefined {
  const end = s.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const head = s.slice(0, end);
  const lines = head.split('\r\n');
  const fields = parseFields(lines.slice(1));
  const te = fields.find(([k]) => k.toLowerCase() === 'transfer-encoding')?.[1];
  const cl = fields.find(([k]) => k.toLowerCase() === 'content-length')?.[1];
  let p = end + 4;
  if (te !== undefined) {
    let body = '';
    for (;;) {
      const le = s.indexOf('\r\n', p);
      if (le < 0) return undefined;
      const size = parseInt(s.slice(p, le), 16);
      if (!/^[0-9a-fA-F]+$/.test(s.slice(p, le))) throw new Error(`bad chunk size line ${JSON.stringify(s.slice(p, p + 40))}`);
      if (size === 0) {
        const t = s.indexOf('\r\n\r\n', le);
        if (t < 0) return undefined;
        return { head, lines, body, trailers: s.slice(le + 2, t + 2), len: t + 4 };
      }
      if (s.length < le + 2 + size + 2) return undefined;
      body += s.slice(le + 2, le + 2 + size);
      p = le + 2 + size + 2;
    }
  }
  const n = cl === undefined ? 0 : Number(cl);
  if (s.length < p + n) return undefined;
  return { head, lines, body: s.slice(p, p + n), trailers: '', len: p + n };
}

/** Resolve once `pred` holds, checked every 5 ms; reject after `ms`. For state that changes without an event to await. */
export async function poll(pred: () => boolean, ms = 3000, what = 'condition'): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Let in-flight bytes land: used only before asserting that something did NOT happen. */
export function settle(ms = 30): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
