import { describe, it, expect } from 'vitest';
import { createClusterRuntime, slowStartFactor } from '../../../src/upstream/cluster-runtime.js';
import { compileClusterPolicy } from '../../../src/upstream/policy.js';
import type { ClusterDef, ClusterPolicy, Endpoint } from '../../../src/model.js';
import type { TrafficPolicy } from '../../../src/config/types.js';
import { seededRandom } from '../../../src/util/random.js';

function ep(i: number, weight = 1): Endpoint {
  return { key: `10.0.0.${i}:80`, address: `10.0.0.${i}`, port: 80, labels: {}, weight };
}

function cluster(endpoints: Endpoint[], tp: TrafficPolicy = {}, policy?: ClusterPolicy): ClusterDef {
  return {
    name: 'outbound|80||svc.ns.svc.cluster.local', host: 'svc.ns.svc.cluster.local', port: 80, subset: '',
    policy: policy ?? compileClusterPolicy({ dr: tp }, 80), endpoints, resolution: 'STATIC', protocol: 'http',
  };
}

function counts(rt: ReturnType<typeof createClusterRuntime>, n: number, now = 0): Map<string, number> {
  const m = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const e = rt.pick({}, now)!;
    m.set(e.key, (m.get(e.key) ?? 0) + 1);
  }
  return m;
}

describe('ClusterRuntime picking', () => {
  it('ROUND_ROBIN splits 50/50', () => {
    const rt = createClusterRuntime(cluster([ep(1), ep(2)], { loadBalancer: { simple: 'ROUND_ROBIN' } }), seededRandom(1), 0);
    const c = counts(rt, 10_000);
    expect(c.get('10.0.0.1:80')).toBe(5000);
    expect(c.get('10.0.0.2:80')).toBe(5000);
  });

  it('LEAST_REQUEST favours the idle host', () => {
    const rt = createClusterRuntime(cluster([ep(1), ep(2)]), seededRandom(2), 0);
    const busy = ep(1);
    for (let i = 0; i < 5; i++) rt.attemptStarted(busy, 0);
    const c = counts(rt, 1000);
    expect(c.get('10.0.0.2:80')).toBe(1000);
  });

  it('empty cluster: pick is undefined (UH)', () => {
    const rt = createClusterRuntime(cluster([]), seededRandom(3), 0);
    expect(rt.pick({}, 0)).toBeUndefined();
  });

  it('exclude skips tried hosts, except on consistent-hash clusters', () => {
    const rr = createClusterRuntime(cluster([ep(1), ep(2), ep(3)]), seededRandom(4), 0);
    const exclude = new Set(['10.0.0.1:80', '10.0.0.2:80']);
    for (let i = 0; i < 100; i++) expect(rr.pick({ exclude }, 0)!.key).toBe('10.0.0.3:80');
    const rh = createClusterRuntime(cluster([ep(1), ep(2), ep(3)], { loadBalancer: { consistentHash: { httpHeaderName: 'u' } } }), seededRandom(4), 0);
    const first = rh.pick({ hashKey: 'alice' }, 0)!;
    expect(rh.pick({ hashKey: 'alice', exclude: new Set([first.key]) }, 0)!.key).toBe(first.key);
  });
});

describe('ClusterRuntime circuit breaking', () => {
  it('Istio scenario 13: maxConnections 1, http1MaxPendingRequests 1 → 2 ok, 8 pending_overflow', () => {
    const rt = createClusterRuntime(cluster([ep(1)], { connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1 } } }), seededRandom(5), 0);
    const results = Array.from({ length: 10 }, () => rt.admit());
    expect(results.filter((r) => r === 'ok')).toHaveLength(2);
    expect(results.filter((r) => r === 'pending_overflow')).toHaveLength(8);
    const v = rt.view(0);
    expect(v.activeRequests).toBe(2);
    expect(v.pendingRequests).toBe(1);
    rt.release();
    expect(rt.admit()).toBe('ok');
  });

  it('http2MaxRequests gives rq_overflow', () => {
    const rt = createClusterRuntime(cluster([ep(1)], { connectionPool: { http: { http2MaxRequests: 2 } } }), seededRandom(5), 0);
    expect([rt.admit(), rt.admit(), rt.admit()]).toEqual(['ok', 'ok', 'rq_overflow']);
  });

  it('maxRetries caps concurrent retries', () => {
    const rt = createClusterRuntime(cluster([ep(1)], { connectionPool: { http: { maxRetries: 1 } } }), seededRandom(5), 0);
    for (let i = 0; i < 100; i++) rt.admit();
    expect(rt.tryStartRetry()).toBe(true);
    expect(rt.tryStartRetry()).toBe(false);
    rt.endRetry();
    expect(rt.tryStartRetry()).toBe(true);
  });

  it('the default retry budget allows max(3, 20% of active) concurrent retries', () => {
    const rt = createClusterRuntime(cluster([ep(1)]), seededRandom(5), 0);
    for (let i = 0; i < 50; i++) rt.admit();
    let started = 0;
    while (rt.tryStartRetry()) started++;
    expect(started).toBe(10);
    expect(rt.stats().retryBudgetExhausted).toBe(1);
  });
});

describe('ClusterRuntime outlier detection', () => {
  const tp: TrafficPolicy = { loadBalancer: { simple: 'ROUND_ROBIN' }, outlierDetection: { consecutive5xxErrors: 3, interval: '1s', baseEjectionTime: '5s', maxEjectionPercent: 100 } };

  it('ejects a failing host, shows failed_outlier_check, and returns it after the ejection time', () => {
    const rt = createClusterRuntime(cluster([ep(1), ep(2), ep(3)], tp), seededRandom(6), 0);
    const bad = ep(3);
    for (let i = 0; i < 3; i++) {
      rt.attemptStarted(bad, 100);
      rt.attemptFinished(bad, { kind: 'response', status: 500 }, 1, 100);
    }
    const v = rt.view(100);
    const e3 = v.endpoints.find((e) => e.key === bad.key)!;
    expect(e3.healthy).toBe(false);
    expect(e3.healthFlags).toEqual(['failed_outlier_check']);
    expect(e3.ejections).toBe(1);
    expect(e3.ejectedUntil).toBe(5100);
    expect(v.ejectionsActive).toBe(1);
    for (let t = 100; t < 5100; t += 50) expect(rt.pick({}, t)!.key).not.toBe(bad.key);
    // Back at the first interval sweep (every 1 s from t=0) at or after 5.1 s: t = 6 s.
    expect(counts(rt, 30, 6000).get(bad.key)).toBe(10);
    expect(rt.view(6000).ejectionsActive).toBe(0);
  });

  it('keeps per-endpoint state across update() for unchanged keys and drops removed ones', () => {
    const rt = createClusterRuntime(cluster([ep(1), ep(2), ep(3)], tp), seededRandom(7), 0);
    rt.attemptStarted(ep(1), 0);
    for (let i = 0; i < 3; i++) rt.attemptFinished(ep(3), { kind: 'response', status: 503 }, 1, 10);
    rt.update(cluster([ep(1), ep(3), ep(4)], tp));
    const v = rt.view(20);
    expect(v.endpoints.map((e) => e.key)).toEqual(['10.0.0.1:80', '10.0.0.3:80', '10.0.0.4:80']);
    expect(v.endpoints[0]!.activeRequests).toBe(1);
    expect(v.endpoints[1]!.healthFlags).toEqual(['failed_outlier_check']);
    expect(v.endpoints[2]!.totalRequests).toBe(0);
    const picked = counts(rt, 100, 20);
    expect(picked.has('10.0.0.2:80')).toBe(false);
    expect(picked.has('10.0.0.3:80')).toBe(false);
  });

  it('no outlierDetection: failures never eject', () => {
    const rt = createClusterRuntime(cluster([ep(1), ep(2)]), seededRandom(8), 0);
    for (let i = 0; i < 50; i++) rt.attemptFinished(ep(1), { kind: 'connect-failure' }, 1, i);
    expect(rt.view(100).ejectionsActive).toBe(0);
    expect(rt.view(100).endpoints[0]!.errorRequests).toBe(50);
  });
});

describe('slow start', () => {
  it("follows Envoy's formula", () => {
    expect(slowStartFactor(0, 10_000, 10, 1)).toBeCloseTo(0.1); // max(1s,age)/10s = 0.1
    expect(slowStartFactor(5000, 10_000, 10, 1)).toBeCloseTo(0.5);
    expect(slowStartFactor(5000, 10_000, 10, 2)).toBeCloseTo(Math.sqrt(0.5));
    expect(slowStartFactor(500, 100_000, 10, 1)).toBeCloseTo(0.1); // floor at minimumPercent
    expect(slowStartFactor(10_000, 10_000, 10, 1)).toBe(1);
  });

  it('a newly added endpoint ramps up under ROUND_ROBIN; initial endpoints are warm', () => {
    const tpw: TrafficPolicy = { loadBalancer: { simple: 'ROUND_ROBIN', warmup: { duration: '10s' } } };
    const rt = createClusterRuntime(cluster([ep(1)], tpw), seededRandom(9), 0);
    expect(counts(rt, 10, 0).get('10.0.0.1:80')).toBe(10);
    rt.update(cluster([ep(1), ep(2)], tpw));
    // Its age counts from the first call after update() that carries a clock: t = 1 s.
    const early = counts(rt, 1000, 1000).get('10.0.0.2:80') ?? 0; // factor 0.1 → 0.1/1.1 ≈ 9 %
    const mid = counts(rt, 1000, 5000).get('10.0.0.2:80') ?? 0; // age 4 s: factor 0.4 → 0.4/1.4 ≈ 29 %
    const late = counts(rt, 1000, 11_000).get('10.0.0.2:80') ?? 0; // age 10 s: warm → 50 %
    expect(early).toBeGreaterThan(60);
    expect(early).toBeLessThan(120);
    expect(mid).toBeGreaterThan(250);
    expect(mid).toBeLessThan(320);
    expect(late).toBe(500);
  });
});

describe('ClusterRuntime update()', () => {
  it('an identical snapshot (fresh objects) keeps the balancer: round-robin order continues', () => {
    const tp: TrafficPolicy = { loadBalancer: { simple: 'ROUND_ROBIN' }, outlierDetection: { consecutive5xxErrors: 2 } };
    const rt = createClusterRuntime(cluster([ep(1), ep(2), ep(3)], tp), seededRandom(10), 0);
    const a = rt.pick({}, 0)!.key;
    const b = rt.pick({}, 0)!.key;
    rt.update(cluster([ep(1), ep(2), ep(3)], tp));
    const c = rt.pick({}, 0)!.key;
    expect(new Set([a, b, c]).size).toBe(3);
  });

  it('a removed endpoint is never picked again and late results for it are ignored', () => {
    const rt = createClusterRuntime(cluster([ep(1), ep(2)]), seededRandom(11), 0);
    rt.attemptStarted(ep(2), 0);
    rt.update(cluster([ep(1)]));
    rt.attemptFinished(ep(2), { kind: 'response', status: 200 }, 5, 1);
    for (let i = 0; i < 50; i++) expect(rt.pick({}, 1)!.key).toBe('10.0.0.1:80');
    expect(rt.view(1).endpoints).toHaveLength(1);
  });
});
