// Latency histograms: hdr-histogram-js recording microseconds, read back as milliseconds.
// Also the percentile curve used by the plots (log-scale percentile axis, 0 → 99.99).
import { build, type Histogram } from 'hdr-histogram-js';

/** Highest trackable latency: 1 hour in µs (auto-resize stays on for anything longer). */
const HIGHEST_US = 3_600_000_000;

export interface LatencyStats {
  count: number;
  minMs: number;
  meanMs: number;
  stdevMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}

/** [percentile (0..100), latency ms] pairs, increasing in percentile. */
export type Curve = Array<[number, number]>;

export class LatencyHistogram {
  readonly h: Histogram;

  constructor() {
    // 3 significant digits: 1 µs resolution below 1 ms, 0.1% relative above.
    this.h = build({ lowestDiscernibleValue: 1, highestTrackableValue: HIGHEST_US, numberOfSignificantValueDigits: 3 });
  }

  /** Records a latency in ms (fractional); sub-microsecond values count as 1 µs. */
  record(ms: number): void {
    const us = Math.round(ms * 1000);
    this.h.recordValue(us < 1 ? 1 : us);
  }

  get count(): number {
    return this.h.totalCount;
  }

  /** Latency at a percentile (0..100), ms. */
  at(percentile: number): number {
    return this.h.totalCount === 0 ? 0 : this.h.getValueAtPercentile(percentile) / 1000;
  }

  add(other: LatencyHistogram): void {
    this.h.add(other.h);
  }

  stats(): LatencyStats {
    const h = this.h;
    if (h.totalCount === 0) return { count: 0, minMs: 0, meanMs: 0, stdevMs: 0, p50Ms: 0, p90Ms: 0, p99Ms: 0, p999Ms: 0, maxMs: 0 };
    return {
      count: h.totalCount,
      minMs: h.minNonZeroValue / 1000,
      meanMs: h.mean / 1000,
      stdevMs: h.stdDeviation / 1000,
      p50Ms: h.getValueAtPercentile(50) / 1000,
      p90Ms: h.getValueAtPercentile(90) / 1000,
      p99Ms: h.getValueAtPercentile(99) / 1000,
      p999Ms: h.getValueAtPercentile(99.9) / 1000,
      maxMs: h.maxValue / 1000,
    };
  }

  /** The percentile curve at CURVE_PERCENTILES, for the JSON report and the plots. */
  curve(): Curve {
    return CURVE_PERCENTILES.map((p) => [p, this.at(p)] as [number, number]);
  }
}

/**
 * Percentiles sampled for plots: 10 points per decade of 1/(1 - p), i.e. evenly spaced on the
 * HdrHistogram log axis, from 0 to 99.99 (x = log10(1 / (1 - p/100)) from 0 to 4).
 */
export const CURVE_PERCENTILES: readonly number[] = Array.from({ length: 41 }, (_, k) => {
  const p = 100 * (1 - Math.pow(10, -k / 10));
  return Math.round(p * 10000) / 10000;
});

/** The plot's x coordinate for a percentile: log10(1 / (1 - p/100)), capped at 99.99 → 4. */
export function percentileToLogX(percentile: number): number {
  const p = Math.min(percentile, 99.99);
  return Math.log10(1 / (1 - p / 100));
}

/** Median of a list (mean of the two middle values for even length); 0 for an empty list. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
