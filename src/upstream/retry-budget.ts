/**
 * Envoy's retry budget (Istio DestinationRule trafficPolicy.retryBudget): concurrent retries may not exceed
 * max(minRetryConcurrency, percent% × (active + pending requests)). On by default in Remora (20 %, min 3).
 */

import type { RetryBudgetPolicy } from '../model.js';

/** The number of concurrent retries the budget allows for this many outstanding requests. */
export function retryBudgetLimit(b: RetryBudgetPolicy, activeAndPending: number): number {
  // Envoy converts the product to an integer (truncation) before taking the max.
  return Math.max(b.minRetryConcurrency, Math.floor((b.percent / 100) * activeAndPending));
}

/** true when one more retry fits within the budget. */
export function retryBudgetAllows(b: RetryBudgetPolicy, activeRetries: number, activeAndPending: number): boolean {
  return activeRetries < retryBudgetLimit(b, activeAndPending);
}

/**
 * Linkerd's retry budget beside Envoy's: retries may add at most `ratio` of the requests plus `minPerSecond` per
 * second to an upstream's load (Linkerd: 20 % + 10/s over a 10 s TTL). A token bucket: each admitted request
 * deposits `ratio`, time adds `minPerSecond` per second, a budgeted retry takes 1; the balance is capped at
 * `minPerSecond × ttlSeconds` (Linkerd's reserve), which is the largest burst. So over any window of T seconds with
 * N requests, retries ≤ reserve + minPerSecond·T + ratio·N: a failing upstream sees at most (1 + ratio) × the
 * client's rate + minPerSecond once the reserve is spent, whatever the retry policy's attempts. Envoy's concurrency
 * budget alone does not bound this when failures are fast (a 503 in 1 ms frees its retry slot at once).
 * Time is passed in (ms); the caller owns the clock.
 */
export class RetryRateBudget {
  private balance: number;
  private last: number;
  readonly capacity: number;

  constructor(readonly ratio = 0.2, readonly minPerSecond = 10, ttlSeconds = 10, now = 0) {
    this.capacity = minPerSecond * ttlSeconds;
    this.balance = this.capacity;
    this.last = now;
  }

  private refill(now: number): void {
    const dt = now - this.last;
    if (dt > 0) {
      this.last = now;
      const b = this.balance + (dt / 1000) * this.minPerSecond;
      this.balance = b < this.capacity ? b : this.capacity;
    }
  }

  /** One request admitted. */
  deposit(): void {
    const b = this.balance + this.ratio;
    this.balance = b < this.capacity ? b : this.capacity;
  }

  /** One retry wants to go: true (and the token is spent) when the budget has it. */
  withdraw(now: number): boolean {
    this.refill(now);
    if (this.balance < 1) return false;
    this.balance -= 1;
    return true;
  }
}
