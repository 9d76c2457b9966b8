/**
 * Gateway API routes from the API watch, through the CLI against the fake API server: status written by one writer
 * elected through a Lease (never by every sidecar), invalid objects skipped and reported (Accepted=False) while the
 * rest works, dropped rules (PartiallyInvalid), writer failover, observedGeneration, and a live weight change that
 * moves traffic within a second with no failed request.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { FakeKubeApiServer, writeKubeconfig } from '../../support/fake-kube-apiserver.js';
import { CLI, startProxy, waitFor, type RunningProxy } from '../../support/proxy-harness.js';
import { startEchoPod, type EchoPod } from './mesh-env.js';

const NS = 'shop';
const GW = 'gateway.networking.k8s.io/v1';

interface Cond { type: string; status: string; reason: string; message: string; observedGeneration?: number; lastTransitionTime?: string }
interface ParentStatus { parentRef: { name: string }; controllerName: string; conditions: Cond[] }

describe.skipIf(!existsSync(CLI))('route status and the API watch', () => {
  let api: FakeKubeApiServer;
  let kc: { path: string; cleanup: () => void };
  let v1: EchoPod;
  let v2: EchoPod;
  const proxies: RunningProxy[] = [];

  const service = (name: string, pod: EchoPod, ip: string): unknown[] => [
    { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: NS }, spec: { clusterIP: ip, ports: [{ name: 'http', port: 80, appProtocol: 'http' }] } },
    { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: `${name}-a`, namespace: NS, labels: { 'kubernetes.io/service-name': name } }, addressType: 'IPv4', endpoints: [{ addresses: [pod.ip] }], ports: [{ name: 'http', port: pod.httpPort }] },
  ];
  const applyYaml = (yaml: string): void => { for (const d of parseAllDocuments(yaml)) api.apply(d.toJS()); };
  const statusOf = (kind: string, name: string): ParentStatus[] => {
    const list = (api as unknown as { store: Map<string, Map<string, { status?: { parents?: ParentStatus[] } }>> }).store.get(`gateway.networking.k8s.io/${kind}`)!;
    return list.get(`${NS}/${name}`)?.status?.parents ?? [];
  };
  const ours = (kind: string, name: string): ParentStatus[] => statusOf(kind, name).filter((p) => p.controllerName === 'remora.io/mesh-controller');
  const cond = (kind: string, name: string, type: string): Cond | undefined => ours(kind, name)[0]?.conditions.find((c) => c.type === type);
  const statusPatches = (): number => api.requests.filter((r) => r.method === 'PATCH' && r.path.endsWith('/status')).length;
  const lease = (): { holderIdentity?: string } | undefined => (api as unknown as { store: Map<string, Map<string, { spec?: { holderIdentity?: string } }>> }).store.get('coordination.k8s.io/leases')!.get(`${NS}/remora-gateway-status`)?.spec;
  const pod = async (p: RunningProxy, host: string, path = '/'): Promise<string> => {
    const r = await p.get(path, { host });
    return r.status === 200 ? (JSON.parse(r.body) as { pod: string }).pod : `status ${r.status}`;
  };

  beforeAll(async () => {
    v1 = await startEchoPod('cart-v1-pod', '127.0.0.5');
    v2 = await startEchoPod('cart-v2-pod', '127.0.0.6');
    api = await new FakeKubeApiServer().start();
    kc = writeKubeconfig(api.url);
    for (const o of [...service('cart', v1, '10.96.5.1'), ...service('cart-v1', v1, '10.96.5.2'), ...service('cart-v2', v2, '10.96.5.3')]) api.apply(o as never);
    const args = (writer: boolean) => ['--kubernetes', '--namespace', NS, '--resolv-conf', '', ...(writer ? ['--gateway-status', '--gateway-status-lease-duration', '2s'] : [])];
    for (const writer of [true, true, false]) proxies.push(await startProxy({}, args(writer), { env: { KUBECONFIG: kc.path } }));
  }, 30_000);

  afterAll(async () => {
    for (const p of proxies) await p.stop();
    await api?.close();
    kc?.cleanup();
    await v1?.close();
    await v2?.close();
  });

  it('one elected writer reports Accepted, ResolvedRefs and PartiallyInvalid; invalid objects are skipped and reported, the rest works', async () => {
    applyYaml(`apiVersion: ${GW}
kind: HTTPRoute
metadata: {name: good, namespace: ${NS}}
spec:
  parentRefs: [{group: "", kind: Service, name: cart}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v2}}]
    backendRefs: [{name: cart-v2, port: 80}]
  - backendRefs: [{name: cart-v1, port: 80}]
---
apiVersion: ${GW}
kind: HTTPRoute
metadata: {name: broken, namespace: ${NS}}
spec:
  parentRefs: [{group: "", kind: Service, name: cart-v2}]
  rules:
  - filters: [{type: Teleport}]
    backendRefs: [{name: cart-v1, port: 80}]
---
apiVersion: ${GW}
kind: HTTPRoute
metadata: {name: partly, namespace: ${NS}}
spec:
  parentRefs: [{group: "", kind: Service, name: cart-v1}]
  rules:
  - matches: [{path: {type: RegularExpression, value: "(("}}]
    backendRefs: [{name: cart-v2, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /to-v2}}]
    backendRefs: [{name: cart-v2, port: 80}, {name: nowhere, port: 80}]
---
apiVersion: ${GW}
kind: HTTPRoute
metadata: {name: orphan, namespace: ${NS}}
spec:
  parentRefs: [{group: "", kind: Service, name: no-such-service}]
  rules: [{backendRefs: [{name: cart, port: 80}]}]
`);
    await waitFor(() => ['good', 'broken', 'partly', 'orphan'].every((n) => ours('httproutes', n).length === 1), 10_000);
    expect(cond('httproutes', 'good', 'Accepted')).toMatchObject({ status: 'True', reason: 'Accepted', observedGeneration: 1 });
    expect(cond('httproutes', 'good', 'ResolvedRefs')).toMatchObject({ status: 'True', reason: 'ResolvedRefs' });
    expect(cond('httproutes', 'broken', 'Accepted')).toMatchObject({ status: 'False', reason: 'UnsupportedValue', message: expect.stringContaining('spec.rules[0].filters[0].type: unknown filter type "Teleport"') });
    expect(cond('httproutes', 'partly', 'Accepted')).toMatchObject({ status: 'True', reason: 'Accepted' });
    expect(cond('httproutes', 'partly', 'PartiallyInvalid')).toMatchObject({ status: 'True', reason: 'UnsupportedValue', message: expect.stringMatching(/^Dropped Rule\(s\) rules\[0\]/) });
    expect(cond('httproutes', 'partly', 'ResolvedRefs')).toMatchObject({ status: 'False', reason: 'BackendNotFound', message: `Service ${NS}/nowhere not found` });
    expect(cond('httproutes', 'orphan', 'Accepted')).toMatchObject({ status: 'False', reason: 'NoMatchingParent' });
    for (const c of ours('httproutes', 'good')[0]!.conditions) expect(c.lastTransitionTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

    // One writer: the Lease names one of the two candidates, and each route was written once (no race, no loop).
    const ids = proxies.map((p) => `_${p.child.pid}`);
    expect(ids.slice(0, 2).some((id) => lease()?.holderIdentity?.endsWith(id))).toBe(true);
    const writes = statusPatches();
    expect(writes).toBe(4);
    await new Promise((r) => setTimeout(r, 1000));
    expect(statusPatches()).toBe(writes);

    // Traffic: the valid routes apply; the skipped one leaves its Service on the default route.
    const sidecar = proxies[2]!;
    await waitFor(async () => (await pod(sidecar, `cart.${NS}`, '/v2/x')) === 'cart-v2-pod', 5000);
    expect(await pod(sidecar, `cart.${NS}`, '/x')).toBe('cart-v1-pod');
    expect(await pod(sidecar, `cart-v2.${NS}`)).toBe('cart-v2-pod');
    const shares = new Set<string>();
    for (let i = 0; i < 40; i++) shares.add(await pod(sidecar, `cart-v1.${NS}`, '/to-v2'));
    expect([...shares].sort()).toEqual(['cart-v2-pod', 'status 500']);

    // A later valid change applies, and its status follows with the new generation.
    applyYaml(`apiVersion: ${GW}
kind: HTTPRoute
metadata: {name: broken, namespace: ${NS}}
spec:
  parentRefs: [{group: "", kind: Service, name: cart-v2}]
  rules:
  - backendRefs: [{name: cart-v1, port: 80}]
`);
    await waitFor(() => cond('httproutes', 'broken', 'Accepted')?.status === 'True', 10_000);
    expect(cond('httproutes', 'broken', 'Accepted')).toMatchObject({ reason: 'Accepted', observedGeneration: 2 });
    await waitFor(async () => (await pod(sidecar, `cart-v2.${NS}`)) === 'cart-v1-pod', 5000);
  });

  it('a weight change moves traffic within a second with no failed request', async () => {
    const weights = (a: number, b: number) => `apiVersion: ${GW}
kind: HTTPRoute
metadata: {name: canary, namespace: ${NS}}
spec:
  parentRefs: [{group: "", kind: Service, name: cart}]
  rules:
  - backendRefs: [{name: cart-v1, port: 80, weight: ${a}}, {name: cart-v2, port: 80, weight: ${b}}]
`;
    api.delete('HTTPRoute', NS, 'good');
    applyYaml(weights(100, 0));
    const sidecar = proxies[2]!;
    await waitFor(async () => (await pod(sidecar, `cart.${NS}`)) === 'cart-v1-pod', 5000);
    let failures = 0;
    let stop = false;
    const seen: Array<{ t: number; pod: string }> = [];
    const load = (async () => {
      while (!stop) {
        const p = await pod(sidecar, `cart.${NS}`);
        if (p.startsWith('status')) failures++;
        seen.push({ t: Date.now(), pod: p });
      }
    })();
    await new Promise((r) => setTimeout(r, 200));
    const changedAt = Date.now();
    applyYaml(weights(0, 100));
    await waitFor(() => seen.some((s) => s.t > changedAt && s.pod === 'cart-v2-pod') && seen.slice(-20).every((s) => s.pod === 'cart-v2-pod'), 5000);
    stop = true;
    await load;
    const firstAllV2 = seen.findIndex((s, i) => s.t > changedAt && seen.slice(i).every((x) => x.pod === 'cart-v2-pod'));
    expect(failures).toBe(0);
    expect(seen[firstAllV2]!.t - changedAt).toBeLessThan(1000);
  });

  it('when the writer stops, the other candidate takes the Lease over and writes', async () => {
    const holder = lease()!.holderIdentity!;
    const idx = proxies.findIndex((p) => holder.endsWith(`_${p.child.pid}`));
    expect(idx).toBeGreaterThanOrEqual(0);
    proxies[idx]!.child.kill('SIGKILL');
    await waitFor(() => lease()?.holderIdentity !== undefined && lease()!.holderIdentity !== holder, 10_000);
    expect(lease()!.holderIdentity!.endsWith(`_${proxies[1 - idx]!.child.pid}`)).toBe(true);
    applyYaml(`apiVersion: ${GW}
kind: HTTPRoute
metadata: {name: late, namespace: ${NS}}
spec:
  parentRefs: [{group: "", kind: Service, name: cart-v1}]
  rules: [{backendRefs: [{name: cart-v1, port: 80}]}]
`);
    await waitFor(() => cond('httproutes', 'late', 'Accepted')?.status === 'True', 10_000);
  });
});
