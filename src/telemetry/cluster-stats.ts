/**
 * Envoy-style per-cluster stats (`envoy_cluster_*{cluster_name="…"}`): the counters the handler increments as plain
 * numeric fields, and their exposition with the membership and outlier-ejection gauges of the live cluster state.
 */
import type { ClusterView } from '../model.js';
import { escapeLabelValue } from './exposition.js';

/** Envoy counter names (Prometheus: `envoy_cluster_<name>{cluster_name="…"}`), incremented directly by the handler. */
export const CLUSTER_COUNTERS = [
  'upstream_rq_total',
  'upstream_rq_retry',
  'upstream_rq_retry_success',
  'upstream_rq_retry_overflow',
  'upstream_rq_retry_limit_exceeded',
  'upstream_rq_timeout',
  'upstream_rq_per_try_timeout',
  'upstream_rq_pending_overflow',
  'upstream_rq_pending_total',
  'upstream_cx_total',
  'upstream_cx_overflow',
  'upstream_cx_connect_fail',
  'upstream_cx_connect_timeout',
  'upstream_cx_destroy_remote_with_active_rq',
  /** Remora's own: requests re-sent once because a reused keep-alive connection was closed by the peer before any byte came back. */
  'upstream_rq_reset_reused_retry',
  /** Requests reset by the upstream (closed, RST or an invalid response) before or during their response. */
  'upstream_rq_rx_reset',
  /** Upstream responses that broke HTTP/1.1 (llhttp errors, an unasked 101): the connection was dropped. */
  'upstream_cx_protocol_error',
  /** Requests whose body was too large for --retry-buffer-bytes while a retry policy applied: they cannot be retried. */
  'retry_or_shadow_abandoned',
] as const;
export const CLUSTER_GAUGES = ['upstream_rq_active', 'upstream_cx_active'] as const;

export type ClusterCounterName = (typeof CLUSTER_COUNTERS)[number];
export type ClusterGaugeName = (typeof CLUSTER_GAUGES)[number];

/**
 * Per-cluster Envoy stats as plain numeric fields, so the handler's `c.upstream_rq_total++` costs nothing more than a
 * property increment. Counters are reset by /reset_counters; gauges are not (as in Envoy).
 */
export class ClusterCounters implements Record<ClusterCounterName | ClusterGaugeName, number> {
  upstream_rq_total = 0;
  upstream_rq_retry = 0;
  upstream_rq_retry_success = 0;
  upstream_rq_retry_overflow = 0;
  upstream_rq_retry_limit_exceeded = 0;
  upstream_rq_timeout = 0;
  upstream_rq_per_try_timeout = 0;
  upstream_rq_pending_overflow = 0;
  upstream_rq_pending_total = 0;
  upstream_cx_total = 0;
  upstream_cx_overflow = 0;
  upstream_cx_connect_fail = 0;
  upstream_cx_connect_timeout = 0;
  upstream_cx_destroy_remote_with_active_rq = 0;
  upstream_rq_reset_reused_retry = 0;
  upstream_rq_rx_reset = 0;
  upstream_cx_protocol_error = 0;
  retry_or_shadow_abandoned = 0;
  upstream_rq_active = 0;
  upstream_cx_active = 0;
  /** Upstream responses by class: index 1..5 = 1xx..5xx (Envoy `upstream_rq_2xx` …). */
  readonly codeClass = new Float64Array(6);
  /** Upstream responses by exact status code (Envoy `upstream_rq_200` …); bounded by the set of status codes. */
  readonly codes = new Map<number, number>();

  constructor(readonly name: string) {}

  /** Count one upstream response (each attempt that got response headers): `upstream_rq_<code>` and `upstream_rq_<class>xx`. */
  response(status: number): void {
    const cls = (status / 100) | 0;
    if (cls < 1 || cls > 5) return;
    this.codeClass[cls]! += 1;
    this.codes.set(status, (this.codes.get(status) ?? 0) + 1);
  }

  resetCounters(): void {
    for (const k of CLUSTER_COUNTERS) this[k] = 0;
    this.codeClass.fill(0);
    this.codes.clear();
  }
}

/** The `envoy_cluster_*` families of `clusters`' counters, then the gauges of the live cluster `views`. */
export function renderClusterStats(out: string[], clusters: Iterable<ClusterCounters>, views: readonly ClusterView[]): void {
  const cs = [...clusters];
  const label = (name: string) => `cluster_name="${escapeLabelValue(name)}"`;
  if (cs.length > 0) {
    for (const k of CLUSTER_COUNTERS) {
      out.push(`# TYPE envoy_cluster_${k} counter\n`);
      for (const c of cs) out.push(`envoy_cluster_${k}{${label(c.name)}} ${c[k]}\n`);
    }
    // Istio's stats tags turn `upstream_rq_2xx` / `upstream_rq_200` into one family with response_code_class / response_code labels.
    out.push('# TYPE envoy_cluster_upstream_rq counter\n');
    for (const c of cs) {
      for (let cls = 1; cls <= 5; cls++) {
        if (c.codeClass[cls]! > 0) out.push(`envoy_cluster_upstream_rq{response_code_class="${cls}xx",${label(c.name)}} ${c.codeClass[cls]}\n`);
      }
      for (const [code, n] of [...c.codes].sort((a, b) => a[0] - b[0])) {
        out.push(`envoy_cluster_upstream_rq{response_code="${code}",${label(c.name)}} ${n}\n`);
      }
    }
    for (const k of CLUSTER_GAUGES) {
      out.push(`# TYPE envoy_cluster_${k} gauge\n`);
      for (const c of cs) out.push(`envoy_cluster_${k}{${label(c.name)}} ${c[k]}\n`);
    }
  }
  if (views.length > 0) {
    const gauge = (stat: string, get: (v: ClusterView) => number) => {
      out.push(`# TYPE envoy_cluster_${stat} gauge\n`);
      for (const v of views) out.push(`envoy_cluster_${stat}{${label(v.name)}} ${get(v)}\n`);
    };
    gauge('membership_total', (v) => v.endpoints.length);
    gauge('membership_healthy', (v) => v.endpoints.reduce((n, e) => n + (e.healthy ? 1 : 0), 0));
    gauge('outlier_detection_ejections_active', (v) => v.ejectionsActive);
    gauge('upstream_rq_pending_active', (v) => v.pendingRequests);
  }
}
