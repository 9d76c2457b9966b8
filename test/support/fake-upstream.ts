/**
 * A scriptable upstream on 127.0.0.1:0 that records what it saw and misbehaves on purpose:
 * fixed status sequences, latency, hangs, resets, and its own id in every response.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

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
