/**
 * Bad Gateway API input from files, through the CLI: `remora validate` names each problem as
 * `file:line: HTTPRoute/ns/name: spec.path: reason` and exits 1; a running sidecar rejects the change whole and keeps
 * serving its last good config; `remora explain` runs offline on a `kubectl get svc,endpointslices,httproutes -o yaml`
 * style List.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, startProxy, waitFor, type RunningProxy } from '../../support/proxy-harness.js';
import { startEchoPod, type EchoPod } from './mesh-env.js';

const NS = 'shop';
const base = (v1: EchoPod, v2: EchoPod): string => `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: cart, namespace: ${NS}, uid: 1d2c, resourceVersion: "41", creationTimestamp: "2025-01-01T00:00:00Z"}
  spec: {clusterIP: 10.96.7.1, clusterIPs: [10.96.7.1], type: ClusterIP, ports: [{name: http, port: 80, protocol: TCP, targetPort: 8080}]}
  status: {loadBalancer: {}}
- apiVersion: v1
  kind: Service
  metadata: {name: cart-v2, namespace: ${NS}}
  spec: {clusterIP: 10.96.7.2, ports: [{name: http, port: 80, targetPort: 8080}]}
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: {name: cart-abcde, namespace: ${NS}, labels: {kubernetes.io/service-name: cart, endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io}}
  addressType: IPv4
  endpoints: [{addresses: [${v1.ip}], conditions: {ready: true, serving: true, terminating: false}, targetRef: {kind: Pod, name: cart-v1-pod, namespace: ${NS}}}]
  ports: [{name: http, port: ${v1.httpPort}, protocol: TCP}]
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: {name: cart-v2-xyz, namespace: ${NS}, labels: {kubernetes.io/service-name: cart-v2}}
  addressType: IPv4
  endpoints: [{addresses: [${v2.ip}]}]
  ports: [{name: http, port: ${v2.httpPort}}]
`;
const good = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: canary, namespace: ${NS}}
spec:
  parentRefs: [{group: "", kind: Service, name: cart}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v2}}]
    backendRefs: [{name: cart-v2, port: 80}]
  - backendRefs: [{name: cart, port: 80}]
`;
const bad = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: canary
  namespace: ${NS}
spec:
  parentRefs:
  - {group: "", kind: Service, name: cart}
  rules:
  - matches:
    - path: {type: RegularExpression, value: "/(v2"}
    filters:
    - type: RequestHeaderModifer
    backendRefs:
    - {name: cart-v2, port: 80, weight: -1}
`;

describe.skipIf(!existsSync(CLI))('bad Gateway API input in files', () => {
  let v1: EchoPod;
  let v2: EchoPod;
  let proxy: RunningProxy;
  const pod = async (path: string): Promise<string> => {
    const r = await proxy.get(path, { host: `cart.${NS}` });
    return r.status === 200 ? (JSON.parse(r.body) as { pod: string }).pod : `status ${r.status}`;
  };

  beforeAll(async () => {
    v1 = await startEchoPod('cart-v1-pod', '127.0.0.7');
    v2 = await startEchoPod('cart-v2-pod', '127.0.0.8');
    proxy = await startProxy({ 'mesh.yaml': base(v1, v2), 'routes.yaml': good }, ['--namespace', NS, '--resolv-conf', '']);
  }, 20_000);
  afterAll(async () => {
    await proxy?.stop();
    await v1?.close();
    await v2?.close();
  });

  it('remora validate: each problem at file:line with the object and field; exit 1', () => {
    const dir = mkdtempSync(join(tmpdir(), 'remora-gw-validate-'));
    try {
      writeFileSync(join(dir, 'routes.yaml'), bad);
      let out = '';
      let code = 0;
      try {
        execFileSync(process.execPath, [CLI, 'validate', '--config', join(dir, 'routes.yaml')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      } catch (err) {
        code = (err as { status: number }).status;
        out = (err as { stdout: string }).stdout;
      }
      expect(code).toBe(1);
      const file = join(dir, 'routes.yaml');
      expect(out).toContain(`${file}:11: HTTPRoute/${NS}/canary: spec.rules[0].matches[0].path.value: invalid regex`);
      expect(out).toContain(`${file}:13: HTTPRoute/${NS}/canary: spec.rules[0].filters[0].type: unknown filter type "RequestHeaderModifer"`);
      expect(out).toContain(`${file}:15: HTTPRoute/${NS}/canary: spec.rules[0].backendRefs[0].weight: weight -1 must be between 0 and 1000000`);
      expect(out).toContain(`status: HTTPRoute/${NS}/canary → Service ${NS}/cart: Accepted=False (UnsupportedValue`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a running sidecar rejects the change whole and keeps serving the last good routes', async () => {
    await waitFor(async () => (await pod('/v2/a')) === 'cart-v2-pod');
    expect(await pod('/a')).toBe('cart-v1-pod');
    proxy.writeConfig('routes.yaml', bad);
    await waitFor(async () => (JSON.parse((await proxy.admin('/config_dump')).body) as { lastError: unknown }).lastError !== null, 5000);
    const dump = JSON.parse((await proxy.admin('/config_dump')).body) as { lastError: { errors: string[] } };
    expect(dump.lastError.errors).toContainEqual(expect.stringMatching(new RegExp(`routes\\.yaml:15: HTTPRoute/${NS}/canary: spec\\.rules\\[0\\]\\.backendRefs\\[0\\]\\.weight: weight -1`)));
    expect(await pod('/v2/a')).toBe('cart-v2-pod');
    expect(await pod('/a')).toBe('cart-v1-pod');
  });

  it('remora explain runs offline on the kubectl dump', () => {
    const dir = mkdtempSync(join(tmpdir(), 'remora-gw-explain-'));
    try {
      writeFileSync(join(dir, 'dump.yaml'), `${base(v1, v2)}---\n${good}`);
      const out = execFileSync(process.execPath, [CLI, 'explain', '--config', dir, '--namespace', NS, 'GET http://cart/v2/items'], { encoding: 'utf8' });
      expect(out).toContain(`via HTTPRoute/${NS}/canary`);
      expect(out).toContain('route:    ✔ canary.0 (HTTPRoute/shop/canary) matched on uri path prefix "/v2" (whole segments)');
      expect(out).toContain(`endpoints: ${v2.ip}:${v2.httpPort}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
