/**
 * The analysis of one interval: canary against stable, and the decision it leads to. Pure: no I/O.
 *
 * Per subset the metric sources produce a `Window`: requests in the interval, how many failed (5xx, or any Envoy
 * response flag other than "-"), and the cumulative latency histogram (Istio's `istio_request_duration_milliseconds`
 * buckets, `le` → count, ending with +Inf). p99 is computed from the buckets the way Prometheus' `histogram_quantile`
 * does (linear interpolation inside the bucket that holds the rank).
 */

export interface Window {
  requests: number;
  failures: number;
  /** Cumulative bucket counts, sorted by `le`, the last one `Infinity`. May be empty when requests is 0. */
  buckets: ReadonlyArray<readonly [le: number, count: number]>;
}

export interface Criteria {
  /** Highest failure share tolerated, 0..1 (`--max-error-rate 1%` = 0.01). */
  maxErrorRate: number;
  /** Highest p99 latency tolerated (ms); undefined = not checked. */
  maxP99Ms?: number;
  /** Fewest canary requests in an interval for a check to count (`--min-requests`). */
  minRequests: number;
}

export interface SubsetStats {
  requests: number;
  failures: number;
  /** (requests − failures) / requests; null without requests. */
  successRate: number | null;
  p99Ms: number | null;
}

export type Verdict = 'pass' | 'fail' | 'insufficient';

export interface CheckResult {
  verdict: Verdict;
  /** Why, in words: the breached limits, or the missing traffic. Empty on pass. */
  reasons: string[];
  canary: SubsetStats;
  stable: SubsetStats;
}

/** Prometheus' `histogram_quantile(q, …)` over cumulative buckets; null when there is no observation. */
export function histogramQuantile(q: number, buckets: ReadonlyArray<readonly [number, number]>): number | null {
  if (buckets.length === 0) return null;
  const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
  if (sorted[sorted.length - 1]![0] !== Infinity) return null; // Prometheus: NaN without a +Inf bucket
  // Counts may come from deltas of separate scrapes; keep them monotonic as Prometheus does (ensureMonotonic).
  let max = 0;
  const b = sorted.map(([le, c]) => { max = Math.max(max, c); return [le, max] as const; });
  const total = b[b.length - 1]![1];
  if (total <= 0) return null;
  if (q <= 0) return -Infinity;
  if (q >= 1) return Infinity;
  const rank = q * total;
  let i = 0;
  while (i < b.length - 1 && b[i]![1] < rank) i++;
  if (i === b.length - 1) return b.length >= 2 ? b[b.length - 2]![0] : null; // in +Inf: the highest finite bound
  const upper = b[i]![0];
  let lower = 0;
  let below = 0;
  if (i > 0) {
    lower = b[i - 1]![0];
    below = b[i - 1]![1];
  } else if (upper <= 0) {
    return upper;
  }
  const inBucket = b[i]![1] - below;
  if (inBucket <= 0) return upper;
  return lower + (upper - lower) * ((rank - below) / inBucket);
}

export function stats(w: Window): SubsetStats {
  return {
    requests: w.requests,
    failures: w.failures,
    successRate: w.requests > 0 ? (w.requests - w.failures) / w.requests : null,
    p99Ms: w.requests > 0 ? histogramQuantile(0.99, w.buckets) : null,
  };
}

const pct = (x: number): string => `${(Math.round(x * 10000) / 100).toString()}%`;
const fmtCount = (n: number): string => (Number.isInteger(n) ? String(n) : n.toFixed(1));

/**
 * One check. The canary fails when its failure share is above the limit, or its p99 above the latency limit.
 * With fewer requests than `minRequests` the check is `insufficient` (no promotion on too little traffic) —
 * unless its failures alone already exceed the limit over `minRequests` requests, which no later success could
 * repair: that is a failure at once.
 */
export function evaluate(canary: Window, stable: Window, c: Criteria): CheckResult {
  const cs = stats(canary);
  const ss = stats(stable);
  const reasons: string[] = [];
  if (canary.requests < c.minRequests) {
    if (canary.failures > c.maxErrorRate * c.minRequests) {
      reasons.push(`canary failed ${fmtCount(canary.failures)} of ${fmtCount(canary.requests)} requests, more than ${pct(c.maxErrorRate)} of the ${c.minRequests} required`);
      return { verdict: 'fail', reasons, canary: cs, stable: ss };
    }
    reasons.push(`too little traffic: ${fmtCount(canary.requests)} canary requests < ${c.minRequests}`);
    return { verdict: 'insufficient', reasons, canary: cs, stable: ss };
  }
  const errorRate = canary.failures / canary.requests;
  if (errorRate > c.maxErrorRate) reasons.push(`canary error rate ${pct(errorRate)} > ${pct(c.maxErrorRate)} (${fmtCount(canary.failures)}/${fmtCount(canary.requests)})`);
  if (c.maxP99Ms !== undefined && cs.p99Ms !== null && cs.p99Ms > c.maxP99Ms) reasons.push(`canary p99 ${cs.p99Ms.toFixed(1)} ms > ${c.maxP99Ms} ms`);
  return { verdict: reasons.length > 0 ? 'fail' : 'pass', reasons, canary: cs, stable: ss };
}

export type Action = 'advance' | 'promote' | 'hold' | 'rollback';

export interface Decision {
  action: Action;
  /** Consecutive failed checks after this one. */
  failedChecks: number;
  /** Consecutive checks without enough traffic after this one. */
  heldChecks: number;
  reason: string;
}

/**
 * What a check leads to, as Flagger's `threshold` does: `threshold` consecutive failed checks roll back (1 = the
 * first breach), a passed check resets the count and moves to the next step — or promotes when the next step is 100.
 * Checks without enough traffic hold the step; `maxHolds` of them in a row roll back ("not promoted").
 */
export function decide(
  check: CheckResult,
  at: { stepIndex: number; nextWeight: number | undefined; failedChecks: number; heldChecks: number },
  limits: { threshold: number; maxHolds: number },
): Decision {
  if (check.verdict === 'fail') {
    const failed = at.failedChecks + 1;
    if (failed >= limits.threshold) {
      return { action: 'rollback', failedChecks: failed, heldChecks: 0, reason: `${check.reasons.join('; ')} (failed check ${failed}/${limits.threshold})` };
    }
    return { action: 'hold', failedChecks: failed, heldChecks: at.heldChecks, reason: `${check.reasons.join('; ')} (failed check ${failed}/${limits.threshold}, holding)` };
  }
  if (check.verdict === 'insufficient') {
    const held = at.heldChecks + 1;
    if (held >= limits.maxHolds) {
      return { action: 'rollback', failedChecks: at.failedChecks, heldChecks: held, reason: `not promoted: ${check.reasons.join('; ')} in ${held} consecutive checks` };
    }
    return { action: 'hold', failedChecks: at.failedChecks, heldChecks: held, reason: `${check.reasons.join('; ')} (check ${held}/${limits.maxHolds}, holding)` };
  }
  if (at.nextWeight === undefined || at.nextWeight >= 100) return { action: 'promote', failedChecks: 0, heldChecks: 0, reason: 'all checks passed' };
  return { action: 'advance', failedChecks: 0, heldChecks: 0, reason: `checks passed, next weight ${at.nextWeight}%` };
}
