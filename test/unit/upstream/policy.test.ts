import { describe, it, expect } from 'vitest';
import { compileClusterPolicy, DEFAULT_CLUSTER_POLICY, MAX_U32 } from '../../../src/upstream/policy.js';
import type { TrafficPolicy } from '../../../src/config/types.js';

describe('compileClusterPolicy defaults', () => {
  it('no DestinationRule gives Istio defaults', () => {
    const p = compileClusterPolicy({}, 80);
    expect(p.lb.kind).toBe('LEAST_REQUEST');
    expect(p.pool.maxConnections).toBe(MAX_U32);
    expect(p.pool.http1MaxPendingRequests).toBe(MAX_U32);
    expect(p.pool.http2MaxRequests).toBe(MAX_U32);
    expect(p.pool.maxRetries).toBe(MAX_U32);
    expect(p.pool.connectTimeoutMs).toBe(10_000);
    expect(p.pool.httpIdleTimeoutMs).toBe(3_600_000);
    expect(p.pool.tcpIdleTimeoutMs).toBe(3_600_000);
    expect(p.outlier).toBeUndefined();
    expect(p.retryBudget).toEqual({ percent: 20, minRetryConcurrency: 3 });
    expect(p).toEqual(DEFAULT_CLUSTER_POLICY);
  });

  it('outlierDetection present but empty takes Envoy/Istio defaults', () => {
    const p = compileClusterPolicy({ dr: { outlierDetection: {} } }, 80);
    expect(p.outlier).toEqual({
      consecutive5xxErrors: 5, consecutiveGatewayErrors: 0, splitExternalLocalOriginErrors: false,
      consecutiveLocalOriginFailures: 5, intervalMs: 10_000, baseEjectionTimeMs: 30_000,
      maxEjectionPercent: 10, minHealthPercent: 0,
    });
  });

  it('deprecated consecutiveErrors maps to gateway errors with 5xx off', () => {
    const p = compileClusterPolicy({ dr: { outlierDetection: { consecutiveErrors: 7 } } }, 80);
    expect(p.outlier?.consecutiveGatewayErrors).toBe(7);
    expect(p.outlier?.consecutive5xxErrors).toBe(0);
    const q = compileClusterPolicy({ dr: { outlierDetection: { consecutiveErrors: 7, consecutive5xxErrors: 3 } } }, 80);
    expect(q.outlier?.consecutive5xxErrors).toBe(3);
  });

  it('maps load balancer settings', () => {
    expect(compileClusterPolicy({ dr: { loadBalancer: { simple: 'ROUND_ROBIN' } } }, 80).lb.kind).toBe('ROUND_ROBIN');
    expect(compileClusterPolicy({ dr: { loadBalancer: { simple: 'LEAST_CONN' } } }, 80).lb.kind).toBe('LEAST_REQUEST');
    expect(compileClusterPolicy({ dr: { loadBalancer: { simple: 'UNSPECIFIED' } } }, 80).lb.kind).toBe('LEAST_REQUEST');
    const rh = compileClusterPolicy({ dr: { loadBalancer: { consistentHash: { httpHeaderName: 'X-User' } } } }, 80).lb;
    expect(rh).toMatchObject({ kind: 'RING_HASH', ringMinSize: 1024, hash: { httpHeaderName: 'x-user' } });
    const mg = compileClusterPolicy({ dr: { loadBalancer: { consistentHash: { useSourceIp: true, maglev: {} } } } }, 80).lb;
    expect(mg).toMatchObject({ kind: 'MAGLEV', maglevTableSize: 65537, hash: { useSourceIp: true } });
    const ck = compileClusterPolicy({ dr: { loadBalancer: { consistentHash: { httpCookie: { name: 'u', ttl: '10s' } } } } }, 80).lb;
    expect(ck.hash?.httpCookie).toEqual({ name: 'u', ttlMs: 10_000 });
    const wu = compileClusterPolicy({ dr: { loadBalancer: { simple: 'ROUND_ROBIN', warmup: { duration: '60s', minimumPercent: { value: 20 }, aggression: 2 } } } }, 80).lb;
    expect(wu).toMatchObject({ warmupMs: 60_000, warmupMinPercent: 20, warmupAggression: 2 });
    expect(compileClusterPolicy({ dr: { loadBalancer: { warmupDurationSecs: '30s' } } }, 80).lb.warmupMs).toBe(30_000);
  });

  it('peak EWMA is an opt-in extra for LEAST_REQUEST only', () => {
    expect(compileClusterPolicy({}, 80, { peakEwma: true }).lb.peakEwma).toBe(true);
    expect(compileClusterPolicy({ dr: { loadBalancer: { simple: 'ROUND_ROBIN' } } }, 80, { peakEwma: true }).lb.peakEwma).toBeUndefined();
  });

  it('maps connection pool settings; 0 thresholds mean unset as in Istio', () => {
    const p = compileClusterPolicy({ dr: { connectionPool: {
      tcp: { maxConnections: 1, connectTimeout: '250ms', tcpKeepalive: { time: '30s', interval: '5s', probes: 3 } },
      http: { http1MaxPendingRequests: 1, http2MaxRequests: 0, maxRequestsPerConnection: 1, maxRetries: 4, idleTimeout: '5s' },
    } } }, 80);
    expect(p.pool).toMatchObject({
      maxConnections: 1, connectTimeoutMs: 250, http1MaxPendingRequests: 1, http2MaxRequests: MAX_U32,
      maxRequestsPerConnection: 1, maxRetries: 4, httpIdleTimeoutMs: 5000,
      tcpKeepalive: { timeMs: 30_000, intervalMs: 5000, probes: 3 },
    });
  });

  it('retryBudget and tls', () => {
    const p = compileClusterPolicy({ dr: { retryBudget: { percent: { value: 50 } }, tls: { mode: 'SIMPLE', sni: 'x.example' } } }, 80);
    expect(p.retryBudget).toEqual({ percent: 50, minRetryConcurrency: 3 });
    expect(p.tlsMode).toBe('SIMPLE');
    expect(p.sni).toBe('x.example');
  });
});

describe('compileClusterPolicy inheritance (Istio MergeSubsetTrafficPolicy)', () => {
  const dr: TrafficPolicy = {
    loadBalancer: { simple: 'ROUND_ROBIN' },
    connectionPool: { tcp: { maxConnections: 10 }, http: { http2MaxRequests: 100 } },
    outlierDetection: { consecutive5xxErrors: 3 },
    retryBudget: { percent: { value: 30 } },
  };

  it('a subset inherits each part it does not set', () => {
    const p = compileClusterPolicy({ dr, subset: { loadBalancer: { simple: 'RANDOM' } } }, 80);
    expect(p.lb.kind).toBe('RANDOM');
    expect(p.pool.maxConnections).toBe(10);
    expect(p.pool.http2MaxRequests).toBe(100);
    expect(p.outlier?.consecutive5xxErrors).toBe(3);
    expect(p.retryBudget.percent).toBe(30);
  });

  it('a part the subset sets replaces the DR part whole (not merged inside)', () => {
    const p = compileClusterPolicy({ dr, subset: { connectionPool: { http: { http1MaxPendingRequests: 5 } } } }, 80);
    expect(p.pool.http1MaxPendingRequests).toBe(5);
    expect(p.pool.maxConnections).toBe(MAX_U32); // tcp not inherited from the DR's connectionPool
    expect(p.lb.kind).toBe('ROUND_ROBIN');
  });

  it('DR portLevelSettings override without inheritance: omitted parts take defaults', () => {
    const tp: TrafficPolicy = { ...dr, portLevelSettings: [{ port: { number: 9080 }, connectionPool: { tcp: { maxConnections: 2 } } }] };
    const onPort = compileClusterPolicy({ dr: tp }, 9080);
    expect(onPort.pool.maxConnections).toBe(2);
    expect(onPort.lb.kind).toBe('LEAST_REQUEST'); // not ROUND_ROBIN from the DR level
    expect(onPort.outlier).toBeUndefined();
    const otherPort = compileClusterPolicy({ dr: tp }, 80);
    expect(otherPort.pool.maxConnections).toBe(10);
    expect(otherPort.lb.kind).toBe('ROUND_ROBIN');
  });

  it("the subset's own portLevelSettings win over the DR's, and replace all four parts", () => {
    const drTp: TrafficPolicy = { ...dr, portLevelSettings: [{ port: { number: 9080 }, loadBalancer: { simple: 'RANDOM' } }] };
    const sub: TrafficPolicy = {
      loadBalancer: { simple: 'PASSTHROUGH' },
      portLevelSettings: [{ port: { number: 9080 }, connectionPool: { tcp: { maxConnections: 7 } } }],
    };
    const p = compileClusterPolicy({ dr: drTp, subset: sub }, 9080);
    expect(p.pool.maxConnections).toBe(7);
    expect(p.lb.kind).toBe('LEAST_REQUEST'); // subset port-level has no loadBalancer → default
    const q = compileClusterPolicy({ dr: drTp, subset: sub }, 80);
    expect(q.lb.kind).toBe('PASSTHROUGH');
    expect(q.pool.maxConnections).toBe(10);
  });

  it('a subset without a matching port-level entry inherits the DR port-level result', () => {
    const drTp: TrafficPolicy = { ...dr, portLevelSettings: [{ port: { number: 9080 }, loadBalancer: { simple: 'RANDOM' } }] };
    const p = compileClusterPolicy({ dr: drTp, subset: { outlierDetection: { consecutive5xxErrors: 1 } } }, 9080);
    expect(p.lb.kind).toBe('RANDOM');
    expect(p.pool.maxConnections).toBe(MAX_U32);
    expect(p.outlier?.consecutive5xxErrors).toBe(1);
  });
});
