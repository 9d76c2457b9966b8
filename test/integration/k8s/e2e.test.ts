/**
 * End to end: `remora run --kubernetes` against the fake API server, with pods as real HTTP servers on
 * 127.0.0.2, 127.0.0.3 … sharing one port (as pods share a targetPort). Skipped until dist/cli.js exists
 * and `--kubernetes` is wired into `remora run`.
 */
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeKubeApiServer, writeKubeconfig } from '../../support/fake-kube-apiserver.js';
import { endpointSlice, pod, service, type EndpointSpec } from '../../support/k8s-objects.js';
import { CLI, startProxy, type RunningProxy } from '../../support/proxy-harness.js';
import { fakeUpstream } from '../../support/fake-upstream.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

interface Pods {
  port: number;
  hits: Map<string, number>;
}

/** One HTTP server per address, all on the same port; each answers with its own address. */
async function startPods(addresses: string[]): Promise<Pods> {
  const hits = new Map<string, number>();
  let port = 0;
  for (const addr of addresses) {
    const u = await fakeUpstream().on(addr).port(port).route('*', 200, () => {
      hits.set(addr, (hits.get(addr) ?? 0) + 1);
      return addr;
    }).start();
    port = u.port;
    cleanups.push(() => u.close());
  }
  return { port, hits };
}

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 1000): Promise<number> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - start;
}

const HOST = 'reviews.default.svc.cluster.local';

async function setup(ctx: { skip: (note?: string) => never }, addresses: string[]) {
  const pods = await startPods(addresses);
  const api = await new FakeKubeApiServer().start();
  cleanups.push(() => api.close());
  const kc = writeKubeconfig(api.url);
  cleanups.push(kc.cleanup);
  api.apply(service('reviews', 'default', [{ name: 'http', port: 80, targetPort: 'web' }], { clusterIP: '10.96.0.15' }));
  addresses.forEach((ip, i) => api.apply(pod(`reviews-${i}`, 'default', ip, { app: 'reviews', version: `v${i + 1}` }, [{ name: 'web', containerPort: pods.port }])));
  const slice = (eps: EndpointSpec[]) => endpointSlice('reviews-abc', 'default', 'reviews', eps, [{ name: 'http', port: pods.port }]);
  api.apply(slice(addresses.map((ip, i) => ({ ip, pod: `reviews-${i}` }))));
  let proxy: RunningProxy;
  try {
    proxy = await startProxy({}, ['--kubernetes'], { env: { KUBECONFIG: kc.path } });
  } catch (err) {
    if (/not wired/.test(String((err as { stderr?: string }).stderr ?? err))) ctx.skip('--kubernetes is not wired into remora run yet');
    throw err;
  }
  cleanups.push(() => proxy.stop());
  const call = async () => (await proxy.get('/', { host: HOST })).body;
  return { api, pods, proxy, slice, call };
}

describe.skipIf(!existsSync(CLI))('remora run --kubernetes against the fake API server', () => {
  it('balances over ready pods; scale up takes traffic within 1 s; terminating pods get none after the event', async (ctx) => {
    const { pods, api, slice, call } = await setup(ctx, ['127.0.0.2', '127.0.0.3', '127.0.0.4']);
    // Start with two of the three pods in the slice.
    api.apply(slice([{ ip: '127.0.0.2', pod: 'reviews-0' }, { ip: '127.0.0.3', pod: 'reviews-1' }]));
    await waitFor('two pods', async () => {
      pods.hits.clear();
      for (let i = 0; i < 10; i++) await call();
      return !pods.hits.has('127.0.0.4') && pods.hits.size === 2;
    }, 3000);

    api.apply(slice([{ ip: '127.0.0.2', pod: 'reviews-0' }, { ip: '127.0.0.3', pod: 'reviews-1' }, { ip: '127.0.0.4', pod: 'reviews-2' }]));
    const t = await waitFor('new pod takes traffic', async () => (await call()) === '127.0.0.4' || pods.hits.has('127.0.0.4'), 1000);
    expect(t).toBeLessThan(1000);

    api.apply(slice([{ ip: '127.0.0.2', pod: 'reviews-0' }, { ip: '127.0.0.3', pod: 'reviews-1', ready: false, terminating: true }, { ip: '127.0.0.4', pod: 'reviews-2' }]));
    await waitFor('the terminating pod out of rotation', async () => {
      pods.hits.clear();
      for (let i = 0; i < 10; i++) await call();
      return !pods.hits.has('127.0.0.3');
    }, 1000);
    pods.hits.clear();
    const bodies: string[] = [];
    for (let i = 0; i < 20; i++) bodies.push(await call());
    expect(pods.hits.get('127.0.0.3') ?? 0).toBe(0);
    expect(bodies.every((b) => b === '127.0.0.2' || b === '127.0.0.4')).toBe(true);
  });

  it('VirtualService weights changed by a MODIFIED event; the watch dropped and resumed without losing an event', async (ctx) => {
    const { pods, api, call } = await setup(ctx, ['127.0.0.2', '127.0.0.3']);
    const vs = (w1: number) => ({
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'reviews', namespace: 'default' },
      spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews', subset: 'v1' }, weight: w1 }, { destination: { host: 'reviews', subset: 'v2' }, weight: 100 - w1 }] }] },
    });
    api.apply({
      apiVersion: 'networking.istio.io/v1',
      kind: 'DestinationRule',
      metadata: { name: 'reviews', namespace: 'default' },
      spec: { host: 'reviews', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] },
    });
    api.apply(vs(100));
    await waitFor('all to v1', async () => {
      pods.hits.clear();
      for (let i = 0; i < 10; i++) await call();
      return pods.hits.get('127.0.0.2') === 10;
    }, 3000);

    api.dropWatches();
    api.apply(vs(0)); // applied while the watch is down
    await waitFor('all to v2 after the resumed watch', async () => {
      pods.hits.clear();
      for (let i = 0; i < 10; i++) await call();
      return pods.hits.get('127.0.0.3') === 10;
    }, 3000);
  });
});
