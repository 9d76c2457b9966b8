// The capture decisions and the TCP proxy over real loopback sockets, without iptables: the original destination
// comes from a stand-in reader (one answer per accepted connection, in order), everything else is the real code —
// Http1Server with the capture hook, the TCP proxy, the cluster manager and a compiled config.
import net from 'node:net';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Http1Server, type OriginalDestination } from '../../../src/http1/server.js';
import { outboundCapture, inboundCapture, CaptureStats, type CaptureEnv } from '../../../src/net/capture.js';
import { listenTcp, QueueReader, talk, testObserver } from '../../support/capture-harness.js';
import { waitFor } from '../../support/proxy-harness.js';
import { fakeUpstream, type AnyUpstream, type UpstreamBuilder } from '../../support/fake-upstream.js';
import { TcpProxy } from '../../../src/proxy/tcp-proxy.js';
import { ClusterManager } from '../../../src/upstream/cluster-manager.js';
import { Metrics } from '../../../src/telemetry/metrics.js';
import { parseDocuments } from '../../../src/config/parse.js';
import { compile } from '../../../src/config/compile.js';
import type { Snapshot } from '../../../src/config/snapshot.js';
import type { RequestRecord } from '../../../src/model.js';
import { inboundClusters } from '../../../src/proxy/inbound.js';

const servers: net.Server[] = [];
const listen = (onConn: (c: net.Socket) => void): Promise<number> => listenTcp(servers, onConn);
const fakes: AnyUpstream[] = [];
/** Start a fake TCP upstream (closed after the suite); its port. */
const fake = async (b: UpstreamBuilder<'tcp'>): Promise<number> => {
  const u = await b.start();
  fakes.push(u);
  return u.port;
};

describe('capture hook and TCP proxy on loopback', () => {
  let echoA: number;
  let echoB: number;
  let banner: number;
  let plainEcho: number;
  let rangeEcho: number;
  let refused: number;
  let snap: Snapshot;
  let registryOnly = false;
  const reader = new QueueReader();
  const metrics = new Metrics({ sourceWorkload: 'test', sourceNamespace: 'default' });
  const clusters = new ClusterManager(Math.random, () => performance.now(), { keepAliveMs: 4000, headersTimeoutMs: 0 });
  const logged: RequestRecord[] = [];
  const tcp = new TcpProxy({ observer: testObserver(metrics, logged), now: () => performance.now(), reportIntervalMs: 100 });
  const stats = new CaptureStats();
  const httpSeen: Array<OriginalDestination | undefined> = [];
  let proxyPort = 0;
  let inboundPort = 0;
  let appPort = 0;

  beforeAll(async () => {
    // Two echo endpoints that say who they are first thing after the client's first bytes, a banner server, a closed port.
    echoA = await listen((c) => { c.once('data', (d) => { c.write(`A:${d.toString('latin1')}`); c.pipe(c); }); });
    echoB = await listen((c) => { c.once('data', (d) => { c.write(`B:${d.toString('latin1')}`); c.pipe(c); }); });
    banner = await fake(fakeUpstream().tcp().banner('220 ready\r\n'));
    plainEcho = await fake(fakeUpstream().tcp());
    // An echo on 127.0.0.70, inside the loopback-range ServiceEntry's CIDR.
    rangeEcho = await fake(fakeUpstream().tcp().on('127.0.0.70'));
    refused = await listen(() => {});
    await new Promise<void>((r) => servers.pop()!.close(() => r()));
    const yaml = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: echo, namespace: default }
spec:
  hosts: [echo.test]
  addresses: [10.96.0.1]
  ports: [{ number: 7000, name: tcp, protocol: TCP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { tcp: ${echoA} } }, { address: 127.0.0.1, ports: { tcp: ${echoB} } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: limited, namespace: default }
spec:
  hosts: [limited.test]
  addresses: [10.96.0.2]
  ports: [{ number: 7000, name: tcp, protocol: TCP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { tcp: ${echoA} } }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: limited, namespace: default }
spec:
  host: limited.test
  trafficPolicy: { connectionPool: { tcp: { maxConnections: 1, idleTimeout: 300ms } } }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: loopback-range, namespace: default }
spec:
  hosts: [loopback-range.test]
  addresses: [127.0.0.64/26]
  ports: [{ number: ${rangeEcho}, name: tcp, protocol: TCP }]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: down, namespace: default }
spec:
  hosts: [down.test]
  addresses: [10.96.0.3]
  ports: [{ number: 7000, name: tcp, protocol: TCP }]
  resolution: STATIC
  endpoints: [{ address: 127.0.0.1, ports: { tcp: ${refused} } }]
`;
    const { resources, errors } = parseDocuments(yaml, 'tcp.yaml');
    expect(errors).toEqual([]);
    snap = compile(resources, { namespace: 'default', clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY' });
    const env: CaptureEnv = {
      reader,
      snapshot: () => (registryOnly ? { ...snap, outboundTrafficPolicy: 'REGISTRY_ONLY' } : snap),
      clusters,
      tcp,
      sniffTimeoutMs: 100,
      self: { labels: { app: 'test', version: 'v1' }, namespace: 'default', clusterDomain: 'cluster.local' },
      rand: Math.random,
    };
    const server = new Http1Server((req, res) => {
      httpSeen.push(req.originalDst);
      res.writeHead(200, ['content-length', '2']);
      res.end('ok');
    }, { onConnection: outboundCapture(env, stats) });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    proxyPort = (server.address() as net.AddressInfo).port;
    servers.push(server);
    appPort = await fake(fakeUpstream().tcp().banner('app-first\r\n'));
    const inboundRts = new Map<string, ReturnType<ClusterManager['pin']>>();
    const inbound = new Http1Server((_req, res) => { res.writeHead(200, ['content-length', '0']); res.end(); }, {
      onConnection: inboundCapture({
        ...env,
        inboundRuntime: (p, a) => { let rt = inboundRts.get(`${a}|${p}`); if (!rt) { rt = clusters.pin(inboundClusters([p], a)[0]!); inboundRts.set(`${a}|${p}`, rt); } return rt; },
        authorizeConnection: (_conn, p) => (p !== 1 ? { allowed: true } : { allowed: false, details: 'rbac_access_denied_matched_policy[none]' }),
      }, new CaptureStats()),
    });
    await new Promise<void>((r) => inbound.listen(0, '127.0.0.1', r));
    inboundPort = (inbound.address() as net.AddressInfo).port;
    servers.push(inbound);
  });

  afterEach(() => { registryOnly = false; reader.queue.length = 0; });
  afterAll(async () => {
    tcp.closeAll();
    for (const s of servers) s.close();
    await Promise.all(fakes.map((u) => u.close()));
    await clusters.destroy();
  });

  it('serves a connection addressed to the listener itself as HTTP at once', async () => {
    reader.queue.push(undefined);
    const r = await talk(proxyPort, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(r.data.toString()).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*ok$/);
    expect(httpSeen.pop()).toBeUndefined();
  });

  it('balances TCP connections to a TCP service over its endpoints', async () => {
    const seen = { A: 0, B: 0 };
    for (let i = 0; i < 20; i++) {
      reader.queue.push({ address: '10.96.0.1', port: 7000 });
      const r = await talk(proxyPort, 'hi', { end: true });
      const who = r.data.toString('latin1').slice(0, 1) as 'A' | 'B';
      expect(r.data.toString('latin1')).toMatch(/^[AB]:hi$/); // the endpoint's tag and the echo of the first bytes
      seen[who]++;
      expect(r.ended).toBe(true); // FIN passed on both ways
    }
    expect(seen.A).toBeGreaterThan(2);
    expect(seen.B).toBeGreaterThan(2);
    const text = metrics.render();
    expect(text).toMatch(/istio_tcp_connections_opened_total\{reporter="source"[^}]*destination_service="echo\.test"[^}]*request_protocol="tcp",response_flags="-"[^}]*\} 20/);
    expect(text).toMatch(/istio_tcp_connections_closed_total\{[^}]*destination_service="echo\.test"[^}]*\} 20/);
    // Bytes as the client saw them: 2 sent by it (received by the proxy), 4 back to it, per connection.
    expect(text).toMatch(/istio_tcp_received_bytes_total\{[^}]*destination_service="echo\.test"[^}]*\} 40/);
    expect(text).toMatch(/istio_tcp_sent_bytes_total\{[^}]*destination_service="echo\.test"[^}]*\} 80/);
    const line = logged.find((r) => r.upstreamCluster === 'outbound|7000||echo.test')!;
    expect(line).toMatchObject({ bytesReceived: 2, bytesSent: 4, flags: '-', attempts: 1 });
  });

  it('streams 16 MB each way byte-identical with backpressure', async () => {
    reader.queue.push({ address: '127.0.0.1', port: plainEcho });
    const big = Buffer.alloc(16 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i);
    const r = await talk(proxyPort, big, { end: true, timeoutMs: 30_000 });
    expect(r.ended).toBe(true);
    expect(r.data.length).toBe(big.length);
    expect(createHash('sha256').update(r.data).digest('hex')).toBe(createHash('sha256').update(big).digest('hex'));
  }, 40_000);

  it('reports the bytes of a connection that stays open, before it closes', async () => {
    const line = (name: string): number => {
      const m = new RegExp(`${name}\\{[^}]*destination_service_name="PassthroughCluster"[^}]*\\} (\\d+)`).exec(metrics.render());
      return m === null ? 0 : Number(m[1]);
    };
    const before = { rx: line('istio_tcp_received_bytes_total'), tx: line('istio_tcp_sent_bytes_total') };
    reader.queue.push({ address: '127.0.0.1', port: plainEcho });
    const sock = net.connect({ port: proxyPort, host: '127.0.0.1' });
    sock.on('error', () => {});
    sock.write('x'.repeat(1000));
    let got = 0;
    await new Promise<void>((resolve) => sock.on('data', (d: Buffer) => { got += d.length; if (got >= 1000) resolve(); }));
    await new Promise((r) => setTimeout(r, 250)); // two report intervals, the connection still open
    expect(line('istio_tcp_received_bytes_total') - before.rx).toBe(1000);
    expect(line('istio_tcp_sent_bytes_total') - before.tx).toBe(1000);
    const n = logged.length;
    sock.end();
    await new Promise((r) => sock.once('close', r));
    await waitFor(() => logged.slice(n).some((l) => l.upstreamCluster === 'PassthroughCluster'), { what: 'the connection\'s close record' });
    // Closing adds only what was not reported yet: nothing counted twice.
    expect(line('istio_tcp_received_bytes_total') - before.rx).toBe(1000);
    expect(line('istio_tcp_sent_bytes_total') - before.tx).toBe(1000);
  });

  it('resets the client when the upstream refuses, and counts the connect failure', async () => {
    reader.queue.push({ address: '10.96.0.3', port: 7000 });
    const r = await talk(proxyPort, 'x');
    expect(r.error).toBe('ECONNRESET');
    expect(r.data.length).toBe(0);
    expect(metrics.render()).toMatch(/envoy_cluster_upstream_cx_connect_fail\{cluster_name="outbound\|7000\|\|down\.test"\} 1/);
    expect(logged.some((l) => l.upstreamCluster === 'outbound|7000||down.test' && l.flags === 'UF')).toBe(true);
  });

  it('sheds connections over tcp.maxConnections (UO) and closes idle ones after tcp.idleTimeout', async () => {
    reader.queue.push({ address: '10.96.0.2', port: 7000 });
    const first = net.connect({ port: proxyPort, host: '127.0.0.1' });
    first.on('error', () => {});
    await once(first, 'connect');
    first.write('hold');
    await once(first, 'data');
    reader.queue.push({ address: '10.96.0.2', port: 7000 });
    const second = await talk(proxyPort, 'x');
    expect(second.error).toBe('ECONNRESET');
    expect(metrics.render()).toMatch(/envoy_cluster_upstream_cx_overflow\{cluster_name="outbound\|7000\|\|limited\.test"\} 1/);
    // idleTimeout 300ms: the held connection is closed by the proxy without any byte moving.
    const t0 = Date.now();
    await once(first, 'close');
    expect(Date.now() - t0).toBeLessThan(2000);
    // The proxy's own side closes in the same moment; its access-log line follows within a tick or two.
    await waitFor(() => logged.some((l) => l.details === 'idle_timeout'), { timeoutMs: 500, stepMs: 10, what: 'the idle_timeout record' });
    expect(logged.some((l) => l.upstreamCluster === 'outbound|7000||limited.test' && l.details === 'idle_timeout')).toBe(true);
  });

  it('passes unknown destinations through under ALLOW_ANY and resets them under REGISTRY_ONLY', async () => {
    // plainEcho is in no ServiceEntry (echoA/echoB are endpoints of echo.test: those would be that service's).
    reader.queue.push({ address: '127.0.0.1', port: plainEcho });
    const pass = await talk(proxyPort, '\u0000binary', { end: true });
    expect(pass.data.toString('latin1')).toBe('\u0000binary');
    expect(metrics.render()).toMatch(/istio_tcp_connections_opened_total\{[^}]*destination_service_name="PassthroughCluster"[^}]*\} [1-9]/);
    registryOnly = true;
    reader.queue.push({ address: '127.0.0.1', port: plainEcho });
    const hole = await talk(proxyPort, '\u0000binary');
    expect(hole.error).toBe('ECONNRESET');
    expect(metrics.render()).toMatch(/istio_tcp_connections_opened_total\{[^}]*destination_service_name="BlackHoleCluster"[^}]*response_flags="UH"[^}]*\} 1/);
    // An address inside a ServiceEntry CIDR (resolution NONE) is that service's: passed to the address dialled.
    reader.queue.push({ address: '127.0.0.70', port: rangeEcho });
    const inRange = await talk(proxyPort, 'range', { end: true });
    expect(inRange.data.toString('latin1')).toBe('range');
    expect(metrics.render()).toMatch(/istio_tcp_connections_opened_total\{[^}]*destination_service="loopback-range\.test"[^}]*\} 1/);
    // An endpoint address of a registry service is that service's, REGISTRY_ONLY or not.
    reader.queue.push({ address: '127.0.0.1', port: echoB });
    const known = await talk(proxyPort, 'k', { end: true });
    expect(known.data.toString('latin1')).toMatch(/^[AB]:k$/);
  });

  it('sniffs HTTP on an unknown port and hands it to HTTP with the original destination', async () => {
    reader.queue.push({ address: '127.0.0.1', port: 8081 });
    const h = await talk(proxyPort, 'GET /x HTTP/1.1\r\nHost: whatever\r\nConnection: close\r\n\r\n');
    expect(h.data.toString()).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(httpSeen.pop()).toEqual({ address: '127.0.0.1', port: 8081 });
    // A request line split across reads is still HTTP: the sniffer waits for the method to complete.
    reader.queue.push({ address: '127.0.0.1', port: 8081 });
    const sock = net.connect({ port: proxyPort, host: '127.0.0.1' });
    const got: Buffer[] = [];
    sock.on('data', (d: Buffer) => got.push(d));
    sock.write('PO');
    await new Promise((r) => setTimeout(r, 30));
    sock.end('ST /y HTTP/1.1\r\nHost: w\r\nContent-Length: 0\r\n\r\n');
    await once(sock, 'close');
    expect(Buffer.concat(got).toString()).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(stats.http).toBeGreaterThanOrEqual(2);
  });

  it('gives a silent client to the server after the detection timeout (the server speaks first)', async () => {
    reader.queue.push({ address: '127.0.0.1', port: banner });
    const late = await talk(proxyPort, undefined, { timeoutMs: 600 });
    expect(late.data.toString('latin1')).toBe('220 ready\r\n');
    expect(late.firstByteMs!).toBeGreaterThanOrEqual(90);
    expect(stats.sniffTimeouts).toBeGreaterThan(0);
  });

  it('pipes inbound non-HTTP bytes to the app port the connection was going to, after the L4 policy', async () => {
    reader.queue.push({ address: '127.0.0.1', port: appPort });
    const r = await talk(inboundPort, '\u0001hello', { end: true, timeoutMs: 2000 });
    expect(r.data.toString('latin1')).toBe('app-first\r\n\u0001hello');
    reader.queue.push({ address: '127.0.0.1', port: 1 });
    const denied = await talk(inboundPort, '\u0001hello');
    expect(denied.error).toBe('ECONNRESET');
  });
});

describe('the inbound listener in capture mode (loopback, original destinations from a stand-in reader)', () => {
  const reader = new QueueReader();
  const metrics = new Metrics({ sourceWorkload: 'test', sourceNamespace: 'default' });
  const clusters = new ClusterManager(Math.random, () => performance.now(), { keepAliveMs: 4000, headersTimeoutMs: 0 });
  const logged: RequestRecord[] = [];
  const tcp = new TcpProxy({ observer: testObserver(metrics, logged), now: () => performance.now() });
  const stats = new CaptureStats();
  // 127.0.0.2 stands for the pod's address: in capture mode an original destination elsewhere is refused.
  const own = { ports: new Set<number>(), addresses: new Set<string>(['127.0.0.2']) };
  const httpSeen: string[] = [];
  let inboundPort = 0;
  /** The same port on two loopback addresses: one stands for the pod's address, one for 127.0.0.1. */
  let appPort = 0;
  const appSaw: string[] = [];
  let silentEcho = 0;

  beforeAll(async () => {
    const a = net.createServer((c) => { c.on('error', () => {}); appSaw.push('pod-address'); c.write('pod:'); c.pipe(c); });
    servers.push(a);
    await new Promise<void>((r) => a.listen(0, '127.0.0.2', r));
    appPort = (a.address() as net.AddressInfo).port;
    const b = net.createServer((c) => { c.on('error', () => {}); appSaw.push('loopback'); c.write('loopback:'); c.pipe(c); });
    servers.push(b);
    await new Promise<void>((r) => b.listen(appPort, '127.0.0.1', r));
    const e = net.createServer({ allowHalfOpen: true }, (c) => { c.on('error', () => {}); appSaw.push('silent-echo'); c.pipe(c); });
    servers.push(e);
    await new Promise<void>((r) => e.listen(0, '127.0.0.2', r));
    silentEcho = (e.address() as net.AddressInfo).port;
    const rts = new Map<string, ReturnType<ClusterManager['pin']>>();
    const server = new Http1Server((req, res) => {
      httpSeen.push(`${req.method} ${req.url}`);
      res.writeHead(200, ['content-length', '12']);
      res.end('inbound-http');
    }, {
      onConnection: inboundCapture({
        reader, snapshot: () => undefined, clusters, tcp, sniffTimeoutMs: 100, rand: Math.random, own,
        self: { labels: {}, namespace: 'default', clusterDomain: 'cluster.local' },
        inboundRuntime: (p, addr) => { let rt = rts.get(`${addr}|${p}`); if (!rt) { rt = clusters.pin(inboundClusters([p], addr)[0]!); rts.set(`${addr}|${p}`, rt); } return rt; },
        authorizeConnection: () => ({ allowed: true }),
        captureMode: true,
      }, stats),
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    inboundPort = (server.address() as net.AddressInfo).port;
    for (const p of [inboundPort, 15000, 15001]) own.ports.add(p);
  });

  afterAll(async () => {
    tcp.closeAll();
    await clusters.destroy();
  });

  it('pipes to the original destination (the pod\'s address), not to 127.0.0.1 on the same port', async () => {
    reader.queue.push({ address: '127.0.0.2', port: appPort });
    const r = await talk(inboundPort, '\u0001x', { end: true, timeoutMs: 2000 });
    expect(r.data.toString('latin1')).toBe('pod:\u0001x');
    expect(appSaw).toEqual(['pod-address']);
    // The record: the original destination as the downstream local address (as Envoy logs it), the client's as remote.
    await waitForLog(() => logged.some((l) => l.upstreamHost === `127.0.0.2:${appPort}`));
    const rec = logged.find((l) => l.upstreamHost === `127.0.0.2:${appPort}`)!;
    expect(rec.downstreamLocalAddress).toBe(`127.0.0.2:${appPort}`);
    expect(rec.downstreamRemoteAddress).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it('refuses a redirected connection to one of the proxy\'s ports, and one not redirected at all (capture mode)', async () => {
    reader.queue.push({ address: '127.0.0.2', port: 15000 });
    const ownPort = await talk(inboundPort, 'POST /quitquitquit HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(ownPort.error).toBe('ECONNRESET');
    expect(stats.refusedOwnPort).toBe(1);
    reader.queue.push(undefined);
    const direct = await talk(inboundPort, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(direct.error).toBe('ECONNRESET');
    expect(stats.refusedNotRedirected).toBe(1);
    expect(httpSeen).toEqual([]);
    await waitForLog(() => logged.filter((l) => l.upstreamCluster === 'BlackHoleCluster').length === 2);
    expect(logged.filter((l) => l.upstreamCluster === 'BlackHoleCluster').map((l) => l.details).sort()).toEqual(['inbound_not_redirected', 'inbound_proxy_port']);
  });

  it('refuses a redirected connection whose original destination is not the pod\'s address (127.0.0.1, another host): the loopback-bound app never sees it', async () => {
    const before = logged.filter((l) => l.details === 'inbound_not_pod_address').length;
    for (const address of ['127.0.0.1', '10.99.0.1']) {
      reader.queue.push({ address, port: appPort });
      const r = await talk(inboundPort, 'GET /crafted HTTP/1.1\r\nHost: x\r\n\r\n');
      expect(r.error).toBe('ECONNRESET');
    }
    expect(stats.refusedNotPodAddress).toBe(2);
    expect(appSaw).not.toContain('loopback');
    expect(httpSeen).toEqual([]);
    await waitForLog(() => logged.filter((l) => l.details === 'inbound_not_pod_address').length === before + 2);
    expect(logged.filter((l) => l.details === 'inbound_not_pod_address').every((l) => l.upstreamCluster === 'BlackHoleCluster' && l.flags === 'UH')).toBe(true);
  });

  it('a client silent past detection that then sends HTTP is served as HTTP; one that sends bytes is piped; the app speaking first wins', async () => {
    const before = appSaw.length;
    reader.queue.push({ address: '127.0.0.2', port: silentEcho });
    const sock = net.connect(inboundPort, '127.0.0.1');
    const got: Buffer[] = [];
    sock.on('data', (d: Buffer) => got.push(d));
    await new Promise((r) => setTimeout(r, 300));
    sock.write('GET /late HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await new Promise((r) => sock.once('close', r));
    expect(Buffer.concat(got).toString()).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*inbound-http$/);
    expect(httpSeen).toEqual(['GET /late']);
    expect(stats.lateHttp).toBe(1);
    // The app was dialled while the client was silent, and dropped unused: it got no byte.
    await new Promise((r) => setTimeout(r, 50));
    expect(appSaw.length).toBe(before + 1);
    // Late bytes that are not HTTP: piped over the connection already open.
    reader.queue.push({ address: '127.0.0.2', port: silentEcho });
    const s2 = net.connect(inboundPort, '127.0.0.1');
    const got2: Buffer[] = [];
    s2.on('data', (d: Buffer) => got2.push(d));
    await new Promise((r) => setTimeout(r, 300));
    s2.end('\u0000late-binary');
    await new Promise((r) => s2.once('close', r));
    expect(Buffer.concat(got2).toString('latin1')).toBe('\u0000late-binary');
    // The app speaks first: piped at once (the pod-address app greets).
    reader.queue.push({ address: '127.0.0.2', port: appPort });
    const first = await talk(inboundPort, undefined, { timeoutMs: 800 });
    expect(first.data.toString('latin1')).toBe('pod:');
  });
});

describe('the undecided inbound connection (silent past detection) ending abruptly', () => {
  it('clients that go silent, then reset, close, half-close or send, 30 times: every app connection closed, nothing left open', async () => {
    const reader = new QueueReader();
    const metrics = new Metrics({ sourceWorkload: 'test', sourceNamespace: 'default' });
    const clusters = new ClusterManager(Math.random, () => performance.now(), { keepAliveMs: 4000, headersTimeoutMs: 0 });
    const tcp = new TcpProxy({ observer: testObserver(metrics, []), now: () => performance.now() });
    let appOpen = 0;
    let appAccepted = 0;
    const app = await listen((c) => { appOpen++; appAccepted++; c.once('close', () => { appOpen--; }); c.pipe(c); });
    const rts = new Map<string, ReturnType<ClusterManager['pin']>>();
    const server = new Http1Server((_req, res) => { res.writeHead(200, ['content-length', '0']); res.end(); }, {
      onConnection: inboundCapture({
        reader, snapshot: () => undefined, clusters, tcp, sniffTimeoutMs: 50, rand: Math.random,
        self: { labels: {}, namespace: 'default', clusterDomain: 'cluster.local' },
        inboundRuntime: (p, a) => { let rt = rts.get(`${a}|${p}`); if (!rt) { rt = clusters.pin(inboundClusters([p], a)[0]!); rts.set(`${a}|${p}`, rt); } return rt; },
        authorizeConnection: () => ({ allowed: true }),
      }, new CaptureStats()),
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const endings = ['reset', 'destroy', 'fin', 'http', 'bytes'] as const;
      for (let i = 0; i < 30; i++) {
        reader.queue.push({ address: '127.0.0.1', port: app });
        const sock = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
        sock.on('error', () => {});
        sock.on('data', () => {});
        await new Promise<void>((r) => sock.once('connect', () => r()));
        await new Promise((r) => setTimeout(r, 60 + (i % 4) * 20)); // past detection: the app is being dialled or is
        const ending = endings[i % endings.length]!;
        if (ending === 'reset') sock.resetAndDestroy();
        else if (ending === 'destroy') sock.destroy();
        else if (ending === 'fin') sock.end();
        else if (ending === 'http') sock.end('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
        else sock.end('\u0000bytes');
        await new Promise((r) => sock.once('close', r));
      }
      await waitFor(() => tcp.active.size === 0 && appOpen === 0, 5000);
      expect(appAccepted).toBeGreaterThan(0);
    } finally {
      server.close();
      server.closeAllConnections();
      tcp.closeAll();
      await clusters.destroy();
    }
  });
});

async function waitForLog(cond: () => boolean): Promise<void> {
  await waitFor(cond, { timeoutMs: 1000, stepMs: 10, what: 'the access-log record' });
}
