// Histogram percentiles (µs recording, ms reading), the plot's percentile axis, and medians.
import { describe, it, expect } from 'vitest';
import { CURVE_PERCENTILES, LatencyHistogram, median, percentileToLogX } from '../../../src/bench/histogram.js';

describe('LatencyHistogram', () => {
  it('reports percentiles of 1..1000 ms within HDR precision', () => {
    const h = new LatencyHistogram();
    for (let i = 1; i <= 1000; i++) h.record(i);
    const s = h.stats();
    expect(s.count).toBe(1000);
    expect(s.p50Ms).toBeCloseTo(500, -1);
    expect(Math.abs(s.p90Ms - 900) / 900).toBeLessThan(0.002);
    expect(Math.abs(s.p99Ms - 990) / 990).toBeLessThan(0.002);
    expect(Math.abs(s.p999Ms - 999) / 999).toBeLessThan(0.002);
    expect(Math.abs(s.maxMs - 1000) / 1000).toBeLessThan(0.002);
    expect(s.minMs).toBeCloseTo(1, 2);
    expect(s.meanMs).toBeCloseTo(500.5, 0);
  });

  it('keeps microsecond resolution for sub-millisecond latencies', () => {
    const h = new LatencyHistogram();
    for (let i = 0; i < 99; i++) h.record(0.123);
    h.record(0.456);
    expect(h.at(50)).toBe(0.123);
    expect(h.at(100)).toBe(0.456);
    h.record(0); // below 1 µs counts as 1 µs
    expect(h.stats().minMs).toBe(0.001);
  });

  it('is empty-safe and merges', () => {
    const a = new LatencyHistogram();
    expect(a.stats().p99Ms).toBe(0);
    const b = new LatencyHistogram();
    a.record(1);
    b.record(3);
    a.add(b);
    expect(a.count).toBe(2);
    expect(a.at(100)).toBeCloseTo(3, 2); // HDR reports the highest equivalent value
  });

  it('curve samples percentiles from 0 to 99.99, increasing, with non-decreasing latency', () => {
    expect(CURVE_PERCENTILES[0]).toBe(0);
    expect(CURVE_PERCENTILES[CURVE_PERCENTILES.length - 1]).toBe(99.99);
    const h = new LatencyHistogram();
    for (let i = 1; i <= 10000; i++) h.record(i / 100);
    const c = h.curve();
    for (let i = 1; i < c.length; i++) {
      expect(c[i]![0]).toBeGreaterThan(c[i - 1]![0]);
      expect(c[i]![1]).toBeGreaterThanOrEqual(c[i - 1]![1]);
    }
  });
});

describe('percentile axis', () => {
  it('maps 0, 90, 99, 99.9, 99.99 to 0..4', () => {
    expect(percentileToLogX(0)).toBe(0);
    expect(percentileToLogX(90)).toBeCloseTo(1, 9);
    expect(percentileToLogX(99)).toBeCloseTo(2, 9);
    expect(percentileToLogX(99.9)).toBeCloseTo(3, 9);
    expect(percentileToLogX(99.99)).toBeCloseTo(4, 6);
    expect(percentileToLogX(100)).toBeCloseTo(4, 6); // capped
  });
});

describe('median', () => {
  it('handles odd, even and empty lists', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBe(0);
  });
});
