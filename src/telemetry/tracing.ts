/**
 * Request tracing without the OpenTelemetry SDK: a server span per downstream request, a client span per upstream
 * attempt (siblings under the server span), W3C + B3 extraction and injection, parent-based percentage sampling.
 * A span is a small object until it ends; then it is encoded to OTLP protobuf bytes (./otlp-encode.ts) and handed to
 * the export queue (./otel-sdk.ts), so nothing but its bytes outlives the request (docs/telemetry.md, "Tracing").
 */
import { RandomPool, writeHex } from '../util/random-pool.js';
import type { RequestRecord } from '../model.js';
import { TRACING_OFF } from './tracing-off.js';
import type { AttemptAttrs, ClientSpan, Headers, ProxyTracing, ServerAttrs, ServerSpan } from './tracing-api.js';
import {
  FLAG_HAS_IS_REMOTE,
  FLAG_IS_REMOTE,
  ProtoWriter,
  SPAN_KIND_CLIENT,
  SPAN_KIND_SERVER,
  STATUS_ERROR,
  STATUS_UNSET,
  encodeSpan,
  type Attrs,
} from './otlp-encode.js';

export type { AttemptAttrs, ClientSpan, Headers, ProxyTracing, ServerAttrs, ServerSpan } from './tracing-api.js';

export interface TracingOptions {
  /** Percentage (0–100) of root requests (no incoming sampling decision) to trace. Istio's default: 1. */
  samplingPercent: number;
  /** Uniform [0,1) source for the sampling decision; default Math.random. */
  rand?: () => number;
  /**
   * When a root request is not sampled, still send a not-sampled context (`traceparent …-00`, `x-b3-sampled: 0`)
   * upstream so the next hops honour this decision, as Envoy does. Default true. Costs a random id per request.
   */
  propagateUnsampled?: boolean;
}

/**
 * Where an ended span goes (the export queue): `w.buf[0, w.pos)` holds it as a `ScopeSpans.spans` field, valid only
 * during the call (the writer is reused for the next span).
 */
export type SpanSink = (w: ProtoWriter) => void;

export interface SdkHooks {
  spansDropped(): number;
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);

/** Byte offsets in `00-<32 hex trace id>-<16 hex span id>-00`. */
const TP_TRACE = 3;
const TP_SPAN = 36;
const TP_LENGTH = 55;

/**
 * Random ids from the pooled CSPRNG buffer: span and trace ids of recorded spans as hex strings, and for unsampled
 * roots hex-encoded straight into a reusable `traceparent` buffer so that a request costs one flat string.
 */
class IdPool {
  private readonly pool = new RandomPool();
  private readonly tp = Buffer.from(`00-${'0'.repeat(32)}-${'0'.repeat(16)}-00`, 'latin1');

  /** `n` random bytes (never all zero) as 2n lowercase hex digits. */
  hex(n: number): string {
    const at = this.pool.take(n, true);
    return this.pool.bytes.toString('hex', at, at + n);
  }

  /** `00-<random trace id>-<random span id>-00`: a not-sampled W3C context (ids never all zero). */
  unsampledTraceparent(): string {
    writeHex(this.tp, TP_TRACE, this.pool.bytes, this.pool.take(16, true), 16);
    writeHex(this.tp, TP_SPAN, this.pool.bytes, this.pool.take(8, true), 8);
    return this.tp.toString('latin1', 0, TP_LENGTH);
  }
}
const ids = new IdPool();

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** An incoming span context (always remote). */
interface Parent {
  traceId: string;
  spanId: string;
  sampled: boolean;
  traceState: string;
}

type Decision = { kind: 'none' } | { kind: 'parent'; parent: Parent } | { kind: 'sample' } | { kind: 'deny' };

const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);
const HEX_TRACE = /^[0-9a-f]{32}$/i;
const HEX_SPAN = /^[0-9a-f]{16}$/i;
const validTraceId = (id: string): boolean => HEX_TRACE.test(id) && id !== ZERO_TRACE;
const validSpanId = (id: string): boolean => HEX_SPAN.test(id) && id !== ZERO_SPAN;

/** W3C Trace Context `traceparent` (version 00 exactly; a later version may carry more fields; ff is invalid). */
const TRACEPARENT = /^\s?([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?\s?$/;
/** tracestate list members: simple and multi-tenant keys, printable values without `,` and `=`. */
const TS_KEY = /^(?:[a-z][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13})$/;
const TS_VALUE = /^[ -~]{0,255}[!-~]$/;
const TS_MAX_MEMBERS = 32;

/** The valid members of a `tracestate` (first occurrence of a key wins, at most 32), re-serialized. */
export function parseTraceState(header: string | string[] | undefined): string {
  if (header === undefined) return '';
  const raw = Array.isArray(header) ? header.join(',') : header;
  if (raw === '') return '';
  const keys = new Set<string>();
  const out: string[] = [];
  for (const part of raw.split(',')) {
    const m = part.trim();
    const i = m.indexOf('=');
    if (i <= 0) continue;
    const key = m.slice(0, i);
    const value = m.slice(i + 1);
    if (!TS_KEY.test(key) || !TS_VALUE.test(value) || value.includes(',') || value.includes('=') || keys.has(key)) continue;
    keys.add(key);
    out.push(`${key}=${value}`);
    if (out.length === TS_MAX_MEMBERS) break;
  }
  return out.join(',');
}

export function parseTraceparent(header: string | string[] | undefined, tracestate?: string | string[]): Parent | undefined {
  const v = first(header);
  if (v === undefined) return undefined;
  const m = TRACEPARENT.exec(v);
  if (m === null || m[1] === 'ff' || (m[1] === '00' && m[5] !== undefined)) return undefined;
  if (m[2] === ZERO_TRACE || m[3] === ZERO_SPAN) return undefined;
  return { traceId: m[2]!, spanId: m[3]!, sampled: (parseInt(m[4]!, 16) & 1) === 1, traceState: parseTraceState(tracestate) };
}

/** Single-header B3 `{traceid}-{spanid}[-{sampled}[-{parentspanid}]]`; a 64-bit trace id is left-padded. */
const B3_SINGLE = /((?:[0-9a-f]{16}){1,2})-([0-9a-f]{16})(?:-([01d](?![0-9a-f])))?(?:-([0-9a-f]{16}))?/;
const B3_SAMPLED = new Set(['true', 'True', '1']);
const B3_UNSAMPLED = new Set(['false', 'False', '0']);

function parseB3Single(v: string): Parent | undefined {
  const m = B3_SINGLE.exec(v);
  if (m === null) return undefined;
  const traceId = m[1]!.padStart(32, '0');
  if (!validTraceId(traceId) || !validSpanId(m[2]!)) return undefined;
  return { traceId, spanId: m[2]!, sampled: m[3] === '1' || m[3] === 'd', traceState: '' };
}

function parseB3Multi(headers: Headers): Parent | undefined {
  const traceId = (first(headers['x-b3-traceid']) ?? '').padStart(32, '0').toLowerCase();
  const spanId = (first(headers['x-b3-spanid']) ?? '').toLowerCase();
  if (!validTraceId(traceId) || !validSpanId(spanId)) return undefined;
  const s = first(headers['x-b3-sampled']);
  let sampled: boolean;
  if (first(headers['x-b3-flags']) === '1' || (s !== undefined && B3_SAMPLED.has(s))) sampled = true;
  else if (s === undefined || B3_UNSAMPLED.has(s)) sampled = false;
  else return undefined; // a sampling state that is neither: no context
  return { traceId, spanId, sampled, traceState: '' };
}

/** Read the incoming trace context: W3C first (OTel providers), then B3 (Istio's Zipkin setup), single or multi. */
function extract(headers: Headers): Decision {
  if (headers.traceparent !== undefined) {
    const parent = parseTraceparent(headers.traceparent, headers.tracestate);
    if (parent !== undefined) return { kind: 'parent', parent };
  }
  const single = first(headers.b3);
  const multiId = headers['x-b3-traceid'];
  if (single !== undefined && single !== '') {
    const parent = parseB3Single(single);
    if (parent !== undefined) return { kind: 'parent', parent };
  } else if (multiId !== undefined) {
    const parent = parseB3Multi(headers);
    if (parent !== undefined) return { kind: 'parent', parent };
  }
  // Sampling-only B3 (`b3: 0`, `x-b3-sampled: 0`, `x-b3-flags: 1`): a decision without a parent.
  if (single === '0') return { kind: 'deny' };
  if (single === '1' || single === 'd' || first(headers['x-b3-flags']) === '1') return { kind: 'sample' };
  const s = first(headers['x-b3-sampled']);
  if (s === '0' || s === 'false') return { kind: 'deny' };
  if (s === '1' || s === 'true') return { kind: 'sample' };
  return { kind: 'none' };
}

function splitHostPort(hostport: string): { host: string; port: number | undefined } {
  if (hostport.startsWith('[')) {
    const end = hostport.indexOf(']');
    const port = hostport[end + 1] === ':' ? Number(hostport.slice(end + 2)) : undefined;
    return { host: hostport.slice(1, end < 0 ? undefined : end), port: Number.isInteger(port) ? port : undefined };
  }
  const i = hostport.lastIndexOf(':');
  if (i < 0 || hostport.indexOf(':') !== i) return { host: hostport, port: undefined };
  const port = Number(hostport.slice(i + 1));
  return { host: hostport.slice(0, i), port: Number.isInteger(port) && port > 0 ? port : undefined };
}

function traceHeaders(traceId: string, spanId: string, parentSpanId: string, sampled: boolean, traceState: string, single: boolean): Array<[string, string]> {
  const flag = sampled ? '1' : '0';
  const h: Array<[string, string]> = [
    ['traceparent', `00-${traceId}-${spanId}-0${flag}`],
    ['x-b3-traceid', traceId],
    ['x-b3-spanid', spanId],
    ['x-b3-parentspanid', parentSpanId],
    ['x-b3-sampled', flag],
  ];
  if (traceState !== '') h.push(['tracestate', traceState]);
  if (single) h.push(['b3', `${traceId}-${spanId}-${flag}-${parentSpanId}`]);
  return h;
}

// === Recorded spans ===

/** Unix time in nanoseconds, from the monotonic clock (as the OTel SDK does: time origin + performance.now()). */
function nowNanos(): bigint {
  const ms = performance.timeOrigin + performance.now();
  const whole = Math.floor(ms);
  return BigInt(whole) * 1_000_000n + BigInt(Math.round((ms - whole) * 1e6));
}

/** What both span kinds record; encoded and dropped on end. */
abstract class Recorded {
  readonly spanId = ids.hex(8);
  protected readonly startNanos = nowNanos();
  protected statusCode = STATUS_UNSET;
  protected statusMessage: string | undefined;
  protected ended = false;
  constructor(
    protected readonly rec: Recorder,
    readonly traceId: string,
    protected readonly name: string,
    protected readonly attrs: Attrs,
  ) {}

  protected finish(kind: number, parentSpanId: string, traceState: string, flags: number): void {
    const w = this.rec.writer.reset();
    encodeSpan(w, {
      traceId: this.traceId,
      spanId: this.spanId,
      parentSpanId,
      traceState,
      name: this.name,
      kind,
      startNanos: this.startNanos,
      endNanos: nowNanos(),
      attributes: this.attrs,
      statusCode: this.statusCode,
      statusMessage: this.statusMessage,
      flags,
    });
    this.rec.sink(w);
  }
}

interface Recorder {
  readonly writer: ProtoWriter;
  readonly sink: SpanSink;
}

class RecordedClient extends Recorded implements ClientSpan {
  constructor(
    rec: Recorder,
    private readonly server: RecordedServer,
    name: string,
    attrs: Attrs,
  ) {
    super(rec, server.traceId, name, attrs);
  }
  headers(): Array<[string, string]> {
    return traceHeaders(this.traceId, this.spanId, this.server.spanId, true, this.server.traceState, this.server.singleB3);
  }
  end(status: number | undefined, error?: string): void {
    if (this.ended) return;
    this.ended = true;
    const a = this.attrs;
    if (status !== undefined && status > 0) a['http.response.status_code'] = status;
    // Client spans: 4xx and 5xx are errors (OTel HTTP semconv), as is any failure before response headers.
    if (error !== undefined || status === undefined || status >= 400) {
      a['error.type'] = error ?? (status === undefined ? '_OTHER' : String(status));
      this.statusCode = STATUS_ERROR;
      this.statusMessage = error;
    }
    // The parent is the server span, in this process.
    this.finish(SPAN_KIND_CLIENT, this.server.spanId, this.server.traceState, 1 | FLAG_HAS_IS_REMOTE);
  }
}

class RecordedServer extends Recorded implements ServerSpan {
  readonly sampled = true;
  constructor(
    rec: Recorder,
    parent: Parent | undefined,
    name: string,
    attrs: Attrs,
    private readonly method: string,
    readonly singleB3: boolean,
  ) {
    super(rec, parent?.traceId ?? ids.hex(16), name, attrs);
    this.parentSpanId = parent?.spanId ?? '';
    this.traceState = parent?.traceState ?? '';
  }
  readonly parentSpanId: string;
  readonly traceState: string;

  startAttempt(attempt: number, attrs: AttemptAttrs): ClientSpan {
    const { host, port } = splitHostPort(attrs.upstreamHost);
    const a: Attrs = {
      'http.request.method': this.method,
      'server.address': host,
      'network.peer.address': host,
      'remora.cluster': attrs.cluster,
      'remora.attempt': attempt,
    };
    if (port !== undefined) {
      a['server.port'] = port;
      a['network.peer.port'] = port;
    }
    if (attrs.url !== undefined) a['url.full'] = attrs.url;
    if (attempt > 1) a['http.request.resend_count'] = attempt - 1;
    return new RecordedClient(this.rec, this, KNOWN_METHODS.has(this.method) ? this.method : 'HTTP', a);
  }
  end(rec: RequestRecord): void {
    if (this.ended) return;
    this.ended = true;
    const a = this.attrs;
    if (rec.status > 0) a['http.response.status_code'] = rec.status;
    if (rec.routeName !== undefined) a['remora.route'] = rec.routeName;
    if (rec.upstreamCluster !== undefined) a['remora.cluster'] = rec.upstreamCluster;
    if (rec.upstreamHost !== undefined) a['remora.upstream_host'] = rec.upstreamHost;
    a['remora.response_flags'] = rec.flags || '-';
    a['remora.attempt'] = rec.attempts;
    a['remora.request_id'] = rec.requestId;
    // Inbound over mutual TLS: Istio's source.principal (the caller's SPIFFE ID).
    if (rec.peer !== undefined) a['source.principal'] = rec.peer.spiffeId;
    // Server spans: 5xx (not 4xx) are errors per semconv; any Envoy response flag marks a proxy-side failure.
    const flagged = rec.flags !== '' && rec.flags !== '-';
    if (rec.status >= 500 || rec.status === 0 || flagged) {
      a['error.type'] = flagged ? rec.flags : rec.status === 0 ? 'downstream_disconnect' : String(rec.status);
      this.statusCode = STATUS_ERROR;
      this.statusMessage = rec.details || undefined;
    }
    this.finish(SPAN_KIND_SERVER, this.parentSpanId, this.traceState, 1 | FLAG_HAS_IS_REMOTE | (this.parentSpanId !== '' ? FLAG_IS_REMOTE : 0));
  }
}

// === Unsampled root: propagate the decision, record nothing ===

/** B3's sampling-only form of a deny (B3 lets it omit the ids); shared by every unsampled request. */
const X_B3_UNSAMPLED = Object.freeze(['x-b3-sampled', '0']) as unknown as [string, string];

/**
 * An unsampled root is one object that serves as the server span and as the client span of every attempt: nothing
 * is recorded, so the attempts have no span ids of their own and all carry the same context. Only the decision
 * travels: `traceparent …-00` and `x-b3-sampled: 0` — two headers instead of five keep an unsampled request nearly as
 * cheap as an untraced one. The ids are materialized only when read (tests, logs); the hot path never does.
 */
class UnsampledSpan implements ServerSpan, ClientSpan {
  readonly sampled = false;
  private readonly traceparent = ids.unsampledTraceparent();
  /** Built by the first attempt, reused by retries (callers must not mutate it). */
  private traceHeaders: Array<[string, string]> | undefined;
  get traceId(): string {
    return this.traceparent.slice(TP_TRACE, TP_TRACE + 32);
  }
  get spanId(): string {
    return this.traceparent.slice(TP_SPAN, TP_SPAN + 16);
  }
  startAttempt(): ClientSpan {
    return this;
  }
  headers(): Array<[string, string]> {
    return (this.traceHeaders ??= [['traceparent', this.traceparent], X_B3_UNSAMPLED]);
  }
  end(): void {}
}

/** Tracing into a sink of encoded spans (the export queue, or a test's). */
export class Tracing implements ProxyTracing {
  readonly enabled = true;
  private readonly threshold: number;
  private readonly rand: () => number;
  private readonly propagateUnsampled: boolean;
  private readonly rec: Recorder;

  constructor(
    sink: SpanSink,
    opts: TracingOptions,
    private readonly hooks: SdkHooks,
  ) {
    if (!(opts.samplingPercent >= 0 && opts.samplingPercent <= 100)) {
      throw new RangeError(`trace sampling must be a percentage in [0, 100], got ${opts.samplingPercent}`);
    }
    this.threshold = opts.samplingPercent / 100;
    this.rand = opts.rand ?? Math.random;
    this.propagateUnsampled = opts.propagateUnsampled ?? true;
    // One writer for every span: a span is encoded synchronously in end(), then copied into the queue.
    this.rec = { writer: new ProtoWriter(1024), sink };
  }

  startServer(headers: Headers, attrs: ServerAttrs): ServerSpan | undefined {
    // Fast path: no trace headers at all (the common case for a sidecar's own app) → only the coin flip.
    const hasContext =
      headers.traceparent !== undefined ||
      headers.b3 !== undefined ||
      headers['x-b3-traceid'] !== undefined ||
      headers['x-b3-sampled'] !== undefined ||
      headers['x-b3-flags'] !== undefined;
    let d: Decision;
    if (!hasContext) d = { kind: 'none' };
    else d = extract(headers);

    let parent: Parent | undefined;
    if (d.kind === 'parent') {
      // Parent-based: a sampled parent is always kept, an unsampled one never is; its headers pass through unchanged.
      if (!d.parent.sampled) return undefined;
      parent = d.parent;
    } else if (d.kind === 'deny') {
      return undefined;
    } else if (d.kind === 'none') {
      if (!(this.rand() < this.threshold)) return this.propagateUnsampled ? new UnsampledSpan() : undefined;
    }
    const method = attrs.method.toUpperCase();
    const known = KNOWN_METHODS.has(method);
    const q = attrs.path.indexOf('?');
    const { host, port } = splitHostPort(attrs.authority);
    const peer = splitHostPort(attrs.peer);
    const a: Attrs = {
      'http.request.method': known ? method : '_OTHER',
      'url.path': q < 0 ? attrs.path : attrs.path.slice(0, q),
      'url.scheme': 'http',
      'server.address': host,
      'network.peer.address': peer.host,
      'remora.direction': attrs.direction,
    };
    if (!known) a['http.request.method_original'] = attrs.method;
    if (q >= 0) a['url.query'] = attrs.path.slice(q + 1);
    if (port !== undefined) a['server.port'] = port;
    if (peer.port !== undefined) a['network.peer.port'] = peer.port;
    const ua = first(headers['user-agent']);
    if (ua !== undefined) a['user_agent.original'] = ua;
    return new RecordedServer(this.rec, parent, known ? method : 'HTTP', a, known ? method : attrs.method, headers.b3 !== undefined);
  }

  spansDropped(): number {
    return this.hooks.spansDropped();
  }
  forceFlush(): Promise<void> {
    return this.hooks.forceFlush();
  }
  shutdown(timeoutMs = 5000): Promise<void> {
    return boundedWait(this.hooks.shutdown(), timeoutMs);
  }
}

/** Tracing switched off (no `--trace-endpoint`): one object, defined where it can be loaded without OTel. */
export const NOOP_TRACING: ProxyTracing = TRACING_OFF;

/** Resolve when `p` settles or after `ms`, whichever comes first; never rejects (shutdown must not fail the drain). */
export function boundedWait(p: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    t.unref();
    p.then(
      () => {
        clearTimeout(t);
        resolve();
      },
      () => {
        clearTimeout(t);
        resolve();
      },
    );
  });
}
