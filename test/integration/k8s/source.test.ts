/** KubernetesSource against the fake API server: initial sync, watch events, drops, 410 relists, 5xx backoff, CRD versions. */
import { afterEach, describe, expect, it } from 'vitest';
import { FakeKubeApiServer, writeKubeconfig, type FakeKubeApiServerOptions } from '../../support/fake-kube-apiserver.js';
import { endpointSlice, pod, service } from '../../support/k8s-objects.js';
import { KubernetesSource, type KubernetesSourceOptions } from '../../../src/discovery/k8s-source.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

interface LogLine {
  level: string;
  msg: string;
}

async function setup(fakeOpts: FakeKubeApiServerOptions = {}) {
  const api = await new FakeKubeApiServer(fakeOpts).start();
  cleanups.push(() => api.close());
  const kc = writeKubeconfig(api.url);
  cleanups.push(kc.cleanup);
  const logs: LogLine[] = [];
  const make = (opts: Partial<KubernetesSourceOptions> = {}) => {
    const src = new KubernetesSource({
      kubeconfig: kc.path,
      clusterDomain: 'cluster.local',
      debounceMs: 20,
      backoffInitialMs: 50,
      backoffMaxMs: 400,
      minWatchIntervalMs: 50,
      initialSyncTimeoutMs: 3000,
      rand: () => 0.5,
      log: (level, msg) => logs.push({ level, msg }),
      ...opts,
    });
    cleanups.push(() => src.stop());
    return src;
  };
  return { api, make, logs, kubeconfig: kc.path };
}

/** Poll `cond` every 5 ms; resolve with the elapsed ms, or fail after `timeoutMs`. */
async function waitFor(what: string, cond: () => boolean, timeoutMs = 1000): Promise<number> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return Date.now() - start;
}

const host = (src: KubernetesSource, h: string) => src.current().services.find((s) => s.hostname === h);
const addrs = (src: KubernetesSource, h: string) => (host(src, h)?.workloads ?? []).map((w) => w.address).sort();

function seedReviews(api: FakeKubeApiServer) {
  api.apply(service('reviews', 'default', [{ name: 'http', port: 9080, targetPort: 'web' }], { clusterIP: '10.96.0.15' }));
  const a = pod('reviews-a', 'default', '127.0.0.2', { app: 'reviews', version: 'v1' }, [{ name: 'web', containerPort: 8080 }]);
  api.apply({ ...a, spec: { ...a.spec, serviceAccountName: 'bookinfo-reviews' } });
  api.apply(pod('reviews-b', 'default', '127.0.0.3', { app: 'reviews', version: 'v2' }, [{ name: 'web', containerPort: 8080 }]));
  api.apply(
    endpointSlice('reviews-abc', 'default', 'reviews', [{ ip: '127.0.0.2', pod: 'reviews-a' }, { ip: '127.0.0.3', pod: 'reviews-b' }], [{ name: 'http', port: 8080 }]),
  );
}

const REVIEWS = 'reviews.default.svc.cluster.local';

describe('KubernetesSource against the fake API server', () => {
  it('initial sync: Services, endpoints with pod labels, Istio CRDs as Resources', async () => {
    const { api, make } = await setup();
    seedReviews(api);
    api.apply({
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'reviews', namespace: 'default', annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"huge":true}', team: 'a' } },
      spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews' } }] }] },
      status: { validationMessages: [] },
    });
    api.apply({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'deny', namespace: 'default' }, spec: { podSelector: {}, policyTypes: ['Ingress'] } });
    api.apply({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'allow-get', namespace: 'default' }, spec: { action: 'ALLOW', rules: [{ to: [{ operation: { methods: ['GET'] } }] }] } });
    api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default', labels: { team: 'a' } } });
    const src = make();
    await src.start();

    const svc = host(src, REVIEWS)!;
    expect(svc).toBeDefined();
    expect(svc.addresses).toEqual(['10.96.0.15']);
    expect(svc.origin).toBe('Service/default/reviews');
    expect(svc.workloads.map((w) => [w.address, w.ports.http, w.labels.version])).toEqual([
      ['127.0.0.2', 8080, 'v1'],
      ['127.0.0.3', 8080, 'v2'],
    ]);
    // Each endpoint's service account, the identity outbound mTLS expects from it (a pod naming none runs as default).
    expect(svc.workloads.map((w) => w.identity)).toEqual([{ namespace: 'default', serviceAccount: 'bookinfo-reviews' }, { namespace: 'default', serviceAccount: 'default' }]);
    const res = src.current().resources;
    expect(res.map((r) => `${r.kind}/${r.metadata.namespace}/${r.metadata.name}`)).toEqual([
      'AuthorizationPolicy/default/allow-get',
      'NetworkPolicy/default/deny',
      'VirtualService/default/reviews',
    ]);
    const vs = res.find((r) => r.kind === 'VirtualService')!;
    expect(vs.apiVersion).toBe('networking.istio.io/v1');
    expect(vs.source).toEqual({ file: 'kubernetes', line: 0 });
    expect(vs.lineOf(['spec'])).toBe(0);
    expect(vs.spec.hosts).toEqual(['reviews']);
    // Memory: the last-applied annotation (a full copy of the object) and status are not kept.
    expect(vs.metadata.annotations).toEqual({ team: 'a' });
    expect(src.current().namespaceLabels.get('default')).toEqual({ team: 'a', 'kubernetes.io/metadata.name': 'default' });
    // Pods are trimmed to labels, IPs and container ports.
    const p = src.current().pods.find((x) => x.metadata?.name === 'reviews-a')!;
    expect(p.metadata?.managedFields).toBeUndefined();
    expect(p.spec?.containers[0]?.image).toBeUndefined();
    expect(p.spec?.containers[0]?.ports?.[0]).toMatchObject({ name: 'web', containerPort: 8080 });
    expect(src.current().stalenessMs(Date.now())).toBe(0);
    // Watches asked for bookmarks.
    expect(api.requests.filter((r) => r.query.watch === 'true').every((r) => r.query.allowWatchBookmarks === 'true')).toBe(true);
  });

  it('reflects ADDED, MODIFIED and DELETED within 1 s, debounced into few change events', async () => {
    const { api, make } = await setup();
    seedReviews(api);
    const src = make();
    await src.start();
    let changes = 0;
    src.on('change', () => changes++);

    // Scale up: a new pod and its endpoint.
    api.apply(pod('reviews-c', 'default', '127.0.0.4', { app: 'reviews', version: 'v3' }));
    api.apply(
      endpointSlice(
        'reviews-abc',
        'default',
        'reviews',
        [{ ip: '127.0.0.2', pod: 'reviews-a' }, { ip: '127.0.0.3', pod: 'reviews-b' }, { ip: '127.0.0.4', pod: 'reviews-c' }],
        [{ name: 'http', port: 8080 }],
      ),
    );
    expect(await waitFor('scale up', () => addrs(src, REVIEWS).includes('127.0.0.4'))).toBeLessThan(1000);
    // The Pod and its endpoint come on two watches: the first is applied at once, the second with it or just after.
    await waitFor('pod labels', () => host(src, REVIEWS)!.workloads.find((w) => w.address === '127.0.0.4')!.labels.version === 'v3');
    expect(host(src, REVIEWS)!.workloads.find((w) => w.address === '127.0.0.4')!.labels).toEqual({ app: 'reviews', version: 'v3' });
    expect(changes).toBeGreaterThanOrEqual(1);
    expect(changes).toBeLessThanOrEqual(2);

    // Scale down: terminating endpoint leaves at once.
    api.apply(
      endpointSlice(
        'reviews-abc',
        'default',
        'reviews',
        [{ ip: '127.0.0.2', pod: 'reviews-a' }, { ip: '127.0.0.3', pod: 'reviews-b', ready: false, terminating: true }, { ip: '127.0.0.4', pod: 'reviews-c' }],
        [{ name: 'http', port: 8080 }],
      ),
    );
    expect(await waitFor('terminating drained', () => !addrs(src, REVIEWS).includes('127.0.0.3'))).toBeLessThan(1000);

    // VirtualService MODIFIED.
    api.apply({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'r', namespace: 'default' }, spec: { hosts: ['a'] } });
    await waitFor('VS added', () => src.current().resources.some((r) => r.metadata.name === 'r'));
    api.apply({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'r', namespace: 'default' }, spec: { hosts: ['b'] } });
    expect(await waitFor('VS modified', () => (src.current().resources.find((r) => r.metadata.name === 'r')?.spec.hosts as string[])[0] === 'b')).toBeLessThan(1000);

    api.delete('Service', 'default', 'reviews');
    expect(await waitFor('service deleted', () => host(src, REVIEWS) === undefined)).toBeLessThan(1000);
  });

  it('the first event after a quiet period is applied at once; the burst behind it is one more change, after debounceMs', async () => {
    const { api, make } = await setup();
    seedReviews(api);
    const src = make({ debounceMs: 3000 });
    await src.start(); // nothing published yet: the first event is the first of a quiet period
    let changes = 0;
    src.on('change', () => changes++);
    const slice = (ips: string[]) => endpointSlice('reviews-abc', 'default', 'reviews', ips.map((ip) => ({ ip })), [{ name: 'http', port: 8080 }]);
    api.apply(slice(['127.0.0.9']));
    // A trailing debounce would take 3,000 ms; the leading edge applies it on the next turn of the loop.
    expect(await waitFor('first event', () => addrs(src, REVIEWS).join() === '127.0.0.9', 5000)).toBeLessThan(1500);
    expect(changes).toBe(1);
    // 30 events behind it: one change, once 3,000 ms have passed since the first.
    for (let i = 10; i < 40; i++) api.apply(slice([`127.0.0.${i}`]));
    await waitFor('last event of the burst', () => addrs(src, REVIEWS).join() === '127.0.0.39', 8000);
    expect(changes).toBe(2);
    expect(src.stats.changes).toBeGreaterThanOrEqual(2);
  });

  it('an event maps only its Service again: the other ServiceDefs and every unchanged Resource are the same objects, in the same order', async () => {
    const { api, make } = await setup();
    seedReviews(api);
    api.apply(service('ratings', 'default', [{ name: 'http', port: 9080 }], { clusterIP: '10.96.0.16' }));
    api.apply(endpointSlice('ratings-1', 'default', 'ratings', [{ ip: '127.0.0.7' }], [{ name: 'http', port: 9080 }]));
    for (const n of ['r1', 'r2', 'r3']) api.apply({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: n, namespace: 'default' }, spec: { hosts: [n] } });
    const src = make();
    await src.start();
    const first = src.current();
    expect(first.services.map((s) => s.hostname)).toEqual(['ratings.default.svc.cluster.local', REVIEWS]);

    api.apply(endpointSlice('ratings-1', 'default', 'ratings', [{ ip: '127.0.0.8' }], [{ name: 'http', port: 9080 }]));
    await waitFor('ratings moved', () => addrs(src, 'ratings.default.svc.cluster.local').join() === '127.0.0.8');
    const second = src.current();
    expect(second.services[1]).toBe(first.services[1]); // reviews: not touched
    expect(second.services[0]).not.toBe(first.services[0]);
    expect(second.resources).toBe(first.resources); // no Istio object changed: the same array

    api.apply({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'r2', namespace: 'default' }, spec: { hosts: ['r2b'] } });
    await waitFor('r2 modified', () => (src.current().resources.find((r) => r.metadata.name === 'r2')?.spec.hosts as string[])[0] === 'r2b');
    const third = src.current();
    expect(third.resources.map((r) => r.metadata.name)).toEqual(['r1', 'r2', 'r3']);
    expect(third.resources[0]).toBe(first.resources[0]);
    expect(third.resources[2]).toBe(first.resources[2]);
    expect(third.services).toBe(second.services); // no Service changed: the same array
  });

  it('a dropped watch resumes from its resourceVersion without losing an event applied while it was down', async () => {
    const { api, make } = await setup();
    seedReviews(api);
    const src = make();
    await src.start();
    await waitFor('watches open', () => api.openWatches >= 13);
    const listsBefore = api.countRequests('/api/v1/services', false);
    const watchesBefore = api.countRequests('/api/v1/services', true);

    expect(api.dropWatches()).toBeGreaterThan(0);
    // Applied while no watch is open: only the resumed watch (history from the client's RV) can deliver it.
    api.apply(service('ratings', 'default', [{ name: 'http', port: 9080 }], { clusterIP: '10.96.0.16' }));
    await waitFor('event applied during the drop', () => host(src, 'ratings.default.svc.cluster.local') !== undefined);

    expect(api.countRequests('/api/v1/services', true)).toBeGreaterThan(watchesBefore);
    // Resumed with a watch from the last resourceVersion: no relist.
    expect(api.countRequests('/api/v1/services', false)).toBe(listsBefore);
    const resumed = api.requests.filter((r) => r.path === '/api/v1/services' && r.query.watch === 'true').at(-1)!;
    expect(Number(resumed.query.resourceVersion)).toBeGreaterThan(100);
  });

  for (const goneMode of ['event', 'http'] as const) {
    it(`410 Gone (${goneMode === 'event' ? 'ERROR event in a 200 stream' : 'HTTP 410'}) → relist and converge, deletions included`, async () => {
      const { api, make } = await setup({ goneMode });
      seedReviews(api);
      api.apply(service('old', 'default', [{ name: 'http', port: 80 }], { clusterIP: '10.96.0.20' }));
      const src = make();
      await src.start();
      expect(host(src, 'old.default.svc.cluster.local')).toBeDefined();
      const reviews = host(src, REVIEWS);
      const listsBefore = api.countRequests('/api/v1/services', false);

      api.dropWatches();
      api.apply(service('ratings', 'default', [{ name: 'http', port: 9080 }], { clusterIP: '10.96.0.16' }));
      api.delete('Service', 'default', 'old');
      api.compactHistory();

      await waitFor('relist converged', () => host(src, 'ratings.default.svc.cluster.local') !== undefined && host(src, 'old.default.svc.cluster.local') === undefined, 3000);
      expect(api.countRequests('/api/v1/services', false)).toBeGreaterThan(listsBefore);
      expect(api.requests.some((r) => r.path === '/api/v1/services' && r.query.watch === 'true' && (goneMode === 'http' ? r.status === 410 : r.status === 200))).toBe(true);
      // What the relist found at the resourceVersion it had is what it had: the ServiceDef is the same object.
      expect(host(src, REVIEWS)).toBe(reviews);
      // Keeps watching after the relist.
      api.apply(service('later', 'default', [{ name: 'http', port: 80 }], { clusterIP: '10.96.0.21' }));
      await waitFor('event after relist', () => host(src, 'later.default.svc.cluster.local') !== undefined, 3000);
    });
  }

  it('500s → backoff, serves the last state meanwhile (staleness grows), recovers, logs the error once', async () => {
    const { api, make, logs } = await setup();
    seedReviews(api);
    const src = make({ backoffInitialMs: 20, backoffMaxMs: 80 });
    await src.start();
    await waitFor('watches open', () => api.openWatches >= 13);

    api.setFailing(60);
    api.dropWatches();
    await waitFor('staleness reported', () => src.current().stalenessMs(Date.now()) > 0);
    // The last complete state keeps being served.
    expect(addrs(src, REVIEWS)).toEqual(['127.0.0.2', '127.0.0.3']);
    await waitFor('failures consumed', () => api.requests.filter((r) => r.status === 500).length >= 60, 5000);
    api.apply(service('ratings', 'default', [{ name: 'http', port: 9080 }], { clusterIP: '10.96.0.16' }));
    await waitFor('recovered', () => host(src, 'ratings.default.svc.cluster.local') !== undefined, 3000);
    await waitFor('staleness back to 0', () => src.current().stalenessMs(Date.now()) === 0, 3000);

    // 60 failed requests across 17 watches (13 kinds + the 4 Gateway API routes), but each watch logs its error
    // once (plus its recovery).
    const warns = logs.filter((l) => l.level === 'warn');
    expect(warns.length).toBeGreaterThan(0);
    expect(warns.length).toBeLessThanOrEqual(17 * 2);
    expect(new Set(warns.map((w) => w.msg)).size).toBe(warns.length);
  });

  it('start() retries transient 500s, then resolves', async () => {
    const { api, make } = await setup();
    seedReviews(api);
    api.setFailing(5);
    const src = make();
    let changesBeforeSync = 0;
    let resolved = false;
    src.on('change', () => {
      if (!resolved) changesBeforeSync++;
    });
    await src.start();
    resolved = true;
    expect(addrs(src, REVIEWS)).toEqual(['127.0.0.2', '127.0.0.3']);
    // Kinds that listed early never produce a partial state or a 'change' before start() resolves.
    expect(changesBeforeSync).toBe(0);
  });

  it('start() rejects clearly on 403 and on an unreachable server', async () => {
    const { api, make } = await setup();
    api.setFailing(100, 403); // every first request, so a required kind (Service, EndpointSlice, Pod) surely sees it
    const src = make();
    await expect(src.start()).rejects.toThrow(/initial sync with http:\/\/127\.0\.0\.1:\d+ failed: GET \/\S+: 403 Forbidden/);

    const port = api.port;
    await api.close();
    cleanups.length = 0;
    const kc = writeKubeconfig(`http://127.0.0.1:${port}`);
    cleanups.push(kc.cleanup);
    const down = new KubernetesSource({ kubeconfig: kc.path, clusterDomain: 'cluster.local', initialSyncTimeoutMs: 200, backoffInitialMs: 20 });
    cleanups.push(() => down.stop());
    await expect(down.start()).rejects.toThrow(/cannot reach the Kubernetes API server at http:\/\/127\.0\.0\.1:\d+.*ECONNREFUSED/);
  });

  it('uses v1beta1 when networking.istio.io/v1 is not served, and treats missing CRDs as empty', async () => {
    const { api, make } = await setup({ istioNetworkingVersions: ['v1beta1', 'v1alpha3'], istioSecurityVersions: [] });
    api.apply({ apiVersion: 'networking.istio.io/v1beta1', kind: 'DestinationRule', metadata: { name: 'reviews', namespace: 'default' }, spec: { host: 'reviews', subsets: [{ name: 'v1', labels: { version: 'v1' } }] } });
    const src = make();
    await src.start();
    expect(src.versions()).toMatchObject({ VirtualService: 'v1beta1', DestinationRule: 'v1beta1', AuthorizationPolicy: '' });
    const dr = src.current().resources.find((r) => r.kind === 'DestinationRule')!;
    expect(dr.apiVersion).toBe('networking.istio.io/v1beta1');
    expect(api.countRequests('/apis/networking.istio.io/v1/')).toBeGreaterThan(0);
    // Objects stored at v1alpha3 are served at the chosen version too (same schema).
    api.apply({ apiVersion: 'networking.istio.io/v1alpha3', kind: 'ServiceEntry', metadata: { name: 'ext', namespace: 'default' }, spec: { hosts: ['ext.example.com'] } });
    await waitFor('SE through v1beta1 watch', () => src.current().resources.some((r) => r.kind === 'ServiceEntry'));
  });

  it('an uninstalled CRD empties its kind instead of retrying forever; reinstalled, it comes back', async () => {
    const { api, make, logs } = await setup();
    api.apply({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'r', namespace: 'default' }, spec: { hosts: ['a'] } });
    const src = make({ reprobeMs: 100 });
    await src.start();
    expect(src.current().resources.map((r) => r.kind)).toEqual(['VirtualService']);
    api.unserve('networking.istio.io', 'virtualservices');
    await waitFor('VS gone', () => src.current().resources.length === 0, 3000);
    expect(src.versions().VirtualService).toBe('');
    expect(logs.some((l) => /VirtualService: no longer served/.test(l.msg))).toBe(true);
    api.serve('networking.istio.io', 'virtualservices', ['v1beta1']);
    await waitFor('VS back through v1beta1', () => src.current().resources.some((r) => r.apiVersion === 'networking.istio.io/v1beta1'), 3000);
    api.apply({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 's', namespace: 'default' }, spec: { hosts: ['b'] } });
    await waitFor('watching again', () => src.current().resources.length === 2, 3000);
  });

  it('paginated lists (limit/continue) are followed to the end', async () => {
    const { api, make } = await setup();
    for (let i = 0; i < 7; i++) api.apply(service(`s${i}`, 'default', [{ name: 'http', port: 80 }], { clusterIP: `10.96.1.${i}` }));
    const src = make({ pageSize: 3 });
    await src.start();
    expect(src.current().services.map((s) => s.hostname.split('.')[0])).toEqual(['s0', 's1', 's2', 's3', 's4', 's5', 's6']);
    const pages = api.requests.filter((r) => r.path === '/api/v1/services' && r.query.watch === undefined);
    expect(pages.map((r) => [r.query.limit, r.query.continue !== undefined])).toEqual([
      ['3', false],
      ['3', true],
      ['3', true],
    ]);
  });

  it('--watch-namespaces: only the listed namespaces are listed and watched', async () => {
    const { api, make } = await setup();
    seedReviews(api);
    api.apply(service('other', 'kube-system', [{ name: 'dns', port: 53 }], { clusterIP: '10.96.0.10' }));
    const src = make({ namespaces: ['default'] });
    await src.start();
    expect(host(src, REVIEWS)).toBeDefined();
    expect(host(src, 'other.kube-system.svc.cluster.local')).toBeUndefined();
    expect(api.countRequests('/api/v1/services')).toBe(0);
    expect(api.countRequests('/api/v1/namespaces/default/services')).toBeGreaterThan(0);
    api.apply(service('other2', 'kube-system', [{ name: 'dns', port: 53 }], { clusterIP: '10.96.0.11' }));
    api.apply(service('ratings', 'default', [{ name: 'http', port: 9080 }], { clusterIP: '10.96.0.16' }));
    await waitFor('ratings', () => host(src, 'ratings.default.svc.cluster.local') !== undefined);
    expect(host(src, 'other2.kube-system.svc.cluster.local')).toBeUndefined();
  });

  it('BOOKMARK events advance the resume point', async () => {
    const { api, make } = await setup();
    seedReviews(api);
    const src = make();
    await src.start();
    await waitFor('watches open', () => api.openWatches >= 13);
    // Changes to other kinds advance the global resourceVersion; a bookmark tells the Service watch about it.
    api.apply(pod('x', 'default', '127.0.0.9', {}));
    api.apply(pod('y', 'default', '127.0.0.10', {}));
    const rv = api.resourceVersion;
    api.sendBookmarks();
    await new Promise((r) => setTimeout(r, 50));
    api.dropWatches();
    await waitFor('service watch resumed', () =>
      api.requests.some((r) => r.path === '/api/v1/services' && r.query.watch === 'true' && Number(r.query.resourceVersion) === rv),
    );
  });

  it('a watch the server ends cleanly (its timeout) is re-opened from its resourceVersion, without a relist', async () => {
    const { api, make } = await setup();
    seedReviews(api);
    const src = make();
    await src.start();
    await waitFor('watches open', () => api.openWatches >= 13);
    const lists = api.countRequests('/api/v1/services', false);
    const watches = api.countRequests('/api/v1/services', true);
    // Every watch asks the server to end it after 5–10 minutes (client-go's rotation).
    const first = api.requests.find((r) => r.path === '/api/v1/services' && r.query.watch === 'true')!;
    expect(Number(first.query.timeoutSeconds)).toBeGreaterThanOrEqual(300);
    expect(Number(first.query.timeoutSeconds)).toBeLessThan(600);
    expect(first.query.allowWatchBookmarks).toBe('true');

    expect(api.endWatches()).toBeGreaterThanOrEqual(13);
    api.apply(service('ratings', 'default', [{ name: 'http', port: 9080 }], { clusterIP: '10.96.0.16' }));
    await waitFor('event after the re-watch', () => host(src, 'ratings.default.svc.cluster.local') !== undefined, 3000);
    expect(api.countRequests('/api/v1/services', true)).toBe(watches + 1);
    expect(api.countRequests('/api/v1/services', false)).toBe(lists);
    // The staleness never rose: a clean end is not a failure.
    expect(src.current().stalenessMs(Date.now())).toBe(0);
  });

  it('the server\'s counters see what a client costs it: one list and one watch per kind, then events', async () => {
    const { api, make } = await setup();
    seedReviews(api);
    api.resetStats();
    const src = make();
    await src.start();
    await waitFor('watches open', () => api.openWatches >= 13);
    expect(api.stats.watchRequests).toBe(api.openWatches);
    expect(api.stats.listBytes).toBeGreaterThan(0);
    const before = api.stats.watchBytes;
    api.apply(endpointSlice('reviews-abc', 'default', 'reviews', [{ ip: '127.0.0.2', pod: 'reviews-a' }], [{ name: 'http', port: 8080 }]));
    await waitFor('slice change', () => addrs(src, REVIEWS).length === 1);
    // One MODIFIED event on the EndpointSlice watch, and nothing on the others.
    const sliceWatch = api.watchTraffic().find((w) => w.typeKey === 'discovery.k8s.io/endpointslices')!;
    expect(sliceWatch.events).toBe(1);
    expect(api.stats.watchBytes - before).toBe(sliceWatch.bytes);
  });

  it('a Sidecar that applies to the workload: only the Services, EndpointSlices and Pods its egress reaches are cached; a changed Sidecar relists', async () => {
    const { api, make } = await setup();
    for (const ns of ['a', 'b', 'c']) {
      api.apply(service('web', ns, [{ name: 'http', port: 80 }], { clusterIP: `10.96.1.${ns.charCodeAt(0)}` }));
      api.apply(pod(`web-${ns}`, ns, `127.0.1.${ns.charCodeAt(0)}`, { app: 'web' }));
      api.apply(endpointSlice('web-1', ns, 'web', [{ ip: `127.0.1.${ns.charCodeAt(0)}`, pod: `web-${ns}` }], [{ name: 'http', port: 8080 }]));
    }
    const sidecar = (hosts: string[]) => ({ apiVersion: 'networking.istio.io/v1', kind: 'Sidecar', metadata: { name: 'default', namespace: 'a' }, spec: { egress: [{ hosts }] } });
    api.apply(sidecar(['./*']));
    const src = make({ workload: { namespace: 'a', labels: {} } });
    await src.start();
    const hosts = () => src.current().services.map((s) => s.hostname).sort();
    const podNs = () => [...new Set(src.current().pods.map((p) => p.metadata?.namespace))].sort();
    expect(hosts()).toEqual(['web.a.svc.cluster.local']);
    expect(podNs()).toEqual(['a']);
    expect(src.current().services[0]!.workloads.map((w) => w.labels.app)).toEqual(['web']);
    // The egress names namespaces: Services, EndpointSlices and Pods are listed and watched in those alone.
    expect(api.countRequests('/api/v1/services')).toBe(0);
    expect(api.countRequests('/api/v1/pods')).toBe(0);
    expect(api.countRequests('/api/v1/namespaces/a/services', true)).toBe(1);
    expect(api.countRequests('/api/v1/namespaces/c/')).toBe(0);
    api.apply(service('api', 'c', [{ name: 'http', port: 80 }], { clusterIP: '10.96.2.1' }));
    api.apply(service('api', 'a', [{ name: 'http', port: 80 }], { clusterIP: '10.96.2.2' }));
    await waitFor('in-reach service', () => hosts().includes('api.a.svc.cluster.local'));
    expect(hosts()).toEqual(['api.a.svc.cluster.local', 'web.a.svc.cluster.local']);

    const lists = api.countRequests('/api/v1/namespaces/a/services', false);
    api.apply(sidecar(['./*', 'b/*']));
    await waitFor('b reached', () => hosts().includes('web.b.svc.cluster.local'), 3000);
    // b is listed and watched now; a relisted (the hosts kept within it may change with a Sidecar).
    expect(api.countRequests('/api/v1/namespaces/b/services', true)).toBe(1);
    await waitFor('a relisted', () => api.countRequests('/api/v1/namespaces/a/services', false) > lists, 3000);
    expect(hosts()).toEqual(['api.a.svc.cluster.local', 'web.a.svc.cluster.local', 'web.b.svc.cluster.local']);
    // b's Pods are listed by a watcher of their own: a change may show b's Services a moment before them.
    await waitFor('b pods', () => podNs().join() === 'a,b', 3000);
    expect(podNs()).toEqual(['a', 'b']);

    // An AuthorizationPolicy in the workload's namespace may ask about any peer: every Pod is kept again.
    api.apply({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'p', namespace: 'a' }, spec: {} });
    await waitFor('all pods', () => podNs().length === 3, 3000);
    expect(hosts()).toEqual(['api.a.svc.cluster.local', 'web.a.svc.cluster.local', 'web.b.svc.cluster.local']);

    // The Sidecar gone: everything, watched cluster-wide again.
    api.delete('Sidecar', 'a', 'default');
    await waitFor('whole cluster', () => hosts().length === 5, 3000);
    expect(api.countRequests('/api/v1/services', true)).toBe(1);
  });

  it('without the workload given, or with a Sidecar of another namespace, everything is cached', async () => {
    const { api, make } = await setup();
    for (const ns of ['a', 'b']) api.apply(service('web', ns, [{ name: 'http', port: 80 }], { clusterIP: `10.96.1.${ns.charCodeAt(0)}` }));
    api.apply({ apiVersion: 'networking.istio.io/v1', kind: 'Sidecar', metadata: { name: 'default', namespace: 'b' }, spec: { egress: [{ hosts: ['./*'] }] } });
    const plain = make();
    await plain.start();
    expect(plain.current().services).toHaveLength(2);
    const other = make({ workload: { namespace: 'a', labels: {} } });
    await other.start();
    expect(other.current().services).toHaveLength(2);
  });

  it('Pods are cached with what is read of them: named container ports in the workload\'s namespace only, podIPs only for dual-stack', async () => {
    const { api, make } = await setup();
    api.apply(pod('own', 'a', '127.0.3.1', { app: 'x' }, [{ name: 'web', containerPort: 8080 }, { containerPort: 9090 }]));
    api.apply(pod('other', 'b', '127.0.3.2', { app: 'x' }, [{ name: 'web', containerPort: 8080 }]));
    const dual = pod('dual', 'b', '127.0.3.3', { app: 'x' });
    (dual.status as { podIPs: Array<{ ip: string }> }).podIPs.push({ ip: 'fd00::3' });
    api.apply(dual);
    const src = make({ workload: { namespace: 'a', labels: {} } });
    await src.start();
    const byName = (n: string) => src.current().pods.find((p) => p.metadata?.name === n)!;
    expect(byName('own').spec?.containers).toEqual([{ name: 'app', ports: [{ name: 'web', containerPort: 8080, protocol: undefined }] }]);
    expect(byName('other').spec).toBeUndefined();
    expect(byName('own').status).toEqual({ podIP: '127.0.3.1', phase: 'Running' });
    expect(byName('dual').status?.podIPs?.map((x) => x.ip)).toEqual(['127.0.3.3', 'fd00::3']);
    // Pods of one label set share their labels object (read-only).
    expect(byName('other').metadata?.labels).toBe(byName('dual').metadata?.labels);
  });
});

