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
  upstream_cx_connect_timeout: number;
  upstream_cx_total: number;
  upstream_cx_active: number;
  upstream_rq_reset_reused_retry: number;
  upstream_rq_rx_reset: number;
  upstream_cx_destroy_remote_with_active_rq: number;
  upstream_cx_protocol_error: number;
  retry_or_shadow_abandoned: number;
  /** Count a response code (per-code and per-class). */
  response?(status: number): void;
}

/** The byte reporting of one open L4 connection (Istio reports long-lived TCP connections while they are open). */
export interface ConnectionMeter {
  /** Cumulative bytes received from and sent to the downstream so far. */
  bytes(received: number, sent: number): void;
}

export interface Observer {
  /** One finished HTTP request (or upgraded connection): istio_requests_total…, the access log. */
  record(rec: RequestRecord): void;
  counters(cluster: string): ClusterCounters;
  /** An L4 connection (TCP proxy, CONNECT) reached its upstream: istio_tcp_connections_opened_total. */
  connectionOpened(rec: RequestRecord): ConnectionMeter;
  /**
   * The one record of an L4 connection, at its end: istio_tcp_* (closed, the bytes not reported yet) and the access
   * log. `meter` is connectionOpened's, undefined when the connection never reached an upstream.
   */
  connectionClosed(rec: RequestRecord, meter: ConnectionMeter | undefined): void;
}
