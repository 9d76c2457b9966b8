// Attacks on the L4 and inbound paths, each a real attempt through the CLI-started sidecar with the refusal it must
// get AND a check that the target (the app, the admin API, a world server) never saw it. Three sidecars:
// - loopback, explicit mode: CONNECT abuse on the outbound port (own ports, --connect off, REGISTRY_ONLY);
// - loopback, explicit mode with a workload certificate: PeerAuthentication per port on a direct plaintext
//   connection, and plaintext connections kept open across a PERMISSIVE→STRICT change (HTTP/1 idle and in flight,
//   HTTP/2);
// - capture mode in network namespaces (remora iptables, Remora as UID 1337, the world as the attacker): inbound to
//   each of the sidecar's own ports, to an app listener bound to loopback, slow HTTP taken for TCP, TCP connections
//   against DENY and ALLOW rules with HTTP-only fields.
import net from 'node:net';
import http from 'node:http';
import http2 from 'node:http2';
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProxy, waitFor, type RunningProxy } from '../support/proxy-harness.js';
import { fakeUpstream, type FakeH2Upstream, type FakeUpstream, type SeenRequest } from '../support/fake-upstream.js';
import { createNetnsPair, netnsAvailable, peerClient, type NetnsPair, type PeerResult } from '../support/netns.js';
import { createRoot, issueWorkload } from '../../src/security/dev-ca.js';

/** An HTTP app on 127.0.0.1 that records every connection and request it gets; `/slow` answers after 800 ms. */
async function recordingApp(name: string): Promise<FakeUpstream> {
  const body = (r: SeenRequest): string => JSON.stringify({ server: name, url: r.url, headers: r.headers });
  const json = { 'content-type': 'application/json' };
  return fakeUpstream().id(name).route('/slow', 200, body, json, { latencyMs: 800 }).route('*', 200, body, json).start();
}

/** What an app saw, as `METHOD /path` lines. */
const seen = (app: FakeUpstream): string[] => app.requests.map((r) => `${r.method} ${r.url}`);

/** Send `CONNECT target` on the outbound port: the answer's status (0: no answer, the connection closed or reset). */
async function connectAttempt(port: number, target: string): Promise<number> {
  const sock = net.connect(port, '127.0.0.1');
  sock.on('error', () => {});
  let buf = '';
  sock.on('data', (d: Buffer) => { buf += d.toString('latin1'); });
  await new Promise<void>((r) => { sock.once('connect', () => r()); sock.once('close', () => r()); });
  sock.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
  await waitFor(() => buf.includes('\r\n\r\n') || sock.destroyed, 5000).catch(() => {});
  sock.destroy();
  const m = /^HTTP\/1\.1 (\d{3})/.exec(buf);
  return m === null ? 0 : Number(m[1]);
}

describe('CONNECT abuse on the outbound port (explicit mode)', () => {
  let open: RunningProxy;
  let off: RunningProxy;
  let registryOnly: RunningProxy;
  /** A server outside the registry: the CONNECT target that must never see a connection. */
  let target: Awaited<ReturnType<typeof recordingApp>>;

  beforeAll(async () => {
    target = await recordingApp('outside');
    open = await startProxy({ 'empty.yaml': '' }, ['--connect', '--app-port', String(target.port)]);
    off = await startProxy({ 'empty.yaml': '' });
    registryOnly = await startProxy({ 'empty.yaml': '' }, ['--connect', '--outbound-traffic-policy', 'REGISTRY_ONLY']);
  });
  afterAll(async () => {
    await Promise.all([open?.stop(), off?.stop(), registryOnly?.stop()]);
    await target?.close();
  });

  const ownPortCases: Array<{ name: string; target: (p: RunningProxy) => string }> = [
    { name: 'to the admin port (POST /quitquitquit through the tunnel)', target: (p) => `127.0.0.1:${p.info.admin}` },
    { name: 'to the admin port by name', target: (p) => `localhost:${p.info.admin}` },
    { name: 'to the admin port over IPv6 loopback', target: (p) => `[::1]:${p.info.admin}` },
    { name: 'to the outbound port itself (a loop, or a relay)', target: (p) => `127.0.0.1:${p.info.outbound}` },
    { name: 'to the inbound port (past the peer checks)', target: (p) => `127.0.0.1:${p.info.inbound}` },
    { name: 'to the stats port', target: (p) => `127.0.0.1:${p.info.stats}` },
    { name: 'to the health port', target: (p) => `127.0.0.1:${p.info.health}` },
  ];

  it.each(ownPortCases)('CONNECT $name: 403, nothing connected, the sidecar unharmed', async (c) => {
    const before = (await open.admin('/stats/prometheus')).body;
    const opened = (s: string): number => Number(/^remora_tcp_connections_total (\d+)/m.exec(s)?.[1] ?? 0);
    expect(await connectAttempt(open.info.outbound, c.target(open))).toBe(403);
    // Recorded (once the client's socket closed) as a refused connection of BlackHoleCluster, never an upstream one.
    const closed = (s: string): number => Number(/istio_tcp_connections_closed_total\{[^}]*destination_service_name="BlackHoleCluster"[^}]*response_flags="UH"[^}]*\} (\d+)/.exec(s)?.[1] ?? 0);
    await waitFor(async () => closed((await open.admin('/stats/prometheus')).body) === closed(before) + 1, 5000);
    const after = (await open.admin('/stats/prometheus')).body;
    expect(opened(after)).toBe(opened(before) + 1);
    expect(after).not.toMatch(/envoy_cluster_upstream_cx_total\{cluster_name="PassthroughCluster"\} [1-9]/);
    expect((await open.admin('/ready')).status).toBe(200);
    expect(open.exitCode).toBeNull();
  });

  it('CONNECT when --connect is off: 405, the target never sees a connection', async () => {
    const before = target.connections;
    expect(await connectAttempt(off.info.outbound, `127.0.0.1:${target.port}`)).toBe(405);
    expect(target.connections).toBe(before);
  });

  it('a flood of made-up Hosts, inbound and to unknown destinations: bounded metric series, no Host becomes a label value', async () => {
    const seriesOf = (stats: string, reporter: string): string[] => stats.split('\n').filter((l) => l.startsWith(`istio_requests_total{reporter="${reporter}"`));
    for (let i = 0; i < 30; i++) {
      const host = `flood-${i}-${Math.random().toString(36).slice(2, 8)}.attacker.example`;
      // Inbound (explicit mode): any Host reaches the app port.
      await new Promise<void>((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port: open.info.inbound, path: '/', headers: { host }, agent: false }, (res) => { res.resume(); res.on('end', () => resolve()); });
        req.on('error', reject);
      });
      // Outbound to a host outside the registry (a different loopback address each time, nothing listening there):
      // passed through under ALLOW_ANY, 503 UF, recorded as PassthroughCluster's.
      await new Promise<void>((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port: open.info.outbound, path: '/', headers: { host: `127.0.${i}.${1 + Math.floor(Math.random() * 250)}:9` }, agent: false }, (res) => { res.resume(); res.on('end', () => resolve()); });
        req.on('error', reject);
      });
    }
    const stats = (await open.admin('/stats/prometheus')).body;
    expect(stats).not.toContain('attacker.example');
    expect(stats).not.toMatch(/destination_service(_name)?="127\./);
    expect(seriesOf(stats, 'destination')).toHaveLength(1);
    expect(seriesOf(stats, 'source').filter((l) => l.includes('destination_service_name="PassthroughCluster"'))).toHaveLength(1);
    expect(seriesOf(stats, 'source').find((l) => l.includes('PassthroughCluster'))).toContain('destination_service="unknown"');
  });

  it('CONNECT to a host outside the registry under REGISTRY_ONLY: 502, the target never sees a connection', async () => {
    const before = target.connections;
    expect(await connectAttempt(registryOnly.info.outbound, `127.0.0.1:${target.port}`)).toBe(502);
    expect(target.connections).toBe(before);
    // Control: under ALLOW_ANY the same CONNECT goes through (the target is reachable, the refusal was the policy).
    expect(await connectAttempt(open.info.outbound, `127.0.0.1:${target.port}`)).toBe(200);
    await waitFor(() => target.connections === before + 1, 3000);
  });
});

describe('PeerAuthentication on plaintext connections (explicit mode, workload certificate)', () => {
  let proxy: RunningProxy;
  let dir: string;
  let strictApp: Awaited<ReturnType<typeof recordingApp>>;
  let openApp: Awaited<ReturnType<typeof recordingApp>>;
  /** An HTTP/2 (h2c) app: the inbound side speaks to the app in the client's protocol. */
  let h2App: FakeH2Upstream;
  let version = 0;
  let current = '';

  const pa = (workload: string, strictPort?: number): string => `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: web, namespace: default }
spec:
  selector: { matchLabels: { app: web } }
  mtls: { mode: ${workload} }
${strictPort !== undefined ? `  portLevelMtls: { ${strictPort}: { mode: STRICT } }\n` : ''}`;

  /** Write the PeerAuthentication and wait until the sidecar runs it. */
  async function setPa(yaml: string): Promise<void> {
    if (yaml === current) return;
    current = yaml;
    proxy.writeConfig('pa.yaml', yaml);
    const want = ++version;
    await waitFor(async () => (JSON.parse((await proxy.admin('/config_dump')).body) as { version: number }).version >= want, 10_000);
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'remora-l4-attacks-'));
    const root = createRoot(join(dir, 'root'));
    const cert = issueWorkload(root, { trustDomain: 'cluster.local', namespace: 'default', serviceAccount: 'web' }, join(dir, 'web'));
    strictApp = await recordingApp('strict');
    openApp = await recordingApp('open');
    h2App = await fakeUpstream().http2().route('*', 200, 'h2').start();
    const h2Port = h2App.port;
    proxy = await startProxy(
      { 'pa.yaml': pa('PERMISSIVE', strictApp.port) },
      ['--cert-dir', cert.dir, '--app-port', String(openApp.port), '--app-port', String(strictApp.port), '--app-port', String(h2Port), '--labels', 'app=web', '--namespace', 'default'],
    );
    version = (JSON.parse((await proxy.admin('/config_dump')).body) as { version: number }).version;
    current = pa('PERMISSIVE', strictApp.port);
  });
  afterAll(async () => {
    await proxy?.stop();
    await strictApp?.close();
    await openApp?.close();
    await h2App?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A raw plaintext HTTP/1.1 client on the inbound port. */
  function plain(): { sock: net.Socket; text: () => string; closed: Promise<void> } {
    const sock = net.connect(proxy.info.inbound, '127.0.0.1');
    sock.on('error', () => {});
    let buf = '';
    sock.on('data', (d: Buffer) => { buf += d.toString('latin1'); });
    return { sock, text: () => buf, closed: new Promise((r) => sock.once('close', () => r())) };
  }

  it('a plain connection to the inbound port with Host naming the STRICT port: closed unanswered, the app never sees it', async () => {
    const before = strictApp.requests.length;
    const c = plain();
    c.sock.write(`GET /forged HTTP/1.1\r\nHost: web:${strictApp.port}\r\n\r\n`);
    await c.closed;
    expect(c.text()).toBe('');
    expect(strictApp.requests.length).toBe(before);
    expect((await proxy.admin('/stats/prometheus')).body).toMatch(/remora_inbound_mtls_refused_total [1-9]/);
    // Control: the PERMISSIVE port on the same kind of connection is served.
    const d = plain();
    d.sock.write(`GET /fine HTTP/1.1\r\nHost: web:${openApp.port}\r\nConnection: close\r\n\r\n`);
    await d.closed;
    expect(d.text()).toMatch(/^HTTP\/1\.1 200 /);
    expect(seen(openApp)).toContain('GET /fine');
  });

  it('an idle plaintext keep-alive connection across PERMISSIVE→STRICT: closed, nothing more reaches the app', async () => {
    await setPa(pa('PERMISSIVE', strictApp.port));
    const before = openApp.requests.length;
    const c = plain();
    c.sock.write(`GET /first HTTP/1.1\r\nHost: web:${openApp.port}\r\n\r\n`);
    await waitFor(() => c.text().includes('"server":"open"'), 5000);
    await setPa(pa('STRICT'));
    await Promise.race([c.closed, new Promise((_, j) => setTimeout(() => j(new Error('still open after STRICT')), 3000))]);
    c.sock.write(`GET /second HTTP/1.1\r\nHost: web:${openApp.port}\r\n\r\n`);
    await new Promise((r) => setTimeout(r, 100));
    expect(seen(openApp).slice(before)).toEqual(['GET /first']);
  });

  it('a plaintext request in flight across PERMISSIVE→STRICT: finished with Connection: close, then the connection closes', async () => {
    await setPa(pa('PERMISSIVE', strictApp.port));
    const before = openApp.requests.length;
    const c = plain();
    c.sock.write(`GET /slow HTTP/1.1\r\nHost: web:${openApp.port}\r\n\r\n`);
    await waitFor(() => openApp.requests.length > before, 5000);
    await setPa(pa('STRICT'));
    await Promise.race([c.closed, new Promise((_, j) => setTimeout(() => j(new Error('still open after its response')), 5000))]);
    expect(c.text()).toMatch(/^HTTP\/1\.1 200 [\s\S]*\r\nconnection: close\r\n/i);
    expect(seen(openApp).slice(before)).toEqual(['GET /slow']);
  });

  it('a plaintext HTTP/2 connection across PERMISSIVE→STRICT: GOAWAY, no further stream reaches the app', async () => {
    await setPa(pa('PERMISSIVE', strictApp.port));
    const h2Port = h2App.port;
    const session = http2.connect(`http://127.0.0.1:${proxy.info.inbound}`);
    session.on('error', () => {});
    const goaway = new Promise<void>((r) => session.once('goaway', () => r()));
    const first = await new Promise<number>((resolve, reject) => {
      const s = session.request({ ':path': '/h2-first', ':authority': `web:${h2Port}` });
      s.on('response', (h) => resolve(Number(h[':status'])));
      s.on('error', reject);
      s.resume();
      s.end();
    });
    expect(first).toBe(200);
    await setPa(pa('STRICT'));
    await Promise.race([goaway, new Promise((_, j) => setTimeout(() => j(new Error('no GOAWAY')), 3000))]);
    // A stream opened after the GOAWAY is refused by the client session itself; the app saw only the first.
    session.destroy();
    expect(h2App.requests.map((r) => `${r.method} ${r.url}`)).toEqual(['GET /h2-first']);
  });
});

// === Capture mode, in network namespaces ===

const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(root, 'dist', 'cli.js');
const peer = join(root, 'test', 'support', 'netns-peer.mjs');
const unavailable = netnsAvailable();
if (unavailable !== undefined) console.warn(`l4-attacks (capture): skipped: ${unavailable}`);
const APP_UID = 1000;

const paYaml = (mode: string): string => `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: web, namespace: default }
spec:
  selector: { matchLabels: { app: web } }
  mtls: { mode: ${mode} }
`;

describe.skipIf(unavailable !== undefined)('inbound attacks on a captured pod (remora iptables, --capture-mode redirect)', () => {
  let pair: NetnsPair;
  let dir: string;
  let certsDir = '';
  let certDirPath = '';
  let podApps: { output: () => string };
  let world: { output: () => string };

  const client = (ns: 'pod' | 'world', op: Record<string, unknown>): PeerResult => peerClient(pair, ns, op, APP_UID);
  /** What reached a logged server of the pod or the world: its `seen` lines. */
  const seen = (out: string, server: string): Array<{ kind: string; url?: string; peer?: string }> =>
    out.split('\n').filter((l) => l.startsWith('seen ')).map((l) => JSON.parse(l.slice(5)) as { server: string; kind: string; url?: string }).filter((s) => s.server === server);
  const stats = (): string => client('pod', { op: 'http', host: '127.0.0.1', port: 15000, path: '/stats/prometheus' }).body ?? '';

  beforeAll(async () => {
    pair = createNetnsPair('l4a', 79);
    dir = mkdtempSync(join(tmpdir(), 'remora-l4a-'));
    chmodSync(dir, 0o755);
    const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
    // A workload certificate (read by the sidecar through CAP_DAC_READ_SEARCH) and PeerAuthentication PERMISSIVE:
    // plaintext is served, until the last case makes it STRICT.
    const certRoot = mkdtempSync(join(tmpdir(), 'remora-l4a-certs-'));
    certsDir = certRoot;
    const cert = issueWorkload(createRoot(join(certRoot, 'root')), { trustDomain: 'cluster.local', namespace: 'default', serviceAccount: 'web' }, join(certRoot, 'web'));
    certDirPath = cert.dir;
    writeFileSync(join(dir, 'pa.yaml'), paYaml('PERMISSIVE'));
    writeFileSync(join(dir, 'policy.yaml'), `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-ports, namespace: default }
spec:
  selector: { matchLabels: { app: web } }
  rules:
  - to: [{ operation: { ports: ["8080"], methods: [GET] } }]
  - to: [{ operation: { ports: ["9000", "9002", "9003", "9004", "7777"] } }]
  - to: [{ operation: { ports: ["9001"], methods: [GET] } }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-get-9000, namespace: default }
spec:
  selector: { matchLabels: { app: web } }
  action: DENY
  rules:
  - to: [{ operation: { ports: ["9000"], methods: [GET] } }]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: { name: jwt, namespace: default }
spec:
  selector: { matchLabels: { app: web } }
  jwtRules:
  - issuer: https://issuer.test
    jwks: '${JSON.stringify({ keys: [{ ...jwk, kid: 'k1', alg: 'ES256', use: 'sig' }] })}'
`);
    world = await pair.start(pair.world, [process.execPath, peer, 'serve', JSON.stringify([
      { kind: 'http', host: pair.worldIp, port: 9090, name: 'world-external', log: true },
    ])], { readyLine: /listening/ });
    podApps = await pair.start(pair.pod, [process.execPath, peer, 'serve', JSON.stringify([
      { kind: 'http', host: '0.0.0.0', port: 8080, name: 'app-8080', log: true },
      { kind: 'echo', host: '0.0.0.0', port: 9000, name: 'echo-9000', log: true },
      { kind: 'echo', host: '0.0.0.0', port: 9001, name: 'echo-9001', log: true },
      { kind: 'echo', host: '0.0.0.0', port: 9002, name: 'echo-9002', log: true },
      { kind: 'http', host: '0.0.0.0', port: 9003, name: 'app-9003', log: true },
      { kind: 'banner', host: '0.0.0.0', port: 9004, banner: 'SERVER-FIRST' },
      { kind: 'http', host: '127.0.0.1', port: 7777, name: 'loopback-only', log: true },
    ])], { uid: APP_UID, readyLine: /listening/ });
    pair.exec(pair.pod, [process.execPath, cli, 'iptables', '--apply', '--ipv6', 'off']);
    await pair.start(pair.pod, [
      process.execPath, cli, 'run', '--config', dir, '--app-port', '8080', '--namespace', 'default', '--labels', 'app=web',
      '--capture-mode', 'redirect', '--admin-port', '15000', '--stats-port', '15090', '--health-port', '15021', '--resolv-conf', '',
      '--cert-dir', certDirPath,
    ], { uid: 1337, readyLine: /remora ready (\{.*\})/, env: { ...process.env, REMORA_ORIGINAL_DST: 'native' } });
  }, 60_000);

  afterAll(() => {
    pair?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (certsDir) rmSync(certsDir, { recursive: true, force: true });
  });

  /** The attempt failed at the connection (reset, refused, closed without a byte). */
  const refused = (r: PeerResult): boolean => (!r.ok && r.error !== 'timeout') || (r.ok && r.data === '' && r.status === undefined);

  const ownPorts: Array<{ name: string; port: number; send: string }> = [
    { name: 'the admin port 15000 (POST /quitquitquit)', port: 15000, send: 'POST /quitquitquit HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n' },
    { name: 'the outbound port 15001 (an open relay carrying the pod\'s identity)', port: 15001, send: '' },
    { name: 'the inbound port 15006 dialled directly (not redirected)', port: 15006, send: 'GET /direct HTTP/1.1\r\nHost: web:8080\r\n\r\n' },
  ];

  it.each(ownPorts)('inbound to $name: refused with a reset, nothing served', (c) => {
    const send = c.port === 15001 ? `GET http://${pair.worldIp}:9090/relayed HTTP/1.1\r\nHost: ${pair.worldIp}:9090\r\n\r\n` : c.send;
    const r = client('world', { op: 'tcp', host: pair.podIp, port: c.port, send, timeoutMs: 3000 });
    expect(refused(r), JSON.stringify(r)).toBe(true);
    expect(seen(world.output(), 'world-external').filter((s) => s.url === '/relayed')).toEqual([]);
    expect(seen(podApps.output(), 'app-8080').filter((s) => s.url === '/direct')).toEqual([]);
    // The sidecar is still up (no quitquitquit) and counted the refusal.
    expect(client('pod', { op: 'http', host: '127.0.0.1', port: 15021, path: '/healthz/ready' }).status).toBe(200);
    expect(stats()).toMatch(new RegExp(`remora_inbound_refused_total\\{reason="${c.port === 15006 ? 'not_redirected' : 'proxy_port'}"\\} [1-9]`));
  });

  it.each([15021, 15090])('inbound to %i (probes and scrapes reach it by design): no admin action there, the sidecar stays', (port) => {
    const r = client('world', { op: 'tcp', host: pair.podIp, port, send: 'POST /quitquitquit HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n', timeoutMs: 3000 });
    expect(r.data ?? '').toMatch(/^HTTP\/1\.1 404 /);
    expect(client('pod', { op: 'http', host: '127.0.0.1', port: 15021, path: '/healthz/ready' }).status).toBe(200);
  });

  it('inbound to an app listener bound to loopback (127.0.0.1:7777; policy allows the port): not reachable, the listener never sees it', () => {
    // The sidecar delivers to the pod's address, where nothing listens on 7777: 503 UF (was: to 127.0.0.1, served).
    const r = client('world', { op: 'http', host: pair.podIp, port: 7777, path: '/loop', timeoutMs: 3000 });
    expect(r.status, JSON.stringify(r)).toBe(503);
    expect(seen(podApps.output(), 'loopback-only')).toEqual([]);
    // Control: the pod itself reaches it.
    expect(client('pod', { op: 'http', host: '127.0.0.1', port: 7777, path: '/local' }).status).toBe(200);
  });

  /**
   * Make the world send its packets for podIp:port to `to` instead, through the pod's interface, as a neighbour on the
   * pod's L2 segment can (raw sockets, CAP_NET_RAW): a route keeps the pod as the next hop, nft rewrites the
   * destination after routing and the answers' source back before conntrack. iptables in the pod redirects the
   * packet before its routing would drop it, so the sidecar reads `to` as the original destination. Returns the undo.
   */
  const craftDestination = (port: number, to: string): (() => void) => {
    const table = `craft${port}`;
    const dev = /\bdev (\S+)/.exec(pair.exec(pair.world, ['ip', '-o', 'route', 'get', pair.podIp]))![1]!;
    pair.exec(pair.world, ['ip', 'route', 'replace', `${pair.podIp}/32`, 'via', pair.podIp, 'dev', dev, 'onlink']);
    pair.exec(pair.world, ['nft', '-f', '-'], `table ip ${table} {
  chain post { type filter hook postrouting priority 300; ip daddr ${pair.podIp} tcp dport ${port} ip daddr set ${to}; }
  chain pre { type filter hook prerouting priority -400; ip saddr ${to} tcp sport ${port} ip saddr set ${pair.podIp}; }
}
`);
    return () => {
      pair.exec(pair.world, ['nft', 'delete', 'table', 'ip', table]);
      pair.exec(pair.world, ['ip', 'route', 'del', `${pair.podIp}/32`]);
    };
  };

  it('a neighbour addressing its packets to 127.0.0.1 (the original destination is loopback): reset, the loopback-only listener never sees it', () => {
    const undo = craftDestination(7777, '127.0.0.1');
    try {
      const r = client('world', { op: 'http', host: pair.podIp, port: 7777, path: '/crafted-loopback', timeoutMs: 3000 });
      expect(refused(r), JSON.stringify(r)).toBe(true);
      expect(seen(podApps.output(), 'loopback-only')).toEqual([]);
      expect(stats()).toMatch(/remora_inbound_refused_total\{reason="not_pod_address"\} [1-9]/);
    } finally {
      undo();
    }
  });

  it('a neighbour addressing its packets to another host through the pod (an open relay from the pod\'s address): reset, never relayed', async () => {
    const far = await pair.start(pair.world, [process.execPath, peer, 'serve', JSON.stringify([{ kind: 'http', host: pair.worldIp, port: 9003, name: 'far-9003', log: true }])], { readyLine: /listening/ });
    const undo = craftDestination(9003, pair.worldIp);
    try {
      const r = client('world', { op: 'http', host: pair.podIp, port: 9003, path: '/relayed-via-pod', timeoutMs: 3000 });
      expect(refused(r), JSON.stringify(r)).toBe(true);
      expect(seen(far.output(), 'far-9003')).toEqual([]);
      expect(seen(podApps.output(), 'app-9003').filter((x) => x.url === '/relayed-via-pod')).toEqual([]);
    } finally {
      undo();
      far.child.kill('SIGKILL');
    }
  });

  it('slow HTTP taken for TCP: a forged x-forwarded-client-cert sent after the detection timeout is removed (it is HTTP)', () => {
    const forged = 'By=spiffe://cluster.local/ns/default/sa/web;URI=spiffe://cluster.local/ns/istio-system/sa/admin';
    const r = client('world', { op: 'tcp', host: pair.podIp, port: 9003, delayMs: 400, send: `GET /slow-xfcc HTTP/1.1\r\nHost: web\r\nx-forwarded-client-cert: ${forged}\r\nConnection: close\r\n\r\n`, timeoutMs: 4000 });
    expect(r.data ?? '').toMatch(/^HTTP\/1\.1 200 /);
    const body = JSON.parse(r.data!.slice(r.data!.indexOf('\r\n\r\n') + 4)) as { headers: Record<string, string> };
    expect(body.headers['x-forwarded-client-cert']).toBeUndefined();
    expect(body.headers['x-request-id']).toMatch(/[0-9a-f-]{36}/); // through the sidecar's HTTP path
    expect(stats()).toMatch(/remora_inbound_late_http_total [1-9]/);
  });

  it('slow HTTP taken for TCP: a request with an invalid JWT sent after the detection timeout gets 401, the app never sees it', () => {
    const r = client('world', { op: 'tcp', host: pair.podIp, port: 9003, delayMs: 400, send: 'GET /slow-jwt HTTP/1.1\r\nHost: web\r\nAuthorization: Bearer not.a.jwt\r\nConnection: close\r\n\r\n', timeoutMs: 4000 });
    expect(r.data ?? '').toMatch(/^HTTP\/1\.1 401 /);
    expect(seen(podApps.output(), 'app-9003').filter((s) => s.url === '/slow-jwt')).toEqual([]);
  });

  it('a server-first app still never stalls (control): the banner arrives though the client is silent', () => {
    const r = client('world', { op: 'tcp', host: pair.podIp, port: 9004, expectBytes: 14, timeoutMs: 3000 });
    expect(r).toMatchObject({ ok: true, data: 'SERVER-FIRST\r\n' });
  });

  it('a TCP connection vs a DENY rule with HTTP-only fields (ports 9000 + methods GET): denied without its methods, the app never sees it', () => {
    const r = client('world', { op: 'tcp', host: pair.podIp, port: 9000, send: '\u0000binary', timeoutMs: 3000 });
    expect(refused(r), JSON.stringify(r)).toBe(true);
    expect(seen(podApps.output(), 'echo-9000')).toEqual([]);
  });

  it('a TCP connection vs an ALLOW rule with HTTP-only fields (ports 9001 + methods GET): the rule is skipped, denied, the app never sees it', () => {
    const r = client('world', { op: 'tcp', host: pair.podIp, port: 9001, send: '\u0000binary', timeoutMs: 3000 });
    expect(refused(r), JSON.stringify(r)).toBe(true);
    expect(seen(podApps.output(), 'echo-9001')).toEqual([]);
    // Control: the port with an L4 ALLOW rule carries TCP.
    expect(client('world', { op: 'tcp', host: pair.podIp, port: 9002, send: 'fine', expectBytes: 4 })).toMatchObject({ ok: true, data: 'fine' });
  });

  it('HTTP on a port whose ALLOW rule has methods: GET served, POST 403 and never seen by the app', () => {
    expect(client('world', { op: 'http', host: pair.podIp, port: 8080, path: '/get' }).status).toBe(200);
    const r = client('world', { op: 'tcp', host: pair.podIp, port: 8080, send: 'POST /post HTTP/1.1\r\nHost: web\r\nContent-Length: 0\r\nConnection: close\r\n\r\n', timeoutMs: 3000 });
    expect(r.data ?? '').toMatch(/^HTTP\/1\.1 403 /);
    expect(seen(podApps.output(), 'app-8080').filter((s) => s.url === '/post')).toEqual([]);
  });
  it('a plaintext TCP connection kept open across PERMISSIVE→STRICT is closed; no new plaintext connection is taken', async () => {
    const version = (): number => (JSON.parse(client('pod', { op: 'http', host: '127.0.0.1', port: 15000, path: '/config_dump' }).body!) as { version: number }).version;
    const v0 = version();
    const echoed = (): number => seen(podApps.output(), 'echo-9002').filter((x) => x.kind === 'data').length;
    const echoes = echoed();
    // A client that sends one message, gets its echo, then waits up to 8 s for more (it never sends again).
    const held = await pair.start(pair.world, [process.execPath, peer, 'client', JSON.stringify({ op: 'tcp', host: pair.podIp, port: 9002, send: 'held', expectBytes: 100, timeoutMs: 8000 })]);
    await waitFor(() => /istio_tcp_connections_opened_total\{[^}]*inbound\|9002\|\|[^}]*\} [1-9]/.test(stats()), 5000);
    // Its message reached the app and was echoed (else the change may close the connection before the echo).
    await waitFor(() => echoed() > echoes, 5000);
    const t0 = Date.now();
    writeFileSync(join(dir, 'pa.yaml'), paYaml('STRICT'));
    try {
      await waitFor(() => version() > v0, 10_000);
      await new Promise<void>((r) => { if (held.child.exitCode !== null) r(); else held.child.once('exit', () => r()); });
      const r = JSON.parse(held.output().trim().split('\n').pop()!) as PeerResult & { closed?: boolean };
      // Closed by the sidecar soon after the change (not by the client's 8 s timeout), after the echo it had.
      expect(r.data).toBe('held');
      expect(r.error === undefined ? r.closed : true).toBe(true);
      expect(Date.now() - t0).toBeLessThan(7000);
      // A new plaintext connection is refused now.
      expect(refused(client('world', { op: 'tcp', host: pair.podIp, port: 9002, send: 'new', timeoutMs: 3000 }))).toBe(true);
    } finally {
      writeFileSync(join(dir, 'pa.yaml'), paYaml('PERMISSIVE'));
    }
  });
});
