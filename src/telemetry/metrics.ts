/**
 * Prometheus metrics: Istio's standard request metrics, Envoy-style per-cluster stats and Remora's own metrics,
 * kept in plain numeric structures on the hot path and rendered to the text exposition format (0.0.4) at scrape time.
 * All metric names and label names are defined in this file.
 */
import type { ClusterView, RequestRecord } from '../model.js';

/**
 * Istio's (= Envoy's default) histogram bucket bounds. Istio's bootstrap does not override Envoy's default
 * `histogram_bucket_settings`, so `istio_request_duration_milliseconds` (ms) and `istio_request_bytes` /
 * `istio_response_bytes` (bytes) all use these bounds (`sidecar.istio.io/statsHistogramBuckets` changes them there).
 */
export const ISTIO_BUCKETS: readonly number[] = Object.freeze([
  0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000,
]);

/** Istio's label names for HTTP request metrics, in the order they are rendered. */
export const ISTIO_LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_cluster',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_service',
  'destination_service_name',
  'destination_service_namespace',
  'destination_cluster',
  'request_protocol',
  'response_code',
  'grpc_response_status',
  'response_flags',
  'connection_security_policy',
] as const;

const UNKNOWN = 'unknown';

export interface MetricsOptions {
  /** This sidecar's workload identity: the `source_*` labels when it reports outbound (reporter="source"), the `destination_*` labels when it reports inbound (reporter="destination"). */
  sourceWorkload: string;
  sourceNamespace: string;
  /** `app` label of this workload (Istio: `app.kubernetes.io/name` or `app`); 'unknown' when absent. */
  sourceApp?: string;
  /** `version` label of this workload; 'unknown' when absent. */
  sourceVersion?: string;
  /** Istio `source_cluster` / `destination_cluster` (the multicluster id); default 'Kubernetes', Istio's default cluster id. */
  clusterId?: string;
  /** Process facts at scrape time; injectable for tests. Default reads `process.*`. */
  processInfo?: () => ProcessInfo;
}

export interface ProcessInfo {
  cpuUserSeconds: number;
  cpuSystemSeconds: number;
  residentMemoryBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  startTimeSeconds: number;
}

// === Envoy cluster stats ===

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

// === Istio request series ===

const NB = ISTIO_BUCKETS.length;

/** Per-bucket counts (not cumulative; the renderer accumulates) with the +Inf bucket in the last slot. */
function bucketIndex(v: number): number {
  // Linear scan from the low end: most durations and many bodies fall in the first few buckets.
  let i = 0;
  while (i < NB && v > ISTIO_BUCKETS[i]!) i++;
  return i;
}

type SeriesIndex = Map<string, Map<string, Map<number, Map<string, Map<string, RequestSeries>>>>>;

class RequestSeries {
  requests = 0;
  readonly duration = new Float64Array(NB + 1);
  durationSum = 0;
  readonly reqBytes = new Float64Array(NB + 1);
  reqBytesSum = 0;
  readonly respBytes = new Float64Array(NB + 1);
  respBytesSum = 0;
  /** Rendered `name="value",…` (without braces), escaped once at creation. */
  constructor(
    readonly labels: string,
    readonly svcName: string,
    readonly svcNamespace: string,
  ) {}
}

/**
 * Istio's clusters for traffic to no known service: their records carry the cluster's name as
 * destination_service_name and `unknown` as destination_service and destination_service_namespace, never the raw
 * Host or address (a label value per destination would be an unbounded set of series). Istio's TCP labels are these;
 * its HTTP labels put the Host in destination_service unless the stats plugin's disable_host_header_fallback is set,
 * which Remora always does (docs/observability.md).
 */
const UNKNOWN_DESTINATION_CLUSTERS: ReadonlySet<string> = new Set(['PassthroughCluster', 'BlackHoleCluster', 'InboundPassthroughCluster']);

/** destination_service, destination_service_name, destination_service_namespace of a record (unescaped). */
function serviceLabels(rec: RequestRecord): [string, string, string] {
  const cl = rec.upstreamCluster;
  if (cl !== undefined && UNKNOWN_DESTINATION_CLUSTERS.has(cl)) return [UNKNOWN, cl, UNKNOWN];
  return [rec.destinationService || UNKNOWN, rec.destinationServiceName || UNKNOWN, rec.destinationServiceNamespace || UNKNOWN];
}

/** The index key of a record's destination service: the cluster's name for the unknown-destination clusters. */
function serviceKey(rec: RequestRecord): string {
  const cl = rec.upstreamCluster;
  return cl !== undefined && UNKNOWN_DESTINATION_CLUSTERS.has(cl) ? cl : rec.destinationService ?? '';
}

/** Istio's four TCP metrics of one label set (`istio_tcp_*`). */
class TcpSeries {
  opened = 0;
  closed = 0;
  sent = 0;
  received = 0;
  constructor(readonly labels: string) {}
}

/**
 * The byte reporting of one open L4 connection: what was already added to its series, so each report (periodic while
 * open, the last at close) adds only the difference.
 */
export class TcpMeter {
  private reportedIn = 0;
  private reportedOut = 0;
  constructor(readonly series: TcpSeries) {}

  /** Cumulative bytes received from and sent to the downstream so far. */
  bytes(received: number, sent: number): void {
    const s = this.series;
    s.received += received - this.reportedIn;
    s.sent += sent - this.reportedOut;
    this.reportedIn = received;
    this.reportedOut = sent;
  }
}

// === Dashboard aggregates (admin `GET /`, `/debug/dashboard`) ===

/**
 * Latency buckets for dashboard percentiles, HDR-style so that bucketing is a few integer operations on the hot path
 * (no Math.log): values in units of 1/16 ms (62.5 µs); the first 8 units are linear, then every octave is split in
 * 8 sub-buckets. A reported percentile is its bucket's upper bound, at most 12.5 % above the truth (above 0.5 ms);
 * values over 2^31 units (≈ 37 h) land in the last bucket. Finer than Istio's 19 buckets, which cannot tell 11 ms from 24 ms.
 */
export const LATENCY_MIN_MS = 1 / 16;
const SUB_BITS = 3;
const SUB = 1 << SUB_BITS;
export const LATENCY_BUCKETS = SUB + (31 - SUB_BITS) * SUB;

export function latencyBucket(ms: number): number {
  if (!(ms > 0)) return 0;
  const v = ms >= 0x7ffffff ? 0x7fffffff : (ms * 16) | 0;
  if (v < SUB) return v;
  const e = 31 - Math.clz32(v); // octave of the leading bit, ≥ SUB_BITS
  return SUB + (e - SUB_BITS) * SUB + ((v >>> (e - SUB_BITS)) & (SUB - 1));
}

/** Upper bound (exclusive, ms) of bucket `i`. */
export function latencyBucketUpperMs(i: number): number {
  if (i < SUB) return (i + 1) / 16;
  const e = ((i - SUB) >>> SUB_BITS) + SUB_BITS;
  const sub = (i - SUB) & (SUB - 1);
  return ((SUB + sub + 1) * 2 ** (e - SUB_BITS)) / 16;
}

/** The q-quantile (0..1) of a latency histogram as its bucket's upper bound (ms); undefined when empty. */
export function latencyPercentile(buckets: ArrayLike<number>, q: number): number | undefined {
  let n = 0;
  for (let i = 0; i < buckets.length; i++) n += buckets[i]!;
  if (n === 0) return undefined;
  const rank = Math.max(1, Math.ceil(q * n));
  let acc = 0;
  for (let i = 0; i < buckets.length; i++) {
    acc += buckets[i]!;
    if (acc >= rank) return latencyBucketUpperMs(i);
  }
  return latencyBucketUpperMs(buckets.length - 1);
}

/**
 * What the dashboard shows of one upstream cluster, from finished downstream requests (the cluster that served the
 * last attempt): requests, successes, a latency histogram and requests per route name (for the observed weight split).
 */
export class ClusterSummary {
  requests = 0;
  /** Requests answered with a status other than 5xx and 0 (Envoy's success rate counts non-5xx as success). */
  success = 0;
  readonly latency = new Float64Array(LATENCY_BUCKETS);
  /** Route name → requests routed to this cluster; bounded by the configured routes. A cell object so counting is one lookup. */
  readonly byRoute = new Map<string, { requests: number }>();

  constructor(readonly name: string) {}

  add(rec: RequestRecord): void {
    this.requests++;
    const st = rec.status;
    if (st !== 0 && st < 500) this.success++;
    this.latency[latencyBucket(rec.durationMs)]! += 1;
    const route = rec.routeName ?? '';
    const cell = this.byRoute.get(route);
    if (cell !== undefined) cell.requests++;
    else this.byRoute.set(route, { requests: 1 });
  }
}

// === Remora's own metrics (generic helpers) ===

export interface Counter {
  inc(n?: number): void;
  readonly value: number;
}
export interface Gauge {
  set(v: number): void;
  inc(n?: number): void;
  dec(n?: number): void;
  readonly value: number;
}

type Labels = Readonly<Record<string, string>>;
type OwnType = 'counter' | 'gauge';

interface OwnFamily {
  name: string;
  type: OwnType;
  help: string;
  series: Map<string, { labels: string; value: number; fn?: () => number }>;
}

class SimpleMetric implements Counter, Gauge {
  constructor(private readonly cell: { value: number }) {}
  get value(): number {
    return this.cell.value;
  }
  inc(n = 1): void {
    this.cell.value += n;
  }
  dec(n = 1): void {
    this.cell.value -= n;
  }
  set(v: number): void {
    this.cell.value = v;
  }
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** The metrics registry the handler records into and the admin/stats servers render. */
export class Metrics {
  /** Every series by its full label key (the source of truth for rendering). */
  private readonly series = new Map<string, RequestSeries>();
  /** Hot-path index: destination service → version → status → flags → grpc status → series. */
  private outbound: SeriesIndex = new Map();
  private inbound: SeriesIndex = new Map();
  /** Inbound requests over mutual TLS, per peer SPIFFE ID (the string of the connection's identity, reused). */
  private inboundPeers = new Map<string, SeriesIndex>();
  /** Istio's TCP series (L4 connections: TCP proxy, CONNECT), by label key. */
  private readonly tcpSeries = new Map<string, TcpSeries>();
  private readonly clusters = new Map<string, ClusterCounters>();
  /** Dashboard aggregates by upstream cluster name. */
  private readonly summaries = new Map<string, ClusterSummary>();
  private readonly own = new Map<string, OwnFamily>();
  /** Pre-rendered label fragments that do not depend on the request. */
  private readonly outboundSource: string;
  private readonly inboundDestination: string;
  private readonly clusterId: string;
  private readonly app: string;
  private readonly version: string;
  private readonly processInfo: () => ProcessInfo;

  /** `remora_config_reloads_total`: successful config reloads (incremented by the config store). */
  readonly configReloads: Counter;
  /** `remora_config_reload_failures_total`: rejected configs (the last good one stays active). */
  readonly configReloadFailures: Counter;

  constructor(private readonly opts: MetricsOptions) {
    this.clusterId = escapeLabelValue(opts.clusterId ?? 'Kubernetes');
    this.app = escapeLabelValue(opts.sourceApp || UNKNOWN);
    this.version = escapeLabelValue(opts.sourceVersion || UNKNOWN);
    const wl = escapeLabelValue(opts.sourceWorkload || UNKNOWN);
    const ns = escapeLabelValue(opts.sourceNamespace || UNKNOWN);
    this.outboundSource =
      `reporter="source",source_workload="${wl}",source_workload_namespace="${ns}",source_principal="unknown",` +
      `source_app="${this.app}",source_version="${this.version}",source_cluster="${this.clusterId}"`;
    this.inboundDestination =
      `destination_workload="${wl}",destination_workload_namespace="${ns}",destination_principal="unknown",` +
      `destination_app="${this.app}",destination_version="${this.version}"`;
    this.processInfo = opts.processInfo ?? defaultProcessInfo;
    this.configReloads = this.counter('remora_config_reloads_total', 'Successful configuration reloads.');
    this.configReloadFailures = this.counter(
      'remora_config_reload_failures_total',
      'Configuration reloads rejected by validation; the last good configuration stays active.',
    );
  }

  /**
   * Record one finished downstream request into the Istio standard metrics. Allocation-free for an existing label
   * set apart from the lookup key string.
   */
  recordRequest(rec: RequestRecord): void {
    const s = this.seriesFor(rec);
    s.requests++;
    const d = rec.durationMs;
    s.duration[bucketIndex(d)]! += 1;
    s.durationSum += d;
    const rb = rec.bytesReceived;
    s.reqBytes[bucketIndex(rb)]! += 1;
    s.reqBytesSum += rb;
    const sb = rec.bytesSent;
    s.respBytes[bucketIndex(sb)]! += 1;
    s.respBytesSum += sb;
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

  /**
   * Find the series of a record through nested maps keyed by the record's own strings. Those strings come from the
   * config snapshot and are reused request after request, so V8 has their hashes cached; a concatenated key would be
   * a fresh string to flatten and hash on every request (measured ~3× slower).
   */
  private seriesFor(rec: RequestRecord): RequestSeries {
    const status = rec.status;
    const flags = rec.flags || '-';
    const grpc = grpcStatusOf(rec);
    const peer = rec.peer;
    let byService: SeriesIndex;
    if (rec.direction !== 'inbound') byService = this.outbound;
    else if (peer === undefined) byService = this.inbound;
    else {
      let idx = this.inboundPeers.get(peer.spiffeId);
      if (idx === undefined) this.inboundPeers.set(peer.spiffeId, (idx = new Map()));
      byService = idx;
    }
    // Traffic to no known service is indexed (and labelled) by its cluster, never by its Host (see serviceLabels).
    const cl = rec.upstreamCluster;
    const unknownDest = cl !== undefined && UNKNOWN_DESTINATION_CLUSTERS.has(cl);
    const svc = unknownDest ? cl : rec.destinationService ?? '';
    let byVersion = byService.get(svc);
    if (byVersion === undefined) byService.set(svc, (byVersion = new Map()));
    const ver = rec.destinationVersion ?? '';
    let byStatus = byVersion.get(ver);
    if (byStatus === undefined) byVersion.set(ver, (byStatus = new Map()));
    let byFlags = byStatus.get(status);
    if (byFlags === undefined) byStatus.set(status, (byFlags = new Map()));
    let leaf = byFlags.get(flags);
    if (leaf === undefined) byFlags.set(flags, (leaf = new Map()));
    let s = leaf.get(grpc);
    const name = unknownDest ? cl : rec.destinationServiceName ?? '';
    const ns = unknownDest ? '' : rec.destinationServiceNamespace ?? '';
    if (s !== undefined && s.svcName === name && s.svcNamespace === ns) return s;
    // First request of this label set, or the rare record whose service name/namespace differ for the same FQDN.
    const full = JSON.stringify([rec.direction, svc, name, ns, ver, status, flags, grpc, peer?.spiffeId ?? '']);
    s = this.series.get(full);
    if (s === undefined) {
      s = new RequestSeries(this.renderRequestLabels(rec, status, flags, grpc), name, ns);
      this.series.set(full, s);
    }
    leaf.set(grpc, s);
    return s;
  }

  private renderRequestLabels(rec: RequestRecord, status: number, flags: string, grpc: string): string {
    const protocol = `request_protocol="${requestProtocol(rec)}",response_code="${status}",grpc_response_status="${escapeLabelValue(grpc)}",`;
    return this.renderLabels(rec, protocol, flags);
  }

  /**
   * Istio's labels of a record, in Istio's order; `protocol` is the request_protocol … grpc_response_status part (the
   * TCP metrics have request_protocol alone). Shared by the request and TCP metrics, so both carry the same identity
   * labels, mTLS included.
   */
  private renderLabels(rec: RequestRecord, protocol: string, flags: string): string {
    const [svcRaw, svcNameRaw, svcNsRaw] = serviceLabels(rec);
    const svc = escapeLabelValue(svcRaw);
    const svcName = escapeLabelValue(svcNameRaw);
    const svcNs = escapeLabelValue(svcNsRaw);
    const tail =
      `,destination_service="${svc}",destination_service_name="${svcName}",destination_service_namespace="${svcNs}",` +
      `destination_cluster="${rec.direction === 'inbound' ? this.clusterId : UNKNOWN}",${protocol}response_flags="${escapeLabelValue(flags)}",` +
      // Outbound plaintext: the source cannot know the server's policy (Istio reports 'unknown'); inbound plaintext is
      // 'none', inbound over verified mTLS 'mutual_tls'.
      `connection_security_policy="${rec.direction === 'inbound' ? (rec.peer !== undefined ? 'mutual_tls' : 'none') : UNKNOWN}"`;
    if (rec.direction === 'inbound') {
      // Without Istio's metadata exchange the peer's workload is unknown; over mTLS its principal and namespace are not.
      const p = rec.peer;
      return (
        `reporter="destination",source_workload="unknown",` +
        `source_workload_namespace="${p !== undefined ? escapeLabelValue(p.namespace) : UNKNOWN}",source_principal="${p !== undefined ? escapeLabelValue(p.spiffeId) : UNKNOWN}",` +
        `source_app="unknown",source_version="unknown",source_cluster="unknown",` +
        this.inboundDestination + tail
      );
    }
    // Outbound: the destination workload's name is not known without Istio's metadata exchange. Its namespace is the
    // service's (a Service or ServiceEntry only selects workloads in its own namespace); the subset stands in for its version.
    const ver = escapeLabelValue(rec.destinationVersion || UNKNOWN);
    return (
      this.outboundSource +
      `,destination_workload="unknown",destination_workload_namespace="${svcNs}",destination_principal="unknown",` +
      `destination_app="unknown",destination_version="${ver}"` + tail
    );
  }

  // === Istio TCP metrics (L4 connections) ===

  /** The TCP series of a connection's record (its direction, destination, flags and mTLS peer), made on first use. */
  private tcpSeriesFor(rec: RequestRecord): TcpSeries {
    const flags = rec.flags || '-';
    const key = JSON.stringify([rec.direction, serviceKey(rec), rec.destinationServiceName ?? '', rec.destinationServiceNamespace ?? '', rec.destinationVersion ?? '', flags, rec.peer?.spiffeId ?? '']);
    let s = this.tcpSeries.get(key);
    if (s === undefined) {
      s = new TcpSeries(this.renderLabels(rec, 'request_protocol="tcp",', flags));
      this.tcpSeries.set(key, s);
    }
    return s;
  }

  /** An L4 connection reached its upstream: istio_tcp_connections_opened_total; its bytes are reported through the meter. */
  tcpOpened(rec: RequestRecord): TcpMeter {
    const s = this.tcpSeriesFor(rec);
    s.opened++;
    return new TcpMeter(s);
  }

  /**
   * An L4 connection ended: istio_tcp_connections_closed_total and the bytes not reported yet. Without a meter it
   * never reached an upstream (refused locally: BlackHoleCluster, a denied connection, UF, UO): opened and closed at
   * once under its flag, as Remora has always counted them.
   */
  tcpClosed(rec: RequestRecord, meter: TcpMeter | undefined): void {
    if (meter !== undefined) {
      meter.bytes(rec.bytesReceived, rec.bytesSent);
      meter.series.closed++;
      return;
    }
    const s = this.tcpSeriesFor(rec);
    s.opened++;
    s.closed++;
    s.received += rec.bytesReceived;
    s.sent += rec.bytesSent;
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

  /** A counter of Remora's own (name must end in `_total`). Same name + labels returns the same cell. */
  counter(name: string, help: string, labels?: Labels): Counter {
    if (!name.endsWith('_total')) throw new Error(`counter ${name} must end in _total`);
    return new SimpleMetric(this.cell(name, 'counter', help, labels));
  }

  gauge(name: string, help: string, labels?: Labels): Gauge {
    return new SimpleMetric(this.cell(name, 'gauge', help, labels));
  }

  /** A metric whose value is read at scrape time (e.g. `remora_tracing_spans_dropped_total` from the tracer). */
  observe(name: string, type: OwnType, help: string, fn: () => number, labels?: Labels): void {
    if (type === 'counter' && !name.endsWith('_total')) throw new Error(`counter ${name} must end in _total`);
    const cell = this.cell(name, type, help, labels);
    cell.fn = fn;
  }

  /** `remora_config_info{version,hash} 1`: the active configuration (one series; replaces the previous one). */
  setConfigInfo(version: string, hash: string): void {
    const fam = this.family('remora_config_info', 'gauge', 'The active configuration version and content hash (value is always 1).');
    fam.series.clear();
    this.cell('remora_config_info', 'gauge', '', { version, hash }).value = 1;
  }

  private family(name: string, type: OwnType, help: string): OwnFamily {
    let fam = this.own.get(name);
    if (fam === undefined) {
      if (!METRIC_NAME.test(name)) throw new Error(`invalid metric name ${JSON.stringify(name)}`);
      fam = { name, type, help, series: new Map() };
      this.own.set(name, fam);
    } else if (fam.type !== type) {
      throw new Error(`metric ${name} already registered as a ${fam.type}`);
    }
    return fam;
  }

  private cell(name: string, type: OwnType, help: string, labels?: Labels): { labels: string; value: number; fn?: () => number } {
    const fam = this.family(name, type, help);
    const rendered = labels ? renderLabels(labels) : '';
    let c = fam.series.get(rendered);
    if (c === undefined) {
      c = { labels: rendered, value: 0 };
      fam.series.set(rendered, c);
    }
    return c;
  }

  /** /reset_counters: zero every counter and histogram (gauges and scrape-time observers keep their values, as in Envoy). */
  reset(): void {
    this.series.clear();
    this.outbound = new Map();
    this.inbound = new Map();
    this.inboundPeers = new Map();
    // Open connections keep their series (their meters point at them): zeroed in place.
    for (const t of this.tcpSeries.values()) { t.opened = 0; t.closed = 0; t.sent = 0; t.received = 0; }
    this.summaries.clear();
    for (const c of this.clusters.values()) c.resetCounters();
    for (const fam of this.own.values()) {
      if (fam.type !== 'counter') continue;
      for (const c of fam.series.values()) if (!c.fn) c.value = 0;
    }
  }

  /** Prometheus text exposition (format 0.0.4). `clusters` adds membership and outlier-ejection gauges from the live cluster state. */
  render(extra?: { clusters?: readonly ClusterView[] }): string {
    const out: string[] = [];
    this.renderIstio(out);
    this.renderTcp(out);
    this.renderClusters(out, extra?.clusters ?? []);
    this.renderOwn(out);
    this.renderProcess(out);
    return out.join('');
  }

  private renderIstio(out: string[]): void {
    if (this.series.size === 0) return;
    out.push('# HELP istio_requests_total Requests handled by this proxy (Istio standard metric).\n# TYPE istio_requests_total counter\n');
    for (const s of this.series.values()) out.push(`istio_requests_total{${s.labels}} ${s.requests}\n`);
    renderHistogram(out, 'istio_request_duration_milliseconds', 'Request duration in milliseconds (Istio standard metric).', this.series, (s) => s.duration, (s) => s.durationSum);
    renderHistogram(out, 'istio_request_bytes', 'HTTP request body sizes in bytes (Istio standard metric).', this.series, (s) => s.reqBytes, (s) => s.reqBytesSum);
    renderHistogram(out, 'istio_response_bytes', 'HTTP response body sizes in bytes (Istio standard metric).', this.series, (s) => s.respBytes, (s) => s.respBytesSum);
  }

  private renderTcp(out: string[]): void {
    if (this.tcpSeries.size === 0) return;
    const family = (name: string, help: string, get: (s: TcpSeries) => number): void => {
      out.push(`# HELP ${name} ${help}\n# TYPE ${name} counter\n`);
      for (const s of this.tcpSeries.values()) out.push(`${name}{${s.labels}} ${get(s)}\n`);
    };
    family('istio_tcp_connections_opened_total', 'TCP connections opened (Istio standard metric).', (s) => s.opened);
    family('istio_tcp_connections_closed_total', 'TCP connections closed (Istio standard metric).', (s) => s.closed);
    family('istio_tcp_sent_bytes_total', 'Bytes sent to the downstream during TCP connections (Istio standard metric).', (s) => s.sent);
    family('istio_tcp_received_bytes_total', 'Bytes received from the downstream during TCP connections (Istio standard metric).', (s) => s.received);
  }

  private renderClusters(out: string[], views: readonly ClusterView[]): void {
    const cs = [...this.clusters.values()];
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

  private renderOwn(out: string[]): void {
    for (const fam of this.own.values()) {
      if (fam.series.size === 0) continue;
      out.push(`# HELP ${fam.name} ${escapeHelp(fam.help)}\n# TYPE ${fam.name} ${fam.type}\n`);
      for (const c of fam.series.values()) {
        const v = c.fn ? safeRead(c.fn) : c.value;
        out.push(c.labels ? `${fam.name}{${c.labels}} ${formatValue(v)}\n` : `${fam.name} ${formatValue(v)}\n`);
      }
    }
  }

  private renderProcess(out: string[]): void {
    const p = this.processInfo();
    out.push(
      '# HELP process_cpu_user_seconds_total User CPU time spent in seconds.\n# TYPE process_cpu_user_seconds_total counter\n' +
        `process_cpu_user_seconds_total ${formatValue(p.cpuUserSeconds)}\n` +
        '# HELP process_cpu_system_seconds_total System CPU time spent in seconds.\n# TYPE process_cpu_system_seconds_total counter\n' +
        `process_cpu_system_seconds_total ${formatValue(p.cpuSystemSeconds)}\n` +
        '# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n# TYPE process_cpu_seconds_total counter\n' +
        `process_cpu_seconds_total ${formatValue(p.cpuUserSeconds + p.cpuSystemSeconds)}\n` +
        '# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\n' +
        `process_resident_memory_bytes ${formatValue(p.residentMemoryBytes)}\n` +
        '# HELP nodejs_heap_size_used_bytes V8 heap used in bytes.\n# TYPE nodejs_heap_size_used_bytes gauge\n' +
        `nodejs_heap_size_used_bytes ${formatValue(p.heapUsedBytes)}\n` +
        '# HELP nodejs_heap_size_total_bytes V8 heap size in bytes.\n# TYPE nodejs_heap_size_total_bytes gauge\n' +
        `nodejs_heap_size_total_bytes ${formatValue(p.heapTotalBytes)}\n` +
        '# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n# TYPE process_start_time_seconds gauge\n' +
        `process_start_time_seconds ${formatValue(p.startTimeSeconds)}\n`,
    );
  }
}

function renderHistogram(
  out: string[],
  name: string,
  help: string,
  series: Map<string, RequestSeries>,
  buckets: (s: RequestSeries) => Float64Array,
  sum: (s: RequestSeries) => number,
): void {
  out.push(`# HELP ${name} ${help}\n# TYPE ${name} histogram\n`);
  for (const s of series.values()) {
    const b = buckets(s);
    let acc = 0;
    for (let i = 0; i < NB; i++) {
      acc += b[i]!;
      out.push(`${name}_bucket{${s.labels},le="${LE[i]}"} ${acc}\n`);
    }
    acc += b[NB]!;
    out.push(`${name}_bucket{${s.labels},le="+Inf"} ${acc}\n${name}_sum{${s.labels}} ${formatValue(sum(s))}\n${name}_count{${s.labels}} ${acc}\n`);
  }
}

/** `le` values formatted like Go's strconv 'g' (what Envoy/Prometheus clients emit: `3.6e+06`), so series match Istio's. */
export function formatLe(v: number): string {
  if (v === Infinity) return '+Inf';
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e21 || a < 1e-4 || a >= 1e6)) {
    const [m, e] = v.toExponential().split('e') as [string, string];
    const sign = e.startsWith('-') ? '-' : '+';
    const digits = e.replace(/^[+-]/, '');
    return `${m}e${sign}${digits.length < 2 ? '0' + digits : digits}`;
  }
  return String(v);
}
const LE = ISTIO_BUCKETS.map(formatLe);

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** Label value escaping of the text format: backslash, double quote and line feed. */
export function escapeLabelValue(v: string): string {
  if (!/[\\"\n]/.test(v)) return v;
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function renderLabels(labels: Labels): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(labels)) {
    if (!LABEL_NAME.test(k) || k.startsWith('__')) throw new Error(`invalid label name ${JSON.stringify(k)}`);
    parts.push(`${k}="${escapeLabelValue(v)}"`);
  }
  return parts.join(',');
}

function grpcStatusOf(rec: RequestRecord): string {
  // The proxy parses grpc-status once; reading responseHeaders would build the header object on every request.
  if ('grpcStatus' in rec) return rec.grpcStatus !== undefined && rec.grpcStatus >= 0 && rec.grpcStatus < 100 ? String(rec.grpcStatus) : '';
  const h = rec.responseHeaders?.['grpc-status'];
  const v = Array.isArray(h) ? h[0] : h;
  // Istio leaves grpc_response_status empty for non-gRPC traffic; the value is a small integer, so cardinality is bounded.
  return v !== undefined && /^\d{1,2}$/.test(v) ? v : '';
}

function requestProtocol(rec: RequestRecord): string {
  const ct = rec.requestHeaders['content-type'];
  const c = Array.isArray(ct) ? ct[0] : ct;
  return c !== undefined && c.startsWith('application/grpc') ? 'grpc' : 'http';
}

function safeRead(fn: () => number): number {
  try {
    return fn();
  } catch {
    return NaN;
  }
}

const startTimeSeconds = Math.round((Date.now() / 1000 - process.uptime()) * 1000) / 1000;
function defaultProcessInfo(): ProcessInfo {
  const cpu = process.cpuUsage();
  const mem = process.memoryUsage();
  return {
    cpuUserSeconds: cpu.user / 1e6,
    cpuSystemSeconds: cpu.system / 1e6,
    residentMemoryBytes: mem.rss,
    heapUsedBytes: mem.heapUsed,
    heapTotalBytes: mem.heapTotal,
    startTimeSeconds,
  };
}
