/**
 * `remora rollout --httproute` / `--grpcroute` end to end on loopback: two Services as the route's backendRefs behind
 * `remora run`, a steady load through its outbound port, the rollout as a child process reading the sidecar's
 * stats; the same analysis, rollback, state and lock as `--vs` (test/integration/rollout), on backendRef weights.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { CLI, startProxy, waitFor } from '../../support/proxy-harness.js';
import { FakeKubeApiServer, writeKubeconfig } from '../../support/fake-kube-apiserver.js';
import { App, Load, rollout, type RolloutProcess } from '../rollout/support.js';
import { ANNOTATION, parseState } from '../../../src/rollout/state.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => { while (cleanups.length > 0) await cleanups.pop()!(); });
const track = (p: RolloutProcess): RolloutProcess => { cleanups.push(() => p.kill()); return p; };

function services(v1Port: number, v2Port: number): string {
  const svc = (name: string, port: number | undefined) => `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: default}
spec: {ports: [{name: http, port: 9080}]}
${port === undefined ? '' : `---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${name}-1, namespace: default, labels: {kubernetes.io/service-name: ${name}}}
addressType: IPv4
endpoints: [{addresses: [127.0.0.1]}]
ports: [{name: http, port: ${port}}]
`}`;
  return [svc('reviews', undefined), svc('reviews-v1', v1Port), svc('reviews-v2', v2Port)].join('---\n');
}

const ROUTE = `# reviews: every request to reviews-v1 until the rollout moves it
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: reviews
  namespace: default
spec:
  parentRefs:
  - {group: "", kind: Service, name: reviews, port: 9080}
  rules:
  - name: main # the rule the rollout moves
    backendRefs:
    - {name: reviews-v1, port: 9080}
`;

function ruleOf(text: string): { refs: Array<[string, number]>; state: ReturnType<typeof parseState> } {
  const r = parseAllDocuments(text)[0]!.toJS() as { metadata: { annotations?: Record<string, string> }; spec: { rules: Array<{ name?: string; backendRefs: Array<{ name: string; weight?: number }> }> } };
  const main = r.spec.rules.find((x) => x.name === 'main')!;
  return { refs: main.backendRefs.map((b) => [b.name, b.weight ?? 1]), state: parseState(r.metadata.annotations?.[ANNOTATION]) };
}

const COMMON = ['--httproute', 'reviews', '--stable', 'reviews-v1', '--canary', 'reviews-v2', '--max-error-rate', '1%', '--steps', '10,50,100', '--interval', '2s', '--min-requests', '20'];

describe.skipIf(!existsSync(CLI))('remora rollout --httproute', () => {
  it('file mode: a healthy canary is promoted step by step with no failed request; the rule ends with the canary alone', async () => {
    const v1 = await new App('v1').start();
    const v2 = await new App('v2').start();
    cleanups.push(() => v1.close(), () => v2.close());
    const proxy = await startProxy({ 'mesh.yaml': services(v1.port, v2.port), 'reviews-route.yaml': ROUTE }, ['--resolv-conf', '']);
    cleanups.push(() => proxy.stop());
    const load = new Load(proxy.info.outbound, 'reviews:9080', 250).start();
    cleanups.push(() => load.stop());
    await waitFor(() => load.count('v1') >= 20, 5000);
    const file = join(proxy.dir, 'reviews-route.yaml');
    const p = track(rollout([...COMMON, '--config', proxy.dir, '--stats', `http://127.0.0.1:${proxy.info.stats}/stats/prometheus`]));
    const code = await p.exit(40_000);
    expect(code, `${p.stdout}\n${p.stderr}`).toBe(0);
    expect(p.line(/step 1\/3 \| reviews-v1\/reviews-v2 90\/10 \| reviews-v1 ok 100\.00% p99 \S+ n=\d+ \| reviews-v2 ok 100\.00% p99 \S+ n=\d+ \| advance/), p.stdout).toBeDefined();
    const promotedAt = p.line(/promote:/)!.t;
    await new Promise((r) => setTimeout(r, 2000));
    await load.stop();
    expect(load.errors()).toEqual([]);
    expect(load.count('v1', promotedAt + 1500)).toBe(0);
    expect(load.count('v2', promotedAt + 1500)).toBeGreaterThan(50);
    const text = readFileSync(file, 'utf8');
    expect(ruleOf(text).refs).toEqual([['reviews-v2', 100]]);
    expect(text).toContain('# the rule the rollout moves');
    expect(ruleOf(text).state).toMatchObject({ phase: 'Promoted', lock: null, canaryWeight: 100 });
  }, 60_000);

  it('file mode: a failing canary is rolled back; a second rollout meanwhile is refused by the lock', async () => {
    const v1 = await new App('v1').start();
    const v2 = await new App('v2').start();
    v2.failing = true;
    cleanups.push(() => v1.close(), () => v2.close());
    const proxy = await startProxy({ 'mesh.yaml': services(v1.port, v2.port), 'reviews-route.yaml': ROUTE }, ['--resolv-conf', '']);
    cleanups.push(() => proxy.stop());
    const load = new Load(proxy.info.outbound, 'reviews:9080', 250).start();
    cleanups.push(() => load.stop());
    await waitFor(() => load.count('v1') >= 20, 5000);
    const file = join(proxy.dir, 'reviews-route.yaml');
    const p = track(rollout([...COMMON, '--config', file, '--stats', `http://127.0.0.1:${proxy.info.stats}/stats/prometheus`]));
    await p.waitForLine(/step 1\/3 \| reviews-v1\/reviews-v2 90\/10 \| start/, 15_000);
    const second = track(rollout([...COMMON, '--config', file, '--stats', `http://127.0.0.1:${proxy.info.stats}/stats/prometheus`]));
    expect(await second.exit(15_000)).toBe(2);
    expect(second.stderr).toMatch(/another rollout of default\/reviews is running/);
    expect(await p.exit(20_000), `${p.stdout}\n${p.stderr}`).toBe(1);
    expect(p.line(/rollback:/), p.stdout).toBeDefined();
    const f = ruleOf(readFileSync(file, 'utf8'));
    expect(f.refs).toEqual([['reviews-v1', 100]]);
    expect(f.state).toMatchObject({ phase: 'RolledBack', canaryWeight: 0, lock: null });
  }, 60_000);

  it('Kubernetes mode (--grpcroute): steps the backendRef weights by server-side apply, promote on request', async () => {
    const api = await new FakeKubeApiServer().start();
    const kc = writeKubeconfig(api.url);
    cleanups.push(() => api.close(), () => kc.cleanup());
    api.apply({
      apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GRPCRoute', metadata: { name: 'greeter', namespace: 'default' },
      spec: { parentRefs: [{ group: '', kind: 'Service', name: 'greeter', port: 7070 }], rules: [{ name: 'main', backendRefs: [{ name: 'greeter-v1', port: 7070 }] }] },
    });
    const route = (): { rules: Array<{ name?: string; backendRefs: Array<{ name: string; weight?: number }> }> } => (api as unknown as { store: Map<string, Map<string, { spec: never }>> }).store.get('gateway.networking.k8s.io/grpcroutes')!.get('default/greeter')!.spec;
    // A sidecar without traffic for the stats: the step holds (too few requests) until `promote` ends the rollout.
    const idle = await startProxy({ 'empty.yaml': '# no config\n' }, ['--resolv-conf', '']);
    cleanups.push(() => idle.stop());
    const args = ['--grpcroute', 'greeter', '--stable', 'greeter-v1', '--canary', 'greeter-v2', '--kube', '--steps', '20,100', '--interval', '30s', '--min-requests', '1', '--stats', `http://127.0.0.1:${idle.info.stats}/stats/prometheus`];
    const p = track(rollout(args, { KUBECONFIG: kc.path }));
    await waitFor(() => route().rules.find((r) => r.name === 'main')!.backendRefs.length === 2, 15_000);
    expect(route().rules[0]!.backendRefs.map((b) => [b.name, b.weight])).toEqual([['greeter-v1', 80], ['greeter-v2', 20]]);
    const promote = track(rollout(['promote', '--grpcroute', 'greeter', '--kube'], { KUBECONFIG: kc.path }));
    expect(await promote.exit(20_000), `${promote.stdout}\n${promote.stderr}`).toBe(0);
    expect(await p.exit(20_000), `${p.stdout}\n${p.stderr}`).toBe(0);
    expect(route().rules[0]!.backendRefs.map((b) => [b.name, b.weight])).toEqual([['greeter-v2', 100]]);
    const applies = api.requests.filter((r) => r.method === 'PATCH' && r.contentType === 'application/apply-patch+yaml' && r.path.endsWith('/grpcroutes/greeter'));
    expect(applies.length).toBeGreaterThanOrEqual(2);
    expect(applies.every((r) => r.body?.includes('"kind":"GRPCRoute"') || r.body?.includes('kind: GRPCRoute'))).toBe(true);
  }, 60_000);
});
