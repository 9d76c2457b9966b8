/**
 * DestinationRule trafficPolicy → ClusterPolicy for one (subset, port), with Istio's merge rules and defaults.
 * Every default is written where it is applied, with its Istio field and unit.
 */

import type { ClusterPolicy, HashPolicy, LbPolicy, OutlierPolicy, PoolLimits, RetryBudgetPolicy } from '../model.js';
import type {
  ClientTLSSettings, ConnectionPoolSettings, LoadBalancerSettings, OutlierDetection, RetryBudget, TrafficPolicy,
} from '../config/types.js';
import { durationMs } from '../config/duration.js';

/** Istio's "unlimited" for circuit-breaker thresholds: 2^32 − 1. */
export const MAX_U32 = 4294967295;

export const DEFAULT_LB: Readonly<LbPolicy> = Object.freeze({
  kind: 'LEAST_REQUEST', // loadBalancer.simple unset/UNSPECIFIED → Istio's default LEAST_REQUEST
  warmupMs: 0, // warmup.duration: off
  warmupMinPercent: 10, // warmup.minimumPercent, %: Envoy slow_start min_weight_percent default 10
  warmupAggression: 1, // warmup.aggression: 1.0 = linear ramp
});

export const DEFAULT_POOL: Readonly<PoolLimits> = Object.freeze({
  maxConnections: MAX_U32, // tcp.maxConnections, connections: 2^32-1
  connectTimeoutMs: 10_000, // tcp.connectTimeout: 10 s (meshConfig.connectTimeout default)
  maxConnectionDurationMs: 0, // tcp.maxConnectionDuration: 0 = unlimited
  tcpIdleTimeoutMs: 3_600_000, // tcp.idleTimeout: 1 h
  http1MaxPendingRequests: MAX_U32, // http.http1MaxPendingRequests, requests: 2^32-1
  http2MaxRequests: MAX_U32, // http.http2MaxRequests, concurrent requests: 2^32-1
  maxRequestsPerConnection: 0, // http.maxRequestsPerConnection: 0 = unlimited
  maxRetries: MAX_U32, // http.maxRetries, concurrent retries: 2^32-1
  httpIdleTimeoutMs: 3_600_000, // http.idleTimeout: 1 h
});

export const DEFAULT_RETRY_BUDGET: Readonly<RetryBudgetPolicy> = Object.freeze({
  percent: 20, // retryBudget.percent, % of active + pending requests (Remora: on by default)
  minRetryConcurrency: 3, // retryBudget.minRetryConcurrency, concurrent retries
});

/** The policy of a cluster with no DestinationRule. */
export const DEFAULT_CLUSTER_POLICY: Readonly<ClusterPolicy> = Object.freeze({
  lb: DEFAULT_LB,
  pool: DEFAULT_POOL,
  outlier: undefined, // no outlierDetection → Istio: off
  retryBudget: DEFAULT_RETRY_BUDGET,
  tlsMode: 'DISABLE', // no tls → plaintext here; auto-mTLS is decided by the caller
  tlsAuto: true, // ... to an endpoint labelled security.istio.io/tlsMode: istio (ClusterManager.originatesMtls)
}) as Readonly<ClusterPolicy>;

/** Istio maps UNSPECIFIED to LEAST_REQUEST and LEAST_CONN (deprecated) to LEAST_REQUEST. */
const SIMPLE: Record<string, LbPolicy['kind']> = {
  UNSPECIFIED: 'LEAST_REQUEST', LEAST_CONN: 'LEAST_REQUEST', LEAST_REQUEST: 'LEAST_REQUEST',
  ROUND_ROBIN: 'ROUND_ROBIN', RANDOM: 'RANDOM', PASSTHROUGH: 'PASSTHROUGH',
};
const TLS_MODES = new Set(['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL']);

interface Parts {
  connectionPool?: ConnectionPoolSettings;
  loadBalancer?: LoadBalancerSettings;
  outlierDetection?: OutlierDetection;
  tls?: ClientTLSSettings;
}

/**
 * A policy level for `port`: when a portLevelSettings entry matches, it replaces all four parts *without
 * inheriting* from its level (an omitted part takes the defaults), as istio's GetPortLevelTrafficPolicy.
 */
function atPort(tp: TrafficPolicy | undefined, port: number): { parts: Parts; portLevel: boolean } {
  if (tp === undefined) return { parts: {}, portLevel: false };
  const pl = tp.portLevelSettings?.find((s) => s.port?.number === port);
  const src = pl ?? tp;
  const parts: Parts = {};
  if (src.connectionPool !== undefined) parts.connectionPool = src.connectionPool;
  if (src.loadBalancer !== undefined) parts.loadBalancer = src.loadBalancer;
  if (src.outlierDetection !== undefined) parts.outlierDetection = src.outlierDetection;
  if (src.tls !== undefined) parts.tls = src.tls;
  return { parts, portLevel: pl !== undefined };
}

/**
 * Istio's MergeSubsetTrafficPolicy: DR level (after its own port-level override) is the base; the subset level
 * (after *its* port-level override) replaces each of connectionPool / loadBalancer / outlierDetection / tls that
 * it sets — whole, not merged inside — and, when the subset matched a port-level entry, all four.
 */
export function mergeTrafficPolicy(tp: { dr?: TrafficPolicy; subset?: TrafficPolicy }, port: number): Parts & { retryBudget?: RetryBudget } {
  const base = atPort(tp.dr, port).parts;
  const out: Parts & { retryBudget?: RetryBudget } = { ...base };
  if (tp.subset !== undefined) {
    const sub = atPort(tp.subset, port);
    const keys = ['connectionPool', 'loadBalancer', 'outlierDetection', 'tls'] as const;
    for (const k of keys) {
      if (sub.parts[k] !== undefined || sub.portLevel) {
        if (sub.parts[k] === undefined) delete out[k];
        else (out as Record<string, unknown>)[k] = sub.parts[k];
      }
    }
  }
  // retryBudget is not a port-level field; the subset's replaces the DR's.
  const rb = tp.subset?.retryBudget ?? tp.dr?.retryBudget;
  if (rb !== undefined) out.retryBudget = rb;
  return out;
}

/** Istio treats a 0 (proto default) threshold as unset. */
function positive(v: number | undefined, fallback: number): number {
  return v !== undefined && v > 0 ? v : fallback;
}

function compilePool(cp: ConnectionPoolSettings | undefined): PoolLimits {
  const tcp = cp?.tcp;
  const http = cp?.http;
  const pool: PoolLimits = {
    maxConnections: positive(tcp?.maxConnections, DEFAULT_POOL.maxConnections),
    connectTimeoutMs: durationMs(tcp?.connectTimeout, DEFAULT_POOL.connectTimeoutMs),
    maxConnectionDurationMs: durationMs(tcp?.maxConnectionDuration, DEFAULT_POOL.maxConnectionDurationMs),
    tcpIdleTimeoutMs: durationMs(tcp?.idleTimeout, DEFAULT_POOL.tcpIdleTimeoutMs),
    http1MaxPendingRequests: positive(http?.http1MaxPendingRequests, DEFAULT_POOL.http1MaxPendingRequests),
    http2MaxRequests: positive(http?.http2MaxRequests, DEFAULT_POOL.http2MaxRequests),
    maxRequestsPerConnection: positive(http?.maxRequestsPerConnection, DEFAULT_POOL.maxRequestsPerConnection),
    maxRetries: positive(http?.maxRetries, DEFAULT_POOL.maxRetries),
    httpIdleTimeoutMs: durationMs(http?.idleTimeout, DEFAULT_POOL.httpIdleTimeoutMs),
  };
  if (http?.h2UpgradePolicy === 'UPGRADE' || http?.h2UpgradePolicy === 'DO_NOT_UPGRADE' || http?.h2UpgradePolicy === 'DEFAULT') pool.h2UpgradePolicy = http.h2UpgradePolicy;
  if (http?.useClientProtocol === true) pool.useClientProtocol = true;
  if (http?.maxConcurrentStreams !== undefined && http.maxConcurrentStreams > 0) pool.maxConcurrentStreams = http.maxConcurrentStreams;
  const h2ka = http?.http2KeepAlive;
  if (h2ka?.interval !== undefined) {
    pool.h2PingIntervalMs = durationMs(h2ka.interval, 0);
    pool.h2PingTimeoutMs = durationMs(h2ka.timeout, 20_000); // Envoy's connection_keepalive timeout default: 20 s
  }
  const ka = tcp?.tcpKeepalive;
  if (ka !== undefined) {
    const k: NonNullable<PoolLimits['tcpKeepalive']> = {};
    if (ka.probes !== undefined) k.probes = ka.probes; // tcpKeepalive.probes: OS default when unset
    if (ka.time !== undefined) k.timeMs = durationMs(ka.time, 0); // tcpKeepalive.time: OS default (7200 s) when unset
    if (ka.interval !== undefined) k.intervalMs = durationMs(ka.interval, 0); // tcpKeepalive.interval: OS default (75 s)
    pool.tcpKeepalive = k;
  }
  return pool;
}

function compileLb(lb: LoadBalancerSettings | undefined, extra: CompileExtra | undefined): LbPolicy {
  const out: LbPolicy = { ...DEFAULT_LB };
  if (lb?.warmup?.duration !== undefined) out.warmupMs = durationMs(lb.warmup.duration, 0);
  else if (lb?.warmupDurationSecs !== undefined) out.warmupMs = durationMs(lb.warmupDurationSecs, 0); // deprecated form
  if (lb?.warmup?.minimumPercent?.value !== undefined) out.warmupMinPercent = lb.warmup.minimumPercent.value;
  if (lb?.warmup?.aggression !== undefined) out.warmupAggression = lb.warmup.aggression;
  const ch = lb?.consistentHash;
  if (ch !== undefined) {
    out.kind = ch.maglev !== undefined ? 'MAGLEV' : 'RING_HASH'; // Istio: ring hash unless maglev is given
    const hash: HashPolicy = {};
    if (ch.httpHeaderName !== undefined) hash.httpHeaderName = ch.httpHeaderName.toLowerCase();
    if (ch.httpCookie !== undefined) {
      const c: NonNullable<HashPolicy['httpCookie']> = { name: ch.httpCookie.name };
      if (ch.httpCookie.path !== undefined) c.path = ch.httpCookie.path;
      // httpCookie.ttl: absent = never generate; "0s" = generate a session cookie (Envoy).
      if (ch.httpCookie.ttl !== undefined) c.ttlMs = durationMs(ch.httpCookie.ttl, 0);
      hash.httpCookie = c;
    }
    if (ch.useSourceIp === true) hash.useSourceIp = true;
    if (ch.httpQueryParameterName !== undefined) hash.httpQueryParameterName = ch.httpQueryParameterName;
    out.hash = hash;
    // ringHash.minimumRingSize (or the deprecated consistentHash.minimumRingSize), entries: default 1024.
    out.ringMinSize = positive(ch.ringHash?.minimumRingSize ?? ch.minimumRingSize, 1024);
    // maglev.tableSize, entries: default 65537 (prime).
    out.maglevTableSize = positive(ch.maglev?.tableSize, 65537);
  } else if (lb?.simple !== undefined) {
    out.kind = SIMPLE[lb.simple] ?? 'LEAST_REQUEST';
  }
  if (out.kind === 'LEAST_REQUEST' && extra?.peakEwma === true) out.peakEwma = true;
  return out;
}

function compileOutlier(od: OutlierDetection | undefined): OutlierPolicy | undefined {
  if (od === undefined) return undefined; // Istio: outlier detection only when outlierDetection is present
  // Deprecated consecutiveErrors maps as Istio does: gateway errors only (502/503/504), 5xx enforcement off.
  const legacy = od.consecutiveErrors !== undefined && od.consecutiveErrors > 0 ? od.consecutiveErrors : 0;
  return {
    consecutive5xxErrors: od.consecutive5xxErrors ?? (legacy > 0 ? 0 : 5), // count; 0 = off; default 5
    consecutiveGatewayErrors: od.consecutiveGatewayErrors ?? legacy, // count; default 0 = off
    splitExternalLocalOriginErrors: od.splitExternalLocalOriginErrors ?? false,
    consecutiveLocalOriginFailures: od.consecutiveLocalOriginFailures ?? 5, // count, split mode only; default 5
    intervalMs: durationMs(od.interval, 10_000), // interval: 10 s
    baseEjectionTimeMs: durationMs(od.baseEjectionTime, 30_000), // baseEjectionTime: 30 s
    maxEjectionPercent: positive(od.maxEjectionPercent, 10), // %, default 10 (0 is the proto default → 10)
    minHealthPercent: od.minHealthPercent ?? 0, // %, default 0 = panic mode off (Istio)
  };
}

function compileRetryBudget(rb: RetryBudget | undefined): RetryBudgetPolicy {
  if (rb === undefined) return { ...DEFAULT_RETRY_BUDGET };
  return {
    percent: rb.percent?.value ?? DEFAULT_RETRY_BUDGET.percent,
    minRetryConcurrency: rb.minRetryConcurrency ?? DEFAULT_RETRY_BUDGET.minRetryConcurrency,
  };
}

/** Options that are not in the DestinationRule (Remora annotations / flags). */
export interface CompileExtra {
  /** LEAST_REQUEST uses Linkerd's peak-EWMA cost instead of active requests. */
  peakEwma?: boolean;
}

/** The effective ClusterPolicy for a (DestinationRule, subset) pair on one service port. */
export function compileClusterPolicy(
  tp: { dr?: TrafficPolicy; subset?: TrafficPolicy }, port: number, extra?: CompileExtra,
): ClusterPolicy {
  const m = mergeTrafficPolicy(tp, port);
  const policy: ClusterPolicy = {
    lb: compileLb(m.loadBalancer, extra),
    pool: compilePool(m.connectionPool),
    retryBudget: compileRetryBudget(m.retryBudget),
    tlsMode: m.tls?.mode !== undefined && TLS_MODES.has(m.tls.mode) ? (m.tls.mode as ClusterPolicy['tlsMode']) : 'DISABLE',
  };
  const outlier = compileOutlier(m.outlierDetection);
  if (outlier !== undefined) policy.outlier = outlier;
  if (typeof m.tls?.sni === 'string') policy.sni = m.tls.sni;
  if (m.tls?.mode === undefined) policy.tlsAuto = true;
  if (m.tls?.mode === 'SIMPLE' || m.tls?.mode === 'MUTUAL') {
    const t = m.tls;
    const files: NonNullable<ClusterPolicy['tlsFiles']> = {};
    for (const k of ['caCertificates', 'clientCertificate', 'privateKey', 'credentialName', 'caCrl'] as const) if (typeof t[k] === 'string' && t[k] !== '') files[k] = t[k];
    if (t.insecureSkipVerify === true) files.insecureSkipVerify = true;
    policy.tlsFiles = files;
  }
  if (Array.isArray(m.tls?.subjectAltNames) && m.tls.subjectAltNames.length > 0) policy.subjectAltNames = m.tls.subjectAltNames.map(String);
  return policy;
}

/**
 * compileClusterPolicy, once per distinct input: clusters whose merged traffic policy (after port-level and subset
 * overrides) and options are equal share one read-only ClusterPolicy. A DestinationRule with subsets but no
 * trafficPolicy — most of a large mesh — gives each service three equal policies of a dozen objects; at 50,000
 * services that was about 1 KB per service (docs/performance.md, "Memory per service"). Policies are never mutated
 * after compilation (ClusterRuntime compares them by value), so sharing is safe. One cache per compilation.
 */
export class ClusterPolicyCache {
  private readonly byKey = new Map<string, ClusterPolicy>();

  get(tp: { dr?: TrafficPolicy; subset?: TrafficPolicy }, port: number, extra?: CompileExtra): ClusterPolicy {
    const m = mergeTrafficPolicy(tp, port);
    // The merged parts decide the policy (the port only selects port-level settings, already applied in `m`).
    const key = `${extra?.peakEwma === true ? 'e' : ''}${JSON.stringify(m)}`;
    let p = this.byKey.get(key);
    if (p === undefined) {
      p = compileClusterPolicy(tp, port, extra);
      this.byKey.set(key, p);
    }
    return p;
  }
}

/**
 * Whether a request to this cluster goes upstream as HTTP/2 (Istio's rules): a port declared `http2`, `grpc` or
 * `grpc-web` always; `h2UpgradePolicy: UPGRADE` for HTTP/1.1 too (`DO_NOT_UPGRADE`, the mesh default, never);
 * `useClientProtocol`, and a port of unknown protocol (sniffed), follow the downstream's protocol.
 */
export function upstreamIsHttp2(protocol: string, pool: PoolLimits, downstreamH2: boolean): boolean {
  if (protocol === 'http2' || protocol === 'grpc' || protocol === 'grpc-web') return true;
  if (pool.useClientProtocol === true) return downstreamH2;
  if (pool.h2UpgradePolicy === 'UPGRADE') return protocol === 'http' || protocol === '';
  if (protocol === '') return downstreamH2;
  return false;
}
