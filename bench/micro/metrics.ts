/**
 * Micro-benchmark: cost per request of recording Istio's standard metrics (a counter + three histograms with 21
 * labels) with Remora's hand-written registry vs prom-client (when installed; PROM_CLIENT=/path/to/prom-client).
 * Run: see docs/observability.md ("Measured costs").
 */
import { createRequire } from 'node:module';
import { Metrics } from '../../src/telemetry/metrics.js';
import type { RequestRecord } from '../../src/model.js';

const N = Number(process.env.N ?? 1_000_000);
const SERIES = 24; // distinct label sets in rotation (services × codes × flags), a realistic busy sidecar

function records(): RequestRecord[] {
  const out: RequestRecord[] = [];
  for (let i = 0; i < SERIES; i++) {
    const svc = `svc${i % 6}`;
    out.push({
      direction: 'outbound', startTime: 0, durationMs: 0.3 + (i % 7) * 3.1, method: 'GET', path: `/p/${i}`, protocol: 'HTTP/1.1',
      authority: `${svc}:9080`, requestId: String(i), status: [200, 200, 503, 404][i % 4]!, flags: i % 4 === 2 ? 'UF' : '-',
      details: 'via_upstream', bytesReceived: 0, bytesSent: 100 * i, attempts: 1, downstreamRemoteAddress: '127.0.0.1:1',
      downstreamLocalAddress: '127.0.0.1:15001', destinationService: `${svc}.default.svc.cluster.local`, destinationServiceName: svc,
      destinationServiceNamespace: 'default', destinationVersion: 'v1', requestHeaders: {}, upstreamCluster: `outbound|9080|v1|${svc}.default.svc.cluster.local`,
    });
  }
  return out;
}

function time(name: string, fn: (i: number) => void): number {
  for (let i = 0; i < 200_000; i++) fn(i); // warm-up (JIT)
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) fn(i);
  const ns = Number(process.hrtime.bigint() - t0) / N;
  console.log(`${name.padEnd(58)} ${(ns / 1000).toFixed(3)} µs/request`);
  return ns;
}

const recs = records();
const m = new Metrics({ sourceWorkload: 'productpage-v1', sourceNamespace: 'default', sourceApp: 'productpage', sourceVersion: 'v1' });
time('remora Metrics.recordRequest (1 counter + 3 histograms)', (i) => m.recordRequest(recs[i % SERIES]!));
const c = m.cluster('outbound|9080|v1|reviews.default.svc.cluster.local');
time('remora ClusterCounters (total++, response(code))', (i) => {
  c.upstream_rq_total++;
  c.response(recs[i % SERIES]!.status);
});
{
  const t0 = process.hrtime.bigint();
  const text = m.render();
  console.log(`${'remora render()'.padEnd(58)} ${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(2)} ms for ${text.length} bytes`);
}

const promPath = process.env.PROM_CLIENT;
let prom: any;
try {
  prom = createRequire(import.meta.url)(promPath ?? 'prom-client');
} catch {
  console.log('prom-client not installed: skipped (npm install --prefix /tmp/bench-deps prom-client@15.1.3; PROM_CLIENT=/tmp/bench-deps/node_modules/prom-client)');
}
if (prom) {
  const reg = new prom.Registry();
  const labelNames = [
    'reporter', 'source_workload', 'source_workload_namespace', 'source_principal', 'source_app', 'source_version', 'source_cluster',
    'destination_workload', 'destination_workload_namespace', 'destination_principal', 'destination_app', 'destination_version',
    'destination_service', 'destination_service_name', 'destination_service_namespace', 'destination_cluster', 'request_protocol',
    'response_code', 'grpc_response_status', 'response_flags', 'connection_security_policy',
  ];
  const buckets = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];
  const total = new prom.Counter({ name: 'istio_requests_total', help: 'x', labelNames, registers: [reg] });
  const dur = new prom.Histogram({ name: 'istio_request_duration_milliseconds', help: 'x', labelNames, buckets, registers: [reg] });
  const rqb = new prom.Histogram({ name: 'istio_request_bytes', help: 'x', labelNames, buckets, registers: [reg] });
  const rsb = new prom.Histogram({ name: 'istio_response_bytes', help: 'x', labelNames, buckets, registers: [reg] });
  const labelsOf = (r: RequestRecord) => ({
    reporter: 'source', source_workload: 'productpage-v1', source_workload_namespace: 'default', source_principal: 'unknown',
    source_app: 'productpage', source_version: 'v1', source_cluster: 'Kubernetes', destination_workload: 'unknown',
    destination_workload_namespace: 'default', destination_principal: 'unknown', destination_app: 'unknown',
    destination_version: r.destinationVersion ?? 'unknown', destination_service: r.destinationService ?? 'unknown',
    destination_service_name: r.destinationServiceName ?? 'unknown', destination_service_namespace: r.destinationServiceNamespace ?? 'unknown',
    destination_cluster: 'unknown', request_protocol: 'http', response_code: String(r.status), grpc_response_status: '',
    response_flags: r.flags, connection_security_policy: 'unknown',
  });
  time('prom-client labels object + inc + 3×observe', (i) => {
    const r = recs[i % SERIES]!;
    const l = labelsOf(r);
    total.inc(l);
    dur.observe(l, r.durationMs);
    rqb.observe(l, r.bytesReceived);
    rsb.observe(l, r.bytesSent);
  });
  const children = recs.map((r) => {
    const l = labelsOf(r);
    return { t: total.labels(l), d: dur.labels(l), q: rqb.labels(l), s: rsb.labels(l) };
  });
  time('prom-client cached .labels() children', (i) => {
    const r = recs[i % SERIES]!;
    const ch = children[i % SERIES]!;
    ch.t.inc();
    ch.d.observe(r.durationMs);
    ch.q.observe(r.bytesReceived);
    ch.s.observe(r.bytesSent);
  });
}
