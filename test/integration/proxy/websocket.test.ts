/**
 * WebSocket (HTTP/1.1 Upgrade) through Remora with real sockets: `ws` clients and servers, Remora started through
 * the real CLI. Routing by a VirtualService with two weighted subsets, header edits on the handshake, messages both
 * ways (1 MB and bursts under backpressure), closes from each side, a refused upgrade, an unasked 101 (502 UPE),
 * bytes that ride with either head, a tunnel across a config reload, the inbound listener, the idle timeout, drain,
 * metrics and the access-log line at close. The byte pipe under the tunnel is driven in process in
 * test/integration/proxy/byte-pipe.test.ts.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { request } from 'undici';
import { startProxy, waitFor, type RunningProxy } from '../../support/proxy-harness.js';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const acceptKey = (key: string): string => createHash('sha1').update(key + GUID).digest('base64');

/** A WebSocket echo server: "id?" is answered "id:<id>", anything else comes back as sent (text or binary). */
class WsUpstream {
  readonly http: Server;
  readonly wss: WebSocketServer;
  readonly handshakes: IncomingMessage[] = [];
  readonly sockets = new Set<WebSocket>();
  readonly closes: Array<{ code: number; reason: string }> = [];
  port = 0;

  /** Handshakes answered so far (refused ones included). */
  upgrades = 0;

  /** `refuse`: answer every handshake with this status; `failFirst`: answer the first N with 503. */
  constructor(readonly id: string, opts: { refuse?: number; failFirst?: number } = {}) {
    this.http = createServer((_req, res) => { res.writeHead(200, { 'content-type': 'text/plain' }).end(`plain ${id}`); });
    this.wss = new WebSocketServer({
      noServer: true,
      ...(opts.refuse !== undefined ? { verifyClient: (_info: unknown, cb: (ok: boolean, code?: number, msg?: string) => void) => cb(false, opts.refuse, 'Go away') } : {}),
    });
    this.http.on('upgrade', (req: IncomingMessage, sock: net.Socket, head: Buffer) => {
      if (this.upgrades++ < (opts.failFirst ?? 0)) {
        sock.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
        return;
      }
      this.wss.handleUpgrade(req, sock, head, (ws) => this.wss.emit('connection', ws, req));
    });
    this.wss.on('connection', (ws, req) => {
      this.handshakes.push(req);
      this.sockets.add(ws);
      ws.on('message', (data: RawData, binary: boolean) => {
        const buf = data as Buffer;
        if (!binary && buf.toString() === 'id?') ws.send(`id:${this.id}`);
        else ws.send(buf, { binary });
      });
      ws.on('close', (code, reason) => { this.sockets.delete(ws); this.closes.push({ code, reason: reason.toString() }); });
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.http.listen(0, '127.0.0.1', r));
    this.port = (this.http.address() as AddressInfo).port;
    return this;
  }

  async close(): Promise<void> {
    for (const ws of this.sockets) ws.terminate();
    this.wss.close();
    this.http.closeAllConnections();
    await new Promise<void>((r) => this.http.close(() => r()));
  }
}

/** A raw TCP server for upstreams that misbehave on purpose; `onRequest` gets each request head as it arrives. */
class RawUpstream {
  readonly server: net.Server;
  readonly sockets = new Set<net.Socket>();
  connections = 0;
  port = 0;

  constructor(onHead: (sock: net.Socket, head: string) => void) {
    this.server = net.createServer((sock) => {
      this.connections++;
      this.sockets.add(sock);
      sock.on('close', () => this.sockets.delete(sock));
      sock.on('error', () => { /* the test looks at the client side */ });
      let buf = '';
      sock.on('data', (d: Buffer) => {
        buf += d.toString('latin1');
        let i: number;
        while ((i = buf.indexOf('\r\n\r\n')) >= 0) {
          const head = buf.slice(0, i);
          buf = buf.slice(i + 4);
          onHead(sock, head);
        }
      });
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** Messages of one client in arrival order, awaited one at a time. */
class Inbox {
  private readonly queue: Array<{ data: Buffer; binary: boolean }> = [];
  private waiter: (() => void) | undefined;
  closed: { code: number; reason: string } | undefined;
  private closeWaiter: (() => void) | undefined;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: RawData, binary: boolean) => { this.queue.push({ data: data as Buffer, binary }); this.waiter?.(); });
    ws.on('close', (code, reason) => { this.closed = { code, reason: reason.toString() }; this.closeWaiter?.(); this.waiter?.(); });
  }

  async next(ms = 5000): Promise<{ data: Buffer; binary: boolean }> {
    const end = Date.now() + ms;
    while (this.queue.length === 0) {
      if (this.closed !== undefined) throw new Error(`closed (${this.closed.code}) while waiting for a message`);
      const left = end - Date.now();
      if (left <= 0) throw new Error('no message within the time limit');
      await new Promise<void>((r) => { const t = setTimeout(r, left); this.waiter = () => { clearTimeout(t); r(); }; });
      this.waiter = undefined;
    }
    return this.queue.shift()!;
  }

  async text(ms?: number): Promise<string> {
    return (await this.next(ms)).data.toString();
  }

  async whenClosed(ms = 5000): Promise<{ code: number; reason: string }> {
    if (this.closed === undefined) {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('not closed within the time limit')), ms);
        this.closeWaiter = () => { clearTimeout(t); resolve(); };
      });
    }
    return this.closed!;
  }
}

interface Client { ws: WebSocket; inbox: Inbox; response: IncomingMessage }

/** Open a WebSocket to a Remora listener with the given Host. */
function connect(port: number, host: string, path = '/chat', headers: Record<string, string> = {}): Promise<Client> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers: { host, ...headers } });
  const inbox = new Inbox(ws);
  return new Promise((resolve, reject) => {
    let response: IncomingMessage | undefined;
    ws.once('upgrade', (res) => { response = res; });
    ws.once('open', () => resolve({ ws, inbox, response: response! }));
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`unexpected response ${res.statusCode}`), { statusCode: res.statusCode })));
    ws.once('error', reject);
  });
}

/** A raw socket to a listener, for what a WebSocket client would not do (bytes after the head, reading the refusal). */
async function rawSocket(port: number): Promise<{ sock: net.Socket; received: () => Buffer; closed: Promise<void> }> {
  const sock = net.connect({ port, host: '127.0.0.1' });
  let got = Buffer.alloc(0);
  sock.on('data', (d: Buffer) => { got = Buffer.concat([got, d]); });
  sock.on('error', () => { /* the close is what the tests look at */ });
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  await new Promise<void>((r, j) => { sock.once('connect', r); sock.once('error', j); });
  return { sock, received: () => got, closed };
}

/** A masked client text frame (RFC 6455 §5.2), payload < 126 bytes. */
function clientTextFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = randomBytes(4);
  const out = Buffer.alloc(2 + 4 + payload.length);
  out[0] = 0x81;
  out[1] = 0x80 | payload.length;
  mask.copy(out, 2);
  for (let i = 0; i < payload.length; i++) out[6 + i] = payload[i]! ^ mask[i % 4]!;
  return out;
}

/** An unmasked server text frame, payload < 126 bytes. */
function serverTextFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  return Buffer.concat([Buffer.from([0x81, payload.length]), payload]);
}

function upgradeRequest(host: string, path = '/chat', key = randomBytes(16).toString('base64'), connection = 'Upgrade'): string {
  return `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: ${connection}\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

const serviceEntry = (name: string, endpoints: Array<{ port: number; version?: string }>): string => `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${name}, namespace: default}
spec:
  hosts: [${name}.default.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
${endpoints.map((e) => `  - {address: 127.0.0.1, ports: {http: ${e.port}}${e.version ? `, labels: {version: ${e.version}}` : ''}}`).join('\n')}
`;

const destinationRule = `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: chat, namespace: default}
spec:
  host: chat
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
`;

const weighted = (w1: number, w2: number): string => `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: chat, namespace: default}
spec:
  hosts: [chat]
  http:
  - headers:
      request: {set: {x-route: chat}}
      response: {add: {x-resp: added}}
    route:
    - {destination: {host: chat, subset: v1}, weight: ${w1}}
    - {destination: {host: chat, subset: v2}, weight: ${w2}}
`;

async function metrics(p: RunningProxy): Promise<string> {
  return (await p.admin('/stats/prometheus')).body;
}

/** The value of the first series of `name` whose labels contain every `want` pair (0 when there is none). */
function metric(text: string, name: string, want: Record<string, string>): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (!Object.entries(want).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

function logLines(path: string): Array<Record<string, unknown>> {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

let v1: WsUpstream;
let v2: WsUpstream;
let refuser: WsUpstream;
let flaky: WsUpstream;
let raw101: RawUpstream;
let early: RawUpstream;
const tmp = mkdtempSync(join(tmpdir(), 'remora-ws-'));

beforeAll(async () => {
  v1 = await new WsUpstream('v1').start();
  v2 = await new WsUpstream('v2').start();
  refuser = await new WsUpstream('refuser', { refuse: 403 }).start();
  flaky = await new WsUpstream('flaky', { failFirst: 1 }).start();
  // Answers 101 to anything, asked or not.
  raw101 = await new RawUpstream((sock) => { sock.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: Upgrade\r\n\r\n'); }).start();
  // A WebSocket server whose first frame leaves in the same write as its 101 head.
  early = await new RawUpstream((sock, head) => {
    const key = /sec-websocket-key: *(\S+)/i.exec(head)?.[1] ?? '';
    sock.write(Buffer.concat([
      Buffer.from(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(key)}\r\n\r\n`, 'latin1'),
      serverTextFrame('hello from the first write'),
    ]));
  }).start();
});

afterAll(async () => {
  await Promise.all([v1.close(), v2.close(), refuser.close(), flaky.close(), raw101.close(), early.close()]);
  rmSync(tmp, { recursive: true, force: true });
});

describe('WebSocket through the outbound listener', () => {
  let p: RunningProxy;
  const log = join(tmp, 'outbound.log');
  beforeAll(async () => {
    p = await startProxy({
      'chat.yaml': serviceEntry('chat', [{ port: v1.port, version: 'v1' }, { port: v2.port, version: 'v2' }]) + '---' + destinationRule + '---' + weighted(50, 50),
      'misc.yaml': [
        serviceEntry('refuse', [{ port: refuser.port }]),
        serviceEntry('raw101', [{ port: raw101.port }]),
        serviceEntry('early', [{ port: early.port }]),
        serviceEntry('flaky', [{ port: flaky.port }]),
        `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: flaky, namespace: default}
spec:
  hosts: [flaky]
  http: [{route: [{destination: {host: flaky}}], retries: {attempts: 2, retryOn: 5xx}}]
`,
      ].join('---'),
    }, ['--access-log', log, '--access-log-format', 'json']);
  });
  afterAll(async () => { await p.stop(); });

  it('routes each handshake by the VirtualService: both weighted subsets get tunnels, with the route header edits both ways', async () => {
    const seen = new Map<string, number>();
    const clients: Client[] = [];
    for (let i = 0; i < 24 && seen.size < 2; i++) {
      const c = await connect(p.info.outbound, 'chat');
      clients.push(c);
      c.ws.send('id?');
      const id = await c.inbox.text();
      seen.set(id, (seen.get(id) ?? 0) + 1);
      expect(c.response.statusCode).toBe(101);
      expect(c.response.headers['x-resp']).toBe('added');
      expect(c.response.headers.upgrade).toBe('websocket');
      expect(Number(c.response.headers['x-envoy-upstream-service-time'])).toBeGreaterThanOrEqual(0);
    }
    expect([...seen.keys()].sort()).toEqual(['id:v1', 'id:v2']);
    // The upstream got the handshake headers (hop-by-hop Upgrade/Connection kept for this request) and the route's edit.
    const hs = [...v1.handshakes, ...v2.handshakes].at(-1)!;
    expect(hs.headers.upgrade).toBe('websocket');
    expect(hs.headers.connection).toBe('Upgrade');
    expect(hs.headers['x-route']).toBe('chat');
    expect(hs.headers['x-request-id']).toBeTruthy();
    expect(metric(await metrics(p), 'remora_tunnels_active', { direction: 'outbound' })).toBe(clients.length);
    for (const c of clients) c.ws.close();
    await Promise.all(clients.map((c) => c.inbox.whenClosed()));
    await waitFor(async () => metric(await metrics(p), 'remora_tunnels_active', { direction: 'outbound' }) === 0);
  });

  it('carries messages both ways: text, binary, 1 MB, and a 16 MB burst in order', async () => {
    const c = await connect(p.info.outbound, 'chat');
    c.ws.send('hello');
    expect(await c.inbox.text()).toBe('hello');
    const bin = randomBytes(1000);
    c.ws.send(bin);
    const b = await c.inbox.next();
    expect(b.binary).toBe(true);
    expect(b.data.equals(bin)).toBe(true);
    const big = randomBytes(1024 * 1024);
    c.ws.send(big);
    const echoed = await c.inbox.next(10_000);
    expect(echoed.data.length).toBe(big.length);
    expect(sha(echoed.data)).toBe(sha(big));
    // A burst larger than the socket buffers: the echo server reads while the client still writes.
    const burst = Array.from({ length: 16 }, () => randomBytes(1024 * 1024));
    for (const m of burst) c.ws.send(m);
    for (const m of burst) expect(sha((await c.inbox.next(20_000)).data)).toBe(sha(m));
    c.ws.close(1000, 'done');
    expect((await c.inbox.whenClosed()).code).toBe(1000);
  }, 60_000);

  it('a client close and a server close both reach the other side, and each tunnel is recorded once at close', async () => {
    // Client side first.
    const a = await connect(p.info.outbound, 'chat', '/closes');
    a.ws.send('id?');
    const aId = (await a.inbox.text()).slice(3);
    const aServer = aId === 'v1' ? v1 : v2;
    const closesBefore = aServer.closes.length;
    a.ws.close(4000, 'client bye');
    expect(await a.inbox.whenClosed()).toEqual({ code: 4000, reason: 'client bye' });
    await waitFor(() => aServer.closes.length > closesBefore);
    expect(aServer.closes.at(-1)).toEqual({ code: 4000, reason: 'client bye' });
    // Server side first.
    const b = await connect(p.info.outbound, 'chat', '/closes');
    b.ws.send('id?');
    const bId = (await b.inbox.text()).slice(3);
    const bServer = bId === 'v1' ? v1 : v2;
    const [serverWs] = [...bServer.sockets].slice(-1);
    serverWs!.close(4001, 'server bye');
    expect(await b.inbox.whenClosed()).toEqual({ code: 4001, reason: 'server bye' });
    // Both recorded once, at close: status 101, bytes both ways, a duration, no flag.
    const mine = (): Array<Record<string, unknown>> => logLines(log).filter((l) => l.path === '/closes');
    await waitFor(() => mine().length >= 2);
    await new Promise((r) => setTimeout(r, 200));
    const lines = mine();
    expect(lines).toHaveLength(2);
    for (const l of lines) {
      expect(l.response_code).toBe(101);
      expect(l.response_flags).toBe('-');
      expect(l.bytes_received).toBeGreaterThan(0); // the client's frames (id?, close)
      expect(l.bytes_sent).toBeGreaterThan(0); // the server's frames (id:…, close)
      expect(l.authority).toBe('chat');
      expect(String(l.upstream_cluster)).toMatch(/^outbound\|80\|v[12]\|chat\.default\.svc\.cluster\.local$/);
    }
    const m = await metrics(p);
    expect(metric(m, 'istio_requests_total', { response_code: '101', destination_service: 'chat.default.svc.cluster.local' })).toBeGreaterThanOrEqual(2);
    expect(metric(m, 'remora_tunnels_total', { direction: 'outbound' })).toBeGreaterThanOrEqual(2);
  });

  it('a handshake answered 503 is retried like any request before the response; the retry gets the tunnel', async () => {
    const c = await connect(p.info.outbound, 'flaky');
    c.ws.send('id?');
    expect(await c.inbox.text()).toBe('id:flaky');
    expect(flaky.upgrades).toBe(2);
    c.ws.close();
    await c.inbox.whenClosed();
  });

  it('an upstream refusing the upgrade: its answer is relayed, then the client connection closes', async () => {
    await expect(connect(p.info.outbound, 'refuse')).rejects.toMatchObject({ statusCode: 403 });
    const r = await rawSocket(p.info.outbound);
    // A pipelined request behind the upgrade is never read: the connection ends with the refusal.
    r.sock.write(upgradeRequest('refuse') + 'GET /after HTTP/1.1\r\nHost: refuse\r\n\r\n');
    await r.closed;
    const text = r.received().toString('latin1');
    expect(text).toMatch(/^HTTP\/1\.1 403 /);
    expect(text).toMatch(/\r\nConnection: close\r\n/i);
    expect(text).toMatch(/Go away$/);
    expect(text.match(/HTTP\/1\.1/g)).toHaveLength(1);
  });

  it('a 101 to a request that did not ask for an upgrade is a 502 UPE, and that upstream connection is not reused', async () => {
    const before = raw101.connections;
    for (let i = 0; i < 2; i++) {
      const r = await request(`http://127.0.0.1:${p.info.outbound}/x`, { headers: { host: 'raw101' } });
      expect(r.statusCode).toBe(502);
      expect(r.headers['x-remora-proxy-error']).toMatch(/^UPE upstream_reset_before_response_started\{protocol_error\}/);
      await r.body.text();
    }
    expect(raw101.connections - before).toBe(2);
  });

  it('bytes the upstream sent in the same write as its 101 head reach the client', async () => {
    const c = await connect(p.info.outbound, 'early');
    expect(await c.inbox.text()).toBe('hello from the first write');
    c.ws.terminate();
  });

  it('bytes the client sent in the same write as its request head reach the upstream', async () => {
    const r = await rawSocket(p.info.outbound);
    const key = randomBytes(16).toString('base64');
    // Firefox's `Connection: keep-alive, Upgrade`, and a frame right behind the head.
    r.sock.write(Buffer.concat([Buffer.from(upgradeRequest('chat', '/chat', key, 'keep-alive, Upgrade'), 'latin1'), clientTextFrame('id?')]));
    await waitFor(() => /\r\n\r\n\x81\x05id:v[12]/.test(r.received().toString('latin1')));
    const text = r.received().toString('latin1');
    expect(text).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\n/);
    expect(text).toContain(`Sec-WebSocket-Accept: ${acceptKey(key)}`);
    r.sock.destroy();
  });
});

describe('a tunnel across a config reload', () => {
  it('keeps its upstream while the route moves; new handshakes follow the new route', async () => {
    const p = await startProxy({
      'chat.yaml': serviceEntry('chat', [{ port: v1.port, version: 'v1' }, { port: v2.port, version: 'v2' }]) + '---' + destinationRule,
      'vs.yaml': weighted(100, 0),
    });
    try {
      const old = await connect(p.info.outbound, 'chat');
      old.ws.send('id?');
      expect(await old.inbox.text()).toBe('id:v1');
      const version = JSON.parse((await p.admin('/config_dump')).body).version as number;
      p.writeConfig('vs.yaml', weighted(0, 100));
      await waitFor(async () => JSON.parse((await p.admin('/config_dump')).body).version > version, 5000);
      const fresh = await connect(p.info.outbound, 'chat');
      fresh.ws.send('id?');
      expect(await fresh.inbox.text()).toBe('id:v2');
      // The old tunnel still goes to v1, both ways, large messages included.
      old.ws.send('id?');
      expect(await old.inbox.text()).toBe('id:v1');
      const big = randomBytes(512 * 1024);
      old.ws.send(big);
      expect(sha((await old.inbox.next(10_000)).data)).toBe(sha(big));
      // And after a second reload that removes the VirtualService altogether.
      p.writeConfig('vs.yaml', '');
      await waitFor(async () => JSON.parse((await p.admin('/config_dump')).body).version > version + 1, 5000);
      old.ws.send('still here');
      expect(await old.inbox.text()).toBe('still here');
      old.ws.close();
      fresh.ws.close();
      await Promise.all([old.inbox.whenClosed(), fresh.inbox.whenClosed()]);
    } finally {
      await p.stop();
    }
  });
});

describe('the inbound listener, the idle timeout and drain', () => {
  it('tunnels inbound to the app port, under the AuthorizationPolicy, and records reporter=destination with 101', async () => {
    const p = await startProxy({
      'chat.yaml': serviceEntry('chat', [{ port: v1.port }]),
      'authz.yaml': `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-private, namespace: default}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: ["/private"]}}]}]
`,
    }, ['--app-port', String(v1.port), '--labels', 'app=chat', '--namespace', 'default']);
    try {
      await expect(connect(p.info.inbound, `chat:${v1.port}`, '/private')).rejects.toMatchObject({ statusCode: 403 });
      const c = await connect(p.info.inbound, `chat:${v1.port}`);
      c.ws.send('id?');
      expect(await c.inbox.text()).toBe('id:v1');
      const big = randomBytes(1024 * 1024);
      c.ws.send(big);
      expect(sha((await c.inbox.next(10_000)).data)).toBe(sha(big));
      expect(metric(await metrics(p), 'remora_tunnels_active', { direction: 'inbound' })).toBe(1);
      c.ws.close();
      await c.inbox.whenClosed();
      await waitFor(async () => metric(await metrics(p), 'istio_requests_total', { reporter: 'destination', response_code: '101' }) === 1);
      expect(metric(await metrics(p), 'remora_tunnels_active', { direction: 'inbound' })).toBe(0);
    } finally {
      await p.stop();
    }
  });

  it('--tunnel-idle-timeout closes a tunnel nothing moved through (flag SI), not one in use', async () => {
    const log = join(tmp, 'idle.log');
    const p = await startProxy({ 'chat.yaml': serviceEntry('chat', [{ port: v1.port }]) }, ['--tunnel-idle-timeout', '600ms', '--access-log', log, '--access-log-format', 'json']);
    try {
      const c = await connect(p.info.outbound, 'chat');
      const t0 = Date.now();
      // In use: a message every 200 ms for 1.4 s keeps it open past the timeout.
      let lastEcho = 0;
      for (let i = 0; i < 7; i++) {
        c.ws.send(`ping ${i}`);
        expect(await c.inbox.text()).toBe(`ping ${i}`);
        lastEcho = Date.now();
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(Date.now() - t0).toBeGreaterThan(1200);
      expect(c.inbox.closed).toBeUndefined();
      // Then quiet: closed about 600 ms after the last byte moved (the proxy relayed the last echo just before the
      // client read it; the sleep above may take longer than 200 ms on a loaded machine, so count from the echo).
      const closed = await c.inbox.whenClosed(5000);
      expect(closed.code).toBe(1006); // the TCP connection went away without a close frame
      expect(Date.now() - lastEcho).toBeGreaterThanOrEqual(550);
      await waitFor(() => logLines(log).some((l) => l.response_code === 101));
      const line = logLines(log).find((l) => l.response_code === 101)!;
      expect(line.response_flags).toBe('SI');
      expect(line.response_code_details).toBe('stream_idle_timeout');
      expect(line.duration).toBeGreaterThanOrEqual(1800);
    } finally {
      await p.stop();
    }
  });

  it('SIGTERM does not cut open tunnels before the drain deadline (inbound and outbound), then exits 0', async () => {
    const p = await startProxy({ 'chat.yaml': serviceEntry('chat', [{ port: v1.port }]) }, ['--app-port', String(v1.port), '--drain-seconds', '2']);
    try {
      const out = await connect(p.info.outbound, 'chat');
      const inb = await connect(p.info.inbound, `chat:${v1.port}`);
      const t0 = Date.now();
      p.child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 700));
      for (const c of [out, inb]) {
        c.ws.send('during drain');
        expect(await c.inbox.text()).toBe('during drain');
      }
      const code = await p.exited;
      expect(code).toBe(0);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(1800);
      await Promise.all([out.inbox.whenClosed(), inb.inbox.whenClosed()]);
    } finally {
      await p.stop();
    }
  });

  it('drain ends as soon as the last tunnel closes', async () => {
    const p = await startProxy({ 'chat.yaml': serviceEntry('chat', [{ port: v1.port }]) }, ['--drain-seconds', '20']);
    try {
      const c = await connect(p.info.outbound, 'chat');
      p.child.kill('SIGTERM');
      await waitFor(async () => (await p.admin('/ready').catch(() => ({ status: 0 }))).status === 503, { what: 'the sidecar draining' });
      c.ws.send('x');
      expect(await c.inbox.text()).toBe('x');
      const t0 = Date.now();
      c.ws.close();
      expect(await p.exited).toBe(0);
      expect(Date.now() - t0).toBeLessThan(5000);
    } finally {
      await p.stop();
    }
  });
});
