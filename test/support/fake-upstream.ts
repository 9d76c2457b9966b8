/**
 * Scriptable upstreams on 127.0.0.1:0 that record what they saw and misbehave on purpose, made by one builder:
 * `fakeUpstream().http1().route('/', 200, 'ok').failTimes(2, 503).latency(50).start()`, `.http2()`, `.grpc()`,
 * `.tcp().echo()`, `.websocket()`. Also a raw keep-alive server that models the keep-alive race.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import http2 from 'node:http2';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  rawHeaders: string[];
  body: string;
  remotePort: number;
}

export type Behaviour = (req: IncomingMessage, res: ServerResponse, n: number, body: string) => void | 'handled';

/** A route's body: fixed, or made from the request (e.g. `(r) => \`app ${r.url}\``). */
export type RouteBody = string | ((req: SeenRequest) => string);

/** A fixed answer for a path (exact, or a prefix when it ends in `*`). */
interface Route { path: string; prefix: boolean; status: number; body: RouteBody; headers: Record<string, string>; latencyMs: number | undefined }

interface Answer { kind: 'failure' | 'route' | 'echo'; status: number; body: string; headers: Record<string, string> }

/**
 * What an HTTP-speaking fake answers, shared by the HTTP/1, HTTP/2 and gRPC modes: first the scripted failures
 * (`failTimes`, `statusSequence`), then the first matching route, else 200 with a JSON echo of the request (its
 * id, method, url, headers and body). gRPC: statuses are grpc-status codes, in trailers of a 200.
 */
class Script {
  readonly routes: Route[] = [];
  readonly failures: number[] = [];
  latencyMs = 0;
  /** Never answer (the request is recorded, its stream or connection left open). */
  hang = false;

  answer(id: string, url: string, body: string, seen: SeenRequest): Answer {
    if (this.failures.length > 0) {
      const status = this.failures.shift()!;
      return { kind: 'failure', status, body: `${id} fails with ${status}`, headers: { 'x-upstream-id': id } };
    }
    const path = url.split('?')[0]!;
    for (const r of this.routes) {
      if (r.prefix ? path.startsWith(r.path) : path === r.path) {
        return { kind: 'route', status: r.status, body: typeof r.body === 'function' ? r.body(seen) : r.body, headers: { 'x-upstream-id': id, ...r.headers } };
      }
    }
    return {
      kind: 'echo',
      status: 200,
      body: JSON.stringify({ id, method: seen.method, url: seen.url, headers: seen.headers, body }),
      headers: { 'content-type': 'application/json', 'x-upstream-id': id },
    };
  }

  route(path: string, status: number, body: RouteBody, headers: Record<string, string>, latencyMs?: number): void {
    const prefix = path.endsWith('*');
    this.routes.push({ path: prefix ? path.slice(0, -1) : path, prefix, status, body, headers, latencyMs });
  }

  /** How long to wait before answering `url`: its route's own latency, else the upstream's. */
  delayFor(url: string): number {
    const path = url.split('?')[0]!;
    const r = this.routes.find((x) => (x.prefix ? path.startsWith(x.path) : path === x.path));
    return r?.latencyMs ?? this.latencyMs;
  }
}

/** An HTTP/1.1 upstream (node:http). */
export class FakeUpstream {
  readonly mode: 'http1' = 'http1';
  readonly requests: SeenRequest[] = [];
  private server: Server;
  private sockets = new Set<Socket>();
  private behaviour: Behaviour | undefined;
  /** @internal */
  readonly script = new Script();
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

  /** Answer with these statuses in order, then as scripted (routes, else 200). */
  statusSequence(...s: number[]): this { this.script.failures.push(...s); return this; }
  latency(ms: number): this { this.script.latencyMs = ms; return this; }
  behave(b: Behaviour): this { this.behaviour = b; return this; }

  /** Listen on `host`, on `port` (0: any free one). */
  async start(host = '127.0.0.1', port = 0): Promise<this> {
    await new Promise<void>((r) => this.server.listen(port, host, r));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      const seen: SeenRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body, remotePort: req.socket.remotePort ?? 0 };
      this.requests.push(seen);
      const n = this.requests.length;
      if (this.behaviour && this.behaviour(req, res, n, body) === 'handled') return;
      if (this.script.hang) return;
      const send = (): void => {
        if (res.destroyed) return;
        const a = this.script.answer(this.id, req.url ?? '/', body, seen);
        res.writeHead(a.status, a.headers);
        res.end(a.body);
      };
      const delay = this.script.delayFor(req.url ?? '/');
      if (delay > 0) setTimeout(send, delay); else send();
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

/**
 * An HTTP/2 upstream (node:http2, cleartext with prior knowledge), or a gRPC one: in gRPC mode every call is answered
 * 200 `application/grpc` with its request message echoed (or the route's body as the message) and `grpc-status` in
 * the trailers (a scripted failure or a route status is that grpc-status code).
 */
export class FakeH2Upstream {
  readonly requests: SeenRequest[] = [];
  readonly script = new Script();
  private readonly server: http2.Http2Server;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  port = 0;
  connections = 0;

  constructor(readonly id: string, readonly mode: 'http2' | 'grpc') {
    this.server = http2.createServer();
    this.server.on('session', (s: http2.ServerHttp2Session) => {
      this.connections++;
      this.sessions.add(s);
      s.on('close', () => this.sessions.delete(s));
      s.on('error', () => { /* a peer reset */ });
    });
    this.server.on('stream', (st, headers) => this.handle(st, headers));
  }

  /** Listen on `host`, on `port` (0: any free one). */
  async start(host = '127.0.0.1', port = 0): Promise<this> {
    await new Promise<void>((r) => this.server.listen(port, host, r));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  private handle(st: http2.ServerHttp2Stream, h: http2.IncomingHttpHeaders): void {
    st.on('error', () => { /* reset by the peer */ });
    const chunks: Buffer[] = [];
    st.on('data', (c: Buffer) => chunks.push(c));
    st.on('end', () => {
      const raw = Buffer.concat(chunks);
      const url = String(h[':path'] ?? '/');
      const headers: IncomingMessage['headers'] = {};
      const rawHeaders: string[] = [];
      for (const [k, v] of Object.entries(h)) {
        if (k.startsWith(':')) { if (k === ':authority') { headers.host = String(v); rawHeaders.push('host', String(v)); } continue; }
        headers[k] = v as string;
        rawHeaders.push(k, Array.isArray(v) ? v.join(', ') : String(v));
      }
      const seen: SeenRequest = { method: String(h[':method'] ?? 'GET'), url, headers, rawHeaders, body: raw.toString(), remotePort: st.session?.socket?.remotePort ?? 0 };
      this.requests.push(seen);
      if (this.script.hang) return;
      const send = (): void => {
        if (st.destroyed || st.closed) return;
        const a = this.script.answer(this.id, url, seen.body, seen);
        if (this.mode === 'grpc') {
          // gRPC: a failure's or a route's status is its grpc-status; a route's body is the reply message, and
          // without a route the request's own (length-prefixed) messages come back.
          const code = a.kind === 'echo' ? 0 : a.status;
          const reply = a.kind === 'echo' ? raw : a.kind === 'route' && code === 0 ? grpcMessage(Buffer.from(a.body)) : undefined;
          st.respond({ ':status': 200, 'content-type': 'application/grpc', 'x-upstream-id': this.id }, { waitForTrailers: true });
          st.on('wantTrailers', () => st.sendTrailers(code === 0 ? { 'grpc-status': '0' } : { 'grpc-status': String(code), 'grpc-message': a.body }));
          st.end(reply);
          return;
        }
        st.respond({ ':status': a.status, ...a.headers });
        st.end(a.body);
      };
      const delay = this.script.delayFor(url);
      if (delay > 0) setTimeout(send, delay); else send();
    });
  }

  url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async close(): Promise<void> {
    for (const s of this.sessions) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** A gRPC length-prefixed message (uncompressed). */
export function grpcMessage(payload: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

/** A raw TCP upstream: echo (the default), a banner first (server-speaks-first protocols), or silence. */
export class FakeTcpUpstream {
  readonly mode: 'tcp' = 'tcp';
  readonly id: string;
  /** Bytes received, per connection in accept order. */
  readonly received: Buffer[][] = [];
  /** Requests are not parsed in TCP mode: always empty (the common shape of every fake). */
  readonly requests: SeenRequest[] = [];
  private readonly server: NetServer;
  private readonly sockets = new Set<Socket>();
  port = 0;
  connections = 0;

  constructor(id: string, readonly behaviour: { echo: boolean; banner: string | undefined; latencyMs: number }) {
    this.id = id;
    this.server = createNetServer({ allowHalfOpen: true }, (s) => this.accept(s));
  }

  /** Listen on `host`, on `port` (0: any free one). */
  async start(host = '127.0.0.1', port = 0): Promise<this> {
    await new Promise<void>((r) => this.server.listen(port, host, r));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  /** Bytes received on every connection so far. */
  get bytesReceived(): number {
    let n = 0;
    for (const c of this.received) for (const b of c) n += b.length;
    return n;
  }

  private accept(s: Socket): void {
    this.connections++;
    this.sockets.add(s);
    const chunks: Buffer[] = [];
    this.received.push(chunks);
    s.on('error', () => { /* the peer reset */ });
    s.on('close', () => this.sockets.delete(s));
    const b = this.behaviour;
    if (b.banner !== undefined) s.write(b.banner);
    s.on('data', (d: Buffer) => {
      chunks.push(d);
      if (!b.echo) return;
      if (b.latencyMs > 0) setTimeout(() => { if (!s.destroyed) s.write(d); }, b.latencyMs);
      else s.write(d);
    });
    // Half-close passed back: the client's FIN ends our side once the echo is written.
    s.on('end', () => { if (b.latencyMs > 0) setTimeout(() => s.end(), b.latencyMs); else s.end(); });
  }

  url(): string {
    return `tcp://127.0.0.1:${this.port}`;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** A WebSocket upstream (`ws`): echoes every message; plain HTTP requests are answered as scripted. */
export class FakeWsUpstream {
  readonly mode: 'websocket' = 'websocket';
  /** Handshakes (and plain requests) seen. */
  readonly requests: SeenRequest[] = [];
  /** Messages received, as text. */
  readonly messages: string[] = [];
  readonly script = new Script();
  private readonly http: Server;
  private readonly wss: WebSocketServer;
  private readonly sockets = new Set<WebSocket>();
  port = 0;
  connections = 0;

  constructor(readonly id: string) {
    this.http = createServer((req, res) => {
      this.requests.push(seenOf(req, ''));
      const a = this.script.answer(this.id, req.url ?? '/', '', this.requests[this.requests.length - 1]!);
      res.writeHead(a.status, a.headers).end(a.body);
    });
    this.http.on('connection', () => { this.connections++; });
    this.wss = new WebSocketServer({ server: this.http });
    this.wss.on('connection', (ws, req) => {
      this.requests.push(seenOf(req, ''));
      this.sockets.add(ws);
      ws.on('message', (data, binary) => {
        this.messages.push((data as Buffer).toString());
        ws.send(data as Buffer, { binary });
      });
      ws.on('close', () => this.sockets.delete(ws));
      ws.on('error', () => { /* the peer reset */ });
    });
  }

  /** Listen on `host`, on `port` (0: any free one). */
  async start(host = '127.0.0.1', port = 0): Promise<this> {
    await new Promise<void>((r) => this.http.listen(port, host, r));
    this.port = (this.http.address() as AddressInfo).port;
    return this;
  }

  url(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  async close(): Promise<void> {
    for (const ws of this.sockets) ws.terminate();
    this.wss.close();
    this.http.closeAllConnections();
    await new Promise<void>((r) => this.http.close(() => r()));
  }
}

function seenOf(req: IncomingMessage, body: string): SeenRequest {
  return { method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body, remotePort: req.socket.remotePort ?? 0 };
}

export type UpstreamMode = 'http1' | 'http2' | 'grpc' | 'tcp' | 'websocket';
type UpstreamOf<M extends UpstreamMode> = M extends 'http1' ? FakeUpstream : M extends 'http2' | 'grpc' ? FakeH2Upstream : M extends 'tcp' ? FakeTcpUpstream : FakeWsUpstream;
/** Any fake upstream: what every mode has in common. */
export type AnyUpstream = FakeUpstream | FakeH2Upstream | FakeTcpUpstream | FakeWsUpstream;

/**
 * The one way to describe a fake upstream. Pick the protocol (`http1()` is the default), script its answers, then
 * `start()` it on 127.0.0.1:0. HTTP modes: `route`, `failTimes`, `latency`, `hang`; TCP: `echo` (default), `banner`,
 * `silent`; WebSocket: echoes messages.
 */
export class UpstreamBuilder<M extends UpstreamMode = 'http1'> {
  private kind: UpstreamMode = 'http1';
  private name = 'upstream';
  private readonly script = new Script();
  private keepAliveTimeout: number | undefined;
  private tcpEcho = true;
  private tcpBanner: string | undefined;
  private host = '127.0.0.1';
  private listenPort = 0;

  /** The id the upstream reports (`x-upstream-id`, the JSON echo's `id`). */
  id(name: string): this { this.name = name; return this; }
  /** Listen on another loopback address (127.0.0.2 …, ::1). */
  on(host: string): this { this.host = host; return this; }
  /** Listen on this port instead of a free one (e.g. the same port on several loopback addresses). */
  port(n: number): this { this.listenPort = n; return this; }
  http1(opts: { keepAliveTimeout?: number } = {}): UpstreamBuilder<'http1'> { this.kind = 'http1'; this.keepAliveTimeout = opts.keepAliveTimeout; return this as unknown as UpstreamBuilder<'http1'>; }
  http2(): UpstreamBuilder<'http2'> { this.kind = 'http2'; return this as unknown as UpstreamBuilder<'http2'>; }
  grpc(): UpstreamBuilder<'grpc'> { this.kind = 'grpc'; return this as unknown as UpstreamBuilder<'grpc'>; }
  tcp(): UpstreamBuilder<'tcp'> { this.kind = 'tcp'; return this as unknown as UpstreamBuilder<'tcp'>; }
  websocket(): UpstreamBuilder<'websocket'> { this.kind = 'websocket'; return this as unknown as UpstreamBuilder<'websocket'>; }

  /**
   * Answer `path` (exact; a prefix when it ends in `*`) with this status, body (or a function of the request) and
   * headers; `latencyMs`: this route answers that long after the request (instead of `latency`).
   */
  route(path: string, status = 200, body: RouteBody = '', headers: Record<string, string> = {}, opts: { latencyMs?: number } = {}): this {
    this.script.route(path, status, body, headers, opts.latencyMs);
    return this;
  }
  /** The first `n` requests get `status` (gRPC: a grpc-status code), whatever the routes say. */
  failTimes(n: number, status: number): this { for (let i = 0; i < n; i++) this.script.failures.push(status); return this; }
  /** Answer (TCP: echo) this long after the request. */
  latency(ms: number): this { this.script.latencyMs = ms; return this; }
  /** Take requests and never answer them. */
  hang(): this { this.script.hang = true; return this; }
  /** TCP: send every byte back (the default). */
  echo(): this { this.tcpEcho = true; return this; }
  /** TCP: say this first, as a server-speaks-first protocol (SMTP, MySQL, SSH) does. */
  banner(text: string): this { this.tcpBanner = text; return this; }
  /** TCP: read and say nothing. */
  silent(): this { this.tcpEcho = false; return this; }

  async start(): Promise<UpstreamOf<M>> {
    const copy = (s: Script): void => {
      s.routes.push(...this.script.routes);
      s.failures.push(...this.script.failures);
      s.latencyMs = this.script.latencyMs;
      s.hang = this.script.hang;
    };
    let u: AnyUpstream;
    switch (this.kind) {
      case 'http1': {
        const f = new FakeUpstream(this.name, this.keepAliveTimeout !== undefined ? { keepAliveTimeout: this.keepAliveTimeout } : {});
        copy(f.script);
        u = f;
        break;
      }
      case 'http2':
      case 'grpc': {
        const f = new FakeH2Upstream(this.name, this.kind);
        copy(f.script);
        u = f;
        break;
      }
      case 'tcp':
        u = new FakeTcpUpstream(this.name, { echo: this.tcpEcho, banner: this.tcpBanner, latencyMs: this.script.latencyMs });
        break;
      case 'websocket': {
        const f = new FakeWsUpstream(this.name);
        copy(f.script);
        u = f;
        break;
      }
    }
    await u.start(this.host, this.listenPort);
    return u as UpstreamOf<M>;
  }
}

/**
 * `fakeUpstream()` starts a builder (see UpstreamBuilder); `fakeUpstream(id, opts)` is the older shorthand for a
 * started HTTP/1 upstream with that id.
 */
export function fakeUpstream(): UpstreamBuilder;
export function fakeUpstream(id: string, opts?: { keepAliveTimeout?: number }): Promise<FakeUpstream>;
export function fakeUpstream(id?: string, opts?: { keepAliveTimeout?: number }): UpstreamBuilder | Promise<FakeUpstream> {
  if (id === undefined) return new UpstreamBuilder();
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
