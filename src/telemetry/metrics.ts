/**
 * Prometheus metrics: the registry the handler records into and the admin/stats servers render. It holds one of
 * each kind and composes their exposition (format 0.0.4) at scrape time, in this order: Istio's standard request and
 * TCP metrics (istio-metrics.ts), Envoy-style per-cluster stats (cluster-stats.ts), Remora's own metrics
 * (own-metrics.ts) and the process's (process-metrics.ts); it also keeps the dashboard's per-cluster aggregates
 * (dashboard-stats.ts). Every name those modules export is importable from here too.
 */
import type { ClusterView, RequestRecord } from '../model.js';
import { ClusterCounters, renderClusterStats } from './cluster-stats.js';
import { ClusterSummary } from './dashboard-stats.js';
import type { Labels } from './exposition.js';
import { IstioMetrics, type IstioWorkload, type TcpMeter } from './istio-metrics.js';
import { OwnMetrics, type Counter, type Gauge, type OwnType } from './own-metrics.js';
import { defaultProcessInfo, renderProcess, type ProcessInfo } from './process-metrics.js';

export { ISTIO_BUCKETS, ISTIO_LABELS, TcpMeter } from './istio-metrics.js';
export { CLUSTER_COUNTERS, CLUSTER_GAUGES, ClusterCounters, type ClusterCounterName, type ClusterGaugeName } from './cluster-stats.js';
export { LATENCY_BUCKETS, LATENCY_MIN_MS, ClusterSummary, latencyBucket, latencyBucketUpperMs, latencyPercentile } from './dashboard-stats.js';
export type { Counter, Gauge } from './own-metrics.js';
export type { ProcessInfo } from './process-metrics.js';
export { escapeLabelValue, formatLe, formatValue } from './exposition.js';

export interface MetricsOptions extends IstioWorkload {
  /** Process facts at scrape time; injectable for tests. Default reads `process.*`. */
  processInfo?: () => ProcessInfo;
}

/** The metrics registry the handler records into and the admin/stats servers render. */
export class Metrics {
  private readonly istio: IstioMetrics;
  private readonly clusters = new Map<string, ClusterCounters>();
  /** Dashboard aggregates by upstream cluster name. */
  private readonly summaries = new Map<string, ClusterSummary>();
  private readonly own = new OwnMetrics();
  private readonly processInfo: () => ProcessInfo;

  /** `remora_config_reloads_total`: successful config reloads (incremented by the config store). */
  readonly configReloads: Counter;
  /** `remora_config_reload_failures_total`: rejected configs (the last good one stays active). */
  readonly configReloadFailures: Counter;

  constructor(opts: MetricsOptions) {
    this.istio = new IstioMetrics(opts);
    this.processInfo = opts.processInfo ?? defaultProcessInfo;
    this.configReloads = this.counter('remora_config_reloads_total', 'Successful configuration reloads.');
    this.configReloadFailures = this.counter(
      'remora_config_reload_failures_total',
      'Configuration reloads rejected by validation; the last good configuration stays active.',
    );
  }

  /**
   * Record one finished downstream request into the Istio standard metrics and the dashboard aggregates.
   * Allocation-free for an existing label set apart from the lookup key string.
   */
  recordRequest(rec: RequestRecord): void {
    this.istio.recordRequest(rec);
    const cl = rec.upstreamCluster;
    if (cl !== undefined) {
      let sum = this.summaries.get(cl);
      if (sum === undefined) this.summaries.set(cl, (sum = new ClusterSummary(cl)));
      sum.add(rec);
    }
  }

  /** Dashboard aggregates of every cluster that served a request since start or the last /reset_counters. */
  clusterSummaries(): ReadonlyMap<string, ClusterSummary> {
    return this.summaries;
  }

  /** An L4 connection reached its upstream: istio_tcp_connections_opened_total; its bytes are reported through the meter. */
  tcpOpened(rec: RequestRecord): TcpMeter {
    return this.istio.tcpOpened(rec);
  }

  /** An L4 connection ended: istio_tcp_connections_closed_total and the bytes not reported yet (istio-metrics.ts). */
  tcpClosed(rec: RequestRecord, meter: TcpMeter | undefined): void {
    this.istio.tcpClosed(rec, meter);
  }

  /** The counters of one Envoy cluster (`outbound|9080|v1|reviews.default.svc.cluster.local`), created on first use. */
  cluster(name: string): ClusterCounters {
    let c = this.clusters.get(name);
    if (c === undefined) {
      c = new ClusterCounters(name);
      this.clusters.set(name, c);
    }
    return c;
  }

  /** Forget the counters of clusters no longer in the configuration (keeps the exposition bounded across reloads). */
  retainClusters(names: ReadonlySet<string>): void {
    for (const n of this.clusters.keys()) if (!names.has(n)) this.clusters.delete(n);
    for (const n of this.summaries.keys()) if (!names.has(n)) this.summaries.delete(n);
  }

  /** Forget the counters of these clusters (removed from the configuration by a change compiled from the previous one). */
  forgetClusters(names: Iterable<string>): void {
    for (const n of names) { this.clusters.delete(n); this.summaries.delete(n); }
  }

  /** A counter of Remora's own (name must end in `_total`). Same name + labels returns the same cell. */
  counter(name: string, help: string, labels?: Labels): Counter {
    return this.own.counter(name, help, labels);
  }

  gauge(name: string, help: string, labels?: Labels): Gauge {
    return this.own.gauge(name, help, labels);
  }

  /** A metric whose value is read at scrape time (e.g. `remora_tracing_spans_dropped_total` from the tracer). */
  observe(name: string, type: OwnType, help: string, fn: () => number, labels?: Labels): void {
    this.own.observe(name, type, help, fn, labels);
  }

  /** `remora_config_info{version,hash} 1`: the active configuration (one series; replaces the previous one). */
  setConfigInfo(version: string, hash: string): void {
    this.own.setConfigInfo(version, hash);
  }

  /** /reset_counters: zero every counter and histogram (gauges and scrape-time observers keep their values, as in Envoy). */
  reset(): void {
    this.istio.reset();
    this.summaries.clear();
    for (const c of this.clusters.values()) c.resetCounters();
    this.own.resetCounters();
  }

  /** Prometheus text exposition (format 0.0.4). `clusters` adds membership and outlier-ejection gauges from the live cluster state. */
  render(extra?: { clusters?: readonly ClusterView[] }): string {
    const out: string[] = [];
    this.istio.render(out);
    renderClusterStats(out, this.clusters.values(), extra?.clusters ?? []);
    this.own.render(out);
    renderProcess(out, this.processInfo());
    return out.join('');
  }
}
