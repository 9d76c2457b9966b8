// MeshClusterIPMatching (upstream MeshFrontendHostname), the pod-IP half of MeshFrontend, and a TCPRoute, for real: a "pod" and a
// "world" network namespace, Remora's own capture rules, Remora as UID 1337 and the app as UID 1000. A Service-bound
// route applies to calls to that Service's ClusterIP whatever the Host header says, and never to a call to a pod IP.
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
if (unavailable !== undefined) console.warn(`gateway/cluster-ip: skipped: ${unavailable}`);

const APP_UID = 1000;
const NS = 'gateway-conformance-mesh';
const VIP_V1 = '198.18.201.11';
const VIP_V2 = '198.18.201.12';
const VIP_DB = '198.18.201.20';
const VIP_DB_V2 = '198.18.201.21';

type Reply = PeerResult & { headers?: Record<string, string> };

describe.skipIf(unavailable !== undefined)('Gateway API routes and captured calls (network namespaces)', () => {
  let net: NetnsPair;
  let dir: string;
  const call = (host: string, port: number, hostHeader: string): Reply => peerClient(net, 'pod', { op: 'http', host, port, path: '/', headers: { host: hostHeader } }, APP_UID) as Reply;
  const server = (r: Reply): string => (JSON.parse(r.body ?? '{}') as { server?: string }).server ?? '';

  beforeAll(async () => {
    net = createNetnsPair('gwc', 91);
    dir = mkdtempSync(join(tmpdir(), 'remora-gw-netns-'));
    chmodSync(dir, 0o755);
    const svc = (name: string, vip: string, port: number): string => `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ${NS}}
spec:
  clusterIP: ${vip}
  ports: [{name: http, port: 80, appProtocol: http, targetPort: ${port}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${name}-a, namespace: ${NS}, labels: {kubernetes.io/service-name: ${name}}}
addressType: IPv4
endpoints: [{addresses: [${net.worldIp}]}]
ports: [{name: http, port: ${port}}]
`;
    const tcp = (name: string, vip: string, port: number): string => `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ${NS}}
spec:
  clusterIP: ${vip}
  ports: [{name: tcp-db, port: 5432, targetPort: ${port}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${name}-a, namespace: ${NS}, labels: {kubernetes.io/service-name: ${name}}}
addressType: IPv4
endpoints: [{addresses: [${net.worldIp}]}]
ports: [{name: tcp-db, port: ${port}}]
`;
    writeFileSync(join(dir, 'mesh.yaml'), `${tcp('db', VIP_DB, 5433)}---\n${tcp('db-v2', VIP_DB_V2, 5434)}---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: db, namespace: ${NS}}
spec:
  parentRefs: [{group: "", kind: Service, name: db, port: 5432}]
  rules: [{backendRefs: [{name: db-v2, port: 5432}]}]
---
${svc('echo-v1', VIP_V1, 8081)}---\n${svc('echo-v2', VIP_V2, 8082)}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: mesh-split-v1, namespace: ${NS}}
spec:
  parentRefs: [{group: "", kind: Service, name: echo-v2}]
  rules:
  - filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: X-Header-Set, value: set}]}}]
    backendRefs: [{name: echo-v2, port: 80}]
`);
    await net.start(net.world, [process.execPath, peer, 'serve', JSON.stringify([
      { kind: 'http', host: net.worldIp, port: 8081, name: 'echo-v1' },
      { kind: 'http', host: net.worldIp, port: 8082, name: 'echo-v2' },
      { kind: 'banner', host: net.worldIp, port: 5433, banner: 'DB-V1' },
      { kind: 'banner', host: net.worldIp, port: 5434, banner: 'DB-V2' },
    ])], { readyLine: /listening/ });
    net.exec(net.pod, [process.execPath, cli, 'iptables', '--apply']);
    await net.start(net.pod, [
      process.execPath, cli, 'run', '--config', dir, '--namespace', NS, '--stats-port', '15090', '--health-port', '15021', '--resolv-conf', '',
    ], { uid: 1337, readyLine: /remora ready (\{.*\})/ });
  }, 60_000);

  afterAll(() => {
    net?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('MeshFrontendHostname: the ClusterIP dialled decides, not the Host header', () => {
    const toV2 = call(VIP_V2, 80, 'echo-v1');
    expect(toV2).toMatchObject({ ok: true, status: 200 });
    expect(server(toV2)).toBe('echo-v2');
    expect(toV2.headers?.['x-header-set']).toBe('set');
    const toV1 = call(VIP_V1, 80, 'echo-v2');
    expect(toV1).toMatchObject({ ok: true, status: 200 });
    expect(server(toV1)).toBe('echo-v1');
    expect(toV1.headers?.['x-header-set']).toBeUndefined();
  });

  it('MeshFrontend "send to pod IP": a call to an endpoint of the Service gets no route, whatever its Host', () => {
    for (const host of [`${net.worldIp}:8082`, 'echo-v2']) {
      const r = call(net.worldIp, 8082, host);
      expect(r).toMatchObject({ ok: true, status: 200 });
      expect(server(r)).toBe('echo-v2');
      expect(r.headers?.['x-header-set'], host).toBeUndefined();
    }
  });

  it('a TCPRoute bound to a TCP Service routes connections to its ClusterIP, not those to its endpoints', () => {
    const viaRoute = peerClient(net, 'pod', { op: 'tcp', host: VIP_DB, port: 5432, expectBytes: 7 }, APP_UID);
    expect(viaRoute).toMatchObject({ ok: true, data: 'DB-V2\r\n' });
    const toPod = peerClient(net, 'pod', { op: 'tcp', host: net.worldIp, port: 5433, expectBytes: 7 }, APP_UID);
    expect(toPod).toMatchObject({ ok: true, data: 'DB-V1\r\n' });
  });
});
