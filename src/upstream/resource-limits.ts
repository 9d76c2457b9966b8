/**
 * Envoy/Istio circuit breaking for one cluster: counters, not a state machine. Admission is refused at once
 * (503 UO upstream) when requests in flight reach http2MaxRequests (rq_overflow) or maxConnections +
 * http1MaxPendingRequests (pending_overflow); retries are refused over maxRetries or the retry budget; an L4
 * connection (TCP proxy, CONNECT) is refused (UO) when the cluster's proxied connections reach maxConnections.
 */

import type { AdmitResult, PoolLimits, RetryBudgetPolicy } from '../model.js';
import { RetryRateBudget, retryBudgetAllows } from './retry-budget.js';

export class ResourceLimits {
  /** Admitted requests in flight (Envoy rq_active + rq_pending_active). */
  active = 0;
  activeRetries = 0;
  /** The part of activeRetries the retry budget governs (connect-failure retries are not budgeted). */
  budgetedRetries = 0;
  /** Open L4 connections (TCP proxy, CONNECT tunnels) admitted by admitConnection(). */
  connections = 0;
  /** Overflow counters (Envoy: upstream_rq_pending_overflow, upstream_rq_retry_overflow, upstream_cx_overflow …). */
  cxOverflow = 0;
  rqOverflow = 0;
  pendingOverflow = 0;
  retryOverflow = 0;
  retryBudgetExhausted = 0;
  /** Retries refused by the rate budget (Linkerd's 20 % + 10/s), a part of retryOverflow. */
  retryRateExhausted = 0;
  private readonly rate: RetryRateBudget;

  constructor(private pool: PoolLimits, private budget: RetryBudgetPolicy) {
    this.rate = new RetryRateBudget(0.2, 10, 10, 0);
  }

  setPolicy(pool: PoolLimits, budget: RetryBudgetPolicy): void {
    this.pool = pool;
    this.budget = budget;
  }

  /**
   * With HTTP/1 one request holds one connection, so requests beyond maxConnections are the ones waiting
   * for a connection (Envoy's pending queue).
   */
  get pending(): number {
    const p = this.active - this.pool.maxConnections;
    return p > 0 ? p : 0;
  }

  /** Checked in this order: http2MaxRequests (concurrent requests, HTTP/1 too), then the pending queue. */
  admit(): AdmitResult {
    const a = this.active;
    if (a >= this.pool.http2MaxRequests) {
      this.rqOverflow++;
      return 'rq_overflow';
    }
    if (a >= this.pool.maxConnections + this.pool.http1MaxPendingRequests) {
      this.pendingOverflow++;
      return 'pending_overflow';
    }
    this.active = a + 1;
    this.rate.deposit();
    return 'ok';
  }

  release(): void {
    if (this.active > 0) this.active--;
  }

  /**
   * An L4 connection (Envoy's tcp_proxy: one upstream connection per downstream one) under tcp.maxConnections; false
   * = overflow (UO), counted. Each true must be matched by one releaseConnection().
   */
  admitConnection(): boolean {
    if (this.connections >= this.pool.maxConnections) {
      this.cxOverflow++;
      return false;
    }
    this.connections++;
    return true;
  }

  releaseConnection(): void {
    if (this.connections > 0) this.connections--;
  }

  /**
   * Both maxRetries and the budget apply (Envoy lets a configured budget replace max_retries; Remora's budget
   * is on by default, so replacing would silently ignore a user's explicit maxRetries — the tighter one wins).
   * `budgeted: false` (a retry after a connect failure) checks maxRetries only: the failed try never reached a
   * server, so its retry adds no work upstream, and budgeting it would turn one stale endpoint into
   * client-visible 503s under concurrency (ISTIO-SEMANTICS pain 8; Istio itself has no budget by default).
   */
  tryStartRetry(budgeted = true): boolean {
    if (this.activeRetries >= this.pool.maxRetries) {
      this.retryOverflow++;
      return false;
    }
    if (budgeted && !retryBudgetAllows(this.budget, this.budgetedRetries, this.active)) {
      this.retryOverflow++;
      this.retryBudgetExhausted++;
      return false;
    }
    this.activeRetries++;
    if (budgeted) this.budgetedRetries++;
    return true;
  }
  /**
   * Linkerd's rate budget (RetryRateBudget: 20 % of requests + 10/s, a reserve of 100): one token for every budgeted
   * retry — the second retry of a request too, which reuses the slot tryStartRetry gave the first.
   */
  retryToken(now: number): boolean {
    if (this.rate.withdraw(now)) return true;
    this.retryOverflow++;
    this.retryRateExhausted++;
    return false;
  }

  /** Pass the same `budgeted` as the tryStartRetry() that succeeded. */
  endRetry(budgeted = true): void {
    if (this.activeRetries > 0) this.activeRetries--;
    if (budgeted && this.budgetedRetries > 0) this.budgetedRetries--;
  }
}
