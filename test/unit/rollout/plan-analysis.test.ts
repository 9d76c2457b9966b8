/** The step plan, flag parsing, histogram_quantile and the check/decision rules of `remora rollout`. */
import { describe, expect, it } from 'vitest';
import { buildPlan, parseDuration, parseHeaderMatch, parseLatency, parsePercent, parseSteps } from '../../../src/rollout/plan.js';
import { decide, evaluate, histogramQuantile, type Window } from '../../../src/rollout/analysis.js';

describe('plan', () => {
  it('--steps: Argo setWeight steps, 100 appended when missing', () => {
    expect(buildPlan({ steps: [5, 10, 25, 50, 100] }).map((s) => s.canaryWeight)).toEqual([5, 10, 25, 50, 100]);
    expect(buildPlan({ steps: [10, 50] }).map((s) => s.canaryWeight)).toEqual([10, 50, 100]);
  });
  it('Flagger stepWeight/maxWeight: 10..50 then promotion; defaults 10 and 50', () => {
    expect(buildPlan({ stepWeight: 10, maxWeight: 50 }).map((s) => s.canaryWeight)).toEqual([10, 20, 30, 40, 50, 100]);
    expect(buildPlan({ stepWeight: 20, maxWeight: 50 }).map((s) => s.canaryWeight)).toEqual([20, 40, 50, 100]);
    expect(buildPlan({}).map((s) => s.canaryWeight)).toEqual([10, 20, 30, 40, 50, 100]);
  });
  it('mirror puts a 0 % step with the mirror percentage first', () => {
    expect(buildPlan({ steps: [50], mirrorPercent: 20 })).toEqual([
      { canaryWeight: 0, mirrorPercent: 20 }, { canaryWeight: 50, mirrorPercent: 0 }, { canaryWeight: 100, mirrorPercent: 0 },
    ]);
  });
  it('rejects decreasing, out-of-range, fractional steps and mixing both forms', () => {
    expect(() => buildPlan({ steps: [10, 5] })).toThrow(/increase/);
    expect(() => buildPlan({ steps: [0, 5] })).toThrow(/1\.\.100/);
    expect(() => buildPlan({ steps: [101] })).toThrow(/1\.\.100/);
    expect(() => buildPlan({ steps: [2.5] })).toThrow(/integers/);
    expect(() => buildPlan({ steps: [10], stepWeight: 5 })).toThrow(/either/);
    expect(() => buildPlan({ steps: [10], mirrorPercent: 150 })).toThrow(/mirror/);
  });
  it('parses durations, percentages, latencies, steps and header matches', () => {
    expect(parseDuration('1m')).toBe(60_000);
    expect(parseDuration('2s')).toBe(2000);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('1m30s')).toBe(90_000);
    expect(parseDuration('3')).toBe(3000);
    expect(() => parseDuration('1x')).toThrow(/duration/);
    expect(() => parseDuration('1m foo')).toThrow(/duration/);
    expect(parsePercent('1%')).toBeCloseTo(0.01);
    expect(parsePercent('0.5%')).toBeCloseTo(0.005);
    expect(parsePercent('5')).toBeCloseTo(0.05);
    expect(() => parsePercent('120%')).toThrow();
    expect(parseLatency('300ms')).toBe(300);
    expect(parseLatency('1.5s')).toBe(1500);
    expect(parseLatency('250')).toBe(250);
    expect(() => parseLatency('fast')).toThrow();
    expect(parseSteps('5, 10,25')).toEqual([5, 10, 25]);
    expect(() => parseSteps('a,b')).toThrow();
    expect(parseHeaderMatch('X-Canary: true')).toEqual({ name: 'x-canary', value: 'true' });
    expect(parseHeaderMatch('x-canary=yes')).toEqual({ name: 'x-canary', value: 'yes' });
    expect(() => parseHeaderMatch('nocolon')).toThrow();
  });
});

describe('histogramQuantile (Prometheus histogram_quantile)', () => {
  // Values worked out by hand with Prometheus' rules: linear interpolation in the bucket holding rank q·total,
  // lower bound 0 for the first bucket, the highest finite bound when the rank falls in +Inf.
  const b: Array<[number, number]> = [[1, 10], [5, 50], [10, 90], [25, 100], [Infinity, 100]];
  it('interpolates inside the bucket that holds the rank', () => {
    expect(histogramQuantile(0.5, b)).toBeCloseTo(5); // rank 50 = the end of (1,5]
    expect(histogramQuantile(0.7, b)).toBeCloseTo(7.5); // rank 70: (5,10], 20 of 40 → 5 + 5·0.5
    expect(histogramQuantile(0.99, b)).toBeCloseTo(10 + 15 * 0.9); // rank 99: (10,25], 9 of 10
    expect(histogramQuantile(0.05, b)).toBeCloseTo(0.5); // first bucket from 0: 5 of 10 → 0.5
  });
  it('returns the highest finite bound when the rank is in +Inf, null without observations or +Inf', () => {
    expect(histogramQuantile(0.99, [[1, 1], [5, 2], [Infinity, 100]])).toBe(5);
    expect(histogramQuantile(0.99, [[1, 0], [Infinity, 0]])).toBeNull();
    expect(histogramQuantile(0.99, [])).toBeNull();
    expect(histogramQuantile(0.99, [[1, 3], [5, 4]])).toBeNull();
  });
  it('sorts buckets and repairs non-monotonic counts', () => {
    expect(histogramQuantile(0.5, [[Infinity, 100], [5, 50], [1, 10], [10, 90], [25, 100]])).toBeCloseTo(5);
    expect(histogramQuantile(0.5, [[1, 60], [5, 50], [Infinity, 100]])).toBeCloseTo(50 / 60);
  });
});

const win = (requests: number, failures: number, slowShare = 0): Window => {
  // Envoy's buckets; (1-slowShare) of the requests under 5 ms, the rest between 250 and 500 ms.
  const fast = Math.round(requests * (1 - slowShare));
  return { requests, failures, buckets: [[1, 0], [5, fast], [250, fast], [500, requests], [Infinity, requests]] };
};

describe('evaluate', () => {
  const c = { maxErrorRate: 0.01, maxP99Ms: 300, minRequests: 100 };
  it('passes a healthy canary and reports both subsets', () => {
    const r = evaluate(win(200, 1), win(800, 0), c);
    expect(r.verdict).toBe('pass');
    expect(r.canary).toMatchObject({ requests: 200, failures: 1, successRate: 0.995 });
    expect(r.canary.p99Ms!).toBeLessThan(5.01);
    expect(r.stable).toMatchObject({ requests: 800, successRate: 1 });
  });
  it('fails on the error rate and on p99, with the numbers in the reason', () => {
    const e = evaluate(win(200, 5), win(800, 0), c);
    expect(e.verdict).toBe('fail');
    expect(e.reasons[0]).toMatch(/canary error rate 2.5% > 1% \(5\/200\)/);
    const l = evaluate(win(200, 0, 0.05), win(800, 0), c);
    expect(l.verdict).toBe('fail');
    expect(l.reasons[0]).toMatch(/canary p99 \d+\.\d ms > 300 ms/);
  });
  it('too little traffic is insufficient, unless the failures already exceed the limit over min-requests', () => {
    expect(evaluate(win(50, 0), win(800, 0), c)).toMatchObject({ verdict: 'insufficient', reasons: ['too little traffic: 50 canary requests < 100'] });
    expect(evaluate(win(0, 0), win(0, 0), c).verdict).toBe('insufficient');
    expect(evaluate(win(50, 1), win(800, 0), c).verdict).toBe('insufficient'); // 1 ≤ 1 % of 100
    expect(evaluate(win(50, 2), win(800, 0), c).verdict).toBe('fail');
  });
});

describe('decide', () => {
  const pass = evaluate(win(200, 0), win(800, 0), { maxErrorRate: 0.01, minRequests: 100 });
  const fail = evaluate(win(200, 50), win(800, 0), { maxErrorRate: 0.01, minRequests: 100 });
  const thin = evaluate(win(10, 0), win(800, 0), { maxErrorRate: 0.01, minRequests: 100 });
  const at = { stepIndex: 0, nextWeight: 50 as number | undefined, failedChecks: 0, heldChecks: 0 };
  it('advances on a pass, promotes when the next step is 100', () => {
    expect(decide(pass, at, { threshold: 1, maxHolds: 3 })).toMatchObject({ action: 'advance', failedChecks: 0 });
    expect(decide(pass, { ...at, nextWeight: 100 }, { threshold: 1, maxHolds: 3 }).action).toBe('promote');
  });
  it('threshold: consecutive failed checks before the rollback; a pass resets the count', () => {
    expect(decide(fail, at, { threshold: 1, maxHolds: 3 }).action).toBe('rollback');
    const d1 = decide(fail, at, { threshold: 2, maxHolds: 3 });
    expect(d1).toMatchObject({ action: 'hold', failedChecks: 1 });
    expect(decide(fail, { ...at, failedChecks: 1 }, { threshold: 2, maxHolds: 3 }).action).toBe('rollback');
    expect(decide(pass, { ...at, failedChecks: 1 }, { threshold: 2, maxHolds: 3 })).toMatchObject({ action: 'advance', failedChecks: 0 });
  });
  it('too little traffic holds, then gives up after max-holds: never promoted', () => {
    expect(decide(thin, { ...at, nextWeight: 100 }, { threshold: 1, maxHolds: 2 })).toMatchObject({ action: 'hold', heldChecks: 1 });
    const d = decide(thin, { ...at, nextWeight: 100, heldChecks: 1 }, { threshold: 1, maxHolds: 2 });
    expect(d.action).toBe('rollback');
    expect(d.reason).toMatch(/not promoted: too little traffic/);
  });
});
