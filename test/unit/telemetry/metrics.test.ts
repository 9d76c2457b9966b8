import { describe, expect, it } from 'vitest';
import { ISTIO_BUCKETS, Metrics, escapeLabelValue, formatLe } from '../../../src/telemetry/metrics.js';
import { REVIEWS_V1, record } from './records.js';

const fixedProcess = () => ({
  cpuUserSeconds: 1.5,
  cpuSystemSeconds: 0.25,
  residentMemoryBytes: 50_000_000,
  heapUsedBytes: 10_000_000,
  heapTotalBytes: 20_000_000,
  startTimeSeconds: 1_700_000_000,
});

function newMetrics(): Metrics {
  return new Metrics({ sourceWorkload: 'productpage-v1', sourceNamespace: 'default', sourceApp: 'productpage', sourceVersion: 'v1', processInfo: fixedProcess });
}

/** Parse the exposition into `name{labels}` → value and check each sample line is well formed. */
function samples(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$/.exec(line);
    expect(match, line).not.toBeNull();
    m.set(match![1]! + (match![2] ?? ''), Number(match![3]));
  }
  return m;
}

/** Find the single sample of `name` whose labels include all of `want`. */
function value(text: string, name: string, want: Record<string, string>): number {
  const hits: number[] = [];
  for (const [k, v] of samples(text)) {
    if (!k.startsWith(name + '{') && k !== name) continue;
    if (Object.entries(want).every(([l, x]) => k.includes(`${l}="${x}"`))) hits.push(v);
  }
  expect(hits.length, `${name} ${JSON.stringify(want)}`).toBe(1);
  return hits[0]!;
}

describe('Istio standard metrics', () => {
  it('counts a scripted sequence: 200s, a UT 504, a UO 503 and a retried 200', () => {
    const m = newMetrics();
    const c = m.cluster(REVIEWS_V1);
    // Handler's view of four requests: two plain 200s, one 200 after a retry (503 then 200), a 504 UT, a 503 UO.
    for (const d of [2, 7]) {
      c.upstream_rq_total++;
      c.response(200);
      m.recordRequest(record({ durationMs: d, bytesSent: 100 }));
    }
    c.upstream_rq_total += 2;
    c.upstream_rq_retry++;
    c.upstream_rq_retry_success++;
    c.response(503);
    c.response(200);
    m.recordRequest(record({ durationMs: 30, attempts: 2, bytesSent: 100 }));
    c.upstream_rq_total++;
    c.upstream_rq_timeout++;
    m.recordRequest(record({ durationMs: 15000, status: 504, flags: 'UT', details: 'response_timeout', bytesSent: 24, upstreamServiceTimeMs: undefined }));
    c.upstream_rq_pending_overflow++;
    m.recordRequest(record({ durationMs: 0.2, status: 503, flags: 'UO', details: 'overflow', bytesSent: 81, upstreamHost: undefined }));

    const text = m.render();
    const base = { reporter: 'source', source_workload: 'productpage-v1', destination_service: 'reviews.default.svc.cluster.local' };
    expect(value(text, 'istio_requests_total', { ...base, response_code: '200', response_flags: '-' })).toBe(3);
    expect(value(text, 'istio_requests_total', { ...base, response_code: '504', response_flags: 'UT' })).toBe(1);
    expect(value(text, 'istio_requests_total', { ...base, response_code: '503', response_flags: 'UO' })).toBe(1);
    // Histogram math: buckets are cumulative; 2 → le=5, 7 → le=10, 30 → le=50.
    const ok = { ...base, response_code: '200' };
    expect(value(text, 'istio_request_duration_milliseconds_bucket', { ...ok, le: '1' })).toBe(0);
    expect(value(text, 'istio_request_duration_milliseconds_bucket', { ...ok, le: '5' })).toBe(1);
    expect(value(text, 'istio_request_duration_milliseconds_bucket', { ...ok, le: '10' })).toBe(2);
    expect(value(text, 'istio_request_duration_milliseconds_bucket', { ...ok, le: '25' })).toBe(2);
    expect(value(text, 'istio_request_duration_milliseconds_bucket', { ...ok, le: '50' })).toBe(3);
    expect(value(text, 'istio_request_duration_milliseconds_bucket', { ...ok, le: '+Inf' })).toBe(3);
    expect(value(text, 'istio_request_duration_milliseconds_sum', ok)).toBe(39);
    expect(value(text, 'istio_request_duration_milliseconds_count', ok)).toBe(3);
    expect(value(text, 'istio_response_bytes_sum', ok)).toBe(300);
    expect(value(text, 'istio_request_bytes_bucket', { ...ok, le: '0.5' })).toBe(3);
    // A bound is inclusive: 15000 ms falls in le=30000 and not in le=10000.
    const ut = { ...base, response_flags: 'UT' };
    expect(value(text, 'istio_request_duration_milliseconds_bucket', { ...ut, le: '10000' })).toBe(0);
    expect(value(text, 'istio_request_duration_milliseconds_bucket', { ...ut, le: '30000' })).toBe(1);

    // Envoy cluster stats with Istio's tag extraction (cluster_name, response_code, response_code_class).
    const cl = { cluster_name: REVIEWS_V1 };
    expect(value(text, 'envoy_cluster_upstream_rq_total', cl)).toBe(5);
    expect(value(text, 'envoy_cluster_upstream_rq_retry', cl)).toBe(1);
    expect(value(text, 'envoy_cluster_upstream_rq_retry_success', cl)).toBe(1);
    expect(value(text, 'envoy_cluster_upstream_rq_timeout', cl)).toBe(1);
    expect(value(text, 'envoy_cluster_upstream_rq_pending_overflow', cl)).toBe(1);
    expect(value(text, 'envoy_cluster_upstream_rq', { ...cl, response_code_class: '2xx' })).toBe(3);
    expect(value(text, 'envoy_cluster_upstream_rq', { ...cl, response_code_class: '5xx' })).toBe(1);
    expect(value(text, 'envoy_cluster_upstream_rq', { ...cl, response_code: '503' })).toBe(1);
  });

  it('labels outbound as reporter=source and inbound as reporter=destination with Istio defaults', () => {
    const m = newMetrics();
    m.recordRequest(record());
    m.recordRequest(record({ direction: 'inbound', destinationVersion: undefined }));
    const text = m.render();
    const out = value(text, 'istio_requests_total', { reporter: 'source' });
    expect(out).toBe(1);
    const lines = text.split('\n').filter((l) => l.startsWith('istio_requests_total{'));
    const outbound = lines.find((l) => l.includes('reporter="source"'))!;
    const inbound = lines.find((l) => l.includes('reporter="destination"'))!;
    expect(outbound).toContain('source_app="productpage",source_version="v1"');
    expect(outbound).toContain('destination_version="v1"');
    expect(outbound).toContain('destination_workload="unknown"');
    expect(outbound).toContain('connection_security_policy="unknown"');
    expect(outbound).toContain('request_protocol="http"');
    expect(outbound).toContain('grpc_response_status=""');
    expect(inbound).toContain('source_workload="unknown"');
    expect(inbound).toContain('destination_workload="productpage-v1",destination_workload_namespace="default"');
    expect(inbound).toContain('destination_app="productpage",destination_version="v1"');
    expect(inbound).toContain('connection_security_policy="none"');
    // Bounded cardinality: neither the path nor the request id appear in labels.
    expect(text).not.toContain('/reviews/1');
    expect(text).not.toContain('req-1');
  });

  it('marks gRPC requests and unknown services as Istio does', () => {
    const m = newMetrics();
    m.recordRequest(
      record({
        destinationService: undefined,
        destinationServiceName: undefined,
        destinationServiceNamespace: undefined,
        destinationVersion: undefined,
        requestHeaders: { 'content-type': 'application/grpc' },
        responseHeaders: { 'grpc-status': '14' },
      }),
    );
    const line = m.render().split('\n').find((l) => l.startsWith('istio_requests_total{'))!;
    expect(line).toContain('destination_service="unknown",destination_service_name="unknown",destination_service_namespace="unknown"');
    expect(line).toContain('request_protocol="grpc"');
    expect(line).toContain('grpc_response_status="14"');
  });

  it('keeps label sets apart that share a service FQDN but differ in name or namespace', () => {
    const m = newMetrics();
    m.recordRequest(record());
    m.recordRequest(record({ destinationServiceName: 'other' }));
    m.recordRequest(record());
    m.recordRequest(record({ destinationServiceName: 'other' }));
    m.recordRequest(record({ status: 201 }));
    const text = m.render();
    expect(value(text, 'istio_requests_total', { destination_service_name: 'reviews', response_code: '200' })).toBe(2);
    expect(value(text, 'istio_requests_total', { destination_service_name: 'other' })).toBe(2);
    expect(value(text, 'istio_requests_total', { response_code: '201' })).toBe(1);
  });

  it('escapes label values', () => {
    expect(escapeLabelValue('a\\b"c\nd')).toBe('a\\\\b\\"c\\nd');
    const m = newMetrics();
    m.recordRequest(record({ destinationService: 'we"ird\\svc\nx' }));
    m.gauge('remora_test_gauge', 'help with \\ and\nnewline', { k: 'v"1' }).set(2);
    const text = m.render();
    expect(text).toContain('destination_service="we\\"ird\\\\svc\\nx"');
    expect(text).toContain('# HELP remora_test_gauge help with \\\\ and\\nnewline');
    expect(text).toContain('remora_test_gauge{k="v\\"1"} 2');
  });

  it('formats le like Envoy/Go (3.6e+06)', () => {
    expect(ISTIO_BUCKETS.map(formatLe).slice(-4)).toEqual(['300000', '600000', '1.8e+06', '3.6e+06']);
    expect(formatLe(0.5)).toBe('0.5');
  });

  it('renders cluster views, own metrics and process metrics; reset zeroes counters only', () => {
    const m = newMetrics();
    m.configReloads.inc();
    m.configReloads.inc();
    m.configReloadFailures.inc();
    m.setConfigInfo('3', 'abc');
    m.setConfigInfo('4', 'def');
    let dropped = 7;
    m.observe('remora_tracing_spans_dropped_total', 'counter', 'Spans dropped.', () => dropped);
    const c = m.cluster(REVIEWS_V1);
    c.upstream_rq_total = 9;
    c.upstream_cx_active = 2;
    m.recordRequest(record());
    const view = {
      name: REVIEWS_V1,
      activeRequests: 1,
      pendingRequests: 0,
      activeRetries: 0,
      ejectionsActive: 1,
      endpoints: [
        { key: 'a', address: '10.0.0.1', port: 9080, weight: 1, labels: {}, healthy: true, healthFlags: [], ejections: 0, activeRequests: 0, totalRequests: 0, successRequests: 0, errorRequests: 0 },
        { key: 'b', address: '10.0.0.2', port: 9080, weight: 1, labels: {}, healthy: false, healthFlags: ['failed_outlier_check'], ejections: 1, activeRequests: 0, totalRequests: 0, successRequests: 0, errorRequests: 0 },
      ],
    };
    let text = m.render({ clusters: [view] });
    const cl = { cluster_name: REVIEWS_V1 };
    expect(value(text, 'envoy_cluster_membership_total', cl)).toBe(2);
    expect(value(text, 'envoy_cluster_membership_healthy', cl)).toBe(1);
    expect(value(text, 'envoy_cluster_outlier_detection_ejections_active', cl)).toBe(1);
    expect(value(text, 'remora_config_reloads_total', {})).toBe(2);
    expect(value(text, 'remora_config_reload_failures_total', {})).toBe(1);
    expect(value(text, 'remora_config_info', { version: '4', hash: 'def' })).toBe(1);
    expect(text).not.toContain('version="3"');
    expect(value(text, 'remora_tracing_spans_dropped_total', {})).toBe(7);
    expect(value(text, 'process_cpu_seconds_total', {})).toBe(1.75);
    expect(value(text, 'process_resident_memory_bytes', {})).toBe(50_000_000);

    m.reset();
    dropped = 8;
    text = m.render();
    expect(value(text, 'envoy_cluster_upstream_rq_total', cl)).toBe(0);
    expect(value(text, 'envoy_cluster_upstream_cx_active', cl)).toBe(2);
    expect(value(text, 'remora_config_reloads_total', {})).toBe(0);
    expect(value(text, 'remora_tracing_spans_dropped_total', {})).toBe(8);
    expect(text).not.toContain('istio_requests_total{');
  });

  it('rejects counters without _total and conflicting registrations', () => {
    const m = newMetrics();
    expect(() => m.counter('remora_bad', 'x')).toThrow(/_total/);
    m.gauge('remora_thing', 'x');
    expect(() => m.counter('remora_thing_total', 'x')).not.toThrow();
    expect(() => m.observe('remora_thing', 'counter', 'x', () => 1)).toThrow(/_total/);
    expect(() => m.gauge('bad-name', 'x')).toThrow(/invalid metric name/);
    expect(() => m.gauge('remora_g', 'x', { 'bad-label': 'v' })).toThrow(/invalid label name/);
  });

  it('retainClusters drops clusters that left the configuration', () => {
    const m = newMetrics();
    m.cluster('a').upstream_rq_total++;
    m.cluster('b').upstream_rq_total++;
    m.retainClusters(new Set(['b']));
    const text = m.render();
    expect(text).not.toContain('cluster_name="a"');
    expect(text).toContain('cluster_name="b"');
  });
});

describe('Istio TCP metrics and unknown destinations', () => {
  const PEER = { spiffeId: 'spiffe://cluster.local/ns/web/sa/front', namespace: 'web' };
  const tcpRecord = (over: Partial<Parameters<typeof record>[0]> = {}) => record({
    protocol: '', method: '', path: '', status: 0, details: '-', requestHeaders: {}, responseHeaders: undefined, ...over,
  });

  it('inbound TCP over mTLS carries the peer like HTTP does: mutual_tls, source_principal and namespace', () => {
    const m = newMetrics();
    const rec = tcpRecord({ direction: 'inbound', peer: PEER, upstreamCluster: 'inbound|9000||', destinationService: 'inbound|9000||', destinationServiceName: 'inbound|9000||', destinationServiceNamespace: '' });
    const meter = m.tcpOpened(rec);
    meter.bytes(10, 4);
    m.tcpClosed({ ...rec, bytesReceived: 25, bytesSent: 9 }, meter);
    const text = m.render();
    const want = { reporter: 'destination', connection_security_policy: 'mutual_tls', source_principal: PEER.spiffeId, source_workload_namespace: 'web', request_protocol: 'tcp', destination_workload: 'productpage-v1' };
    expect(value(text, 'istio_tcp_connections_opened_total', want)).toBe(1);
    expect(value(text, 'istio_tcp_connections_closed_total', want)).toBe(1);
    // Bytes: 10/4 reported while open, the rest (15/5) at close; nothing counted twice.
    expect(value(text, 'istio_tcp_received_bytes_total', want)).toBe(25);
    expect(value(text, 'istio_tcp_sent_bytes_total', want)).toBe(9);
    // The same labels as HTTP, without response_code and grpc_response_status.
    expect(text).not.toMatch(/istio_tcp_connections_opened_total\{[^}]*response_code=/);
    // Plaintext inbound: none, unknown principal.
    m.tcpClosed(tcpRecord({ direction: 'inbound', flags: 'UH', upstreamCluster: 'inbound|9000||', destinationService: 'inbound|9000||' }), undefined);
    expect(value(m.render(), 'istio_tcp_connections_opened_total', { connection_security_policy: 'none', source_principal: 'unknown', response_flags: 'UH' })).toBe(1);
  });

  it('PassthroughCluster and BlackHoleCluster: destination_service "unknown", the cluster as destination_service_name (Istio TCP labels)', () => {
    const m = newMetrics();
    for (let i = 0; i < 50; i++) {
      const rec = tcpRecord({ upstreamCluster: 'PassthroughCluster', destinationService: 'PassthroughCluster', destinationServiceName: 'PassthroughCluster', destinationServiceNamespace: '', destinationVersion: '', upstreamHost: `203.0.113.${i}:5432` });
      m.tcpClosed(rec, m.tcpOpened(rec));
    }
    m.tcpClosed(tcpRecord({ flags: 'UH', upstreamCluster: 'BlackHoleCluster', destinationService: 'BlackHoleCluster', destinationServiceName: 'BlackHoleCluster' }), undefined);
    const text = m.render();
    expect(value(text, 'istio_tcp_connections_closed_total', { destination_service: 'unknown', destination_service_name: 'PassthroughCluster', destination_service_namespace: 'unknown' })).toBe(50);
    expect(value(text, 'istio_tcp_connections_closed_total', { destination_service: 'unknown', destination_service_name: 'BlackHoleCluster', response_flags: 'UH' })).toBe(1);
  });

  it('HTTP to unknown hosts (passthrough): one bounded series, whatever the Host (it was one series per Host)', () => {
    const m = newMetrics();
    for (let i = 0; i < 100; i++) {
      const host = `random-${i}.attacker.example`;
      m.recordRequest(record({ upstreamCluster: 'PassthroughCluster', destinationService: host, destinationServiceName: `random-${i}`, destinationServiceNamespace: 'attacker', destinationVersion: undefined, authority: host }));
    }
    const text = m.render();
    const lines = text.split('\n').filter((l) => l.startsWith('istio_requests_total{'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('destination_service="unknown",destination_service_name="PassthroughCluster",destination_service_namespace="unknown"');
    expect(lines[0]).toMatch(/ 100$/);
    expect(text).not.toContain('attacker');
  });

  it('/reset_counters zeroes TCP series in place: an open connection keeps reporting into them', () => {
    const m = newMetrics();
    const rec = tcpRecord();
    const meter = m.tcpOpened(rec);
    meter.bytes(100, 100);
    m.reset();
    m.tcpClosed({ ...rec, bytesReceived: 130, bytesSent: 100 }, meter);
    const text = m.render();
    expect(value(text, 'istio_tcp_connections_opened_total', { destination_service: 'reviews.default.svc.cluster.local' })).toBe(0);
    expect(value(text, 'istio_tcp_connections_closed_total', { destination_service: 'reviews.default.svc.cluster.local' })).toBe(1);
    expect(value(text, 'istio_tcp_received_bytes_total', { destination_service: 'reviews.default.svc.cluster.local' })).toBe(30);
  });
});
