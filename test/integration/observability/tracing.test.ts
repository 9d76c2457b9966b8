/**
 * Trace context continuity through the real proxy (`remora run --trace-endpoint … --trace-sampling 100`): W3C and B3
 * in, W3C + B3 out with the same trace id and a new span id, and the exported OTLP spans (one server span, one
 * client span per attempt) received by an in-process collector after a graceful stop.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { fakeUpstream, type FakeUpstream } from '../../support/fake-upstream.js';
import { startProxy, type RunningProxy } from '../../support/proxy-harness.js';
import { OtlpReceiver, serviceEntry, stopGracefully } from './support.js';

const SERVER = 2; // OTLP SPAN_KIND_SERVER
const CLIENT = 3; // OTLP SPAN_KIND_CLIENT
const CLUSTER = 'outbound|9080||reviews.default.svc.cluster.local';

let up: FakeUpstream;
let flaky: FakeUpstream;
let receiver: OtlpReceiver;
let proxy: RunningProxy;

beforeAll(async () => {
  up = await fakeUpstream('reviews');
  flaky = await fakeUpstream('flaky');
  // /flaky answers 503 to its first request, then 200: the route's retry makes two sibling attempts.
  flaky.statusSequence(503);
  receiver = await new OtlpReceiver().start();
  const vs = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: flaky, namespace: default}
spec:
  hosts: [flaky]
  http:
  - name: flaky-retry
    retries: {attempts: 2, retryOn: 5xx}
    route: [{destination: {host: flaky}}]
`;
  proxy = await startProxy(
    { 'mesh.yaml': [serviceEntry('reviews', 9080, [{ port: up.port }]), serviceEntry('flaky', 80, [{ port: flaky.port }]), vs].join('---\n') },
    ['--trace-endpoint', receiver.url(), '--trace-sampling', '100'],
  );
});

afterAll(async () => {
  await proxy?.stop();
  await Promise.all([up?.close(), flaky?.close(), receiver?.close()]);
});

const hdr = (v: string | string[] | undefined): string => (Array.isArray(v) ? v.join(',') : v ?? '');

describe('trace context through the proxy', () => {
  const W3C_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
  const W3C_PARENT = '00f067aa0ba902b7';
  const B3_TRACE = '80f198ee56343ba864fe8b2a57d3eff7';
  const B3_PARENT = 'e457b5a2e4d86bd1';
  const B3S_TRACE = 'a3ce929d0e0e47364bf92f3577b34da6';

  it('W3C in: the upstream sees the same trace id, a new span id, and B3 headers of the same trace', async () => {
    const r = await proxy.get('/w3c', { host: 'reviews:9080', traceparent: `00-${W3C_TRACE}-${W3C_PARENT}-01`, tracestate: 'congo=t61rcWkgMzE' });
    expect(r.status).toBe(200);
    const seen = up.requests.at(-1)!.headers;
    const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(hdr(seen.traceparent));
    expect(m, hdr(seen.traceparent)).not.toBeNull();
    expect(m![1]).toBe(W3C_TRACE);
    expect(m![2]).not.toBe(W3C_PARENT);
    expect(hdr(seen.tracestate)).toContain('congo=t61rcWkgMzE');
    expect(hdr(seen['x-b3-traceid'])).toBe(W3C_TRACE);
    expect(hdr(seen['x-b3-spanid'])).toBe(m![2]);
    expect(hdr(seen['x-b3-sampled'])).toBe('1');
  });

  it('B3 multi-header in: B3 and W3C out with the same trace id', async () => {
    const r = await proxy.get('/b3', { host: 'reviews:9080', 'x-b3-traceid': B3_TRACE, 'x-b3-spanid': B3_PARENT, 'x-b3-sampled': '1' });
    expect(r.status).toBe(200);
    const seen = up.requests.at(-1)!.headers;
    expect(hdr(seen['x-b3-traceid'])).toBe(B3_TRACE);
    const span = hdr(seen['x-b3-spanid']);
    expect(span).toMatch(/^[0-9a-f]{16}$/);
    expect(span).not.toBe(B3_PARENT);
    expect(hdr(seen['x-b3-sampled'])).toBe('1');
    expect(hdr(seen.traceparent)).toBe(`00-${B3_TRACE}-${span}-01`);
  });

  it('single b3 header in: single b3, multi B3 and W3C out with the same trace id', async () => {
    const r = await proxy.get('/b3single', { host: 'reviews:9080', b3: `${B3S_TRACE}-${B3_PARENT}-1` });
    expect(r.status).toBe(200);
    const seen = up.requests.at(-1)!.headers;
    const m = /^([0-9a-f]{32})-([0-9a-f]{16})-1/.exec(hdr(seen.b3));
    expect(m, hdr(seen.b3)).not.toBeNull();
    expect(m![1]).toBe(B3S_TRACE);
    expect(m![2]).not.toBe(B3_PARENT);
    expect(hdr(seen['x-b3-traceid'])).toBe(B3S_TRACE);
    expect(hdr(seen.traceparent)).toMatch(new RegExp(`^00-${B3S_TRACE}-${m![2]}-01$`));
  });

  it('a retried request exports a server span and two sibling client spans with their attributes', async () => {
    const TRACE = '0af7651916cd43dd8448eb211c80319c';
    const PARENT = 'b7ad6b7169203331';
    const r = await proxy.get('/flaky/1?q=x', { host: 'flaky', traceparent: `00-${TRACE}-${PARENT}-01`, 'user-agent': 'obs-test/1' });
    expect(r.status).toBe(200);
    expect(flaky.requests).toHaveLength(2);
    const spanIds = flaky.requests.map((q) => /^00-[0-9a-f]{32}-([0-9a-f]{16})-01$/.exec(hdr(q.headers.traceparent))?.[1]);
    expect(spanIds[0]).toBeDefined();
    expect(spanIds[0]).not.toBe(spanIds[1]); // one client span per attempt

    // SIGTERM: the proxy drains, flushes its batch span processor and exits 0.
    expect(await stopGracefully(proxy)).toBe(0);
    expect(receiver.posts.every((p) => p === 'POST /v1/traces application/x-protobuf')).toBe(true);

    const spans = receiver.trace(TRACE);
    const server = spans.filter((s) => s.kind === SERVER);
    const clients = spans.filter((s) => s.kind === CLIENT).sort((a, b) => Number(a.attributes['remora.attempt']) - Number(b.attributes['remora.attempt']));
    expect(server).toHaveLength(1);
    expect(clients).toHaveLength(2);
    const s = server[0]!;
    // Joins the incoming trace under the app's span, never invents a parent.
    expect(s.parentSpanId).toBe(PARENT);
    expect(s.name).toBe('GET');
    expect(s.attributes).toMatchObject({
      'http.request.method': 'GET',
      'url.path': '/flaky/1',
      'server.address': 'flaky',
      'http.response.status_code': 200,
      'user_agent.original': 'obs-test/1',
      'remora.route': expect.stringContaining('flaky-retry'),
      'remora.cluster': 'outbound|80||flaky.default.svc.cluster.local',
      'remora.attempt': 2,
    });
    expect(String(s.attributes['network.peer.address'])).toBe('127.0.0.1');
    // Sibling client spans: both children of the server span, with the span ids the upstream saw.
    for (const c of clients) expect(c.parentSpanId).toBe(s.spanId);
    expect(clients.map((c) => c.spanId)).toEqual(spanIds);
    expect(clients[0]!.attributes).toMatchObject({
      'http.request.method': 'GET',
      'http.response.status_code': 503,
      'remora.cluster': 'outbound|80||flaky.default.svc.cluster.local',
      'remora.attempt': 1,
      'server.port': flaky.port,
    });
    expect(clients[1]!.attributes).toMatchObject({ 'http.response.status_code': 200, 'remora.attempt': 2, 'http.request.resend_count': 1 });
    expect(clients[0]!.statusCode).toBe(2); // STATUS_CODE_ERROR for the 503 attempt
    expect(s.statusCode).not.toBe(2);

    // The earlier requests were exported too, each in its own incoming trace.
    expect(receiver.trace(W3C_TRACE).filter((x) => x.kind === SERVER)[0]?.attributes['remora.cluster']).toBe(CLUSTER);
    expect(receiver.trace(B3_TRACE).map((x) => x.kind).sort()).toEqual([SERVER, CLIENT]);
    expect(receiver.trace(B3_TRACE).find((x) => x.kind === SERVER)?.parentSpanId).toBe(B3_PARENT);
  });
});
