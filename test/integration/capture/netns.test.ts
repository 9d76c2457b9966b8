// Transparent capture for real: a "pod" and a "world" network namespace joined by a veth pair, Remora's own
// `remora iptables --apply` in the pod (its default: every inbound port), Remora running as UID 1337 (setpriv) in
// capture mode and the app's processes as UID 1000. What an injected pod does must keep working: HTTP to a Service
// VIP that only the sidecar can route, TCP to a TCP service, a server-speaks-first server (on a known server-first
// port and on an unknown one), passthrough to an address outside the registry, and inbound HTTP and TCP calls from
// the world, delivered to the pod's address. (What capture refuses is in test/security/l4-attacks.test.ts.)
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNetnsPair, netnsAvailable, peerClient, type NetnsPair, type PeerResult } from '../../support/netns.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const cli = join(root, 'dist', 'cli.js');
const peer = join(root, 'test', 'support', 'netns-peer.mjs');
const unavailable = netnsAvailable();
if (unavailable !== undefined) console.warn(`capture/netns: skipped: ${unavailable}`);

const APP_UID = 1000;
const VIP_HTTP = '198.18.200.10';
const VIP_TCP = '198.18.200.20';


// Both ways of reading the original destination: the SO_ORIGINAL_DST addon, and the conntrack-table fallback
// that runs where the addon could not be built. The table is readable by root only, so that variant runs Remora
// as root with GID 1337 (the capture rules exempt the proxy's UID *or* GID, as Istio's do).
describe.skipIf(unavailable !== undefined).each([
  { reader: 'native', subnet: 77, user: { uid: 1337 } },
  { reader: 'conntrack', subnet: 78, user: { uid: 0, gid: 1337 } },
])('transparent capture in network namespaces (original destination: $reader)', ({ reader, subnet, user }) => {
  let net: NetnsPair;
  let dir: string;
  let adminPort = 15000;

  const client = (ns: 'pod' | 'world', op: Record<string, unknown>): PeerResult => peerClient(net, ns, op, APP_UID);
  const stats = (): string => client('pod', { op: 'http', host: '127.0.0.1', port: adminPort, path: '/stats/prometheus' }).body ?? '';

  beforeAll(async () => {
    net = createNetnsPair(reader.slice(0, 3), subnet);
    dir = mkdtempSync(join(tmpdir(), 'remora-netns-'));
    chmodSync(dir, 0o755);
    const config = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews.example.internal]
  addresses: [${VIP_HTTP}]
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: STATIC
  location: MESH_INTERNAL
  endpoints: [{ address: ${net.worldIp}, ports: { http: 8080 } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: echo, namespace: default }
spec:
  hosts: [echo.example.internal]
  addresses: [${VIP_TCP}]
  ports: [{ number: 7000, name: tcp-echo, protocol: TCP }]
  resolution: STATIC
  location: MESH_INTERNAL
  endpoints: [{ address: ${net.worldIp} }]
`;
    writeFileSync(join(dir, 'mesh.yaml'), config);
    // The world: an HTTP server (the VIP's endpoint), a TCP echo, banner servers on a server-first port (3306) and
    // on an ordinary one (7001), and a second HTTP server reached only by passthrough.
    await net.start(net.world, [process.execPath, peer, 'serve', JSON.stringify([
      { kind: 'http', host: net.worldIp, port: 8080, name: 'world-reviews' },
      { kind: 'echo', host: net.worldIp, port: 7000 },
      { kind: 'banner', host: net.worldIp, port: 3306, banner: 'MYSQL-GREETING' },
      { kind: 'banner', host: net.worldIp, port: 7001, banner: 'SMTP-READY' },
      { kind: 'http', host: net.worldIp, port: 9090, name: 'world-external' },
    ])], { readyLine: /listening/ });
    // The pod's app, as its own user: HTTP on 8080, a TCP echo on 9000.
    await net.start(net.pod, [process.execPath, peer, 'serve', JSON.stringify([
      { kind: 'http', host: '0.0.0.0', port: 8080, name: 'pod-app' },
      { kind: 'echo', host: '0.0.0.0', port: 9000 },
    ])], { uid: APP_UID, readyLine: /listening/ });
    // remora-init: the capture rules, applied by Remora's own command.
    net.exec(net.pod, [process.execPath, cli, 'iptables', '--apply']);
    const sidecar = await net.start(net.pod, [
      process.execPath, cli, 'run', '--config', dir, '--app-port', '8080', '--app-port', '9000', '--namespace', 'default', '--capture-mode', 'redirect',
      '--stats-port', '15090', '--health-port', '15021', '--resolv-conf', '',
    ], { ...user, readyLine: /remora ready (\{.*\})/, env: { ...process.env, REMORA_ORIGINAL_DST: reader } });
    adminPort = (JSON.parse(sidecar.match![1]!) as { admin: number }).admin;
    const dump = JSON.parse(client('pod', { op: 'http', host: '127.0.0.1', port: adminPort, path: '/config_dump' }).body!) as { capture: { originalDestination: string; mode: string } };
    expect(dump.capture.originalDestination).toBe(reader);
    expect(dump.capture.mode).toBe('redirect');
  }, 60_000);

  afterAll(() => {
    net?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('routes HTTP to a Service VIP that only the sidecar can reach, by Host and by the VIP alone', () => {
    const byHost = client('pod', { op: 'http', host: VIP_HTTP, port: 80, path: '/reviews/1', headers: { host: 'reviews.example.internal' } });
    expect(byHost).toMatchObject({ ok: true, status: 200 });
    const seen = JSON.parse(byHost.body!) as { server: string; url: string; headers: Record<string, string> };
    expect(seen.server).toBe('world-reviews');
    expect(seen.url).toBe('/reviews/1');
    expect(seen.headers['x-request-id']).toMatch(/[0-9a-f-]{36}/); // it went through the sidecar
    // Host names no known service: the VIP the app dialled decides.
    const byVip = client('pod', { op: 'http', host: VIP_HTTP, port: 80, path: '/by-vip', headers: { host: 'some-alias' } });
    expect(byVip).toMatchObject({ ok: true, status: 200 });
    expect((JSON.parse(byVip.body!) as { server: string }).server).toBe('world-reviews');
  });

  it('passes TCP to a TCP service through its cluster, bytes both ways', () => {
    const r = client('pod', { op: 'tcp', host: VIP_TCP, port: 7000, send: 'ping over tcp', expectBytes: 13 });
    expect(r).toMatchObject({ ok: true, data: 'ping over tcp' });
    expect(stats()).toMatch(/istio_tcp_connections_opened_total\{[^}]*destination_service="echo\.example\.internal"[^}]*\} [1-9]/);
  });

  it('never stalls a server-speaks-first protocol: at once on a known port, after the detection timeout elsewhere', () => {
    const known = client('pod', { op: 'tcp', host: net.worldIp, port: 3306, expectBytes: 16 });
    expect(known).toMatchObject({ ok: true, data: 'MYSQL-GREETING\r\n' });
    const unknown = client('pod', { op: 'tcp', host: net.worldIp, port: 7001, expectBytes: 12 });
    expect(unknown).toMatchObject({ ok: true, data: 'SMTP-READY\r\n' });
    // Known server-first port: no detection wait. Unknown port: the 100 ms detection timeout, not more than ~1 s.
    expect(known.firstByteMs!).toBeLessThan(unknown.firstByteMs! + 50);
    expect(unknown.firstByteMs!).toBeGreaterThanOrEqual(90);
    expect(unknown.firstByteMs!).toBeLessThan(1000);
    expect(stats()).toMatch(/remora_protocol_detection_timeouts_total\{listener="outbound"\} [1-9]/);
  });

  it('passes unknown destinations through (ALLOW_ANY), HTTP to the address the app dialled', () => {
    const r = client('pod', { op: 'http', host: net.worldIp, port: 9090, path: '/ext', headers: { host: 'not-in-the-registry.example' } });
    expect(r).toMatchObject({ ok: true, status: 200 });
    expect((JSON.parse(r.body!) as { server: string }).server).toBe('world-external');
    expect(stats()).toMatch(/remora_listener_connections_total\{listener="outbound",kind="http"\} [1-9]/);
  });

  it('serves inbound calls from the world: HTTP to the app port, other bytes piped to the app', () => {
    const http = client('world', { op: 'http', host: net.podIp, port: 8080, path: '/hello' });
    expect(http).toMatchObject({ ok: true, status: 200 });
    const seen = JSON.parse(http.body!) as { server: string; headers: Record<string, string>; peer: string };
    expect(seen.server).toBe('pod-app');
    expect(seen.peer).toBe(net.podIp); // delivered by the sidecar to the pod's address (Istio since 1.10), not loopback
    expect(seen.headers['x-forwarded-for']).toBe(net.worldIp);
    const tcp = client('world', { op: 'tcp', host: net.podIp, port: 9000, send: 'inbound bytes', expectBytes: 13 });
    expect(tcp).toMatchObject({ ok: true, data: 'inbound bytes' });
    const s = stats();
    expect(s).toMatch(/remora_listener_connections_total\{listener="inbound",kind="http"\} [1-9]/);
    expect(s).toMatch(/istio_tcp_connections_opened_total\{reporter="destination"[^}]*\} [1-9]/);
  });
});
