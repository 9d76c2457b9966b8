/**
 * Metric values through the real proxy after a scripted sequence — 200s, a route timeout (504 UT), a pool overflow
 * (503 UO), a retried 503 — read from `/stats/prometheus` on the stats port and on admin, and `promtool check metrics`
 * on the live exposition.
 */
import { spawnSync } from 'node:child_process';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { request } from 'undici';
import { fakeUpstream, type FakeUpstream } from '../../support/fake-upstream.js';
import { startProxy, type RunningProxy } from '../../support/proxy-harness.js';
import { serviceEntry } from './support.js';

const REVIEWS_V1 = 'outbound|9080|v1|reviews.default.svc.cluster.local';
const RATINGS = 'outbound|80||ratings.default.svc.cluster.local';
const FLAKY = 'outbound|80||flaky.default.svc.cluster.local';

let reviews: FakeUpstream;
let ratings: FakeUpstream;
let flaky: FakeUpstream;
let proxy: RunningProxy;

const config = (): string =>
  [
    serviceEntry('reviews', 9080, [{ port: reviews.port, labels: { version: 'v1' } }]),
    serviceEntry('ratings', 80, [{ port: ratings.port }]),
    serviceEntry('flaky', 80, [{ port: flaky.port }]),
    `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
`,
    `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - name: slow
    match: [{uri: {prefix: /slow}}]
    timeout: 200ms
    route: [{destination: {host: reviews, subset: v1}}]
  - name: default
    route: [{destination: {host: reviews, subset: v1}}]
`,
    // One connection and one pending request: a third concurrent request overflows (503 UO).
    `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1}
`,
    `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: flaky, namespace: default}
spec:
  hosts: [flaky]
  http:
  - retries: {attempts: 2, retryOn: 5xx}
    route: [{destination: {host: flaky}}]
`,
  ].join('---\n');

beforeAll(async () => {
  reviews = await fakeUpstream('reviews');
  reviews.behave((req, res) => {
    if (!req.url?.startsWith('/slow')) return undefined;
    setTimeout(() => { if (!res.destroyed) res.writeHead(200).end('late'); }, 2000);
    return 'handled';
  });
  ratings = (await fakeUpstream('ratings')).latency(400);
  flaky = await fakeUpstream('flaky');
  flaky.statusSequence(503);
  proxy = await startProxy({ 'mesh.yaml': config() }, ['--labels', 'app=productpage,version=v1']);
});

afterAll(async () => {
  await proxy?.stop();
  await Promise.all([reviews?.close(), ratings?.close(), flaky?.close()]);
});

interface Sample { name: string; labels: Record<string, string>; value: number }

/** Parse the text exposition's samples (label values may contain escaped quotes). */
function parse(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

function value(samples: Sample[], name: string, labels: Record<string, string>): number | undefined {
  const hits = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (hits.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${hits.length} series`);
  return hits[0]?.value;
}

async function scrape(port: number): Promise<string> {
  const r = await request(`http://127.0.0.1:${port}/stats/prometheus`);
  expect(r.statusCode).toBe(200);
  expect(r.headers['content-type']).toContain('text/plain');
  return r.body.text();
}

describe('metrics after a scripted sequence', () => {
  it('runs the sequence: 3 × 200, 504 UT, 503 UO, a retried 503', async () => {
    for (let i = 0; i < 3; i++) expect((await proxy.get(`/ok/${i}`, { host: 'reviews:9080' })).status).toBe(200);
    const slow = await proxy.get('/slow', { host: 'reviews:9080' });
    expect(slow.status).toBe(504);
    const burst = await Promise.all([0, 1, 2].map((i) => proxy.get(`/r/${i}`, { host: 'ratings' })));
    expect(burst.map((r) => r.status).sort()).toEqual([200, 200, 503]);
    expect(burst.find((r) => r.status === 503)!.body).toContain('overflow');
    const retried = await proxy.get('/f', { host: 'flaky' });
    expect(retried.status).toBe(200);
    expect(flaky.requests).toHaveLength(2);
  });

  it('istio_* and envoy_cluster_* values on the stats port and on admin agree with the sequence', async () => {
    for (const port of [proxy.info.stats, proxy.info.admin]) {
      const s = parse(await scrape(port));
      const reviewsSeries = { reporter: 'source', destination_service: 'reviews.default.svc.cluster.local', destination_service_name: 'reviews', destination_service_namespace: 'default', destination_version: 'v1' };
      expect(value(s, 'istio_requests_total', { ...reviewsSeries, response_code: '200', response_flags: '-' })).toBe(3);
      expect(value(s, 'istio_requests_total', { ...reviewsSeries, response_code: '504', response_flags: 'UT' })).toBe(1);
      expect(value(s, 'istio_requests_total', { destination_service_name: 'ratings', response_code: '200', response_flags: '-' })).toBe(2);
      expect(value(s, 'istio_requests_total', { destination_service_name: 'ratings', response_code: '503', response_flags: 'UO' })).toBe(1);
      // The retried request is one downstream request answered 200 (the 503 attempt is only in the cluster stats).
      expect(value(s, 'istio_requests_total', { destination_service_name: 'flaky', response_code: '200' })).toBe(1);
      expect(value(s, 'istio_requests_total', { destination_service_name: 'flaky', response_code: '503' })).toBeUndefined();
      // Labels Istio's dashboards use, with this workload as the source.
      const any = s.find((x) => x.name === 'istio_requests_total')!;
      expect(any.labels).toMatchObject({ source_workload: expect.any(String), source_workload_namespace: 'default', source_app: 'productpage', source_version: 'v1', request_protocol: 'http', connection_security_policy: 'unknown', destination_workload: 'unknown' });
      // The timed-out request's duration is ≥ the 200 ms route timeout: its histogram has nothing at or below 100 ms.
      const ut = { ...reviewsSeries, response_code: '504', response_flags: 'UT' };
      expect(value(s, 'istio_request_duration_milliseconds_count', ut)).toBe(1);
      expect(value(s, 'istio_request_duration_milliseconds_bucket', { ...ut, le: '100' })).toBe(0);
      expect(value(s, 'istio_request_duration_milliseconds_bucket', { ...ut, le: '+Inf' })).toBe(1);
      expect(value(s, 'istio_request_duration_milliseconds_sum', ut)).toBeGreaterThanOrEqual(199);
      expect(value(s, 'istio_response_bytes_count', { ...reviewsSeries, response_code: '200' })).toBe(3);

      expect(value(s, 'envoy_cluster_upstream_rq_total', { cluster_name: REVIEWS_V1 })).toBe(4);
      expect(value(s, 'envoy_cluster_upstream_rq_timeout', { cluster_name: REVIEWS_V1 })).toBe(1);
      expect(value(s, 'envoy_cluster_upstream_rq', { cluster_name: REVIEWS_V1, response_code: '200' })).toBe(3);
      expect(value(s, 'envoy_cluster_upstream_rq_pending_overflow', { cluster_name: RATINGS })).toBe(1);
      expect(value(s, 'envoy_cluster_upstream_rq_total', { cluster_name: RATINGS })).toBe(2);
      expect(value(s, 'envoy_cluster_upstream_rq_total', { cluster_name: FLAKY })).toBe(2);
      expect(value(s, 'envoy_cluster_upstream_rq_retry', { cluster_name: FLAKY })).toBe(1);
      expect(value(s, 'envoy_cluster_upstream_rq_retry_success', { cluster_name: FLAKY })).toBe(1);
      expect(value(s, 'envoy_cluster_upstream_rq', { cluster_name: FLAKY, response_code: '503' })).toBe(1);
      expect(value(s, 'envoy_cluster_upstream_rq', { cluster_name: FLAKY, response_code_class: '2xx' })).toBe(1);
      expect(value(s, 'envoy_cluster_membership_healthy', { cluster_name: FLAKY })).toBe(1);
      expect(value(s, 'envoy_cluster_outlier_detection_ejections_active', { cluster_name: FLAKY })).toBe(0);
      expect(value(s, 'remora_config_reloads_total', {})).toBe(1);
      expect(value(s, 'remora_config_reload_failures_total', {})).toBe(0);
      expect(s.find((x) => x.name === 'remora_config_info')?.labels.hash).toMatch(/\S/);
      expect(value(s, 'remora_tracing_spans_dropped_total', {})).toBe(0);
      expect(value(s, 'process_resident_memory_bytes', {})).toBeGreaterThan(1e6);
      // Bounded cardinality: no path, request id or peer address in any label.
      for (const x of s) for (const v of Object.values(x.labels)) expect(v).not.toMatch(/^\/(ok|r|f|slow)/);
    }
  });

  it('the stats port serves only /stats/prometheus (the admin API is 127.0.0.1-only)', async () => {
    const r = await request(`http://127.0.0.1:${proxy.info.stats}/config_dump`);
    expect(r.statusCode).toBe(404);
    await r.body.dump();
  });

  const hasPromtool = spawnSync('promtool', ['--version']).status === 0;
  it.skipIf(!hasPromtool)('promtool check metrics accepts the live exposition (only Istio/Envoy naming lints)', async () => {
    const text = await scrape(proxy.info.stats);
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 20_000 });
    const problems = (r.stdout + r.stderr).split('\n').map((l) => l.trim()).filter((l) => l !== '');
    expect(r.status, problems.join('\n')).not.toBe(1);
    const allowed = [
      /^istio_request_duration_milliseconds use base unit "seconds" instead of "milliseconds"$/,
      /^envoy_cluster_\w+ counter metrics should have "_total" suffix$/,
      /^envoy_cluster_membership_total non-counter metrics should not have "_total" suffix$/,
      /^envoy_cluster_\w+ no help text$/,
    ];
    expect(problems.filter((p) => !allowed.some((re) => re.test(p)))).toEqual([]);
  });
  if (!hasPromtool) console.warn('promtool not found: install the Debian package `prometheus` to run the promtool check');

  it('POST /reset_counters zeroes counters and histograms but keeps gauges', async () => {
    expect((await proxy.admin('/reset_counters', 'POST')).status).toBe(200);
    const s = parse(await scrape(proxy.info.admin));
    expect(value(s, 'istio_requests_total', { destination_service_name: 'reviews', response_code: '200' })).toBeUndefined();
    expect(value(s, 'envoy_cluster_upstream_rq_retry', { cluster_name: FLAKY })).toBe(0);
    expect(value(s, 'envoy_cluster_membership_total', { cluster_name: FLAKY })).toBe(1);
  });
});
