/**
 * What the data path reports to telemetry. The proxy only emits; telemetry decides what to keep
 * (STYLE.md: observability observes and never decides).
 */
import type { RequestRecord } from '../model.js';

/** Envoy-style per-cluster counters; the handler increments the fields directly. */
export interface ClusterCounters {
  upstream_rq_total: number;
  upstream_rq_retry: number;
  upstream_rq_retry_success: number;
  upstream_rq_retry_overflow: number;
  upstream_rq_retry_limit_exceeded: number;
  upstream_rq_timeout: number;
  upstream_rq_per_try_timeout: number;
  upstream_rq_pending_overflow: number;
  upstream_cx_overflow: number;
  upstream_cx_connect_fail: number;
  upstream_rq_reset_reused_retry: number;
  /** Count a response code (per-code and per-class). */
  response?(status: number): void;
}

export interface Observer {
  record(rec: RequestRecord): void;
  counters(cluster: string): ClusterCounters;
}

/** Counters held in memory when no metrics registry is attached (tests, explain). */
export class PlainCounters implements ClusterCounters {
  upstream_rq_total = 0;
  upstream_rq_retry = 0;
  upstream_rq_retry_success = 0;
  upstream_rq_retry_overflow = 0;
  upstream_rq_retry_limit_exceeded = 0;
  upstream_rq_timeout = 0;
  upstream_rq_per_try_timeout = 0;
  upstream_rq_pending_overflow = 0;
  upstream_cx_overflow = 0;
  upstream_cx_connect_fail = 0;
  upstream_rq_reset_reused_retry = 0;
  codes = new Map<number, number>();
  response(status: number): void {
    this.codes.set(status, (this.codes.get(status) ?? 0) + 1);
  }
}

export class MemoryObserver implements Observer {
  readonly records: RequestRecord[] = [];
  private readonly byCluster = new Map<string, PlainCounters>();
  constructor(private readonly keep = 0) {}
  record(rec: RequestRecord): void {
    if (this.keep > 0) {
      this.records.push(rec);
      if (this.records.length > this.keep) this.records.shift();
    }
  }
  counters(cluster: string): PlainCounters {
    let c = this.byCluster.get(cluster);
    if (!c) { c = new PlainCounters(); this.byCluster.set(cluster, c); }
    return c;
  }
}
