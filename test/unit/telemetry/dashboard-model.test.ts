/** The dashboard's data: latency histogram and percentiles, per-cluster summaries in Metrics, and the route/cluster views. */
import { describe, it, expect } from 'vitest';
import { parseDocuments } from '../../../src/config/parse.js';
import { compile } from '../../../src/config/compile.js';
import { seededRandom } from '../../../src/util/random.js';
import {
  ClusterSummary, LATENCY_BUCKETS, LATENCY_MIN_MS, Metrics, latencyBucket, latencyBucketUpperMs, latencyPercentile,
} from '../../../src/telemetry/metrics.js';
import { clustersView, describeMatches, routesView } from '../../../src/admin/dashboard.js';
import { REVIEWS_V1, record } from './records.js';

const REVIEWS_V2 = 'outbound|9080|v2|reviews.default.svc.cluster.local';

describe('latency histogram', () => {
  it('buckets are monotonic and bounded; a value lies in [upper bound of the previous bucket, its upper bound)', () => {
    expect(latencyBucket(0)).toBe(0);
    expect(latencyBucket(-1)).toBe(0);
    expect(latencyBucket(NaN)).toBe(0);
    expect(latencyBucket(LATENCY_MIN_MS * 0.99)).toBe(0);
    expect(latencyBucket(LATENCY_MIN_MS)).toBe(1);
    expect(latencyBucket(1e12)).toBe(LATENCY_BUCKETS - 1);
    let prev = 0;
    for (const v of [0.07, 0.1, 0.5, 1, 1.5, 2, 10, 11, 24, 100, 999, 1000, 30_000, 600_000]) {
      const i = latencyBucket(v);
      expect(i).toBeGreaterThanOrEqual(prev);
      expect(v).toBeLessThan(latencyBucketUpperMs(i));
      expect(v).toBeGreaterThanOrEqual(latencyBucketUpperMs(i - 1));
      prev = i;
    }
  });

  it('percentiles are within 12.5 % above the exact value (seeded samples)', () => {
    const rand = seededRandom(42);
    const samples: number[] = [];
    const b = new Float64Array(LATENCY_BUCKETS);
    for (let i = 0; i < 5000; i++) {
      const v = Math.exp(rand() * 7) * 0.5; // 0.5 ms … 550 ms, log-uniform (below 0.5 ms buckets are 62.5 µs wide)
      samples.push(v);
      b[latencyBucket(v)]! += 1;
    }
    samples.sort((x, y) => x - y);
    for (const q of [0.5, 0.9, 0.99]) {
      const exact = samples[Math.ceil(q * samples.length) - 1]!;
      const est = latencyPercentile(b, q)!;
      expect(est).toBeGreaterThanOrEqual(exact);
      expect(est).toBeLessThanOrEqual(exact * 1.125 * (1 + 1e-9));
    }
    expect(latencyPercentile(new Float64Array(LATENCY_BUCKETS), 0.5)).toBeUndefined();
  });
});

describe('Metrics cluster summaries', () => {
  it('count requests, non-5xx successes, latency and routes per upstream cluster; reset and retain forget them', () => {
    const m = new Metrics({ sourceWorkload: 'productpage-v1', sourceNamespace: 'default' });
    m.recordRequest(record({ durationMs: 3, routeName: 'canary' }));
    m.recordRequest(record({ durationMs: 5, status: 404, routeName: 'canary' }));
    m.recordRequest(record({ durationMs: 200, status: 503, flags: 'UF', routeName: 'other' }));
    m.recordRequest(record({ status: 0, flags: 'DC', routeName: 'canary' }));
    m.recordRequest(record({ upstreamCluster: REVIEWS_V2, routeName: 'canary' }));
    m.recordRequest(record({ upstreamCluster: undefined }));
    const s = m.clusterSummaries().get(REVIEWS_V1)!;
    expect(s).toBeInstanceOf(ClusterSummary);
    expect([s.requests, s.success]).toEqual([4, 2]);
    expect([...s.byRoute].map(([k, v]) => [k, v.requests])).toEqual([['canary', 3], ['other', 1]]);
    expect(latencyPercentile(s.latency, 1)).toBeGreaterThanOrEqual(200);
    expect([...m.clusterSummaries().keys()]).toEqual([REVIEWS_V1, REVIEWS_V2]);
    m.retainClusters(new Set([REVIEWS_V2]));
    expect([...m.clusterSummaries().keys()]).toEqual([REVIEWS_V2]);
    m.reset();
    expect(m.clusterSummaries().size).toBe(0);
  });
});

const MESH = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: 9001}, labels: {version: v1}}
  - {address: 127.0.0.2, ports: {http: 9002}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.3, ports: {http: 9003}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews, reviews.example.com]
  http:
  - name: jason
    match: [{headers: {end-user: {exact: jason}}, uri: {prefix: /api}}, {queryParams: {v: {regex: "2.*"}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - name: canary
    timeout: 1s
    route:
    - {destination: {host: reviews, subset: v1}, weight: 75}
    - {destination: {host: reviews, subset: v2}, weight: 25}
`;

function snapshot() {
  const { resources, errors } = parseDocuments(MESH, 'mesh.yaml');
  expect(errors).toEqual([]);
  return compile(resources, { namespace: 'default', clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY' });
}

describe('routesView', () => {
  it('one row per route of a shared table, configured and observed shares, default routes only with traffic', () => {
    const snap = snapshot();
    const m = new Metrics({ sourceWorkload: 'w', sourceNamespace: 'default' });
    const { routes: before } = routesView(snap, m.clusterSummaries());
    expect(before.map((r) => r.name).sort()).toEqual(['canary', 'jason']);
    // The view builds the routes it shows; a default route without traffic stays unbuilt.
    const ratings = snap.hosts.get('ratings.default.svc.cluster.local')!.vhost!;
    expect(ratings.compiled).toBe(false);
    expect(snap.hosts.get('reviews.default.svc.cluster.local')!.vhost!.compiled).toBe(true);
    const canary0 = before.find((r) => r.name === 'canary')!;
    expect(canary0.hosts).toEqual(['reviews.default.svc.cluster.local', 'reviews.example.com']);
    expect(canary0).toMatchObject({ origin: 'VirtualService/default/reviews', kind: 'route', timeoutMs: 1000, requests: 0, match: '*' });
    expect(canary0.destinations.map((d) => [d.subset, d.weight, d.configuredShare, d.observedShare])).toEqual([['v1', 75, 0.75, null], ['v2', 25, 0.25, null]]);
    expect(before.find((r) => r.name === 'jason')!.match).toBe('uri prefix /api, header end-user exact jason | query v regex 2.*');

    for (let i = 0; i < 6; i++) m.recordRequest(record({ routeName: 'canary', upstreamCluster: REVIEWS_V1 }));
    for (let i = 0; i < 2; i++) m.recordRequest(record({ routeName: 'canary', upstreamCluster: REVIEWS_V2 }));
    m.recordRequest(record({ routeName: 'jason', upstreamCluster: REVIEWS_V2 }));
    m.recordRequest(record({ routeName: 'default', upstreamCluster: 'outbound|9080||ratings.default.svc.cluster.local' }));
    const { routes, omitted } = routesView(snap, m.clusterSummaries());
    expect(ratings.compiled).toBe(true);
    expect(omitted).toBe(0);
    const canary = routes.find((r) => r.name === 'canary')!;
    expect(canary.requests).toBe(8);
    expect(canary.destinations.map((d) => [d.requests, d.observedShare])).toEqual([[6, 0.75], [2, 0.25]]);
    expect(routes.find((r) => r.name === 'jason')!.destinations[0]).toMatchObject({ requests: 1, observedShare: 1, clusters: [REVIEWS_V2] });
    // Busiest first; the registry default route appears now that it has traffic.
    expect(routes.map((r) => r.name)).toEqual(['canary', 'default', 'jason']);
    expect(routes[1]).toMatchObject({ hosts: ['ratings.default.svc.cluster.local'], origin: 'ServiceEntry/default/ratings', requests: 1 });
    expect(routesView(undefined, m.clusterSummaries())).toEqual({ routes: [], omitted: 0 });
  });

  it('describeMatches of an empty match list is *', () => {
    expect(describeMatches([])).toBe('*');
  });
});

describe('clustersView', () => {
  it('success rate, percentiles, health and ejected endpoints with the time left', () => {
    const m = new Metrics({ sourceWorkload: 'w', sourceNamespace: 'default' });
    m.recordRequest(record({ durationMs: 10 }));
    m.recordRequest(record({ durationMs: 10, status: 500 }));
    const ep = { address: '127.0.0.1', weight: 1, labels: {}, ejections: 0, activeRequests: 0, totalRequests: 0, successRequests: 0, errorRequests: 0 };
    const { clusters, ejected, omitted } = clustersView([
      { name: REVIEWS_V1, activeRequests: 1, pendingRequests: 0, activeRetries: 0, ejectionsActive: 1, endpoints: [
        { ...ep, key: '127.0.0.1:1', port: 1, healthy: true, healthFlags: [] },
        { ...ep, key: '127.0.0.1:2', port: 2, healthy: false, healthFlags: ['failed_outlier_check'], ejections: 2, ejectedUntil: 31_000 },
      ] },
      { name: REVIEWS_V2, activeRequests: 0, pendingRequests: 0, activeRetries: 0, ejectionsActive: 0, endpoints: [] },
    ], m.clusterSummaries(), 1_000);
    expect(omitted).toBe(0);
    expect(clusters[0]).toMatchObject({ name: REVIEWS_V1, requests: 2, success: 1, successRate: 0.5, activeRequests: 1, endpoints: 2, healthyEndpoints: 1, ejectionsActive: 1 });
    expect(clusters[0]!.p50Ms).toBeGreaterThanOrEqual(10);
    expect(clusters[0]!.p50Ms).toBeLessThan(12);
    expect(clusters[1]).toMatchObject({ name: REVIEWS_V2, requests: 0, successRate: null, p50Ms: null });
    expect(ejected).toEqual([{ cluster: REVIEWS_V1, endpoint: '127.0.0.1:2', healthFlags: ['failed_outlier_check'], ejections: 2, remainingMs: 30_000 }]);
  });
});
