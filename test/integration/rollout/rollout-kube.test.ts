/**
 * `remora rollout --kube` end to end: the VirtualService, DestinationRule and ServiceEntry live in the fake
 * Kubernetes API server; `remora run --kubernetes` watches them; the rollout reads the VirtualService and moves it
 * with server-side apply. The patches are checked one by one, the weights reach the sidecar through its watch, and
 * a `--header-canary` route sends test users to the canary while the rollout runs.
 */
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeKubeApiServer, writeKubeconfig } from '../../support/fake-kube-apiserver.js';
import { CLI, startProxy, waitFor } from '../../support/proxy-harness.js';
import { App, HOST, Load, rollout } from './support.js';
import { ANNOTATION, parseState } from '../../../src/rollout/state.js';
import { HEADER_ROUTE_NAME } from '../../../src/rollout/vs-edit.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => { while (cleanups.length > 0) await cleanups.pop()!(); });

type Route = { name?: string; match?: unknown; route: Array<{ destination: { host: string; subset: string }; weight?: number }> };

describe.skipIf(!existsSync(CLI))('remora rollout --kube against the fake API server', () => {
  it('promotes through server-side apply patches, with a header canary route while it runs; 0 errors', async () => {
    const v1 = await new App('v1').start();
    const v2 = await new App('v2').start();
    cleanups.push(() => v1.close(), () => v2.close());
    const api = await new FakeKubeApiServer().start();
    cleanups.push(() => api.close());
    const kc = writeKubeconfig(api.url);
    cleanups.push(kc.cleanup);
    api.apply({
      apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name: 'reviews', namespace: 'default' },
      spec: {
        hosts: ['reviews.default.svc.cluster.local'], ports: [{ number: 9080, name: 'http', protocol: 'HTTP' }], resolution: 'STATIC',
        endpoints: [{ address: '127.0.0.1', ports: { http: v1.port }, labels: { version: 'v1' } }, { address: '127.0.0.1', ports: { http: v2.port }, labels: { version: 'v2' } }],
      },
    });
    api.apply({ apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'reviews', namespace: 'default' }, spec: { host: 'reviews', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] } });
    api.apply({
      apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'reviews', namespace: 'default', labels: { owner: 'team-a' } },
      spec: { hosts: ['reviews'], http: [{ name: 'main', timeout: '5s', route: [{ destination: { host: 'reviews', subset: 'v1' } }] }] },
    });
    const proxy = await startProxy({}, ['--kubernetes'], { env: { KUBECONFIG: kc.path } });
    cleanups.push(() => proxy.stop());
    const load = new Load(proxy.info.outbound, HOST, 250).start();
    cleanups.push(() => load.stop());
    await waitFor(() => load.count('v1') >= 20, 5000);

    const p = rollout(['--kube', '--kubeconfig', kc.path, '--vs', 'reviews', '--stable', 'v1', '--canary', 'v2', '--steps', '20,100', '--interval', '2s',
      '--min-requests', '20', '--max-error-rate', '1%', '--header-canary', 'x-canary: true', '--stats', `http://127.0.0.1:${proxy.info.stats}/stats/prometheus`]);
    cleanups.push(() => p.kill());
    await p.waitForLine(/start:/, 10_000);
    // While at 20 %: test users with the header always reach the canary (once the watch delivered the change).
    await waitFor(async () => (await proxy.get('/', { host: HOST, 'x-canary': 'true' })).body === 'v2', 3000);
    const tagged: string[] = [];
    for (let i = 0; i < 30; i++) tagged.push((await proxy.get('/', { host: HOST, 'x-canary': 'true' })).body);
    expect(new Set(tagged)).toEqual(new Set(['v2']));
    const code = await p.exit(30_000);
    expect(code, `${p.stdout}\n${p.stderr}`).toBe(0);
    const promotedAt = p.line(/\| promote:/)!.t;
    await new Promise((r) => setTimeout(r, 2000));
    await load.stop();
    expect(load.errors()).toEqual([]);
    expect(load.count('v1', promotedAt + 1500)).toBe(0);
    expect(load.count('v2', promotedAt + 1500)).toBeGreaterThan(50);

    // Every write was a server-side apply by remora-rollout, forced, with the read resourceVersion as precondition.
    const patches = api.requests.filter((r) => r.method === 'PATCH' && r.path === '/apis/networking.istio.io/v1/namespaces/default/virtualservices/reviews');
    const applies = patches.filter((r) => r.contentType === 'application/apply-patch+yaml');
    expect(applies.length).toBeGreaterThanOrEqual(2);
    for (const a of applies) {
      expect(a.query).toMatchObject({ fieldManager: 'remora-rollout', force: 'true' });
      expect(a.status).toBe(200);
      const body = JSON.parse(a.body!) as { metadata: Record<string, unknown>; spec: Record<string, unknown> };
      expect(Object.keys(body.spec)).toEqual(['http']);
      expect(body.metadata.resourceVersion).toMatch(/^\d+$/);
    }
    const httpOf = (i: number): Route[] => (JSON.parse(applies[i]!.body!) as { spec: { http: Route[] } }).spec.http;
    expect(httpOf(0)).toEqual([
      { name: HEADER_ROUTE_NAME, match: [{ headers: { 'x-canary': { exact: 'true' } } }], route: [{ destination: { host: 'reviews', subset: 'v2' }, weight: 100 }] },
      { name: 'main', timeout: '5s', route: [{ destination: { host: 'reviews', subset: 'v1' }, weight: 80 }, { destination: { host: 'reviews', subset: 'v2' }, weight: 20 }] },
    ]);
    expect(httpOf(applies.length - 1)).toEqual([{ name: 'main', timeout: '5s', route: [{ destination: { host: 'reviews', subset: 'v2' }, weight: 100 }] }]);
    // The stored object: clean route, labels kept, the final state in the annotation.
    const stored = JSON.parse((await (await fetch(`${api.url}/apis/networking.istio.io/v1/namespaces/default/virtualservices/reviews`)).text())) as { metadata: { labels: Record<string, string>; annotations: Record<string, string> }; spec: { http: Route[] } };
    expect(stored.spec.http).toEqual([{ name: 'main', timeout: '5s', route: [{ destination: { host: 'reviews', subset: 'v2' }, weight: 100 }] }]);
    expect(stored.metadata.labels).toEqual({ owner: 'team-a' });
    expect(parseState(stored.metadata.annotations[ANNOTATION])).toMatchObject({ phase: 'Promoted', lock: null, canaryWeight: 100 });
    // The sidecar saw the annotation through its watch: its dashboard model shows the rollout.
    const dash = JSON.parse((await proxy.admin('/debug/dashboard')).body) as { routes: Array<{ name: string; rollout?: { phase: string } }> };
    expect(dash.routes.find((r) => r.name === 'main')?.rollout).toMatchObject({ phase: 'Promoted', stable: 'v1', canary: 'v2', canaryWeight: 100 });
    console.log(`[rollout kube] ${applies.length} server-side applies, ${patches.length - applies.length} merge patches; ${load.outcomes.length} requests, 0 errors`);
  }, 60_000);
});
