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
