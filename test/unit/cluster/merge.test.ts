/**
 * Merging per-worker admin answers (--concurrency N): N workers' expositions merge into exactly what one process
 * that saw all the requests would render; cluster views combine; restart backoff grows and is capped.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { Metrics, type ProcessInfo } from '../../../src/telemetry/metrics.js';
import { clustersText, mergeClusterViews, mergeExpositions, restartDelayMs, statsJsonOf, sumFamily } from '../../../src/cluster/merge.js';
import type { ClusterView, EndpointView } from '../../../src/model.js';
import { record } from '../telemetry/records.js';

const proc = (cpu: number, start: number): (() => ProcessInfo) => () => ({ cpuUserSeconds: cpu, cpuSystemSeconds: 0, residentMemoryBytes: 1000, heapUsedBytes: 10, heapTotalBytes: 20, startTimeSeconds: start });
const metrics = (p: () => ProcessInfo): Metrics => new Metrics({ sourceWorkload: 'productpage-v1', sourceNamespace: 'default', sourceApp: 'productpage', processInfo: p });

/** Sample lines of an exposition by key, and a check that every family's samples are contiguous. */
function samples(text: string): Map<string, string> {
  const out = new Map<string, string>();
  const seenFamilies: string[] = [];
  for (const l of text.split('\n')) {
    const m = /^# TYPE (\S+)/.exec(l);
    if (m) {
      expect(seenFamilies, `family ${m[1]} appears twice`).not.toContain(m[1]);
      seenFamilies.push(m[1]!);
      continue;
    }
    if (!l || l.startsWith('#')) continue;
    const i = l.lastIndexOf(' ');
    out.set(l.slice(0, i), l.slice(i + 1));
  }
  return out;
}

describe('mergeExpositions', () => {
  it('two workers merge into what one process seeing all requests renders (istio series, histograms, cluster counters)', () => {
    const arb = fc.array(
      fc.record({
        worker: fc.integer({ min: 0, max: 1 }),
        status: fc.constantFrom(200, 200, 404, 503),
        svc: fc.constantFrom('reviews', 'ratings', 'details'),
        version: fc.constantFrom('v1', 'v2'),
        durationMs: fc.double({ min: 0, max: 5000, noNaN: true }),
        bytesSent: fc.integer({ min: 0, max: 200_000 }),
        retries: fc.integer({ min: 0, max: 2 }),
      }),
      { minLength: 1, maxLength: 60 },
    );
    fc.assert(
      fc.property(arb, (reqs) => {
        const all = metrics(proc(3, 100));
        const w = [metrics(proc(1, 100)), metrics(proc(2, 90))];
        for (const m of [all, ...w]) m.setConfigInfo('4', 'abc');
        for (const r of reqs) {
          const rec = record({
            status: r.status, durationMs: r.durationMs, bytesSent: r.bytesSent,
            destinationService: `${r.svc}.default.svc.cluster.local`, destinationServiceName: r.svc, destinationVersion: r.version,
            upstreamCluster: `outbound|9080|${r.version}|${r.svc}.default.svc.cluster.local`,
          });
          for (const m of [all, w[r.worker]!]) {
            m.recordRequest(rec);
            const c = m.cluster(rec.upstreamCluster!);
            c.upstream_rq_total += 1 + r.retries;
            c.upstream_rq_retry += r.retries;
            c.response(r.status);
          }
        }
        const merged = samples(mergeExpositions([w[0]!.render(), w[1]!.render()]));
        const want = samples(all.render());
        // Process figures are per process: CPU adds up (1 + 2 = 3), the start time is the oldest worker's.
        expect(merged.get('process_cpu_seconds_total')).toBe('3');
        expect(merged.get('process_start_time_seconds')).toBe('90');
        expect(merged.get('process_resident_memory_bytes')).toBe('2000');
        for (const k of [...want.keys()].filter((k) => /^(process|nodejs)_/.test(k))) { want.delete(k); merged.delete(k); }
        expect([...merged.keys()].sort()).toEqual([...want.keys()].sort());
        for (const [k, v] of want) expect(Number(merged.get(k)), k).toBeCloseTo(Number(v), 6);
      }),
      { seed: 6, numRuns: 60 },
    );
  });

  it('gauges of shared state do not multiply: membership max, healthy min, config_info 1; unknown series are kept', () => {
    const a = [
      '# TYPE envoy_cluster_membership_total gauge', 'envoy_cluster_membership_total{cluster_name="c"} 3',
      '# TYPE envoy_cluster_membership_healthy gauge', 'envoy_cluster_membership_healthy{cluster_name="c"} 3',
      '# TYPE envoy_cluster_upstream_rq_active gauge', 'envoy_cluster_upstream_rq_active{cluster_name="c"} 4',
      '# TYPE remora_config_info gauge', 'remora_config_info{version="2",hash="h"} 1', '',
    ].join('\n');
    const b = [
      '# TYPE envoy_cluster_membership_total gauge', 'envoy_cluster_membership_total{cluster_name="c"} 3',
      '# TYPE envoy_cluster_membership_healthy gauge', 'envoy_cluster_membership_healthy{cluster_name="c"} 2',
      '# TYPE envoy_cluster_upstream_rq_active gauge', 'envoy_cluster_upstream_rq_active{cluster_name="c"} 1', 'envoy_cluster_upstream_rq_active{cluster_name="d"} 7',
      '# TYPE remora_config_info gauge', 'remora_config_info{version="2",hash="h"} 1', '',
    ].join('\n');
    const m = samples(mergeExpositions([a, b]));
    expect(m.get('envoy_cluster_membership_total{cluster_name="c"}')).toBe('3');
    expect(m.get('envoy_cluster_membership_healthy{cluster_name="c"}')).toBe('2');
    expect(m.get('envoy_cluster_upstream_rq_active{cluster_name="c"}')).toBe('5');
    expect(m.get('envoy_cluster_upstream_rq_active{cluster_name="d"}')).toBe('7');
    expect(m.get('remora_config_info{version="2",hash="h"}')).toBe('1');
  });

  it('label values with spaces and NaN values survive; sumFamily and the /stats JSON read the merged text', () => {
    const t = '# TYPE x_total counter\nx_total{a="b c"} 2\nx_total{a="d"} 3\nx_totally 100\n# TYPE g gauge\ng NaN\n';
    const m = mergeExpositions([t, t]);
    expect(m).toContain('x_total{a="b c"} 4\n');
    expect(m).toContain('g NaN\n');
    expect(sumFamily(m, 'x_total')).toBe(10);
    expect(statsJsonOf(m).stats).toContainEqual({ name: 'x_total{a="b c"}', value: 4 });
  });
});

const ep = (over: Partial<EndpointView>): EndpointView => ({
  key: '10.0.0.1:80', address: '10.0.0.1', port: 80, weight: 1, labels: {}, healthy: true, healthFlags: [], ejections: 0,
  activeRequests: 0, totalRequests: 0, successRequests: 0, errorRequests: 0, ...over,
});
const view = (eps: EndpointView[], over: Partial<ClusterView> = {}): ClusterView => ({ name: 'c', activeRequests: 0, pendingRequests: 0, activeRetries: 0, ejectionsActive: 0, endpoints: eps, ...over });

describe('mergeClusterViews', () => {
  it('adds counts, an endpoint ejected in one worker is unhealthy, ejectedUntil (per-process clock) is dropped', () => {
    const w1 = [view([ep({ totalRequests: 5, successRequests: 5 }), ep({ key: '10.0.0.2:80', address: '10.0.0.2', totalRequests: 1, errorRequests: 1 })], { activeRequests: 1 })];
    const w2 = [view([ep({ totalRequests: 3, successRequests: 2, errorRequests: 1, healthy: false, healthFlags: ['failed_outlier_check'], ejections: 1, ejectedUntil: 123 })], { activeRequests: 2, ejectionsActive: 1 })];
    const [c] = mergeClusterViews([w1, w2]);
    expect(c).toMatchObject({ name: 'c', activeRequests: 3, ejectionsActive: 1 });
    expect(c!.endpoints).toHaveLength(2);
    expect(c!.endpoints[0]).toEqual(ep({ totalRequests: 8, successRequests: 7, errorRequests: 1, healthy: false, healthFlags: ['failed_outlier_check'], ejections: 1 }));
    expect(clustersText([c!])).toContain('c::10.0.0.1:80::health_flags::/failed_outlier_check\nc::10.0.0.1:80::weight::1\nc::10.0.0.1:80::rq_active::0\nc::10.0.0.1:80::rq_total::8\n');
    // Inputs are not mutated.
    expect(w1[0]!.endpoints[0]!.totalRequests).toBe(5);
  });
});

describe('restartDelayMs', () => {
  it('doubles per crash in a row from 250 ms and caps at 10 s', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 100].map((n) => restartDelayMs(n))).toEqual([250, 500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
  });
});
