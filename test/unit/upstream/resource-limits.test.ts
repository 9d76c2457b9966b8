import { describe, it, expect } from 'vitest';
import { ResourceLimits } from '../../../src/upstream/resource-limits.js';
import { RetryRateBudget, retryBudgetAllows, retryBudgetLimit } from '../../../src/upstream/retry-budget.js';
import { DEFAULT_POOL } from '../../../src/upstream/policy.js';

describe('ResourceLimits', () => {
  it('Istio scenario 13: 10 concurrent admits → 2 ok, 8 pending_overflow', () => {
    const l = new ResourceLimits({ ...DEFAULT_POOL, maxConnections: 1, http1MaxPendingRequests: 1 }, { percent: 20, minRetryConcurrency: 3 });
    const r = Array.from({ length: 10 }, () => l.admit());
    expect(r.filter((x) => x === 'ok')).toHaveLength(2);
    expect(r.filter((x) => x === 'pending_overflow')).toHaveLength(8);
    expect(l.pendingOverflow).toBe(8);
    expect(l.pending).toBe(1);
  });

  it('http2MaxRequests is checked first (rq_overflow)', () => {
    const l = new ResourceLimits({ ...DEFAULT_POOL, http2MaxRequests: 1, maxConnections: 1, http1MaxPendingRequests: 1 }, { percent: 20, minRetryConcurrency: 3 });
    expect(l.admit()).toBe('ok');
    expect(l.admit()).toBe('rq_overflow');
    l.release();
    expect(l.admit()).toBe('ok');
  });

  it('L4 connections: tcp.maxConnections open at once, overflow counted, a release makes room; a policy change applies', () => {
    const l = new ResourceLimits({ ...DEFAULT_POOL, maxConnections: 2 }, { percent: 20, minRetryConcurrency: 3 });
    expect([l.admitConnection(), l.admitConnection(), l.admitConnection()]).toEqual([true, true, false]);
    expect(l.cxOverflow).toBe(1);
    expect(l.connections).toBe(2);
    l.releaseConnection();
    expect(l.admitConnection()).toBe(true);
    // Requests (HTTP admission) are a separate count.
    expect(l.admit()).toBe('ok');
    l.setPolicy({ ...DEFAULT_POOL, maxConnections: 3 }, { percent: 20, minRetryConcurrency: 3 });
    expect(l.admitConnection()).toBe(true);
    expect(l.admitConnection()).toBe(false);
    for (let i = 0; i < 5; i++) l.releaseConnection();
    expect(l.connections).toBe(0);
  });

  it('release never goes below zero', () => {
    const l = new ResourceLimits(DEFAULT_POOL, { percent: 20, minRetryConcurrency: 3 });
    l.release();
    expect(l.active).toBe(0);
    expect(l.admit()).toBe('ok');
    expect(l.active).toBe(1);
  });

  it('retries: maxRetries and the budget both apply', () => {
    const l = new ResourceLimits({ ...DEFAULT_POOL, maxRetries: 2 }, { percent: 20, minRetryConcurrency: 3 });
    expect(l.tryStartRetry()).toBe(true);
    expect(l.tryStartRetry()).toBe(true);
    expect(l.tryStartRetry()).toBe(false);
    expect(l.retryOverflow).toBe(1);
    l.endRetry();
    expect(l.tryStartRetry()).toBe(true);
  });
});

describe('retry budget', () => {
  it('allows max(minRetryConcurrency, percent × (active + pending))', () => {
    const b = { percent: 20, minRetryConcurrency: 3 };
    expect(retryBudgetLimit(b, 0)).toBe(3);
    expect(retryBudgetLimit(b, 10)).toBe(3);
    expect(retryBudgetLimit(b, 100)).toBe(20);
    expect(retryBudgetLimit(b, 104)).toBe(20); // truncated, as Envoy
    expect(retryBudgetAllows(b, 19, 100)).toBe(true);
    expect(retryBudgetAllows(b, 20, 100)).toBe(false);
    expect(retryBudgetAllows({ percent: 0, minRetryConcurrency: 0 }, 0, 1000)).toBe(false);
  });

  it('connect-failure retries (budgeted: false) skip the budget but not maxRetries, and leave it to others', () => {
    const l = new ResourceLimits({ ...DEFAULT_POOL, maxRetries: 10 }, { percent: 20, minRetryConcurrency: 3 });
    for (let i = 0; i < 8; i++) l.admit();
    for (let i = 0; i < 8; i++) expect(l.tryStartRetry(false)).toBe(true);
    expect(l.tryStartRetry()).toBe(true); // the budget (3) is untouched by the 8 unbudgeted retries
    expect(l.tryStartRetry(false)).toBe(true);
    expect(l.tryStartRetry(false)).toBe(false); // maxRetries 10 reached
    expect(l.retryBudgetExhausted).toBe(0);
    l.endRetry(false);
    expect(l.activeRetries).toBe(9);
    expect(l.budgetedRetries).toBe(1);
  });

  it('stops a retry storm: with 100 failing requests only 20 retry at once', () => {
    const l = new ResourceLimits(DEFAULT_POOL, { percent: 20, minRetryConcurrency: 3 });
    for (let i = 0; i < 100; i++) l.admit();
    let started = 0;
    for (let i = 0; i < 100; i++) if (l.tryStartRetry()) started++;
    expect(started).toBe(20);
    expect(l.retryBudgetExhausted).toBe(80);
  });
});

describe('RetryRateBudget (Linkerd: 20 % of requests + 10/s, reserve 10 s × 10/s)', () => {
  it('starts with the reserve, then allows 10/s plus 0.2 per request', () => {
    const b = new RetryRateBudget(0.2, 10, 10, 0);
    let n = 0;
    while (b.withdraw(0)) n++;
    expect(n).toBe(100); // the reserve
    expect(b.withdraw(50)).toBe(false); // 0.5 token after 50 ms
    expect(b.withdraw(100)).toBe(true); // 1 token after 100 ms
    for (let i = 0; i < 5; i++) b.deposit(); // five requests → one retry
    expect(b.withdraw(100)).toBe(true);
    expect(b.withdraw(100)).toBe(false);
  });

  it('over a steady window retries stay within 0.2 × requests + 10/s, and the balance is capped', () => {
    const b = new RetryRateBudget(0.2, 10, 10, 0);
    while (b.withdraw(0)) { /* spend the reserve */ }
    // 100 requests/s for 10 s, each wanting 2 retries, 1 ms apart.
    let retries = 0;
    for (let t = 0; t < 10_000; t += 10) {
      b.deposit();
      if (b.withdraw(t)) retries++;
      if (b.withdraw(t)) retries++;
    }
    expect(retries).toBeLessThanOrEqual(0.2 * 1000 + 10 * 10 + 1);
    expect(retries).toBeGreaterThanOrEqual(0.2 * 1000 + 10 * 10 - 2);
    const idle = new RetryRateBudget(0.2, 10, 10, 0);
    let n = 0;
    while (idle.withdraw(3_600_000)) n++;
    expect(n).toBe(100); // an hour idle still allows only the reserve
  });

  it('ResourceLimits.retryToken: one per retry, refusals counted as retry overflow', () => {
    const l = new ResourceLimits({ ...DEFAULT_POOL }, { percent: 20, minRetryConcurrency: 1000 });
    let ok = 0;
    for (let i = 0; i < 150; i++) if (l.retryToken(1)) ok++;
    expect(ok).toBe(100);
    expect(l.retryRateExhausted).toBe(50);
    expect(l.retryOverflow).toBe(50);
    for (let i = 0; i < 10; i++) { expect(l.tryStartRetry()).toBe(true); l.endRetry(); } // the slot itself is not rate-limited
    for (let i = 0; i < 10; i++) l.admit();
    ok = 0;
    for (let i = 0; i < 20; i++) if (l.retryToken(1001)) ok++;
    expect(ok).toBe(12); // 10 for the second, 2 for the ten requests
  });
});
