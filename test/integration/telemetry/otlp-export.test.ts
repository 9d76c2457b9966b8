/**
 * OTLP/HTTP protobuf export against an in-process collector on 127.0.0.1:0, plus a collector that is down or hangs:
 * request-path calls stay immediate and lost spans are counted.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createTracing } from '../../../src/telemetry/otel-sdk.js';
import type { ProxyTracing, ServerAttrs } from '../../../src/telemetry/tracing.js';
import { REVIEWS_V1, record } from '../../unit/telemetry/records.js';
import { decodeTraceRequest, type DecodedSpan } from './otlp-decode.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const attrs: ServerAttrs = { method: 'GET', path: '/reviews/1?x=1', authority: 'reviews:9080', direction: 'outbound', peer: '127.0.0.1:51234' };

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function listen(handler: http.RequestListener): Promise<{ url: string; server: http.Server }> {
  const server = http.createServer(handler);
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      cleanups.push(
        () =>
          new Promise<void>((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      );
      resolve({ url: `http://127.0.0.1:${port}/v1/traces`, server });
    });
  });
}

function track(t: ProxyTracing): ProxyTracing {
  cleanups.push(() => t.shutdown(2000));
  return t;
}

/** One traced request with two attempts (a retry), as the handler would drive it. */
function tracedRequest(t: ProxyTracing, parentSpan = '00f067aa0ba902b7'): void {
  const server = t.startServer({ traceparent: `00-${TRACE}-${parentSpan}-01`, 'user-agent': 'curl/8.0' }, attrs)!;
  const a1 = server.startAttempt(1, { cluster: REVIEWS_V1, upstreamHost: '10.0.0.7:9080' });
  a1.end(503);
  const a2 = server.startAttempt(2, { cluster: REVIEWS_V1, upstreamHost: '10.0.0.8:9080' });
  a2.end(200);
  server.end(record({ attempts: 2, flags: '-', upstreamHost: '10.0.0.8:9080' }));
}

describe('OTLP/HTTP export', () => {
  it('delivers protobuf spans with their attributes to the collector', async () => {
    const received: DecodedSpan[] = [];
    const contentTypes: string[] = [];
    const { url } = await listen((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        contentTypes.push(`${req.method} ${req.url} ${req.headers['content-type']}`);
        received.push(...decodeTraceRequest(Buffer.concat(chunks)));
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      });
    });
    const t = track(createTracing({ endpoint: url, samplingPercent: 1, serviceName: 'productpage.default', resource: { 'k8s.namespace.name': 'default' } }));
    tracedRequest(t);
    await t.forceFlush();
    expect(contentTypes).toEqual(['POST /v1/traces application/x-protobuf']);
    expect(received).toHaveLength(3);
    const server = received.find((s) => s.kind === 2)!; // SPAN_KIND_SERVER
    const clients = received.filter((s) => s.kind === 3); // SPAN_KIND_CLIENT
    expect(server.traceId).toBe(TRACE);
    expect(server.parentSpanId).toBe('00f067aa0ba902b7');
    expect(server.name).toBe('GET');
    expect(server.resource).toMatchObject({ 'service.name': 'productpage.default', 'k8s.namespace.name': 'default' });
    expect(server.attributes).toMatchObject({
      'http.request.method': 'GET',
      'url.path': '/reviews/1',
      'server.address': 'reviews',
      'server.port': 9080,
      'http.response.status_code': 200,
      'remora.cluster': REVIEWS_V1,
      'remora.response_flags': '-',
      'remora.attempt': 2,
      'user_agent.original': 'curl/8.0',
    });
    expect(clients.map((c) => c.parentSpanId)).toEqual([server.spanId, server.spanId]);
    expect(clients.map((c) => c.attributes['http.response.status_code'])).toEqual([503, 200]);
    expect(clients[1]!.attributes['http.request.resend_count']).toBe(1);
    expect(clients[0]!.statusCode).toBe(2); // STATUS_CODE_ERROR
    expect(server.endNanos > server.startNanos).toBe(true);
    expect(t.spansDropped()).toBe(0);
  });

  it('a collector that is down: requests are unaffected and failed exports are counted', async () => {
    // Bind then close to get a port nobody listens on.
    const { url, server } = await listen(() => {});
    await new Promise<void>((r) => server.close(() => r()));
    const t = track(createTracing({ endpoint: url, samplingPercent: 100, serviceName: 'x', batch: { exportTimeoutMillis: 2000 } }));
    const start = performance.now();
    for (let i = 0; i < 50; i++) tracedRequest(t);
    const elapsed = performance.now() - start;
    expect(elapsed).toBeLessThan(200); // 150 spans recorded without waiting for the network
    await t.forceFlush().catch(() => undefined);
    expect(t.spansDropped()).toBe(150);
  });

  it('a collector that hangs: request-path calls return immediately, the bounded queue drops and counts, shutdown is bounded', async () => {
    let posts = 0;
    const { url } = await listen((req) => {
      posts++;
      req.resume(); // read the body, never answer
    });
    const t = track(
      createTracing({
        endpoint: url,
        samplingPercent: 100,
        serviceName: 'x',
        batch: { maxQueueSize: 30, maxExportBatchSize: 10, scheduledDelayMillis: 10, exportTimeoutMillis: 60_000 },
      }),
    );
    const perCall: number[] = [];
    for (let i = 0; i < 100; i++) {
      const s = performance.now();
      tracedRequest(t);
      perCall.push(performance.now() - s);
      if (i % 10 === 0) await new Promise((r) => setTimeout(r, 1)); // let the BSP start (and hang on) exports
    }
    expect(Math.max(...perCall)).toBeLessThan(50);
    // 300 spans, an export queue of 30 and exports that never finish: most are dropped, and counted.
    // The BSP exports one batch at a time: one batch of 10 hangs in flight, 30 wait in the queue, the rest is dropped.
    expect(posts).toBe(1);
    expect(t.spansDropped()).toBe(300 - 10 - 30);
    const s = performance.now();
    await t.shutdown(300);
    expect(performance.now() - s).toBeLessThan(1500);
  });

  it('retries a 503 (Retry-After honoured) and delivers; a 400 is not retried and its spans are counted', async () => {
    const answers = [503, 200, 400];
    const seen: number[] = [];
    const { url } = await listen((req, res) => {
      req.resume();
      req.on('end', () => {
        const status = answers.shift() ?? 200;
        seen.push(status);
        res.writeHead(status, status === 503 ? { 'retry-after': '0' } : {}).end();
      });
    });
    const t = track(createTracing({ endpoint: url, samplingPercent: 100, serviceName: 'x', batch: { exportTimeoutMillis: 5000 } }));
    tracedRequest(t);
    await t.forceFlush();
    expect(seen).toEqual([503, 200]);
    expect(t.spansDropped()).toBe(0);
    tracedRequest(t);
    await t.forceFlush();
    expect(seen).toEqual([503, 200, 400]);
    expect(t.spansDropped()).toBe(3);
  });

  it('exports a full batch at once and a partial one after the scheduled delay, over one kept-alive connection', async () => {
    const bodies: number[] = [];
    const sockets = new Set<unknown>();
    const { url } = await listen((req, res) => {
      sockets.add(req.socket);
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        bodies.push(decodeTraceRequest(Buffer.concat(chunks)).length);
        res.writeHead(200).end();
      });
    });
    const t = track(createTracing({ endpoint: url, samplingPercent: 100, serviceName: 'x', batch: { maxExportBatchSize: 6, scheduledDelayMillis: 200 } }));
    tracedRequest(t);
    tracedRequest(t); // 6 spans: a full batch, sent now
    await new Promise((r) => setTimeout(r, 100));
    expect(bodies).toEqual([6]);
    tracedRequest(t); // 3 spans: sent after 200 ms
    await new Promise((r) => setTimeout(r, 50));
    expect(bodies).toEqual([6]);
    await new Promise((r) => setTimeout(r, 400));
    expect(bodies).toEqual([6, 3]);
    expect(sockets.size).toBe(1);
  });
});
