// The inbound mTLS gate in front of capture, over real loopback sockets (original destinations from a stand-in
// reader, as in test/integration/capture/tcp-proxy.test.ts): TCP over mutual TLS (ALPN istio) reaches the app
// decrypted; under PERMISSIVE a plaintext client of a server-speaks-first app still gets the banner and its bytes
// through (the bytes read to decide are put back for the TCP proxy); under STRICT plaintext is reset. The app is
// reached at the original destination (127.0.0.1 here stands in for the pod's address).
import net from 'node:net';
import tls from 'node:tls';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Http1Server } from '../../../src/http1/server.js';
import { inboundCapture, CaptureStats, type InboundCaptureEnv } from '../../../src/net/capture.js';
import { QueueReader, testObserver } from '../../support/capture-harness.js';
import { fakeUpstream, type FakeTcpUpstream } from '../../support/fake-upstream.js';
import { waitFor } from '../../support/wait-for.js';
import { TcpProxy } from '../../../src/proxy/tcp-proxy.js';
import { ClusterManager } from '../../../src/upstream/cluster-manager.js';
import { Metrics } from '../../../src/telemetry/metrics.js';
import { inboundClusters } from '../../../src/proxy/inbound.js';
import { createRoot, issueWorkload, selfSignedWorkload, type WorkloadFiles } from '../../../src/security/dev-ca.js';
import { loadWorkloadCert } from '../../../src/security/workload-cert.js';
import { MtlsContext, originationOptions } from '../../../src/security/mtls.js';
import type { MtlsMode } from '../../../src/security/peer-authentication.js';
import type { RequestRecord } from '../../../src/model.js';

const servers: net.Server[] = [];
let dir: string;
let port = 0;
let bannerApp: FakeTcpUpstream;
let echoApp: FakeTcpUpstream;
let bannerPort = 0;
let echoPort = 0;
let clientCtx: MtlsContext;
let forged: WorkloadFiles;
let mode: MtlsMode = 'PERMISSIVE';
let serverCtx: MtlsContext;
const serverFailures = (): number => serverCtx.inboundStats.failures.fail_verify_error;
const reader = new QueueReader();
const stats = new CaptureStats();
const clusters = new ClusterManager(Math.random, () => performance.now(), { keepAliveMs: 4000, headersTimeoutMs: 0 });
const metrics = new Metrics({ sourceWorkload: 't', sourceNamespace: 'default' });
const logged: RequestRecord[] = [];
const tcp = new TcpProxy({ observer: testObserver(metrics, logged), now: () => performance.now() });

function ctxOf(d: string): MtlsContext {
  const r = loadWorkloadCert(d);
  if (!r.ok) throw new Error(r.error);
  return new MtlsContext(r.cert);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'remora-mtls-capture-'));
  const root = createRoot(join(dir, 'root'));
  serverCtx = ctxOf(issueWorkload(root, { trustDomain: 'cluster.local', namespace: 'db', serviceAccount: 'mysql' }, join(dir, 's')).dir);
  clientCtx = ctxOf(issueWorkload(root, { trustDomain: 'cluster.local', namespace: 'web', serviceAccount: 'app' }, join(dir, 'c')).dir);
  // A server-speaks-first app (a banner, then echo) and a plain echo app.
  bannerApp = await fakeUpstream().tcp().banner('220 ready\r\n').start();
  echoApp = await fakeUpstream().tcp().start();
  bannerPort = bannerApp.port;
  echoPort = echoApp.port;
  forged = selfSignedWorkload('spiffe://cluster.local/ns/web/sa/app', join(dir, 'forged'));
  const runtimes = new Map<string, ReturnType<ClusterManager['pin']>>();
  const env: InboundCaptureEnv = {
    reader,
    snapshot: () => undefined,
    clusters,
    tcp,
    sniffTimeoutMs: 100,
    self: { labels: {}, namespace: 'db', clusterDomain: 'cluster.local' },
    rand: Math.random,
    inboundRuntime: (p, a) => { let rt = runtimes.get(`${a}|${p}`); if (!rt) { rt = clusters.pin(inboundClusters([p], a)[0]!); runtimes.set(`${a}|${p}`, rt); } return rt; },
    authorizeConnection: () => ({ allowed: true }),
    mtls: () => serverCtx,
    mtlsMode: () => mode,
  };
  const server = new Http1Server((_req, res) => { res.writeHead(200, ['content-length', '2']); res.end('ok'); }, { onConnection: inboundCapture(env, stats) });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
  servers.push(server);
});

afterAll(async () => {
  tcp.closeAll();
  for (const s of servers) s.close();
  await Promise.all([bannerApp?.close(), echoApp?.close()]);
  await clusters.destroy();
  rmSync(dir, { recursive: true, force: true });
});

/** Read from `sock` until `want` arrived (or the socket ended), bounded. */
function readUntil(sock: net.Socket, want: string, ms = 3000): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const done = (): void => { clearTimeout(t); sock.off('data', on); resolve(got); };
    const on = (d: Buffer): void => { got += d.toString(); if (got.includes(want)) done(); };
    const t = setTimeout(done, ms);
    sock.on('data', on);
    sock.once('close', done);
  });
}

describe('inbound mTLS gate with transparent capture', () => {
  it('TCP over mutual TLS (ALPN istio) reaches the app decrypted, both ways', async () => {
    const before = stats.mtls;
    reader.queue.push({ address: '127.0.0.1', port: echoPort });
    const s = tls.connect({ port, host: '127.0.0.1', ...originationOptions(clientCtx, 'tcp', ['spiffe://cluster.local/ns/db/sa/mysql']) });
    await new Promise<void>((r, j) => { s.once('secureConnect', () => r()); s.once('error', j); });
    expect(s.alpnProtocol).toBe('istio');
    s.write('ping over mtls');
    expect(await readUntil(s, 'ping over mtls')).toBe('ping over mtls');
    s.destroy();
    expect(stats.mtls).toBe(before + 1);
    // Its TCP metrics and record carry the peer, as an HTTP request's do (were "none" and "unknown").
    await waitFor(() => logged.some((l) => l.peer !== undefined), { timeoutMs: 1000, stepMs: 10, what: 'the record with the peer' });
    expect(logged.find((l) => l.peer !== undefined)?.peer?.spiffeId).toBe('spiffe://cluster.local/ns/web/sa/app');
    expect(metrics.render()).toMatch(/istio_tcp_connections_closed_total\{reporter="destination",source_workload="unknown",source_workload_namespace="web",source_principal="spiffe:\/\/cluster\.local\/ns\/web\/sa\/app"[^}]*request_protocol="tcp",response_flags="-",connection_security_policy="mutual_tls"\} 1/);
  });

  it('PERMISSIVE: a silent plaintext client of a server-first app gets the banner, and its bytes after it get through', async () => {
    mode = 'PERMISSIVE';
    reader.queue.push({ address: '127.0.0.1', port: bannerPort });
    const c = net.connect(port, '127.0.0.1');
    expect(await readUntil(c, '220 ready')).toBe('220 ready\r\n');
    c.write('hello');
    expect(await readUntil(c, 'hello')).toBe('hello');
    c.destroy();
  });

  it('PERMISSIVE: a plaintext client that speaks first: its first bytes (read to decide) are not lost', async () => {
    reader.queue.push({ address: '127.0.0.1', port: echoPort });
    const c = net.connect(port, '127.0.0.1');
    c.write('\x00\x01binary-first');
    expect(await readUntil(c, 'binary-first')).toBe('\x00\x01binary-first');
    c.destroy();
  });

  it('PERMISSIVE: a client that speaks first on a port taken as TCP at once (11211, memcached): its first bytes reach the app', async (ctx) => {
    // The app must listen on the port itself (the original destination port is the app port): skip where it is taken.
    const app = net.createServer((c) => { c.on('error', () => {}); c.pipe(c); });
    const ok = await new Promise<boolean>((r) => { app.once('error', () => r(false)); app.listen(11211, '127.0.0.1', () => r(true)); });
    if (!ok) { ctx.skip(); return; }
    try {
      mode = 'PERMISSIVE';
      reader.queue.push({ address: '127.0.0.1', port: 11211 });
      const c = net.connect(port, '127.0.0.1');
      c.write('get key\r\n');
      expect(await readUntil(c, 'get key')).toBe('get key\r\n');
      c.destroy();
    } finally {
      app.close();
    }
  });

  it('STRICT: plaintext is reset and counted; mTLS still works', async () => {
    mode = 'STRICT';
    const before = stats.mtlsRefused;
    reader.queue.push({ address: '127.0.0.1', port: echoPort });
    const c = net.connect(port, '127.0.0.1');
    c.on('error', () => {});
    c.write('plain');
    await new Promise((r) => c.once('close', r));
    expect(stats.mtlsRefused).toBe(before + 1);
    reader.queue.push({ address: '127.0.0.1', port: echoPort });
    const s = tls.connect({ port, host: '127.0.0.1', ...originationOptions(clientCtx, 'tcp', ['spiffe://cluster.local/ns/db/sa/mysql']) });
    await new Promise<void>((r, j) => { s.once('secureConnect', () => r()); s.once('error', j); });
    s.write('still');
    expect(await readUntil(s, 'still')).toBe('still');
    s.destroy();
  });

  it('TCP over mTLS with a self-signed certificate: reset after the handshake, counted; the app never gets a connection', async () => {
    mode = 'STRICT';
    const before = serverFailures();
    const conns = echoApp.connections;
    reader.queue.push({ address: '127.0.0.1', port: echoPort });
    const s = tls.connect({ port, host: '127.0.0.1', ALPNProtocols: ['istio'], rejectUnauthorized: false, cert: readFileSync(forged.certFile), key: readFileSync(forged.keyFile) });
    s.on('error', () => {});
    await new Promise<void>((r) => s.once('secureConnect', () => r()));
    s.write('forged bytes');
    expect(await readUntil(s, 'forged bytes', 1000)).toBe('');
    await new Promise((r) => setTimeout(r, 100));
    expect(echoApp.connections).toBe(conns);
    expect(serverFailures()).toBe(before + 1);
  });
});
