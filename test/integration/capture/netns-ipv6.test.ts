// Transparent capture over IPv6, for real: the "pod" and "world" namespaces of netns.test.ts with IPv6 addresses too
// (fd00:<n>::/64), `remora iptables --apply` writing the ip6tables rules beside the iptables ones, Remora as UID 1337
// and the app as UID 1000. An app's IPv6 connections are redirected to [::1]:15001 and inbound ones to [::]:15006,
// which Remora's IPv6 companions of its listeners take: HTTP routed by Host to an IPv6 endpoint, TCP passed through
// to the IPv6 address the app dialled, inbound HTTP and TCP from the world's IPv6 address — with both readers of the
// original destination (the addon's IP6T_SO_ORIGINAL_DST, and the conntrack table, which prints IPv6 in full).
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNetnsPair, netnsAvailable, peerClient, type NetnsPair, type PeerResult } from '../../support/netns.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const cli = join(root, 'dist', 'cli.js');
const peer = join(root, 'test', 'support', 'netns-peer.mjs');

/** Namespaces, and IPv6 NAT in them (ip6tables' nat table), or why not. */
function available(): string | undefined {
  const why = netnsAvailable();
  if (why !== undefined) return why;
  const probe = createNetnsPair('v6p', 90, { ipv6: true });
  try {
    probe.exec(probe.pod, ['ip6tables', '-t', 'nat', '-S', 'OUTPUT']);
    return undefined;
  } catch (err) {
    return `no IPv6 NAT here (${(err as Error).message.split('\n')[0]})`;
  } finally {
    probe.destroy();
  }
}
const unavailable = available();
if (unavailable !== undefined) console.warn(`capture/netns-ipv6: skipped: ${unavailable}`);

const APP_UID = 1000;


describe.skipIf(unavailable !== undefined).each([
  { reader: 'native', subnet: 81, user: { uid: 1337 } },
  { reader: 'conntrack', subnet: 82, user: { uid: 0, gid: 1337 } },
])('transparent capture over IPv6 (original destination: $reader)', ({ reader, subnet, user }) => {
  let net: NetnsPair;
  let dir: string;
  let adminPort = 15000;

  const client = (ns: 'pod' | 'world', op: Record<string, unknown>): PeerResult => peerClient(net, ns, op, APP_UID);
  const stats = (): string => client('pod', { op: 'http', host: '127.0.0.1', port: adminPort, path: '/stats/prometheus' }).body ?? '';

  beforeAll(async () => {
    net = createNetnsPair(`6${reader.slice(0, 2)}`, subnet, { ipv6: true });
    dir = mkdtempSync(join(tmpdir(), 'remora-netns6-'));
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, 'mesh.yaml'), `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: reviews6, namespace: default }
spec:
  hosts: [reviews6.example.internal]
  ports: [{ number: 8080, name: http, protocol: HTTP }]
  resolution: STATIC
  location: MESH_INTERNAL
  endpoints: [{ address: "${net.worldIp6}" }]
`);
    await net.start(net.world, [process.execPath, peer, 'serve', JSON.stringify([
      { kind: 'http', host: net.worldIp6, port: 8080, name: 'world-reviews6' },
      { kind: 'echo', host: net.worldIp6, port: 7000 },
    ])], { readyLine: /listening/ });
    // The app listens on [::] (IPv4 and IPv6): inbound traffic reaches it at the address the peer dialled.
    await net.start(net.pod, [process.execPath, peer, 'serve', JSON.stringify([
      { kind: 'http', host: '::', port: 8080, name: 'pod-app' },
      { kind: 'echo', host: '::', port: 9000 },
    ])], { uid: APP_UID, readyLine: /listening/ });
    const applied = net.exec(net.pod, [process.execPath, cli, 'iptables', '--apply']);
    expect(applied).toMatch(/IPv6 rules applied/);
    const sidecar = await net.start(net.pod, [
      process.execPath, cli, 'run', '--config', dir, '--app-port', '8080', '--app-port', '9000', '--namespace', 'default', '--capture-mode', 'redirect',
      '--stats-port', '15090', '--health-port', '15021', '--resolv-conf', '',
    ], { ...user, readyLine: /remora ready (\{.*\})/, env: { ...process.env, REMORA_ORIGINAL_DST: reader } });
    adminPort = (JSON.parse(sidecar.match![1]!) as { admin: number }).admin;
  }, 60_000);

  afterAll(() => {
    net?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('writes the IPv6 capture rules (ip6tables): loopback and the proxy exempt, the rest to 15001', () => {
    const rules = net.exec(net.pod, ['ip6tables', '-t', 'nat', '-S', 'REMORA_OUTPUT']);
    expect(rules).toContain('-A REMORA_OUTPUT -d ::1/128 -j RETURN');
    expect(rules).toContain('-A REMORA_OUTPUT -m owner --uid-owner 1337 -j RETURN');
    expect(rules).toContain('-A REMORA_OUTPUT -j REMORA_REDIRECT');
  });

  it('routes HTTP dialled over IPv6 by Host to an IPv6 endpoint', () => {
    const r = client('pod', { op: 'http', host: net.worldIp6, port: 8080, path: '/six', headers: { host: 'reviews6.example.internal' } });
    expect(r).toMatchObject({ ok: true, status: 200 });
    const seen = JSON.parse(r.body!) as { server: string; url: string; headers: Record<string, string> };
    expect(seen.server).toBe('world-reviews6');
    expect(seen.headers['x-request-id']).toMatch(/[0-9a-f-]{36}/); // it went through the sidecar
    expect(stats()).toMatch(/istio_requests_total\{[^}]*destination_service="reviews6\.example\.internal"[^}]*\} [1-9]/);
  });

  it('passes TCP to the IPv6 address the app dialled (passthrough), bytes both ways', () => {
    const r = client('pod', { op: 'tcp', host: net.worldIp6, port: 7000, send: 'ping over ipv6', expectBytes: 14 });
    expect(r).toMatchObject({ ok: true, data: 'ping over ipv6' });
    expect(stats()).toMatch(/remora_listener_connections_total\{listener="outbound",kind="tcp"\} [1-9]/);
  });

  it('serves inbound IPv6 calls from the world: HTTP to the app port, other bytes piped to the app', () => {
    const http = client('world', { op: 'http', host: net.podIp6, port: 8080, path: '/hello6' });
    expect(http).toMatchObject({ ok: true, status: 200 });
    const seen = JSON.parse(http.body!) as { server: string; headers: Record<string, string>; peer: string };
    expect(seen.server).toBe('pod-app');
    expect(seen.peer).toBe(net.podIp6); // delivered by the sidecar to the pod's IPv6 address, not loopback
    expect(seen.headers['x-forwarded-for']).toBe(net.worldIp6);
    const tcp = client('world', { op: 'tcp', host: net.podIp6, port: 9000, send: 'inbound over ipv6', expectBytes: 17 });
    expect(tcp).toMatchObject({ ok: true, data: 'inbound over ipv6' });
    expect(stats()).toMatch(/remora_listener_connections_total\{listener="inbound",kind="http"\} [1-9]/);
  });
});
