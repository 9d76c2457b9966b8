import { describe, it, expect } from 'vitest';
import { parseDocuments } from '../../../src/config/parse.js';
import { compile, lookupHost, expandHost, hostAliases } from '../../../src/config/compile.js';
import { findRoute, pickDestination, queryParam, type RequestView } from '../../../src/routing/route.js';
import { seededRandom } from '../../../src/util/random.js';

const SE = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: 9001}, labels: {version: v1}, weight: 3}
  - {address: 127.0.0.2, ports: {http: 9002}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`;

function snap(vs: string, opts: { labels?: Record<string, string>; namespace?: string } = {}) {
  const { resources, errors } = parseDocuments(SE + '---\n' + vs, 'test.yaml');
  expect(errors).toEqual([]);
  return compile(resources, { namespace: opts.namespace ?? 'default', clusterDomain: 'cluster.local', labels: opts.labels ?? {}, outboundTrafficPolicy: 'ALLOW_ANY' });
}

function req(path: string, extra: Partial<RequestView> = {}): RequestView {
  const q = path.indexOf('?');
  return { method: 'GET', path: q < 0 ? path : path.slice(0, q), query: q < 0 ? '' : path.slice(q + 1), scheme: 'http', authority: 'reviews:9080', port: 9080, headers: {}, ...extra };
}

const VS_ORDER = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - name: a
    match: [{uri: {exact: /api/v1}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - name: b
    match: [{uri: {prefix: /api}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - name: c
    match: [{uri: {regex: '^/api/v[0-9]+/users$'}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - name: d
    route: [{destination: {host: reviews}}]
`;

describe('host normalization', () => {
  it('expands short names against the resource namespace only', () => {
    expect(expandHost('reviews', 'ns1', 'cluster.local')).toBe('reviews.ns1.svc.cluster.local');
    expect(expandHost('reviews.ns2', 'ns1', 'cluster.local')).toBe('reviews.ns2');
    expect(expandHost('*.example.com', 'ns1', 'cluster.local')).toBe('*.example.com');
  });
  it('gives Kubernetes alias names, the bare name only in the proxy namespace', () => {
    expect(hostAliases('reviews.default.svc.cluster.local', 'default', 'cluster.local')).toEqual(['reviews.default.svc', 'reviews.default', 'reviews']);
    expect(hostAliases('reviews.other.svc.cluster.local', 'default', 'cluster.local')).toEqual(['reviews.other.svc', 'reviews.other']);
  });
  it('finds the same virtual host for every form of the name', () => {
    const s = snap(VS_ORDER);
    for (const h of ['reviews', 'reviews.default', 'reviews.default.svc', 'reviews.default.svc.cluster.local']) {
      expect(lookupHost(s, h)?.vhost?.origin).toBe('VirtualService/default/reviews');
    }
    expect(lookupHost(s, 'reviews.other')).toBeUndefined();
  });
  it('honours --cluster-domain and a different proxy namespace', () => {
    const { resources } = parseDocuments(SE.replace('cluster.local', 'corp.internal'), 'x.yaml');
    const s = compile(resources, { namespace: 'other', clusterDomain: 'corp.internal', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY' });
    expect(lookupHost(s, 'reviews.default')?.host).toBe('reviews.default.svc.corp.internal');
    expect(lookupHost(s, 'reviews')).toBeUndefined();
  });
});

describe('first matching route wins (conformance scenario 2)', () => {
  const s = snap(VS_ORDER);
  const vh = lookupHost(s, 'reviews')!.vhost!;
  it.each([
    ['/api/v1', 'a'],
    ['/api/v2/users', 'b'],
    ['/x', 'd'],
    ['/api/v1?x=1', 'a'],
  ])('%s → %s', (path, name) => {
    expect(findRoute(vh, req(path))?.route.name).toBe(name);
  });
  it('without a catch-all, an unmatched path has no route (404 NR)', () => {
    const s2 = snap(VS_ORDER.replace(/  - name: d\n    route: \[\{destination: \{host: reviews\}\}\]\n/, ''));
    expect(findRoute(lookupHost(s2, 'reviews')!.vhost!, req('/x'))).toBeUndefined();
  });
});

describe('match types (conformance scenario 3)', () => {
  const vs = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - name: canary
    match: [{headers: {x-canary: {exact: "true"}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - name: debug
    match: [{headers: {x-debug: {}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - name: without
    match: [{uri: {prefix: /w}, withoutHeaders: {x-skip: {}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - name: qdebug
    match: [{queryParams: {debug: {exact: ""}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - name: qid
    match: [{queryParams: {id: {regex: '\\d+$'}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - name: post
    match: [{method: {exact: POST}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - name: icase
    match: [{uri: {prefix: /Case, }, ignoreUriCase: true}, {uri: {exact: /or-block}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - name: port
    match: [{port: 9090}]
    route: [{destination: {host: reviews, subset: v2}}]
  - name: src
    match: [{sourceLabels: {app: productpage}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - name: default
    route: [{destination: {host: reviews, subset: v1}}]
`;
  const vh = lookupHost(snap(vs), 'reviews')!.vhost!;
  const name = (r: RequestView): string | undefined => findRoute(vh, r)?.route.name;
  it('header exact is case-sensitive on the value; {} means present', () => {
    expect(name(req('/', { headers: { 'x-canary': 'true' } }))).toBe('canary');
    expect(name(req('/', { headers: { 'x-canary': 'True' } }))).toBe('default');
    expect(name(req('/', { headers: { 'x-debug': '' } }))).toBe('debug');
  });
  it('withoutHeaders excludes', () => {
    expect(name(req('/w'))).toBe('without');
    expect(name(req('/w', { headers: { 'x-skip': '1' } }))).toBe('default');
  });
  it('queryParams exact "" matches a bare key; regex is a full match', () => {
    expect(name(req('/?debug'))).toBe('qdebug');
    expect(name(req('/?id=123'))).toBe('qid');
    expect(name(req('/?id=a123'))).toBe('default');
  });
  it('method, ignoreUriCase, OR across match blocks, port', () => {
    expect(name(req('/', { method: 'POST' }))).toBe('post');
    expect(name(req('/cASE/x'))).toBe('icase');
    expect(name(req('/or-block'))).toBe('icase');
    expect(name(req('/', { port: 9090 }))).toBe('port');
  });
  it('sourceLabels are evaluated once against this workload', () => {
    const withLabels = lookupHost(snap(vs, { labels: { app: 'productpage' } }), 'reviews')!.vhost!;
    expect(findRoute(withLabels, req('/'))?.route.name).toBe('src');
    expect(name(req('/'))).toBe('default');
  });
  it('queryParam parsing', () => {
    expect(queryParam('a=1&b=&c', 'b')).toBe('');
    expect(queryParam('a=1&b=&c', 'c')).toBe('');
    expect(queryParam('a=1&b=&c', 'd')).toBeUndefined();
    expect(queryParam('name=a%20b', 'name')).toBe('a b');
  });
});

describe('weighted destinations (conformance scenario 1)', () => {
  const weighted = (w1: number, w2: number): string => `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: ${w1}}
    - {destination: {host: reviews, subset: v2}, weight: ${w2}}
`;
  const share = (w1: number, w2: number): number => {
    const r = findRoute(lookupHost(snap(weighted(w1, w2)), 'reviews')!.vhost!, req('/'))!.route;
    const rand = seededRandom(42);
    let v1 = 0;
    for (let i = 0; i < 10_000; i++) if (pickDestination(r.action as never, rand())!.subset === 'v1') v1++;
    return v1 / 10_000;
  };
  it('80/20 within ±2% over 10,000 seeded picks', () => expect(Math.abs(share(80, 20) - 0.8)).toBeLessThan(0.02));
  it('0/100 sends nothing to v1', () => expect(share(0, 100)).toBe(0));
  it('weights are relative: 1/3 gives 25%', () => expect(Math.abs(share(1, 3) - 0.25)).toBeLessThan(0.02));
  it('a lone destination takes 100%', () => {
    const s = snap(VS_ORDER);
    const d = findRoute(lookupHost(s, 'reviews')!.vhost!, req('/x'))!.route;
    expect(pickDestination(d.action as never, 0.999)!.host).toBe('reviews.default.svc.cluster.local');
  });
});

describe('clusters and endpoints', () => {
  it('names clusters outbound|port|subset|host and selects subset endpoints by labels', () => {
    const s = snap(VS_ORDER);
    expect([...s.clusters.keys()].sort()).toEqual([
      'outbound|9080||reviews.default.svc.cluster.local',
      'outbound|9080|v1|reviews.default.svc.cluster.local',
      'outbound|9080|v2|reviews.default.svc.cluster.local',
    ].sort());
    expect(s.clusters.get('outbound|9080|v1|reviews.default.svc.cluster.local')!.endpoints.map((e) => e.key)).toEqual(['127.0.0.1:9001']);
    const all = s.clusters.get('outbound|9080||reviews.default.svc.cluster.local')!.endpoints;
    expect(all.map((e) => [e.key, e.weight])).toEqual([['127.0.0.1:9001', 3], ['127.0.0.2:9002', 1]]);
  });
  it('a host without a VirtualService gets a default catch-all route', () => {
    const s = snap('');
    const vh = lookupHost(s, 'reviews')!.vhost!;
    expect(vh.routes).toHaveLength(1);
    expect(findRoute(vh, req('/anything'))?.route.name).toBe('default');
  });
  it('WorkloadEntries join a ServiceEntry through workloadSelector', () => {
    const { resources } = parseDocuments(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vm, namespace: default}
spec:
  hosts: [vm.example.com]
  ports: [{number: 80, name: http}]
  resolution: STATIC
  workloadSelector: {labels: {app: vm}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-1, namespace: default}
spec: {address: 10.1.1.1, labels: {app: vm}, ports: {http: 8080}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: other, namespace: default}
spec: {address: 10.1.1.2, labels: {app: other}}
`, 'we.yaml');
    const s = compile(resources, { namespace: 'default', clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY' });
    expect(s.clusters.get('outbound|80||vm.example.com')!.endpoints.map((e) => e.key)).toEqual(['10.1.1.1:8080']);
  });
  it('a ServiceEntry host without dots is taken literally (Istio does not expand ServiceEntry hosts)', () => {
    const { resources } = parseDocuments(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: local, namespace: default}
spec:
  hosts: [localhost]
  ports: [{number: 8080, name: http}]
  resolution: DNS
`, 'se.yaml');
    const s = compile(resources, { namespace: 'default', clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY' });
    const r = findRoute(lookupHost(s, 'localhost')!.vhost!, req('/', { port: 8080 }))!.route;
    const dest = (r.action as unknown as { destinations: Array<{ clusters: ReadonlyMap<number, { name: string }> }> }).destinations[0]!;
    expect(dest.clusters.get(8080)!.name).toBe('outbound|8080||localhost');
  });
  it('a name the registry lacks is tried with the resolver search path (as the pod resolver would)', () => {
    const { resources } = parseDocuments(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: default}
spec:
  hosts: [api.corp.example.com]
  ports: [{number: 80, name: http}]
  resolution: STATIC
  endpoints: [{address: 10.1.2.3}]
`, 'se.yaml');
    const base = { namespace: 'default', clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY' as const };
    const plain = compile(resources, base);
    expect(lookupHost(plain, 'api')).toBeUndefined();
    const s = compile(resources, { ...base, search: { domains: ['default.svc.cluster.local', 'corp.example.com'], ndots: 5 } });
    expect(lookupHost(s, 'api')?.host).toBe('api.corp.example.com');
    expect(lookupHost(s, 'api.corp.example.com')?.host).toBe('api.corp.example.com');
    expect(lookupHost(s, 'other')).toBeUndefined();
  });
});

