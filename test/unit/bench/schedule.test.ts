// Scheduler math: intended send times for fixed and Poisson arrivals, and the
// coordinated-omission arithmetic (queued requests carry the wait behind a stall).
import { describe, it, expect } from 'vitest';
import { correctedLatencyMs, mulberry32, Schedule, simulateQueue } from '../../../src/bench/schedule.js';

describe('Schedule', () => {
  it('fixed arrivals are exactly 1/rate apart, computed from the index (no drift)', () => {
    const s = new Schedule(100, 3000, 'fixed', () => 0.5);
    const times = Array.from({ length: 3001 }, () => s.take());
    expect(times[0]).toBe(100);
    expect(times[1]).toBeCloseTo(100 + 1 / 3, 12);
    expect(times[3000]).toBeCloseTo(1100, 9); // 3000 intervals of 1/3 ms = 1 s
    expect(s.taken).toBe(3001);
  });

  it('takeDue returns every time <= now and < end, in order', () => {
    const s = new Schedule(0, 1000, 'fixed', () => 0);
    expect(s.takeDue(2.5, 100, [])).toEqual([0, 1, 2]);
    expect(s.takeDue(2.9, 100, [])).toEqual([]);
    expect(s.takeDue(10, 5, [])).toEqual([3, 4]); // end is exclusive
    expect(s.peek()).toBe(5);
  });

  it('poisson gaps are exponential with mean 1/rate and reproducible from the seed', () => {
    const a = new Schedule(0, 1000, 'poisson', mulberry32(42));
    const b = new Schedule(0, 1000, 'poisson', mulberry32(42));
    const ta = Array.from({ length: 20000 }, () => a.take());
    const tb = Array.from({ length: 20000 }, () => b.take());
    expect(ta).toEqual(tb);
    const gaps = ta.slice(1).map((t, i) => t - ta[i]!);
    const mean = gaps.reduce((x, y) => x + y, 0) / gaps.length;
    expect(mean).toBeGreaterThan(0.97);
    expect(mean).toBeLessThan(1.03);
    // Exponential: P(gap > mean) = e^-1 ≈ 0.368
    const over = gaps.filter((g) => g > 1).length / gaps.length;
    expect(over).toBeGreaterThan(0.35);
    expect(over).toBeLessThan(0.385);
    expect(gaps.every((g) => g >= 0 && Number.isFinite(g))).toBe(true);
  });

  it('rejects a non-positive rate', () => {
    expect(() => new Schedule(0, 0, 'fixed', Math.random)).toThrow(/rate/);
  });
});

describe('coordinated-omission correction', () => {
  it('a stalled response makes every request queued behind it include the wait', () => {
    // 1 connection, a request every 1 ms, each served in 0.1 ms, except request 2 takes 10 ms.
    const intended = Array.from({ length: 20 }, (_, i) => i);
    const service = intended.map((_, i) => (i === 2 ? 10 : 0.1));
    const done = simulateQueue(intended, service, 1);
    const lat = done.map((d, i) => correctedLatencyMs(intended[i]!, d));
    expect(lat[0]).toBeCloseTo(0.1, 9);
    expect(lat[2]).toBeCloseTo(10, 9);
    // Request 3 was due at 3 but could only be sent at 12: its latency is 9.1 ms, not 0.1 ms.
    expect(lat[3]).toBeCloseTo(9.1, 9);
    expect(lat[4]).toBeCloseTo(12.2 - 4, 9);
    // The backlog drains at 0.1 ms per request; by request 13 it is gone.
    expect(lat[13]).toBeCloseTo(0.1, 9);
    // Measured from the actual send, only one request would look slow:
    const fromSend = service;
    expect(fromSend.filter((s) => s > 1).length).toBe(1);
    expect(lat.filter((l) => l > 1).length).toBe(10);
  });

  it('with enough connections a stall delays only its own request', () => {
    const intended = Array.from({ length: 20 }, (_, i) => i);
    const service = intended.map((_, i) => (i === 2 ? 10 : 0.1));
    const done = simulateQueue(intended, service, 2);
    const lat = done.map((d, i) => d - intended[i]!);
    expect(lat.filter((l) => l > 1)).toEqual([10]);
  });
});
