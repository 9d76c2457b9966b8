import { describe, it, expect } from 'vitest';
import { parseDurationMs, durationMs } from '../../../src/config/duration.js';

describe('durations (Go syntax, as the Kubernetes API server accepts them)', () => {
  it.each([
    ['250ms', 250], ['1.5s', 1500], ['2m', 120_000], ['1h', 3_600_000], ['100us', 0.1], ['10µs', 0.01], ['5ns', 0.000005],
    ['1m30s', 90_000], ['1h0m0s', 3_600_000], ['1s500ms', 1500],
  ])('%s = %d ms', (s, ms) => expect(parseDurationMs(s)).toBeCloseTo(ms, 9));
  it.each(['', '10', 's', '1.s', '-1s', '1 s', '1d', '1sms', 10])('rejects %j', (s) => expect(parseDurationMs(s)).toBeUndefined());
  it('falls back when absent', () => {
    expect(durationMs(undefined, 7)).toBe(7);
    expect(durationMs('3s', 7)).toBe(3000);
  });
});
