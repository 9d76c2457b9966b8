/**
 * A scriptable upstream on 127.0.0.1:0 that records what it saw and misbehaves on purpose:
 * fixed status sequences, latency, hangs, resets, and its own id in every response; plus a raw keep-alive
 * server that closes idle connections without a hint and models the keep-alive race.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  rawHeaders: string[];
  body: string;
  remotePort: number;
}

export type Behaviour = (req: IncomingMessage, res: ServerResponse, n: number, body: string) => void | 'handled';

export class FakeUpstream {
  readonly requests: SeenRequest[] = [];
  private server: Server;
  private sockets = new Set<Socket>();
  private statuses: number[] = [];
  private latencyMs = 0;
  private behaviour: Behaviour | undefined;
  port = 0;
  connections = 0;

  constructor(readonly id: string, opts: { keepAliveTimeout?: number } = {}) {
    this.server = createServer((req, res) => this.handle(req, res));
    if (opts.keepAliveTimeout !== undefined) this.server.keepAliveTimeout = opts.keepAliveTimeout;
    this.server.on('connection', (s: Socket) => {
      this.connections++;
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  /** Answer with these statuses in order, then 200. */
  statusSequence(...s: number[]): this { this.statuses.push(...s); return this; }
  latency(ms: number): this { this.latencyMs = ms; return this; }
  behave(b: Behaviour): this { this.behaviour = b; return this; }

  async start(host = '127.0.0.1'): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, host, r));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      this.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body, remotePort: req.socket.remotePort ?? 0 });
      const n = this.requests.length;
      if (this.behaviour && this.behaviour(req, res, n, body) === 'handled') return;
      const status = this.statuses.length > 0 ? this.statuses.shift()! : 200;
      const send = (): void => {
        if (res.destroyed) return;
        const payload = JSON.stringify({ id: this.id, method: req.method, url: req.url, headers: req.headers, body });
        res.writeHead(status, { 'content-type': 'application/json', 'x-upstream-id': this.id });
        res.end(payload);
      };
      if (this.latencyMs > 0) setTimeout(send, this.latencyMs); else send();
    });
  }

  url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

export async function fakeUpstream(id: string, opts?: { keepAliveTimeout?: number }): Promise<FakeUpstream> {
  return new FakeUpstream(id, opts).start();
}

/**
 * A raw HTTP/1.1 keep-alive server that closes idle connections after `idleCloseMs` *without* announcing a
 * `Keep-Alive: timeout=` hint (as many non-Node servers), and models the keep-alive race of a real network:
 * a request that arrives within `raceWindowMs` of the idle deadline is treated as still in flight when the
 * server closed — it is dropped unanswered and the connection is reset. Answers `200 ok` otherwise.
 */
export class RawKeepAliveUpstream {
  private server: ReturnType<typeof createNetServer>;
  private sockets = new Set<Socket>();
  port = 0;
  connections = 0;
  /** Requests answered. */
  answered = 0;
  /** Requests dropped by the modelled race (never answered, connection reset). */
  dropped = 0;
  readonly bodies: string[] = [];

  constructor(readonly idleCloseMs: number, readonly raceWindowMs: number) {
    this.server = createNetServer((s) => this.onConnection(s));
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  private onConnection(s: Socket): void {
    this.connections++;
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    s.on('error', () => { /* peer reset */ });
    let buf = Buffer.alloc(0);
    let idleSince = performance.now();
    let timer: NodeJS.Timeout | undefined = setTimeout(() => s.destroy(), this.idleCloseMs);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString('latin1');
        const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
        const len = m ? Number(m[1]) : 0;
        if (buf.length < end + 4 + len) return;
        const body = buf.subarray(end + 4, end + 4 + len).toString();
        buf = buf.subarray(end + 4 + len);
        if (timer !== undefined && performance.now() - idleSince >= this.idleCloseMs - this.raceWindowMs) {
          // Too close to the idle deadline: on a real network the server would already have closed.
          this.dropped++;
          clearTimeout(timer);
          timer = undefined;
          s.resetAndDestroy();
          return;
        }
        if (timer !== undefined) { clearTimeout(timer); timer = undefined; }
        this.answered++;
        this.bodies.push(body);
        s.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok');
        idleSince = performance.now();
        timer = setTimeout(() => s.destroy(), this.idleCloseMs);
      }
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
