/**
 * The hand-written OTLP encoder against an independent decoder: protobufjs with the opentelemetry-proto messages
 * (trace/v1, common/v1, resource/v1, collector/trace/v1) written out below, so every field the encoder emits is read
 * back by someone else's wire-format reader, by field number and type.
 */
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import {
  FLAG_HAS_IS_REMOTE,
  FLAG_IS_REMOTE,
  ProtoWriter,
  RequestFrame,
  SPAN_KIND_CLIENT,
  SPAN_KIND_SERVER,
  STATUS_ERROR,
  STATUS_UNSET,
  encodeSpan,
  type SpanData,
} from '../../../src/telemetry/otlp-encode.js';
import { decodeTraceRequest } from '../../integration/telemetry/otlp-decode.js';

const PROTO = `
syntax = "proto3";
package otlp;
message AnyValue {
  oneof value {
    string string_value = 1;
    bool bool_value = 2;
    int64 int_value = 3;
    double double_value = 4;
    ArrayValue array_value = 5;
    KeyValueList kvlist_value = 6;
    bytes bytes_value = 7;
  }
}
message ArrayValue { repeated AnyValue values = 1; }
message KeyValueList { repeated KeyValue values = 1; }
message KeyValue { string key = 1; AnyValue value = 2; }
message InstrumentationScope { string name = 1; string version = 2; repeated KeyValue attributes = 3; uint32 dropped_attributes_count = 4; }
message Resource { repeated KeyValue attributes = 1; uint32 dropped_attributes_count = 2; }
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; string schema_url = 3; }
message ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; string schema_url = 3; }
message Span {
  bytes trace_id = 1;
  bytes span_id = 2;
  string trace_state = 3;
  bytes parent_span_id = 4;
  fixed32 flags = 16;
  string name = 5;
  enum SpanKind { SPAN_KIND_UNSPECIFIED = 0; SPAN_KIND_INTERNAL = 1; SPAN_KIND_SERVER = 2; SPAN_KIND_CLIENT = 3; SPAN_KIND_PRODUCER = 4; SPAN_KIND_CONSUMER = 5; }
  SpanKind kind = 6;
  fixed64 start_time_unix_nano = 7;
  fixed64 end_time_unix_nano = 8;
  repeated KeyValue attributes = 9;
  uint32 dropped_attributes_count = 10;
  message Event { fixed64 time_unix_nano = 1; string name = 2; repeated KeyValue attributes = 3; uint32 dropped_attributes_count = 4; }
  repeated Event events = 11;
  uint32 dropped_events_count = 12;
  message Link { bytes trace_id = 1; bytes span_id = 2; string trace_state = 3; repeated KeyValue attributes = 4; uint32 dropped_attributes_count = 5; fixed32 flags = 6; }
  repeated Link links = 13;
  uint32 dropped_links_count = 14;
  Status status = 15;
}
message Status {
  reserved 1;
  string message = 2;
  enum StatusCode { STATUS_CODE_UNSET = 0; STATUS_CODE_OK = 1; STATUS_CODE_ERROR = 2; }
  StatusCode code = 3;
}
`;

const Request = protobuf.parse(PROTO, { keepCase: true }).root.lookupType('otlp.ExportTraceServiceRequest');

interface Decoded {
  resource_spans: Array<{
    resource: { attributes: Array<{ key: string; value: Record<string, unknown> }> };
    scope_spans: Array<{ scope: { name: string; version?: string }; spans: Array<Record<string, unknown>> }>;
  }>;
}

function decode(body: Uint8Array): Decoded {
  const err = Request.verify(Request.decode(body));
  expect(err).toBeNull();
  return Request.toObject(Request.decode(body), { longs: String, bytes: String, defaults: false, arrays: true }) as unknown as Decoded;
}

const b64hex = (b64: string): string => Buffer.from(b64, 'base64').toString('hex');

/** Spans encoded one after the other into one writer, as one byte range for the frame. */
function spans(w: ProtoWriter, ...data: SpanData[]): Array<{ buf: Uint8Array; used: number }> {
  w.reset();
  for (const d of data) encodeSpan(w, d);
  return [{ buf: w.buf, used: w.pos }];
}

const T0 = 1_765_000_000_123_456_789n;

const full: SpanData = {
  traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
  spanId: '00f067aa0ba902b7',
  parentSpanId: 'b7ad6b7169203331',
  traceState: 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE',
  name: 'GET',
  kind: SPAN_KIND_SERVER,
  startNanos: T0,
  endNanos: T0 + 3_400_000n,
  attributes: {
    'http.request.method': 'GET',
    'url.path': '/reviews/1 – ünïcode ✓',
    'server.port': 9080,
    'remora.attempt': 0,
    'negative': -42,
    'big': 2 ** 53 - 1,
    'ratio': 0.25,
    'nan-ish': 1e300,
    'flag': true,
    'off': false,
    'empty': '',
    'skipped': undefined,
  },
  events: [{ timeNanos: T0 + 1000n, name: 'retry', attributes: { 'remora.attempt': 2 } }],
  links: [{ traceId: '0af7651916cd43dd8448eb211c80319c', spanId: '1111111111111111', traceState: 'a=b', attributes: { why: 'follows' }, flags: 0x301 }],
  statusCode: STATUS_ERROR,
  statusMessage: 'response_timeout',
  flags: 1 | FLAG_HAS_IS_REMOTE | FLAG_IS_REMOTE,
};

describe('OTLP protobuf encoder', () => {
  it('round-trips every field it emits through protobufjs', () => {
    const w = new ProtoWriter(16); // small: the writer grows while encoding
    const frame = new RequestFrame({ 'service.name': 'productpage.default', 'k8s.pod.name': 'productpage-v1-0' }, { name: 'remora', version: '0.1.0' });
    const body = frame.encode(spans(w, full));
    const d = decode(body);
    expect(d.resource_spans).toHaveLength(1);
    const rs = d.resource_spans[0]!;
    expect(rs.resource.attributes).toEqual([
      { key: 'service.name', value: { string_value: 'productpage.default' } },
      { key: 'k8s.pod.name', value: { string_value: 'productpage-v1-0' } },
    ]);
    expect(rs.scope_spans).toHaveLength(1);
    expect(rs.scope_spans[0]!.scope).toEqual({ name: 'remora', version: '0.1.0', attributes: [] });
    const [s] = rs.scope_spans[0]!.spans;
    expect(b64hex(s!.trace_id as string)).toBe(full.traceId);
    expect(b64hex(s!.span_id as string)).toBe(full.spanId);
    expect(b64hex(s!.parent_span_id as string)).toBe(full.parentSpanId);
    expect(s!.trace_state).toBe(full.traceState);
    expect(s!.name).toBe('GET');
    expect(s!.kind).toBe(2);
    expect(s!.start_time_unix_nano).toBe(String(T0));
    expect(s!.end_time_unix_nano).toBe(String(T0 + 3_400_000n));
    expect(s!.flags).toBe(0x301);
    expect(s!.status).toEqual({ message: 'response_timeout', code: 2 });
    const attrs = Object.fromEntries((s!.attributes as Array<{ key: string; value: Record<string, unknown> }>).map((kv) => [kv.key, kv.value]));
    expect(attrs).toEqual({
      'http.request.method': { string_value: 'GET' },
      'url.path': { string_value: '/reviews/1 – ünïcode ✓' },
      'server.port': { int_value: '9080' },
      'remora.attempt': { int_value: '0' },
      negative: { int_value: '-42' },
      big: { int_value: String(2 ** 53 - 1) },
      ratio: { double_value: 0.25 },
      'nan-ish': { double_value: 1e300 },
      flag: { bool_value: true },
      off: { bool_value: false },
      empty: { string_value: '' },
    });
    expect(s!.events).toEqual([{ time_unix_nano: String(T0 + 1000n), name: 'retry', attributes: [{ key: 'remora.attempt', value: { int_value: '2' } }] }]);
    const [l] = s!.links as Array<Record<string, unknown>>;
    expect(b64hex(l!.trace_id as string)).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(b64hex(l!.span_id as string)).toBe('1111111111111111');
    expect(l).toMatchObject({ trace_state: 'a=b', attributes: [{ key: 'why', value: { string_value: 'follows' } }], flags: 0x301 });
  });

  it('leaves optional fields out: no parent, trace state, status, events or links', () => {
    const w = new ProtoWriter();
    const body = new RequestFrame({ 'service.name': 'x' }, { name: 'remora' }).encode(
      spans(w, { traceId: full.traceId, spanId: full.spanId, name: 'HTTP', kind: SPAN_KIND_CLIENT, startNanos: 1n, endNanos: 2n, attributes: {}, statusCode: STATUS_UNSET, flags: 1 | FLAG_HAS_IS_REMOTE }),
    );
    const s = decode(body).resource_spans[0]!.scope_spans[0]!.spans[0]!;
    expect(Object.keys(s).filter((k) => !(Array.isArray(s[k]) && (s[k] as unknown[]).length === 0)).sort()).toEqual(['end_time_unix_nano', 'flags', 'kind', 'name', 'span_id', 'start_time_unix_nano', 'trace_id']);
    expect(s.kind).toBe(3);
    expect(s.flags).toBe(0x101);
  });

  it('sizes length prefixes of one, two and three bytes (spans of 100 B to 100 KB, 604 spans from two byte ranges)', () => {
    const w = new ProtoWriter(64);
    const sizes = [10, 200, 20_000, 100_000];
    const big = sizes.map((n, i): SpanData => ({ ...full, events: [], links: [], name: `s${i}`, attributes: { blob: 'x'.repeat(n) } }));
    const many = Array.from({ length: 600 }, (_, i): SpanData => ({ ...full, name: `many${i}` }));
    // Two byte ranges (as two queue chunks would be), and a body writer reused from a smaller request.
    const first = new ProtoWriter(64);
    const part1 = spans(first, ...big)[0]!;
    const part2 = spans(w, ...many)[0]!;
    const bodyWriter = new ProtoWriter(8);
    const frame = new RequestFrame({ 'service.name': 'x' }, { name: 'remora' });
    frame.encode([part2], bodyWriter);
    const body = frame.encode([part1, part2], bodyWriter);
    const out = decode(body).resource_spans[0]!.scope_spans[0]!.spans;
    expect(out).toHaveLength(604);
    expect(out.slice(0, 4).map((s) => ((s.attributes as Array<{ value: { string_value: string } }>)[0]!.value.string_value).length)).toEqual(sizes);
    expect(out.at(-1)!.name).toBe('many599');
    // The test collector's own reader agrees.
    const flat = decodeTraceRequest(body);
    expect(flat).toHaveLength(604);
    expect(flat[0]!.resource).toEqual({ 'service.name': 'x' });
    expect(flat[5]!).toMatchObject({ traceId: full.traceId, spanId: full.spanId, parentSpanId: full.parentSpanId, traceState: full.traceState, kind: 2, statusCode: 2, startNanos: T0 });
    expect(flat[5]!.attributes).toMatchObject({ 'server.port': 9080, negative: -42, ratio: 0.25, flag: true });
  });

  it('an empty batch is a valid request with no spans', () => {
    const d = decode(new RequestFrame({ 'service.name': 'x' }, { name: 'remora' }).encode([]));
    expect(d.resource_spans[0]!.scope_spans[0]!.spans ?? []).toEqual([]);
  });
});
