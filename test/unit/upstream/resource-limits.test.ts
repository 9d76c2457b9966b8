import { describe, it, expect } from 'vitest';
import { ResourceLimits } from '../../../src/upstream/resource-limits.js';
import { retryBudgetAllows, retryBudgetLimit } from '../../../src/upstream/retry-budget.js';
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
