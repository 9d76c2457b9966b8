/**
 * A minimal protobuf wire-format reader for OTLP ExportTraceServiceRequest (opentelemetry/proto/trace/v1), enough to
 * assert on spans received by the test collector without depending on protobufjs.
 */

type Field = { no: number; wire: number; varint?: bigint; bytes?: Uint8Array; fixed64?: Buffer; fixed32?: number };

function* fields(buf: Uint8Array): Generator<Field> {
  let i = 0;
  const varint = (): bigint => {
    let r = 0n;
    let shift = 0n;
    for (;;) {
      const b = buf[i++];
      if (b === undefined) throw new Error('truncated varint');
      r |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return r;
      shift += 7n;
    }
  };
  while (i < buf.length) {
    const tag = Number(varint());
    const no = tag >>> 3;
    const wire = tag & 7;
    if (wire === 0) yield { no, wire, varint: varint() };
    else if (wire === 1) {
      yield { no, wire, fixed64: Buffer.from(buf.subarray(i, i + 8)) };
      i += 8;
    } else if (wire === 2) {
      const len = Number(varint());
      yield { no, wire, bytes: buf.subarray(i, i + len) };
      i += len;
    } else if (wire === 5) {
      yield { no, wire, fixed32: Buffer.from(buf.subarray(i, i + 4)).readUInt32LE(0) };
      i += 4;
    }
    else throw new Error(`unsupported wire type ${wire}`);
  }
}

const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

export type AttrValue = string | number | boolean;

export interface DecodedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  traceState: string;
  name: string;
  kind: number;
  startNanos: bigint;
  endNanos: bigint;
  attributes: Record<string, AttrValue>;
  statusCode: number;
  statusMessage: string;
  /** Span.flags (fixed32): W3C trace flags, bits 8–9 the parent's is_remote. */
  flags: number;
  resource: Record<string, AttrValue>;
}

function anyValue(b: Uint8Array): AttrValue {
  for (const f of fields(b)) {
    if (f.no === 1 && f.bytes) return text(f.bytes);
    if (f.no === 2 && f.varint !== undefined) return f.varint !== 0n;
    if (f.no === 3 && f.varint !== undefined) return Number(BigInt.asIntN(64, f.varint));
    if (f.no === 4 && f.fixed64) return f.fixed64.readDoubleLE(0);
  }
  return '';
}

function keyValues(into: Record<string, AttrValue>, b: Uint8Array): void {
  let key = '';
  let value: AttrValue = '';
  for (const f of fields(b)) {
    if (f.no === 1 && f.bytes) key = text(f.bytes);
    if (f.no === 2 && f.bytes) value = anyValue(f.bytes);
  }
  into[key] = value;
}

function span(b: Uint8Array, resource: Record<string, AttrValue>): DecodedSpan {
  const s: DecodedSpan = { traceId: '', spanId: '', parentSpanId: '', traceState: '', name: '', kind: 0, startNanos: 0n, endNanos: 0n, attributes: {}, statusCode: 0, statusMessage: '', flags: 0, resource };
  for (const f of fields(b)) {
    if (f.no === 1 && f.bytes) s.traceId = hex(f.bytes);
    else if (f.no === 2 && f.bytes) s.spanId = hex(f.bytes);
    else if (f.no === 3 && f.bytes) s.traceState = text(f.bytes);
    else if (f.no === 4 && f.bytes) s.parentSpanId = hex(f.bytes);
    else if (f.no === 5 && f.bytes) s.name = text(f.bytes);
    else if (f.no === 6 && f.varint !== undefined) s.kind = Number(f.varint);
    else if (f.no === 7 && f.fixed64) s.startNanos = f.fixed64.readBigUInt64LE(0);
    else if (f.no === 8 && f.fixed64) s.endNanos = f.fixed64.readBigUInt64LE(0);
    else if (f.no === 9 && f.bytes) keyValues(s.attributes, f.bytes);
    else if (f.no === 15 && f.bytes) {
      for (const g of fields(f.bytes)) {
        if (g.no === 3 && g.varint !== undefined) s.statusCode = Number(g.varint);
        if (g.no === 2 && g.bytes) s.statusMessage = text(g.bytes);
      }
    } else if (f.no === 16 && f.fixed32 !== undefined) s.flags = f.fixed32;
  }
  return s;
}

/** Decode an ExportTraceServiceRequest body into a flat list of spans (each with its resource attributes). */
export function decodeTraceRequest(body: Uint8Array): DecodedSpan[] {
  const out: DecodedSpan[] = [];
  for (const rs of fields(body)) {
    if (rs.no !== 1 || !rs.bytes) continue;
    const resource: Record<string, AttrValue> = {};
    const scopeSpans: Uint8Array[] = [];
    for (const f of fields(rs.bytes)) {
      if (f.no === 1 && f.bytes) for (const g of fields(f.bytes)) if (g.no === 1 && g.bytes) keyValues(resource, g.bytes);
      if (f.no === 2 && f.bytes) scopeSpans.push(f.bytes);
    }
    for (const ss of scopeSpans) for (const f of fields(ss)) if (f.no === 2 && f.bytes) out.push(span(f.bytes, resource));
  }
  return out;
}
