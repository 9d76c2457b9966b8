/**
 * Dashboard aggregates (admin `GET /`, `/debug/dashboard`): per upstream cluster, requests, successes, requests per
 * route and an HDR-style latency histogram with its percentiles.
 */
import type { RequestRecord } from '../model.js';

/**
 * Latency buckets for dashboard percentiles, HDR-style so that bucketing is a few integer operations on the hot path
 * (no Math.log): values in units of 1/16 ms (62.5 µs); the first 8 units are linear, then every octave is split in
 * 8 sub-buckets. A reported percentile is its bucket's upper bound, at most 12.5 % above the truth (above 0.5 ms);
 * values over 2^31 units (≈ 37 h) land in the last bucket. Finer than Istio's 19 buckets, which cannot tell 11 ms from 24 ms.
 */
export const LATENCY_MIN_MS = 1 / 16;
const SUB_BITS = 3;
const SUB = 1 << SUB_BITS;
export const LATENCY_BUCKETS = SUB + (31 - SUB_BITS) * SUB;

export function latencyBucket(ms: number): number {
  if (!(ms > 0)) return 0;
  const v = ms >= 0x7ffffff ? 0x7fffffff : (ms * 16) | 0;
  if (v < SUB) return v;
  const e = 31 - Math.clz32(v); // octave of the leading bit, ≥ SUB_BITS
  return SUB + (e - SUB_BITS) * SUB + ((v >>> (e - SUB_BITS)) & (SUB - 1));
}

/** Upper bound (exclusive, ms) of bucket `i`. */
export function latencyBucketUpperMs(i: number): number {
  if (i < SUB) return (i + 1) / 16;
  const e = ((i - SUB) >>> SUB_BITS) + SUB_BITS;
  const sub = (i - SUB) & (SUB - 1);
  return ((SUB + sub + 1) * 2 ** (e - SUB_BITS)) / 16;
}

/** The q-quantile (0..1) of a latency histogram as its bucket's upper bound (ms); undefined when empty. */
export function latencyPercentile(buckets: ArrayLike<number>, q: number): number | undefined {
  let n = 0;
  for (let i = 0; i < buckets.length; i++) n += buckets[i]!;
  if (n === 0) return undefined;
  const rank = Math.max(1, Math.ceil(q * n));
  let acc = 0;
  for (let i = 0; i < buckets.length; i++) {
    acc += buckets[i]!;
    if (acc >= rank) return latencyBucketUpperMs(i);
  }
  return latencyBucketUpperMs(buckets.length - 1);
}

/**
 * What the dashboard shows of one upstream cluster, from finished downstream requests (the cluster that served the
 * last attempt): requests, successes, a latency histogram and requests per route name (for the observed weight split).
 */
export class ClusterSummary {
  requests = 0;
  /** Requests answered with a status other than 5xx and 0 (Envoy's success rate counts non-5xx as success). */
  success = 0;
  readonly latency = new Float64Array(LATENCY_BUCKETS);
  /** Route name → requests routed to this cluster; bounded by the configured routes. A cell object so counting is one lookup. */
  readonly byRoute = new Map<string, { requests: number }>();

  constructor(readonly name: string) {}

  add(rec: RequestRecord): void {
    this.requests++;
    const st = rec.status;
    if (st !== 0 && st < 500) this.success++;
    this.latency[latencyBucket(rec.durationMs)]! += 1;
    const route = rec.routeName ?? '';
    const cell = this.byRoute.get(route);
    if (cell !== undefined) cell.requests++;
    else this.byRoute.set(route, { requests: 1 });
  }
}
