import { describe, expect, it } from 'vitest';
import { createTracing } from '../../../src/telemetry/otel-sdk.js';
import { decodeTraceRequest, type DecodedSpan } from '../../integration/telemetry/otlp-decode.js';
import { parseTraceState, parseTraceparent, type ServerAttrs } from '../../../src/telemetry/tracing.js';
import { REVIEWS_V1, record } from './records.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';
const attrs: ServerAttrs = { method: 'GET', path: '/reviews/1?x=1', authority: 'reviews:9080', direction: 'outbound', peer: '127.0.0.1:51234' };

/** OTLP enum values (SpanKind, StatusCode). */
const SERVER = 2;
const CLIENT = 3;
const UNSET = 0;
const ERROR = 2;

/** Tracing whose export requests are decoded in process (by the test's own protobuf reader). */
function setup(samplingPercent = 100, rand?: () => number, propagateUnsampled?: boolean) {
  const exported: DecodedSpan[] = [];
  const send = (body: Buffer) => {
    exported.push(...decodeTraceRequest(body));
    return Promise.resolve({ status: 'success' as const });
  };
  const tracing = createTracing({ send, samplingPercent, serviceName: 'productpage.default', rand, propagateUnsampled });
  const finished = async (): Promise<DecodedSpan[]> => {
    await tracing.forceFlush();
    return exported;
  };
  return { tracing, finished };
}

const toMap = (h: Array<[string, string]>) => Object.fromEntries(h);

describe('tracing', () => {
  it('W3C in: joins the trace, new span ids, W3C and B3 out with the same trace id and tracestate', async () => {
    const { tracing, finished } = setup(0); // 0%: only the sampled parent makes this request traced
    const server = tracing.startServer({ traceparent: `00-${TRACE}-${PARENT}-01`, tracestate: 'vendor=abc' }, attrs)!;
    expect(server).toBeDefined();
    expect(server.traceId).toBe(TRACE);
    expect(server.spanId).not.toBe(PARENT);
    const client = server.startAttempt(1, { cluster: REVIEWS_V1, upstreamHost: '10.0.0.7:9080' });
    const h = toMap(client.headers());
    expect(h.traceparent).toBe(`00-${TRACE}-${client.spanId}-01`);
    expect(h.tracestate).toBe('vendor=abc');
    expect(h['x-b3-traceid']).toBe(TRACE);
    expect(h['x-b3-spanid']).toBe(client.spanId);
    expect(h['x-b3-parentspanid']).toBe(server.spanId);
    expect(h['x-b3-sampled']).toBe('1');
    expect(h.b3).toBeUndefined();
    expect(client.spanId).not.toBe(server.spanId);
    client.end(200);
    server.end(record());
    const spans = await finished();
    const s = spans.find((x) => x.kind === SERVER)!;
    const c = spans.find((x) => x.kind === CLIENT)!;
    expect(s.traceId).toBe(TRACE);
    expect(s.parentSpanId).toBe(PARENT);
    expect(c.parentSpanId).toBe(server.spanId);
    expect(c.spanId).toBe(client.spanId);
  });

  it('B3 multi-header in: W3C and B3 out with the same trace id', async () => {
    const { tracing, finished } = setup(0);
    const server = tracing.startServer({ 'x-b3-traceid': TRACE, 'x-b3-spanid': PARENT, 'x-b3-sampled': '1' }, attrs)!;
    const h = toMap(server.startAttempt(1, { cluster: REVIEWS_V1, upstreamHost: '10.0.0.7:9080' }).headers());
    expect(h.traceparent!.split('-')[1]).toBe(TRACE);
    expect(h['x-b3-traceid']).toBe(TRACE);
    expect(h['x-b3-parentspanid']).toBe(server.spanId);
    server.end(record());
    const [s] = await finished();
    expect(s!.parentSpanId).toBe(PARENT);
  });

  it('single b3 header in: answered with single b3 as well as multi-header and W3C', () => {
    const { tracing } = setup(0);
    const server = tracing.startServer({ b3: `${TRACE}-${PARENT}-1` }, attrs)!;
    expect(server.traceId).toBe(TRACE);
    const client = server.startAttempt(1, { cluster: REVIEWS_V1, upstreamHost: '10.0.0.7:9080' });
    const h = toMap(client.headers());
    expect(h.b3).toBe(`${TRACE}-${client.spanId}-1-${server.spanId}`);
    expect(h.traceparent).toBe(`00-${TRACE}-${client.spanId}-01`);
  });

  it('respects an unsampled parent: nothing recorded, app headers pass through', async () => {
    const { tracing, finished } = setup(100);
    expect(tracing.startServer({ traceparent: `00-${TRACE}-${PARENT}-00` }, attrs)).toBeUndefined();
    expect(tracing.startServer({ 'x-b3-traceid': TRACE, 'x-b3-spanid': PARENT, 'x-b3-sampled': '0' }, attrs)).toBeUndefined();
    expect(tracing.startServer({ b3: '0' }, attrs)).toBeUndefined();
    expect(tracing.startServer({ 'x-b3-sampled': '0' }, attrs)).toBeUndefined();
    expect(await finished()).toEqual([]);
  });

  it('samples roots by percentage (0, 100, and a seeded 50)', () => {
    expect(setup(100).tracing.startServer({}, attrs)?.sampled).toBe(true);
    const none = setup(0, undefined, false).tracing;
    for (let i = 0; i < 100; i++) expect(none.startServer({}, attrs)).toBeUndefined();
    const seq = [0.49, 0.5, 0.1, 0.99];
    let i = 0;
    const half = setup(50, () => seq[i++]!, false).tracing;
    expect(seq.map(() => half.startServer({}, attrs) !== undefined)).toEqual([true, false, true, false]);
    // Sampling-only B3 decisions without ids: debug/accept starts a sampled root even at 0%.
    expect(setup(0).tracing.startServer({ 'x-b3-flags': '1' }, attrs)?.sampled).toBe(true);
    expect(setup(0).tracing.startServer({ b3: '1' }, attrs)?.sampled).toBe(true);
  });

  it('propagates an unsampled root decision upstream by default, recording nothing', async () => {
    const { tracing, finished } = setup(0);
    const server = tracing.startServer({}, attrs)!;
    expect(server.sampled).toBe(false);
    const c1 = server.startAttempt(1, { cluster: REVIEWS_V1, upstreamHost: '10.0.0.7:9080' });
    const c2 = server.startAttempt(2, { cluster: REVIEWS_V1, upstreamHost: '10.0.0.8:9080' });
    const h = toMap(c1.headers());
    expect(h.traceparent).toMatch(new RegExp(`^00-${server.traceId}-[0-9a-f]{16}-00$`));
    // Only the decision travels (B3's sampling-only form): nothing is recorded, so no per-attempt ids are needed.
    expect(h['x-b3-sampled']).toBe('0');
    expect(h['x-b3-traceid']).toBeUndefined();
    expect(toMap(c2.headers()).traceparent).toBe(h.traceparent);
    c1.end(503);
    c2.end(200);
    server.end(record());
    expect(await finished()).toEqual([]);
  });

  it('gives every unsampled root fresh, valid ids across refills of the random pool', () => {
    const { tracing } = setup(0);
    const seen = new Set<string>();
    // 1000 roots × 24 random bytes: the 4 KB pool is refilled several times on the way.
    for (let i = 0; i < 1000; i++) {
      const s = tracing.startServer({}, attrs)!;
      expect(s.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(s.spanId).toMatch(/^[0-9a-f]{16}$/);
      expect(s.traceId).not.toBe('0'.repeat(32));
      expect(s.spanId).not.toBe('0'.repeat(16));
      const c = s.startAttempt(1, { cluster: REVIEWS_V1, upstreamHost: '10.0.0.7:9080' });
      expect(c.spanId).toBe(s.spanId);
      expect(toMap(c.headers()).traceparent).toBe(`00-${s.traceId}-${s.spanId}-00`);
      seen.add(s.traceId);
    }
    expect(seen.size).toBe(1000);
  });

  it('records a client span per attempt as siblings, with semconv and remora attributes', async () => {
    const { tracing, finished } = setup(100);
    const server = tracing.startServer({ 'user-agent': 'curl/8.0' }, attrs)!;
    const a1 = server.startAttempt(1, { cluster: REVIEWS_V1, upstreamHost: '10.0.0.7:9080', url: 'http://10.0.0.7:9080/reviews/1?x=1' });
    a1.end(undefined, 'timeout');
    const a2 = server.startAttempt(2, { cluster: REVIEWS_V1, upstreamHost: '10.0.0.8:9080' });
    a2.end(504);
    server.end(record({ status: 504, flags: 'UT,URX', details: 'response_timeout', attempts: 2, upstreamHost: '10.0.0.8:9080' }));
    server.end(record()); // idempotent
    const spans = await finished();
    expect(spans).toHaveLength(3);
    const s = spans.find((x) => x.kind === SERVER)!;
    const clients = spans.filter((x) => x.kind === CLIENT);
    expect(clients.map((c) => c.parentSpanId)).toEqual([server.spanId, server.spanId]);
    expect(clients.every((c) => c.traceId === server.traceId)).toBe(true);
    expect(s.parentSpanId).toBe('');
    expect(s.name).toBe('GET');
    expect(s.attributes).toMatchObject({
      'http.request.method': 'GET',
      'url.path': '/reviews/1',
      'url.query': 'x=1',
      'server.address': 'reviews',
      'server.port': 9080,
      'network.peer.address': '127.0.0.1',
      'user_agent.original': 'curl/8.0',
      'http.response.status_code': 504,
      'remora.route': 'reviews.default.svc.cluster.local:9080/default',
      'remora.cluster': REVIEWS_V1,
      'remora.response_flags': 'UT,URX',
      'remora.attempt': 2,
    });
    expect(s.statusCode).toBe(ERROR);
    expect(s.statusMessage).toBe('response_timeout');
    const [c1, c2] = clients;
    expect(c1!.attributes).toMatchObject({ 'server.address': '10.0.0.7', 'server.port': 9080, 'url.full': 'http://10.0.0.7:9080/reviews/1?x=1', 'error.type': 'timeout', 'remora.attempt': 1 });
    expect(c1!.attributes['http.request.resend_count']).toBeUndefined();
    expect(c2!.attributes).toMatchObject({ 'http.request.resend_count': 1, 'http.response.status_code': 504, 'remora.attempt': 2 });
    expect(c2!.statusCode).toBe(ERROR);
    expect(c1!.statusMessage).toBe('timeout');
  });

  it('a 200 without flags is not an error; tracing without an endpoint is a no-op', async () => {
    const { tracing, finished } = setup(100);
    const server = tracing.startServer({}, { ...attrs, method: 'PROPFIND' })!;
    server.end(record());
    const [s] = await finished();
    expect(s!.statusCode).toBe(UNSET);
    expect(s!.name).toBe('HTTP');
    expect(s!.attributes).toMatchObject({ 'http.request.method': '_OTHER', 'http.request.method_original': 'PROPFIND' });
    const off = createTracing({ samplingPercent: 100, serviceName: 'x' });
    expect(off.enabled).toBe(false);
    expect(off.startServer({ traceparent: `00-${TRACE}-${PARENT}-01` }, attrs)).toBeUndefined();
  });

  it('rejects an out-of-range sampling percentage', () => {
    expect(() => setup(101)).toThrow(RangeError);
    expect(() => setup(-1)).toThrow(RangeError);
  });
});

describe('trace context parsing (as the OTel W3C and B3 propagators read it)', () => {
  it('traceparent: version 00 exactly, later versions may add fields, ff and zero ids are invalid', () => {
    expect(parseTraceparent(`00-${TRACE}-${PARENT}-01`)).toEqual({ traceId: TRACE, spanId: PARENT, sampled: true, traceState: '' });
    expect(parseTraceparent([`00-${TRACE}-${PARENT}-00`, 'ignored'])?.sampled).toBe(false);
    expect(parseTraceparent(`00-${TRACE}-${PARENT}-03`)?.sampled).toBe(true); // other flag bits are ignored
    expect(parseTraceparent(`01-${TRACE}-${PARENT}-01-future`)?.traceId).toBe(TRACE);
    expect(parseTraceparent(`00-${TRACE}-${PARENT}-01-extra`)).toBeUndefined();
    expect(parseTraceparent(`ff-${TRACE}-${PARENT}-01`)).toBeUndefined();
    expect(parseTraceparent(`00-${'0'.repeat(32)}-${PARENT}-01`)).toBeUndefined();
    expect(parseTraceparent(`00-${TRACE}-${'0'.repeat(16)}-01`)).toBeUndefined();
    expect(parseTraceparent(`00-${TRACE.toUpperCase()}-${PARENT}-01`)).toBeUndefined();
    expect(parseTraceparent(`00-${TRACE}-${PARENT}`)).toBeUndefined();
  });

  it('tracestate: valid members kept in order, invalid ones dropped, the first of a key wins, at most 32', () => {
    expect(parseTraceState('rojo=00f067aa0ba902b7, congo=t61rcWkgMzE')).toBe('rojo=00f067aa0ba902b7,congo=t61rcWkgMzE');
    expect(parseTraceState(['a=1', 'b=2'])).toBe('a=1,b=2');
    expect(parseTraceState('Bad=1,ok=2,=3,novalue,tenant@sys=4,x=a=b,x=5')).toBe('ok=2,tenant@sys=4,x=5');
    expect(parseTraceState('a=1,a=2')).toBe('a=1');
    expect(parseTraceState(Array.from({ length: 40 }, (_, i) => `k${i}=v`).join(',')).split(',')).toHaveLength(32);
    expect(parseTraceState(undefined)).toBe('');
  });

  it('B3: a 64-bit trace id is padded, debug samples, an unknown sampled value is no context', () => {
    const { tracing } = setup(0);
    const single = tracing.startServer({ b3: `${PARENT}-${PARENT}-d` }, attrs)!;
    expect(single.traceId).toBe(`${'0'.repeat(16)}${PARENT}`);
    const multi = tracing.startServer({ 'x-b3-traceid': PARENT.toUpperCase(), 'x-b3-spanid': PARENT, 'x-b3-flags': '1' }, attrs)!;
    expect(multi.traceId).toBe(`${'0'.repeat(16)}${PARENT}`);
    // Deferred decision (no sampled field) in a parent context: not sampled, as the propagators read it.
    expect(tracing.startServer({ b3: `${TRACE}-${PARENT}` }, attrs)).toBeUndefined();
    expect(tracing.startServer({ 'x-b3-traceid': TRACE, 'x-b3-spanid': PARENT }, attrs)).toBeUndefined();
    // x-b3-sampled: maybe → no parent; falls to the root decision (0 %: unsampled, propagated).
    expect(tracing.startServer({ 'x-b3-traceid': TRACE, 'x-b3-spanid': PARENT, 'x-b3-sampled': 'maybe' }, attrs)?.sampled).toBe(false);
    // An invalid traceparent falls back to B3.
    expect(tracing.startServer({ traceparent: 'garbage', 'x-b3-traceid': TRACE, 'x-b3-spanid': PARENT, 'x-b3-sampled': 'true' }, attrs)?.traceId).toBe(TRACE);
  });

  it('exports span flags: sampled, and whether the parent is remote', async () => {
    const { tracing, finished } = setup(100);
    const root = tracing.startServer({}, attrs)!;
    root.startAttempt(1, { cluster: REVIEWS_V1, upstreamHost: '10.0.0.7:9080' }).end(200);
    root.end(record());
    const child = tracing.startServer({ traceparent: `00-${TRACE}-${PARENT}-01` }, attrs)!;
    child.end(record());
    const spans = await finished();
    const server = spans.filter((s) => s.kind === SERVER);
    expect(server.map((s) => s.flags)).toEqual([0x101, 0x301]);
    expect(spans.find((s) => s.kind === CLIENT)!.flags).toBe(0x101);
    expect(server[1]!.traceState).toBe('');
    expect(server.every((s) => s.endNanos >= s.startNanos && s.startNanos > 1_700_000_000_000_000_000n)).toBe(true);
  });
});
