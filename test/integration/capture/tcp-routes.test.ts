// VirtualService tcp[] and tls[] routes on captured connections, with real peers: two Redis servers (Debian's
// redis-server, started here on loopback) behind a weighted TCP route and through passthrough, and two TLS servers
// chosen by the ClientHello's server name without Remora terminating TLS.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCapture, talk, type CaptureHarness } from '../../support/capture-harness.js';
import { fakeUpstream, type FakeTcpUpstream } from '../../support/fake-upstream.js';
import { selfSignedCert } from '../../support/tls.js';

function hasRedis(): string | undefined {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'pipe' });
    return undefined;
  } catch {
    return 'redis-server is not installed (.ci/run installs Debian\'s redis-server)';
  }
}
const noRedis = hasRedis();
if (noRedis !== undefined) console.warn(`capture/tcp-routes: Redis cases skipped: ${noRedis}`);

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

async function startRedis(dir: string): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`redis-server did not start: ${out}`)), 10_000);
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); if (/Ready to accept connections/i.test(out)) { clearTimeout(t); resolve(); } });
    child.once('exit', (c) => { clearTimeout(t); reject(new Error(`redis-server exited ${c}: ${out}`)); });
  });
  return { port, child };
}

/** RESP: CONFIG GET port, as a Redis client writes it; the answer names the instance. */
const CONFIG_GET_PORT = '*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$4\r\nport\r\n';

describe('tcp and tls routes through capture', () => {
  const servers: net.Server[] = [];
  const echoes: FakeTcpUpstream[] = [];
  /** A TCP echo (closed after the suite); its port. */
  const echo = async (): Promise<number> => {
    const u = await fakeUpstream().tcp().start();
    echoes.push(u);
    return u.port;
  };
  const redis: Array<{ port: number; child: ChildProcess }> = [];
  let dir: string;
  let h: CaptureHarness;
  let tlsA = 0;
  let tlsB = 0;
  let plain = 0;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'remora-l4-'));
    if (noRedis === undefined) for (let i = 0; i < 2; i++) redis.push(await startRedis(dir));
    const [r1, r2] = redis.length === 2 ? redis.map((r) => r.port) : [1, 2];
    // Two TLS servers with their own certificates: each greets with its name once the handshake is done.
    for (const name of ['a', 'b']) {
      const cert = selfSignedCert(dir, name, { cn: `${name}.example.com`, subjectAltName: `DNS:${name}.example.com` });
      const s = tls.createServer({ key: cert.key, cert: cert.cert }, (c) => { c.on('error', () => {}); c.end(`hello from ${name}\n`); });
      servers.push(s as unknown as net.Server);
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
      if (name === 'a') tlsA = (s.address() as net.AddressInfo).port; else tlsB = (s.address() as net.AddressInfo).port;
    }
    plain = await echo();
    h = await startCapture(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: redis, namespace: default }
spec:
  hosts: [redis.internal]
  addresses: [10.96.1.1]
  ports: [{ number: 6379, name: tcp-redis, protocol: TCP }]
  resolution: STATIC
  endpoints:
  - { address: 127.0.0.1, ports: { tcp-redis: ${r1} }, labels: { version: v1 } }
  - { address: 127.0.0.1, ports: { tcp-redis: ${r2} }, labels: { version: v2 } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: redis, namespace: default }
spec:
  host: redis.internal
  subsets: [{ name: v1, labels: { version: v1 } }, { name: v2, labels: { version: v2 } }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: redis, namespace: default }
spec:
  hosts: [redis.internal]
  tcp:
  - match: [{ port: 6379 }]
    route:
    - { destination: { host: redis.internal, subset: v1 }, weight: 80 }
    - { destination: { host: redis.internal, subset: v2 }, weight: 20 }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: tls-a, namespace: default }
spec:
  hosts: [a.example.com]
  ports: [{ number: 443, name: tls, protocol: TLS }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { tls: ${tlsA} } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: tls-b, namespace: default }
spec:
  hosts: [b.example.com]
  ports: [{ number: 443, name: tls, protocol: TLS }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { tls: ${tlsB} } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: tls-plain, namespace: default }
spec:
  hosts: [plain.example.com]
  addresses: [10.96.1.2]
  ports: [{ number: 443, name: tls, protocol: TLS }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { tls: ${plain} } }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: shop, namespace: default }
spec:
  hosts: [a.example.com]
  tls:
  - match: [{ port: 443, sniHosts: [a.example.com] }]
    route: [{ destination: { host: b.example.com } }]
`, (_req, res) => { res.writeHead(200, ['content-length', '0']); res.end(); });
  }, 30_000);

  afterAll(async () => {
    await h?.close();
    for (const s of servers) s.close();
    await Promise.all(echoes.map((u) => u.close()));
    for (const r of redis) r.child.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it.skipIf(noRedis !== undefined)('splits Redis connections 80/20 by a weighted tcp route, each one a working Redis session', async () => {
    const byPort = new Map<string, number>();
    const n = 200;
    for (let i = 0; i < n; i++) {
      h.reader.queue.push({ address: '10.96.1.1', port: 6379 });
      const r = await talk(h.port, `${CONFIG_GET_PORT}*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nQUIT\r\n`, { timeoutMs: 3000 });
      const m = /^\*2\r\n\$4\r\nport\r\n\$\d+\r\n(\d+)\r\n\+PONG\r\n\+OK\r\n$/.exec(r.data.toString('latin1'));
      expect(m, r.data.toString('latin1')).not.toBeNull();
      byPort.set(m![1]!, (byPort.get(m![1]!) ?? 0) + 1);
    }
    const v1 = byPort.get(String(redis[0]!.port)) ?? 0;
    // 80 % of 200 with σ ≈ 5.7: ±4σ.
    expect(v1).toBeGreaterThanOrEqual(137);
    expect(v1).toBeLessThanOrEqual(183);
    expect(v1 + (byPort.get(String(redis[1]!.port)) ?? 0)).toBe(n);
    const text = h.metrics.render();
    expect(text).toMatch(/istio_tcp_connections_opened_total\{[^}]*destination_version="v1",destination_service="redis\.internal"[^}]*\} \d+/);
    expect(h.logged.some((l) => l.routeName === 'VirtualService/default/redis.tcp.0')).toBe(true);
  });

  it.skipIf(noRedis !== undefined)('passes a Redis session through to an address outside the registry (server-first port: no detection wait)', async () => {
    h.reader.queue.push({ address: '127.0.0.1', port: redis[1]!.port });
    const r = await talk(h.port, '*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nQUIT\r\n', { timeoutMs: 3000 });
    expect(r.data.toString('latin1')).toBe('+PONG\r\n+OK\r\n');
  });

  async function tlsHello(servername: string): Promise<string> {
    // A TLS client whose connection the capture hook sees as going to 127.0.0.1:443: no VIP, no endpoint, so the
    // server name decides (and nothing listens there: a passthrough is refused, on loopback).
    h.reader.queue.push({ address: '127.0.0.1', port: 443 });
    return new Promise((resolve) => {
      const s = tls.connect({ port: h.port, host: '127.0.0.1', servername, rejectUnauthorized: false });
      let got = '';
      s.on('data', (d: Buffer) => (got += d.toString()));
      s.on('end', () => resolve(got));
      s.on('error', (e: NodeJS.ErrnoException) => resolve(`error ${e.code ?? e.message}`));
      setTimeout(() => { s.destroy(); resolve(`timeout ${got}`); }, 10_000).unref();
    });
  }

  it('picks TLS services by the ClientHello server name, end to end, without terminating TLS', async () => {
    // b.example.com has no VirtualService: its ServiceEntry's cluster. a.example.com's tls route sends it to b.
    expect(await tlsHello('b.example.com')).toBe('hello from b\n');
    expect(await tlsHello('a.example.com')).toBe('hello from b\n');
    // An SNI nobody knows, at an address nobody knows: passthrough to that address (refused here: reset).
    expect(await tlsHello('c.example.com')).toMatch(/^error (ECONNRESET|EPIPE)/);
    const peer = await new Promise<tls.PeerCertificate>((resolve) => {
      h.reader.queue.push({ address: '127.0.0.1', port: 443 });
      const s = tls.connect({ port: h.port, host: '127.0.0.1', servername: 'b.example.com', rejectUnauthorized: false }, () => { resolve(s.getPeerCertificate()); s.destroy(); });
      s.on('error', () => {});
    });
    expect(peer.subject.CN).toBe('b.example.com'); // the upstream's own certificate: Remora did not terminate
    expect(h.logged.some((l) => l.routeName === 'VirtualService/default/shop.tls.0')).toBe(true);
  });

  it('never serves a TLS-declared port as HTTP: its bytes are passed on as they are', async () => {
    h.reader.queue.push({ address: '10.96.1.2', port: 443 });
    const r = await talk(h.port, 'GET / HTTP/1.1\r\n\r\n', { end: true });
    expect(r.data.toString()).toBe('GET / HTTP/1.1\r\n\r\n'); // echoed by the upstream, not answered by Remora
    // The same bytes to an address outside the registry are sniffed as HTTP and served. (plain itself is an endpoint
    // of the TLS service: dialled directly it is that service's port, TLS too.)
    const other = await echo();
    h.reader.queue.push({ address: '127.0.0.1', port: other });
    const served = await talk(h.port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { end: true });
    expect(served.data.toString()).toMatch(/^HTTP\/1\.1 200 OK/);
  });
});
