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
  upstream_rq_rx_reset: number;
  upstream_cx_destroy_remote_with_active_rq: number;
  upstream_cx_protocol_error: number;
  retry_or_shadow_abandoned: number;
  /** Count a response code (per-code and per-class). */
  response?(status: number): void;
}

export interface Observer {
  record(rec: RequestRecord): void;
  counters(cluster: string): ClusterCounters;
}
