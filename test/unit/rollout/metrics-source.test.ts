/** The metric sources' pure parts: the exposition parser on Remora's own output, per-version totals, deltas, PromQL. */
import { describe, expect, it } from 'vitest';
import { Metrics } from '../../../src/telemetry/metrics.js';
import { accumulate, delta, isFailure, parseExposition, promQueries, serviceFqdn, type Selector, type Totals } from '../../../src/rollout/metrics-source.js';
import { histogramQuantile } from '../../../src/rollout/analysis.js';
import { record } from '../telemetry/records.js';

const SEL: Selector = { service: 'reviews.default.svc.cluster.local', stable: 'v1', canary: 'v2', reporter: 'source', app: 'reviews' };

function scrape(m: Metrics): Map<string, Totals> {
  const into = new Map<string, Totals>();
  accumulate(parseExposition(m.render({ clusters: [] })), SEL, into);
  return into;
}

describe('stats source arithmetic on a real exposition', () => {
  it('counts requests and failures (5xx, code 0, any response flag) per destination_version; buckets are cumulative', () => {
    const m = new Metrics({ sourceWorkload: 'productpage-v1', sourceNamespace: 'default', sourceApp: 'productpage', sourceVersion: 'v1' });
    for (let i = 0; i < 90; i++) m.recordRequest(record({ durationMs: 3 }));
    for (let i = 0; i < 10; i++) m.recordRequest(record({ destinationVersion: 'v2', durationMs: 40 }));
    m.recordRequest(record({ destinationVersion: 'v2', status: 503, flags: 'UO', durationMs: 1 }));
    m.recordRequest(record({ destinationVersion: 'v2', status: 200, flags: 'URX', durationMs: 1 }));
    m.recordRequest(record({ destinationVersion: 'v2', status: 500, durationMs: 1 }));
    m.recordRequest(record({ destinationVersion: 'v3', durationMs: 1 })); // neither subset
    m.recordRequest(record({ destinationService: 'ratings.default.svc.cluster.local', destinationVersion: 'v2' })); // other service
    m.recordRequest(record({ direction: 'inbound', destinationVersion: 'v2' })); // reporter=destination
    const t0 = scrape(m);
    expect(t0.get('v1')).toMatchObject({ requests: 90, failures: 0 });
    expect(t0.get('v2')).toMatchObject({ requests: 13, failures: 3 });
    expect(t0.has('v3')).toBe(false);
    expect(t0.get('v2')!.buckets.get(Infinity)).toBe(13);
    expect(t0.get('v2')!.buckets.get(25)).toBe(3);
    expect(t0.get('v2')!.buckets.get(50)).toBe(13);

    for (let i = 0; i < 100; i++) m.recordRequest(record({ destinationVersion: 'v2', durationMs: 7 }));
    const w = delta(t0.get('v2'), scrape(m).get('v2'));
    expect(w).toMatchObject({ requests: 100, failures: 0 });
    expect(histogramQuantile(0.99, w.buckets)).toBeGreaterThan(5);
    expect(histogramQuantile(0.99, w.buckets)).toBeLessThanOrEqual(10);
    expect(delta(undefined, undefined)).toEqual({ requests: 0, failures: 0, buckets: [] });
  });

  it('a mirror step counts the canary from its own sidecar (reporter=destination, destination_app, destination_version)', () => {
    // The canary's sidecar: workload reviews-v2, app reviews, version v2; shadows arrive on its inbound side.
    const canarySidecar = new Metrics({ sourceWorkload: 'reviews-v2', sourceNamespace: 'default', sourceApp: 'reviews', sourceVersion: 'v2' });
    for (let i = 0; i < 40; i++) canarySidecar.recordRequest(record({ direction: 'inbound', destinationService: '127.0.0.1', durationMs: 2 }));
    canarySidecar.recordRequest(record({ direction: 'inbound', destinationService: '127.0.0.1', status: 503, flags: 'UF' }));
    const caller = new Metrics({ sourceWorkload: 'productpage-v1', sourceNamespace: 'default', sourceApp: 'productpage', sourceVersion: 'v1' });
    for (let i = 0; i < 100; i++) caller.recordRequest(record({ durationMs: 3 }));
    const into = new Map<string, Totals>();
    for (const m of [canarySidecar, caller]) accumulate(parseExposition(m.render({ clusters: [] })), SEL, into, true);
    expect(into.get('v1')).toMatchObject({ requests: 100, failures: 0 });
    expect(into.get('v2')).toMatchObject({ requests: 41, failures: 1 });
    // Outside a mirror step the same scrapes count no canary request (its reports are reporter=destination).
    const plain = new Map<string, Totals>();
    for (const m of [canarySidecar, caller]) accumulate(parseExposition(m.render({ clusters: [] })), SEL, plain);
    expect(plain.has('v2')).toBe(false);
    // Another app's v2 is not the canary.
    const other = new Map<string, Totals>();
    accumulate(parseExposition(canarySidecar.render({ clusters: [] })), { ...SEL, app: 'ratings' }, other, true);
    expect(other.has('v2')).toBe(false);
  });

  it('a counter that went down (restart, /reset_counters) counts from zero', () => {
    const before: Totals = { requests: 500, failures: 5, buckets: new Map([[5, 400], [Infinity, 500]]) };
    const after: Totals = { requests: 20, failures: 1, buckets: new Map([[5, 20], [Infinity, 20]]) };
    expect(delta(before, after)).toEqual({ requests: 20, failures: 1, buckets: [[5, 20], [Infinity, 20]] });
  });

  it('parses escaped label values, +Inf, comments and samples without labels', () => {
    const s = parseExposition('# HELP x y\nfoo 3\nbar{a="x\\"y\\\\z\\n",le="+Inf"} 2.5e+01\nbaz{a="1"} NaN\n');
    expect(s[0]).toEqual({ name: 'foo', labels: {}, value: 3 });
    expect(s[1]).toEqual({ name: 'bar', labels: { a: 'x"y\\z\n', le: '+Inf' }, value: 25 });
    expect(Number.isNaN(s[2]!.value)).toBe(true);
  });

  it('isFailure', () => {
    expect(isFailure('200', '-')).toBe(false);
    expect(isFailure('404', '-')).toBe(false);
    expect(isFailure('503', '-')).toBe(true);
    expect(isFailure('0', '-')).toBe(true);
    expect(isFailure('200', 'URX')).toBe(true);
  });
});

describe('PromQL', () => {
  it('selects the service, reporter and both versions; failures split into 5xx and flagged non-5xx (disjoint)', () => {
    const q = promQueries(SEL, 60);
    expect(q.requests).toBe('sum by (destination_version) (increase(istio_requests_total{reporter="source",destination_service="reviews.default.svc.cluster.local",destination_version=~"v1|v2"}[60s]))');
    expect(q.failures5xx).toContain('response_code=~"5..|0"');
    expect(q.failuresFlagged).toContain('response_code!~"5..|0",response_flags!~"-|"');
    expect(q.buckets).toBe('sum by (destination_version, le) (increase(istio_request_duration_milliseconds_bucket{reporter="source",destination_service="reviews.default.svc.cluster.local",destination_version=~"v1|v2"}[60s]))');
    expect(promQueries({ ...SEL, reporter: 'any', canary: 'v2.beta' }, 0.4).requests).toContain('{destination_service="reviews.default.svc.cluster.local",destination_version=~"v1|v2\\\\.beta"}[1s]');
  });
  it('a mirror step joins the canary from its own sidecar with or', () => {
    const q = promQueries(SEL, 30, true);
    expect(q.requests).toBe('sum by (destination_version) (increase(istio_requests_total{reporter="source",destination_service="reviews.default.svc.cluster.local",destination_version=~"v1"}[30s]))' +
      ' or sum by (destination_version) (increase(istio_requests_total{reporter="destination",destination_app="reviews",destination_version="v2"}[30s]))');
  });
  it('serviceFqdn follows the short-name rule', () => {
    expect(serviceFqdn('reviews', 'prod')).toBe('reviews.prod.svc.cluster.local');
    expect(serviceFqdn('api.example.com', 'prod')).toBe('api.example.com');
  });
});
