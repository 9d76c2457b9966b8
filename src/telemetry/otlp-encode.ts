/**
 * A small protobuf writer for OTLP's ExportTraceServiceRequest (opentelemetry-proto, collector/trace/v1): a span is
 * encoded once, when it ends, into a few hundred bytes; an export request is the resource and scope header around the
 * encoded spans. It replaces `@opentelemetry/exporter-trace-otlp-proto` (protobufjs and the otlp-transformer), whose
 * span objects and their JS-object copies per export cost a sidecar several MB (docs/performance.md).
 *
 * Field numbers (trace/v1/trace.proto, common/v1/common.proto, resource/v1/resource.proto):
 *   ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1 }
 *   ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2 }
 *   Resource { repeated KeyValue attributes = 1 }
 *   ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2 }
 *   InstrumentationScope { string name = 1; string version = 2 }
 *   Span { bytes trace_id = 1; bytes span_id = 2; string trace_state = 3; bytes parent_span_id = 4; string name = 5;
 *          SpanKind kind = 6; fixed64 start_time_unix_nano = 7; fixed64 end_time_unix_nano = 8;
 *          repeated KeyValue attributes = 9; repeated Event events = 11; repeated Link links = 13; Status status = 15;
 *          fixed32 flags = 16 }
 *   Event { fixed64 time_unix_nano = 1; string name = 2; repeated KeyValue attributes = 3 }
 *   Link { bytes trace_id = 1; bytes span_id = 2; string trace_state = 3; repeated KeyValue attributes = 4; fixed32 flags = 6 }
 *   Status { string message = 2; StatusCode code = 3 }
 *   KeyValue { string key = 1; AnyValue value = 2 }
 *   AnyValue { oneof: string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4 }
 */

export type AttrValue = string | number | boolean;
export type Attrs = Record<string, AttrValue | undefined>;

/** SpanKind values of the OTLP enum (SPAN_KIND_*): the API's value + 1. */
export const SPAN_KIND_SERVER = 2;
export const SPAN_KIND_CLIENT = 3;
/** StatusCode (STATUS_CODE_*). */
export const STATUS_UNSET = 0;
export const STATUS_OK = 1;
export const STATUS_ERROR = 2;
/** Span.flags bits 8 and 9: whether the parent's is_remote is known, and its value. */
export const FLAG_HAS_IS_REMOTE = 0x100;
export const FLAG_IS_REMOTE = 0x200;

export interface SpanEvent {
  timeNanos: bigint;
  name: string;
  attributes?: Attrs;
}

export interface SpanLink {
  traceId: string;
  spanId: string;
  traceState?: string;
  attributes?: Attrs;
  flags?: number;
}

/** A finished span as the encoder takes it: ids as lowercase hex, times as Unix nanoseconds. */
export interface SpanData {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  traceState?: string;
  name: string;
  kind: number;
  startNanos: bigint;
  endNanos: bigint;
  attributes: Attrs;
  events?: SpanEvent[];
  links?: SpanLink[];
  statusCode: number;
  statusMessage?: string;
  /** W3C trace flags (bits 0–7) plus FLAG_HAS_IS_REMOTE / FLAG_IS_REMOTE. */
  flags: number;
}

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

/** Value of each hex digit by character code (0 for anything else; ids are validated before they get here). */
const HEX_VALUE = new Uint8Array(128);
for (let i = 0; i < 10; i++) HEX_VALUE[48 + i] = i;
for (let i = 0; i < 6; i++) HEX_VALUE[97 + i] = HEX_VALUE[65 + i] = 10 + i;

function varintSize(n: number): number {
  let s = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    s++;
  }
  return s;
}

/** A growable protobuf writer; length-delimited fields are written in place and their length prefix fixed up after. */
export class ProtoWriter {
  buf: Buffer;
  pos = 0;
  private readonly open: number[] = [];

  constructor(size = 1024) {
    this.buf = Buffer.allocUnsafe(size);
  }

  reset(): this {
    this.pos = 0;
    this.open.length = 0;
    return this;
  }

  /** Room for `n` more bytes without growing while they are written. */
  reserve(n: number): void {
    this.ensure(n);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = Math.max(64, this.buf.length * 2);
    while (size < this.pos + n) size *= 2;
    const b = Buffer.allocUnsafe(size);
    this.buf.copy(b, 0, 0, this.pos);
    this.buf = b;
  }

  /** A non-negative integer below 2^53 as a varint. */
  uvarint(n: number): void {
    this.ensure(10);
    const b = this.buf;
    while (n >= 0x80) {
      b[this.pos++] = (n % 128) | 0x80;
      n = Math.floor(n / 128);
    }
    b[this.pos++] = n;
  }

  tag(field: number, wire: number): void {
    this.uvarint(field * 8 + wire);
  }

  /** int64 (two's complement for negatives, 10 bytes, as protobuf does). */
  int64(field: number, n: number): void {
    this.tag(field, WIRE_VARINT);
    if (n >= 0) {
      this.uvarint(n);
      return;
    }
    this.ensure(10);
    let v = BigInt.asUintN(64, BigInt(n));
    while (v >= 0x80n) {
      this.buf[this.pos++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.pos++] = Number(v);
  }

  bool(field: number, v: boolean): void {
    this.tag(field, WIRE_VARINT);
    this.uvarint(v ? 1 : 0);
  }

  double(field: number, v: number): void {
    this.tag(field, WIRE_I64);
    this.ensure(8);
    this.pos = this.buf.writeDoubleLE(v, this.pos);
  }

  fixed64(field: number, v: bigint): void {
    this.tag(field, WIRE_I64);
    this.ensure(8);
    this.pos = this.buf.writeBigUInt64LE(v, this.pos);
  }

  fixed32(field: number, v: number): void {
    this.tag(field, WIRE_I32);
    this.ensure(4);
    this.pos = this.buf.writeUInt32LE(v >>> 0, this.pos);
  }

  string(field: number, s: string): void {
    this.tag(field, WIRE_LEN);
    const len = s.length;
    if (len < 128) {
      // Short ASCII (nearly every attribute) is copied here: cheaper than two calls into C++ per string.
      this.ensure(len + 1);
      const b = this.buf;
      let p = this.pos + 1;
      let i = 0;
      for (; i < len; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        b[p++] = c;
      }
      if (i === len) {
        b[this.pos] = len;
        this.pos = p;
        return;
      }
    }
    const n = Buffer.byteLength(s, 'utf8');
    this.uvarint(n);
    this.ensure(n);
    this.pos += this.buf.write(s, this.pos, n, 'utf8');
  }

  /** Hex digits (lowercase or uppercase) as bytes: trace and span ids. */
  hexBytes(field: number, hex: string): void {
    this.tag(field, WIRE_LEN);
    const n = hex.length >> 1;
    this.uvarint(n);
    this.ensure(n);
    const b = this.buf;
    let p = this.pos;
    for (let i = 0; i < n; i++) b[p++] = (HEX_VALUE[hex.charCodeAt(2 * i)]! << 4) | HEX_VALUE[hex.charCodeAt(2 * i + 1)]!;
    this.pos = p;
  }

  /** Start a length-delimited sub-message; `end()` closes it. */
  begin(field: number): void {
    this.tag(field, WIRE_LEN);
    this.ensure(1);
    this.open.push(this.pos);
    this.pos++; // one byte reserved for the length: enough below 128
  }

  end(): void {
    const at = this.open.pop()!;
    const len = this.pos - at - 1;
    const size = varintSize(len);
    if (size > 1) {
      this.ensure(size - 1);
      this.buf.copyWithin(at + size, at + 1, this.pos);
      this.pos += size - 1;
    }
    const save = this.pos;
    this.pos = at;
    this.uvarint(len);
    this.pos = save;
  }

  /** A copy of what was written (the writer is reused). */
  take(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.pos));
  }
}

function anyValue(w: ProtoWriter, field: number, v: AttrValue): void {
  w.begin(field);
  if (typeof v === 'string') w.string(1, v);
  else if (typeof v === 'boolean') w.bool(2, v);
  else if (Number.isSafeInteger(v)) w.int64(3, v);
  else w.double(4, v);
  w.end();
}

/** `repeated KeyValue` under `field`; undefined values are left out. */
export function writeAttributes(w: ProtoWriter, field: number, attrs: Attrs): void {
  for (const key in attrs) {
    const v = attrs[key];
    if (v === undefined) continue;
    w.begin(field);
    w.string(1, key);
    anyValue(w, 2, v);
    w.end();
  }
}

/**
 * Append one span to `w` as a `ScopeSpans.spans` field (tag, length, Span message): the form in which spans are queued
 * and later copied, unchanged, into an export request (RequestFrame).
 */
export function encodeSpan(w: ProtoWriter, s: SpanData): void {
  w.begin(2);
  w.hexBytes(1, s.traceId);
  w.hexBytes(2, s.spanId);
  if (s.traceState) w.string(3, s.traceState);
  if (s.parentSpanId) w.hexBytes(4, s.parentSpanId);
  w.string(5, s.name);
  w.tag(6, WIRE_VARINT);
  w.uvarint(s.kind);
  w.fixed64(7, s.startNanos);
  w.fixed64(8, s.endNanos);
  writeAttributes(w, 9, s.attributes);
  for (const e of s.events ?? []) {
    w.begin(11);
    w.fixed64(1, e.timeNanos);
    w.string(2, e.name);
    if (e.attributes) writeAttributes(w, 3, e.attributes);
    w.end();
  }
  for (const l of s.links ?? []) {
    w.begin(13);
    w.hexBytes(1, l.traceId);
    w.hexBytes(2, l.spanId);
    if (l.traceState) w.string(3, l.traceState);
    if (l.attributes) writeAttributes(w, 4, l.attributes);
    if (l.flags !== undefined) w.fixed32(6, l.flags);
    w.end();
  }
  if (s.statusCode !== STATUS_UNSET || s.statusMessage) {
    w.begin(15);
    if (s.statusMessage) w.string(2, s.statusMessage);
    if (s.statusCode !== STATUS_UNSET) {
      w.tag(3, WIRE_VARINT);
      w.uvarint(s.statusCode);
    }
    w.end();
  }
  w.fixed32(16, s.flags);
  w.end();
}

/**
 * The bytes of an ExportTraceServiceRequest up to its spans, for one resource and one instrumentation scope; with
 * `spansLength` (the encoded spans' total size, each with its tag and length) the outer lengths are known in advance.
 */
export class RequestFrame {
  private readonly resource: Buffer;
  private readonly scope: Buffer;

  constructor(resource: Attrs, scope: { name: string; version?: string }) {
    const w = new ProtoWriter(256);
    w.begin(1); // ResourceSpans.resource
    writeAttributes(w, 1, resource);
    w.end();
    this.resource = w.take();
    w.reset();
    w.begin(1); // ScopeSpans.scope
    w.string(1, scope.name);
    if (scope.version) w.string(2, scope.version);
    w.end();
    this.scope = w.take();
  }

  /**
   * The whole request body around `spans`: byte ranges each holding whole `ScopeSpans.spans` fields (encodeSpan's
   * output). Written with `w` (reset first; default a new writer); the result is a view of the writer's buffer, valid
   * until the writer is used again.
   */
  encode(spans: ReadonlyArray<{ buf: Uint8Array; used: number }>, w = new ProtoWriter(0)): Buffer {
    let spansLen = 0;
    for (const s of spans) spansLen += s.used;
    const scopeSpansLen = this.scope.length + spansLen;
    const resourceSpansLen = this.resource.length + 1 + varintSize(scopeSpansLen) + scopeSpansLen;
    w.reset();
    w.reserve(1 + varintSize(resourceSpansLen) + resourceSpansLen);
    w.tag(1, WIRE_LEN); // ExportTraceServiceRequest.resource_spans
    w.uvarint(resourceSpansLen);
    w.buf.set(this.resource, w.pos);
    w.pos += this.resource.length;
    w.tag(2, WIRE_LEN); // ResourceSpans.scope_spans
    w.uvarint(scopeSpansLen);
    w.buf.set(this.scope, w.pos);
    w.pos += this.scope.length;
    for (const s of spans) {
      w.buf.set(s.buf.subarray(0, s.used), w.pos);
      w.pos += s.used;
    }
    return w.buf.subarray(0, w.pos);
  }
}
