/**
 * Micro-benchmark: per-request cost of tracing on the hot path (startServer → startAttempt → headers → end × 2) for
 * unsampled requests (with and without propagating the decision), sampled requests, and sampled parents.
 * Spans are encoded and go through the real export queue to a transport that discards them. Run: see docs/observability.md.
 */
import { createTracing, type Send } from '../../src/telemetry/otel-sdk.js';
import type { ProxyTracing, ServerAttrs } from '../../src/telemetry/tracing.js';
import type { RequestRecord } from '../../src/model.js';

const N = Number(process.env.N ?? 300_000);
const noop: Send = () => Promise.resolve({ status: 'success' });
const attrs: ServerAttrs = { method: 'GET', path: '/reviews/1?x=1', authority: 'reviews:9080', direction: 'outbound', peer: '127.0.0.1:51234' };
const rec = {
  direction: 'outbound', startTime: 0, durationMs: 1, method: 'GET', path: '/reviews/1', protocol: 'HTTP/1.1', authority: 'reviews:9080',
  requestId: 'r', status: 200, flags: '-', details: 'via_upstream', bytesReceived: 0, bytesSent: 10, attempts: 1,
  downstreamRemoteAddress: '127.0.0.1:1', downstreamLocalAddress: '127.0.0.1:15001', requestHeaders: {},
  upstreamCluster: 'outbound|9080|v1|reviews.default.svc.cluster.local', routeName: 'r',
} satisfies RequestRecord;

function run(name: string, t: ProxyTracing, headers: Record<string, string>): void {
  let sink = 0;
  const once = () => {
    const s = t.startServer(headers, attrs);
    if (s === undefined) return;
    const c = s.startAttempt(1, { cluster: rec.upstreamCluster, upstreamHost: '10.0.0.7:9080' });
    sink += c.headers().length;
    c.end(200);
    s.end(rec);
  };
  for (let i = 0; i < 50_000; i++) once();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) once();
  const ns = Number(process.hrtime.bigint() - t0) / N;
  console.log(`${name.padEnd(62)} ${(ns / 1000).toFixed(3)} µs/request${sink < 0 ? '' : ''}`);
}

const mk = (samplingPercent: number, propagateUnsampled = true) =>
  createTracing({ send: noop, samplingPercent, serviceName: 'bench', propagateUnsampled, batch: { scheduledDelayMillis: 50 } });

run('unsampled root, decision not propagated (returns undefined)', mk(0, false), {});
run('unsampled root, decision propagated (default)', mk(0), {});
run('unsampled parent (traceparent …-00): app headers pass through', mk(100), { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00' });
run('1% sampling (Istio default), no incoming context', mk(1), {});
run('100% sampling: server + 1 client span recorded and batched', mk(100), {});
run('sampled W3C parent: extract + 2 spans', mk(0), { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' });
process.exit(0);
