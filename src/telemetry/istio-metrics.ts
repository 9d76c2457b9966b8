/**
 * Istio's standard metrics: `istio_requests_total`, the request duration and size histograms and the `istio_tcp_*`
 * counters, with Istio's labels in Istio's order. Records are indexed on the hot path by their own strings and
 * rendered at scrape time; all Istio label names and label rules are defined in this file.
 */
import type { RequestRecord } from '../model.js';
import { escapeLabelValue, formatLe, formatValue } from './exposition.js';

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

/** The workload whose sidecar this is, as Istio's labels name it. */
export interface IstioWorkload {
  /** This sidecar's workload identity: the `source_*` labels when it reports outbound (reporter="source"), the `destination_*` labels when it reports inbound (reporter="destination"). */
  sourceWorkload: string;
  sourceNamespace: string;
  /** `app` label of this workload (Istio: `app.kubernetes.io/name` or `app`); 'unknown' when absent. */
  sourceApp?: string;
  /** `version` label of this workload; 'unknown' when absent. */
  sourceVersion?: string;
  /** Istio `source_cluster` / `destination_cluster` (the multicluster id); default 'Kubernetes', Istio's default cluster id. */
  clusterId?: string;
}

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

/** The Istio request and TCP series of one sidecar. */
export class IstioMetrics {
  /** Every series by its full label key (the source of truth for rendering). */
  private readonly series = new Map<string, RequestSeries>();
  /** Hot-path index: destination service → version → status → flags → grpc status → series. */
  private outbound: SeriesIndex = new Map();
  private inbound: SeriesIndex = new Map();
  /** Inbound requests over mutual TLS, per peer SPIFFE ID (the string of the connection's identity, reused). */
  private inboundPeers = new Map<string, SeriesIndex>();
  /** Istio's TCP series (L4 connections: TCP proxy, CONNECT), by label key. */
  private readonly tcpSeries = new Map<string, TcpSeries>();
  /** Pre-rendered label fragments that do not depend on the request. */
  private readonly outboundSource: string;
  private readonly inboundDestination: string;
  private readonly clusterId: string;
  private readonly app: string;
  private readonly version: string;

  constructor(opts: IstioWorkload) {
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

  /** /reset_counters: forget every request series; open connections' TCP series are zeroed in place. */
  reset(): void {
    this.series.clear();
    this.outbound = new Map();
    this.inbound = new Map();
    this.inboundPeers = new Map();
    // Open connections keep their series (their meters point at them): zeroed in place.
    for (const t of this.tcpSeries.values()) { t.opened = 0; t.closed = 0; t.sent = 0; t.received = 0; }
  }

  render(out: string[]): void {
    this.renderIstio(out);
    this.renderTcp(out);
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

const LE = ISTIO_BUCKETS.map(formatLe);

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
