// The one byte pipe (src/proxy/byte-pipe.ts) against peers that half-close and reset (RELIABILITY.md §4: "every
// new protocol path gets the same treatment: abrupt resets, half-closes"), once for each of its three users, with
// the same assertions:
// - tcp: a captured connection through the real capture hook, TCP proxy and cluster manager (original destinations
//   from a stand-in reader, as in test/integration/capture/tcp-proxy.test.ts);
// - connect: an HTTP CONNECT tunnel through the CLI (`remora run --connect`);
// - upgrade: an HTTP/1.1 Upgrade tunnel (101) through the CLI.
// Each gets a raw TCP upstream behind the same behaviours (a digest of what it read, a FIN sent first, a reset
// mid-stream, an echo), and the client side is a plain socket once the tunnel is set up. Every connection ends within
// a bound, the pipe's owner reports nothing open, every upstream socket is closed, and the record of a connection the
// client reset carries its real addresses. WebSocket clients and servers ending at random are run on top.
import net from 'node:net';
import http from 'node:http';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import WebSocket, { WebSocketServer } from 'ws';
import { listenTcp, startCapture, type CaptureHarness } from '../support/capture-harness.js';
import { startProxy, waitFor, type RunningProxy } from '../support/proxy-harness.js';
import { serviceEntry } from '../integration/resilience/helpers.js';
import type { RequestRecord } from '../../src/model.js';

type Behaviour = 'digest' | 'finFirst' | 'resetter' | 'echo';
const BEHAVIOURS: Behaviour[] = ['digest', 'finFirst', 'resetter', 'echo'];

/** Upstream sockets alive and closed, over every carrier. */
let upstreamAlive = 0;
let upstreamClosed = 0;
const finFirstGot: string[] = [];
const servers: net.Server[] = [];

/** The behaviour after the tunnel is set up (the upgrade carrier's 101 already sent). */
function behave(kind: Behaviour, c: net.Socket, rest: Buffer): void {
  if (kind === 'digest') {
    // Reads until the client's FIN, then answers with the byte count and sha256 of what it got, then ends.
    const hash = createHash('sha256');
    let n = rest.length;
    hash.update(rest);
    c.on('data', (d: Buffer) => { n += d.length; hash.update(d); });
    c.on('end', () => c.end(`${n} ${hash.digest('hex')}`));
  } else if (kind === 'finFirst') {
    // Says goodbye and sends its FIN first, then keeps reading: what the client sends after is recorded.
    c.end('bye\n');
    const got: Buffer[] = [rest];
    c.on('data', (d: Buffer) => got.push(d));
    c.on('end', () => { finFirstGot.push(Buffer.concat(got).toString()); });
  } else if (kind === 'resetter') {
    // Sends some bytes, then resets the connection.
    c.write('partial');
    setTimeout(() => c.resetAndDestroy(), 30);
  } else {
    if (rest.length > 0) c.write(rest);
    c.pipe(c);
  }
}

/** A raw upstream with `kind`; `upgrade`: it first reads an HTTP upgrade request and answers 101. */
async function upstream(kind: Behaviour, upgrade: boolean): Promise<number> {
  return listenTcp(servers, (c) => {
    upstreamAlive++;
    c.once('close', () => { upstreamAlive--; upstreamClosed++; });
    if (!upgrade) return behave(kind, c, Buffer.alloc(0));
    let head = Buffer.alloc(0);
    const onHead = (d: Buffer): void => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      c.off('data', onHead);
      c.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: raw\r\n\r\n');
      behave(kind, c, head.subarray(end + 4));
    };
    c.on('data', onHead);
  });
}

interface Carrier {
  name: 'tcp' | 'connect' | 'upgrade';
  /** A client socket whose bytes go through the pipe to the upstream of `kind` (the tunnel already set up). */
  open(kind: Behaviour): Promise<net.Socket>;
  /** Connections the pipe's owner still holds open. */
  active(): Promise<number>;
  /** Records of finished connections (the access log). */
  records(): Promise<RequestRecord[] | Array<Record<string, unknown>>>;
  /** How the record of an upstream reset mid-stream reads. */
  resetDetails: RegExp;
  close(): Promise<void>;
}

/** Read until the end of an HTTP head; resolves with what came after it (or rejects on close). */
function afterHead(sock: net.Socket, status: RegExp): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      sock.off('data', onData);
      sock.pause();
      const head = buf.subarray(0, end).toString('latin1');
      if (!status.test(head)) { reject(new Error(`unexpected answer: ${head}`)); return; }
      const rest = buf.subarray(end + 4);
      if (rest.length > 0) sock.unshift(rest);
      resolve(rest);
    };
    sock.on('data', onData);
    sock.once('close', () => reject(new Error('closed before the answer')));
  });
}

function gauge(stats: string, name: string): number {
  let sum = 0;
  for (const m of stats.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) sum += Number(m[1]);
  return sum;
}

async function tcpCarrier(): Promise<Carrier> {
  const yaml: string[] = [];
  let n = 0;
  const vip = new Map<Behaviour, number>();
  for (const kind of BEHAVIOURS) {
    n++;
    const port = await upstream(kind, false);
    vip.set(kind, n);
    yaml.push(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${kind.toLowerCase()}, namespace: default }
spec:
  hosts: [${kind.toLowerCase()}.test]
  addresses: [10.96.0.${n}]
  ports: [{ number: 7000, name: tcp, protocol: TCP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { tcp: ${port} } }]
`);
  }
  const h: CaptureHarness = await startCapture(yaml.join('---\n'), (_req, res) => { res.writeHead(200, []); res.end(); });
  return {
    name: 'tcp',
    async open(kind) {
      h.reader.queue.push({ address: `10.96.0.${vip.get(kind)!}`, port: 7000 });
      const s = net.connect({ port: h.port, host: '127.0.0.1', allowHalfOpen: true });
      await new Promise<void>((r, j) => { s.once('connect', () => r()); s.once('error', j); });
      return s;
    },
    active: async () => h.tcp.active.size,
    records: async () => h.logged,
    resetDetails: /^upstream_reset\{ECONNRESET\}$/,
    close: () => h.close(),
  };
}

async function cliCarrier(name: 'connect' | 'upgrade'): Promise<Carrier> {
  const ports = new Map<Behaviour, number>();
  const files: string[] = [];
  for (const kind of BEHAVIOURS) {
    const port = await upstream(kind, name === 'upgrade');
    ports.set(kind, port);
    files.push(serviceEntry(`${kind.toLowerCase()}-${name}`, [{ port }]));
  }
  const logDir = mkdtempSync(join(tmpdir(), 'remora-pipe-'));
  const log = join(logDir, 'access.log');
  const proxy: RunningProxy = await startProxy({ 'se.yaml': files.join('---\n') }, ['--connect', '--access-log', log, '--access-log-format', 'json']);
  return {
    name,
    async open(kind) {
      const s = net.connect({ port: proxy.info.outbound, host: '127.0.0.1', allowHalfOpen: true });
      s.on('error', () => {});
      await new Promise<void>((r, j) => { s.once('connect', () => r()); s.once('error', j); });
      if (name === 'connect') {
        s.write(`CONNECT 127.0.0.1:${ports.get(kind)!} HTTP/1.1\r\nHost: 127.0.0.1:${ports.get(kind)!}\r\n\r\n`);
        await afterHead(s, /^HTTP\/1\.1 200 /);
      } else {
        s.write(`GET / HTTP/1.1\r\nHost: ${kind.toLowerCase()}-upgrade.default.svc.cluster.local\r\nConnection: Upgrade\r\nUpgrade: raw\r\n\r\n`);
        await afterHead(s, /^HTTP\/1\.1 101 /);
      }
      s.resume();
      return s;
    },
    async active() {
      const stats = (await proxy.admin('/stats/prometheus')).body;
      return gauge(stats, name === 'connect' ? 'remora_tcp_connections_active' : 'remora_tunnels_active');
    },
    async records() {
      let text = '';
      try { text = readFileSync(log, 'utf8'); } catch { /* not written yet */ }
      return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
    },
    resetDetails: name === 'connect' ? /^upstream_reset\{ECONNRESET\}$/ : /^upstream_reset_after_response_started\{remote_reset\}$/,
    async close() {
      expect(proxy.exitCode).toBeNull();
      expect(proxy.stderr).not.toMatch(/uncaught|unhandled/i);
      await proxy.stop();
      rmSync(logDir, { recursive: true, force: true });
    },
  };
}

function collect(sock: net.Socket): Promise<{ data: string; ended: boolean; error?: string }> {
  const chunks: Buffer[] = [];
  const out: { data: string; ended: boolean; error?: string } = { data: '', ended: false };
  sock.on('data', (d: Buffer) => chunks.push(d));
  sock.on('end', () => { out.ended = true; });
  sock.on('error', (e: NodeJS.ErrnoException) => { out.error = e.code ?? e.message; });
  return new Promise((resolve) => sock.once('close', () => { out.data = Buffer.concat(chunks).toString(); resolve(out); }));
}

/** The records of connections to the upstream of `kind` (its cluster is named after it). */
async function recordsOf(c: Carrier, kind: Behaviour): Promise<Array<RequestRecord | Record<string, unknown>>> {
  return (await c.records()).filter((r) => String(field(r, 'upstreamCluster', 'upstream_cluster')).includes(`|${kind.toLowerCase()}`));
}

/** A field of a record, whichever shape (in-process RequestRecord or the JSON access-log line). */
function field(r: RequestRecord | Record<string, unknown>, inProcess: keyof RequestRecord, json: string): unknown {
  return inProcess in r ? (r as Record<string, unknown>)[inProcess] : (r as Record<string, unknown>)[json];
}

afterAll(() => {
  for (const s of servers) s.close();
});

describe.each(['tcp', 'connect', 'upgrade'] as const)('the byte pipe under %s', (carrierName) => {
  let c: Carrier;
  beforeAll(async () => {
    c = carrierName === 'tcp' ? await tcpCarrier() : await cliCarrier(carrierName);
  });
  afterAll(async () => { await c?.close(); });

  it('half-close: the client sends 4 MB then FIN; the server answers after reading to the end, and the answer arrives', async () => {
    const body = Buffer.alloc(4 << 20);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 0xff;
    const sock = await c.open('digest');
    const done = collect(sock);
    sock.end(body);
    const r = await done;
    expect(r.error).toBeUndefined();
    expect(r.ended).toBe(true);
    expect(r.data).toBe(`${body.length} ${createHash('sha256').update(body).digest('hex')}`);
    await waitFor(async () => (await c.active()) === 0, 5000);
  });

  it('half-close: the server sends its FIN first; the client still gets to send, and the server reads it', async () => {
    const sock = await c.open('finFirst');
    const done = collect(sock);
    if (!sock.readableEnded) await new Promise<void>((r) => sock.once('end', () => r()));
    const words = `late words ${carrierName}`;
    sock.end(words);
    const r = await done;
    expect(r.data).toBe('bye\n');
    await waitFor(() => finFirstGot.includes(words), 5000);
    await waitFor(async () => (await c.active()) === 0, 5000);
  });

  it('an upstream reset mid-stream reaches the client as a reset (ECONNRESET), after the bytes before it, and is recorded', async () => {
    const sock = await c.open('resetter');
    const r = await collect(sock);
    expect(r.data).toBe('partial');
    expect(r.error).toBe('ECONNRESET');
    await waitFor(async () => (await c.active()) === 0, 5000);
    // The access log is written in batches: wait for this connection's line (its cluster is the resetter's).
    await waitFor(async () => (await recordsOf(c, 'resetter')).length === 1, 5000);
    const rec = (await recordsOf(c, 'resetter'))[0]!;
    expect(String(field(rec, 'details', 'response_code_details'))).toMatch(c.resetDetails);
  });

  it('clients that reset or close at random moments (fast-check, 100 runs): the upstream side is closed every time, nothing stays open, and each record has the client\'s real address', async () => {
    const beforeClosed = upstreamClosed;
    const ports: string[] = [];
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 20 }), fc.boolean(), async (writes, delayMs, reset) => {
        runs++;
        const sock = await c.open('echo');
        ports.push(`127.0.0.1:${sock.localPort}`);
        for (let i = 0; i < writes; i++) sock.write(Buffer.alloc(1000 * (i + 1), 0x41));
        await new Promise((r) => setTimeout(r, delayMs));
        if (reset) sock.resetAndDestroy(); else sock.destroy();
        await new Promise((r) => sock.once('close', r));
      }),
      { numRuns: 100 },
    );
    await waitFor(async () => (await c.active()) === 0 && upstreamAlive === 0, 10_000);
    // Every client connection reached an upstream connection that is now closed.
    expect(upstreamClosed - beforeClosed).toBe(runs);
    // One record each, made after the client's socket was gone, with the address it had (was ":0" for TCP).
    await waitFor(async () => (await recordsOf(c, 'echo')).length >= runs, 5000);
    const recs = await recordsOf(c, 'echo');
    const remotes = recs.map((r) => String(field(r, 'downstreamRemoteAddress', 'downstream_remote_address')));
    expect(remotes.sort()).toEqual([...ports].sort());
    for (const r of recs) expect(String(field(r, 'downstreamLocalAddress', 'downstream_local_address'))).toMatch(/^(10\.96\.0\.\d|127\.0\.0\.1):\d+$/);
  });
});

describe('WebSocket tunnels (the upgrade carrier with a WebSocket library) that end abruptly', () => {
  let proxy: RunningProxy;
  let wsServer: http.Server;
  const wsSockets = new Set<net.Socket>();

  beforeAll(async () => {
    // WebSocket echo; a message "die" makes the upstream drop the connection without a close frame, "rst" resets it.
    wsServer = http.createServer();
    const wss = new WebSocketServer({ server: wsServer });
    wsServer.on('connection', (s: net.Socket) => { wsSockets.add(s); s.once('close', () => wsSockets.delete(s)); });
    wss.on('connection', (ws) => {
      ws.on('error', () => {});
      ws.on('message', (m, binary) => {
        const text = binary ? '' : m.toString();
        const sock = (ws as unknown as { _socket: net.Socket })._socket;
        if (text === 'die') sock.destroy();
        else if (text === 'rst') sock.resetAndDestroy();
        else ws.send(m, { binary });
      });
    });
    await new Promise<void>((r) => wsServer.listen(0, '127.0.0.1', r));
    proxy = await startProxy({ 'se.yaml': serviceEntry('chat', [{ port: (wsServer.address() as net.AddressInfo).port }]) });
  });

  afterAll(async () => {
    await proxy?.stop();
    wsServer?.closeAllConnections();
    wsServer?.close();
  });

  async function tunnels(name: string): Promise<number> {
    return gauge((await proxy.admin('/stats/prometheus')).body, name);
  }

  it('150 runs of random endings on either side (client close/terminate/reset, upstream drop/reset): nothing stays open', async () => {
    const before = await tunnels('remora_tunnels_total');
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 4 }),
        fc.constantFrom('close', 'terminate', 'reset', 'upstream-die', 'upstream-rst'),
        async (messages, ending) => {
          runs++;
          const ws = new WebSocket(`ws://127.0.0.1:${proxy.info.outbound}/`, { headers: { host: 'chat.default.svc.cluster.local' } });
          ws.on('error', () => {});
          await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('unexpected-response', () => reject(new Error('no 101'))); });
          for (let i = 0; i < messages; i++) {
            ws.send(`m${i}`);
            await new Promise<void>((r) => ws.once('message', () => r()));
          }
          const closed = new Promise<void>((r) => ws.once('close', () => r()));
          const sock = (ws as unknown as { _socket: net.Socket })._socket;
          if (ending === 'close') ws.close(1000);
          else if (ending === 'terminate') ws.terminate();
          else if (ending === 'reset') sock.resetAndDestroy();
          else ws.send(ending === 'upstream-die' ? 'die' : 'rst');
          await closed;
        },
      ),
      { numRuns: 150 },
    );
    await waitFor(async () => (await tunnels('remora_tunnels_active')) === 0 && wsSockets.size === 0, 5000);
    expect((await tunnels('remora_tunnels_total')) - before).toBe(runs);
    expect(proxy.exitCode).toBeNull();
    expect(proxy.stderr).not.toMatch(/uncaught|unhandled/i);
  });
});
