import { describe, it, expect } from 'vitest';
import {
  applyRetryOverrides, backoffMs, compileRetryPolicy, DEFAULT_RETRY_POLICY, parseRetryOn, routeTimeoutOverride, shouldRetry,
} from '../../../src/proxy/retry-policy.js';
import type { AttemptOutcome, RetryOn, RetryPolicy } from '../../../src/model.js';
import { seededRandom } from '../../../src/util/random.js';

const resp = (status: number, grpcStatus?: number): AttemptOutcome =>
  grpcStatus === undefined ? { kind: 'response', status } : { kind: 'response', status, grpcStatus };

function policyOn(retryOn: string): RetryPolicy {
  return compileRetryPolicy({ attempts: 3, retryOn }, 0);
}

describe('compileRetryPolicy', () => {
  it('no retries block gives the Istio default', () => {
    const p = compileRetryPolicy(undefined, 0);
    expect(p).toBe(DEFAULT_RETRY_POLICY);
    expect(p.attempts).toBe(2);
    expect(p.retryOn).toMatchObject({ connectFailure: true, refusedStream: true, fiveXx: false, reset: false, statusCodes: [503] });
    expect([...p.retryOn.grpc].sort()).toEqual(['cancelled', 'unavailable']);
    expect(p.retryIgnorePreviousHosts).toBe(true);
    expect(p.perTryTimeoutMs).toBe(0);
    expect(p.backoffBaseMs).toBe(25);
    expect(p.backoffMaxMs).toBe(250);
  });

  it('attempts 0 or absent turns retries off', () => {
    expect(compileRetryPolicy({ attempts: 0, retryOn: '5xx' }, 0).attempts).toBe(0);
    expect(compileRetryPolicy({ retryOn: '5xx' }, 0).attempts).toBe(0);
    expect(shouldRetry(compileRetryPolicy({ attempts: 0 }, 0), resp(503))).toBe(false);
  });

  it('attempts without retryOn keeps the default conditions', () => {
    const p = compileRetryPolicy({ attempts: 5 }, 0);
    expect(p.attempts).toBe(5);
    expect(p.retryOn.statusCodes).toEqual([503]);
  });

  it('retryOn replaces the conditions and codes; perTryTimeout, backoff, flags', () => {
    const p = compileRetryPolicy({ attempts: 3, retryOn: 'gateway-error,409', perTryTimeout: '2s', backoff: '100ms', retryIgnorePreviousHosts: false, retryRemoteLocalities: true }, 0);
    expect(p.retryOn).toMatchObject({ gatewayError: true, connectFailure: false, statusCodes: [409], grpc: [] });
    expect(p.perTryTimeoutMs).toBe(2000);
    expect(p.backoffBaseMs).toBe(100);
    expect(p.backoffMaxMs).toBe(1000);
    expect(p.retryIgnorePreviousHosts).toBe(false);
    expect(p.retryRemoteLocalities).toBe(true);
  });

  it('perTryTimeout is bounded by the route timeout', () => {
    expect(compileRetryPolicy({ attempts: 1, perTryTimeout: '5s' }, 1000).perTryTimeoutMs).toBe(1000);
    expect(compileRetryPolicy({ attempts: 1, perTryTimeout: '500ms' }, 1000).perTryTimeoutMs).toBe(500);
  });
});

describe('parseRetryOn', () => {
  it('parses the whole vocabulary', () => {
    const r = parseRetryOn('5xx, gateway-error,reset,connect-failure,refused-stream,retriable-4xx,retriable-status-codes,retriable-headers,cancelled,deadline-exceeded,internal,resource-exhausted,unavailable,503,504') as RetryOn;
    expect(r).toMatchObject({ fiveXx: true, gatewayError: true, reset: true, connectFailure: true, refusedStream: true, retriable4xx: true, statusCodes: [503, 504] });
    expect(r.grpc).toEqual(['cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable']);
  });
  it('rejects unknown tokens and invalid status codes', () => {
    expect(parseRetryOn('5xx,bogus')).toEqual({ error: '"bogus" is not a valid retryOn policy' });
    expect(parseRetryOn('700')).toEqual({ error: '700 is not a valid HTTP status code' });
    expect('error' in parseRetryOn('')).toBe(false);
  });
});

describe('shouldRetry', () => {
  const table: Array<[string, AttemptOutcome, boolean]> = [
    ['5xx', resp(500), true],
    ['5xx', resp(503), true],
    ['5xx', resp(404), false],
    ['5xx', { kind: 'connect-failure' }, true],
    ['5xx', { kind: 'reset' }, true],
    ['5xx', { kind: 'timeout' }, true],
    ['gateway-error', resp(502), true],
    ['gateway-error', resp(504), true],
    ['gateway-error', resp(500), false],
    ['gateway-error', { kind: 'reset' }, true],
    ['gateway-error', { kind: 'timeout' }, true],
    ['reset', { kind: 'reset' }, true],
    ['reset', { kind: 'timeout' }, true],
    ['reset', { kind: 'connect-failure' }, true],
    ['reset', resp(503), false],
    ['connect-failure', { kind: 'connect-failure' }, true],
    ['connect-failure', { kind: 'reset' }, false],
    ['connect-failure', { kind: 'timeout' }, false],
    ['connect-failure', resp(503), false],
    ['retriable-4xx', resp(409), true],
    ['retriable-4xx', resp(404), false],
    ['retriable-status-codes,418', resp(418), true],
    ['418', resp(500), false],
    ['refused-stream', { kind: 'reset' }, false],
    ['unavailable', resp(200, 14), true],
    ['unavailable', resp(200, 13), false],
    ['internal,deadline-exceeded', resp(200, 4), true],
    ['resource-exhausted', resp(200, 8), true],
    ['cancelled', resp(200, 1), true],
    ['cancelled', resp(200), false],
  ];
  for (const [on, outcome, want] of table) {
    it(`${on} on ${JSON.stringify(outcome)} → ${want}`, () => {
      expect(shouldRetry(policyOn(on), outcome)).toBe(want);
    });
  }

  it('Istio default: 503 and connect-failure retried, 500 and reset not', () => {
    expect(shouldRetry(DEFAULT_RETRY_POLICY, resp(503))).toBe(true);
    expect(shouldRetry(DEFAULT_RETRY_POLICY, { kind: 'connect-failure' })).toBe(true);
    expect(shouldRetry(DEFAULT_RETRY_POLICY, resp(500))).toBe(false);
    expect(shouldRetry(DEFAULT_RETRY_POLICY, { kind: 'reset' })).toBe(false);
    expect(shouldRetry(DEFAULT_RETRY_POLICY, resp(200, 14))).toBe(true);
  });
});

describe('backoffMs', () => {
  it('stays within U[0, min(base·2^(N−1), max)) for each retry number', () => {
    const rand = seededRandom(42);
    const p = DEFAULT_RETRY_POLICY;
    const bounds = [25, 50, 100, 200, 250, 250, 250];
    for (let n = 1; n <= bounds.length; n++) {
      let max = 0;
      for (let k = 0; k < 500; k++) {
        const b = backoffMs(n, p, rand);
        expect(Number.isInteger(b)).toBe(true);
        expect(b).toBeGreaterThanOrEqual(0);
        expect(b).toBeLessThan(bounds[n - 1]!);
        max = Math.max(max, b);
      }
      // Full jitter: the range is actually used, up to its top.
      expect(max).toBeGreaterThanOrEqual(bounds[n - 1]! * 0.9 - 1);
    }
  });
  it('is deterministic for a seed and uses the extremes of rand', () => {
    expect(backoffMs(1, DEFAULT_RETRY_POLICY, () => 0)).toBe(0);
    expect(backoffMs(3, DEFAULT_RETRY_POLICY, () => 0.999999)).toBe(99);
    const a = seededRandom(7);
    const b = seededRandom(7);
    for (let n = 1; n < 6; n++) expect(backoffMs(n, DEFAULT_RETRY_POLICY, a)).toBe(backoffMs(n, DEFAULT_RETRY_POLICY, b));
  });
});

describe('applyRetryOverrides', () => {
  it('returns the same object when no override header is present', () => {
    const p = DEFAULT_RETRY_POLICY;
    expect(applyRetryOverrides(p, { host: 'x', 'x-envoy-attempt-count': '1' })).toBe(p);
  });
  it('x-envoy-max-retries and per-try timeout override', () => {
    const q = applyRetryOverrides(DEFAULT_RETRY_POLICY, { 'x-envoy-max-retries': '5', 'x-envoy-upstream-rq-per-try-timeout-ms': '300' });
    expect(q.attempts).toBe(5);
    expect(q.perTryTimeoutMs).toBe(300);
    expect(DEFAULT_RETRY_POLICY.attempts).toBe(2); // not mutated
  });
  it('x-envoy-retry-on and -grpc-on are merged with the route conditions', () => {
    const q = applyRetryOverrides(DEFAULT_RETRY_POLICY, { 'x-envoy-retry-on': '5xx,bogus', 'x-envoy-retry-grpc-on': 'internal' });
    expect(q.retryOn.fiveXx).toBe(true);
    expect(q.retryOn.connectFailure).toBe(true);
    expect(q.retryOn.grpc).toContain('internal');
    expect(shouldRetry(q, resp(500))).toBe(true);
  });
  it('a retry-on header on a route without retries gives one retry', () => {
    const off = compileRetryPolicy({ attempts: 0 }, 0);
    const q = applyRetryOverrides(off, { 'x-envoy-retry-on': 'reset' });
    expect(q.attempts).toBe(1);
    expect(shouldRetry(q, { kind: 'reset' })).toBe(true);
  });
  it('x-envoy-retriable-status-codes adds codes when retriable-status-codes is in effect', () => {
    const q = applyRetryOverrides(DEFAULT_RETRY_POLICY, { 'x-envoy-retriable-status-codes': '500,502' });
    expect(shouldRetry(q, resp(500))).toBe(true);
    const r = applyRetryOverrides(policyOn('5xx'), { 'x-envoy-retriable-status-codes': '409' });
    expect(shouldRetry(r, resp(409))).toBe(false);
    const s = applyRetryOverrides(policyOn('5xx'), { 'x-envoy-retry-on': 'retriable-status-codes', 'x-envoy-retriable-status-codes': '409' });
    expect(shouldRetry(s, resp(409))).toBe(true);
  });
  it('ignores malformed numbers', () => {
    const q = applyRetryOverrides(DEFAULT_RETRY_POLICY, { 'x-envoy-max-retries': 'many' });
    expect(q.attempts).toBe(2);
  });
  it('routeTimeoutOverride', () => {
    expect(routeTimeoutOverride({})).toBeUndefined();
    expect(routeTimeoutOverride({ 'x-envoy-upstream-rq-timeout-ms': '1500' })).toBe(1500);
    expect(routeTimeoutOverride({ 'x-envoy-upstream-rq-timeout-ms': '0' })).toBe(0);
    expect(routeTimeoutOverride({ 'x-envoy-upstream-rq-timeout-ms': '-1' })).toBeUndefined();
    expect(routeTimeoutOverride({ 'x-envoy-upstream-rq-timeout-ms': ['200', '300'] })).toBe(200);
  });
});
