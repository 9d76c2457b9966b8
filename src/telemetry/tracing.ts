/**
 * Request tracing through `@opentelemetry/api` only: a server span per downstream request, a client span per upstream
 * attempt (siblings under the server span), W3C + B3 extraction and injection, parent-based percentage sampling.
 * The SDK (provider, batching, OTLP export) is wired in `otel-sdk.ts`; contexts are passed explicitly.
 */
import { RandomPool, writeHex } from '../util/random-pool.js';
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  defaultTextMapGetter,
  trace,
  type Attributes,
  type Context,
  type Span,
  type SpanContext,
  type Tracer,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { B3Propagator } from '@opentelemetry/propagator-b3';
import type { RequestRecord } from '../model.js';
import { TRACING_OFF } from './tracing-off.js';
import type { AttemptAttrs, ClientSpan, Headers, ProxyTracing, ServerAttrs, ServerSpan } from './tracing-api.js';

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

export interface SdkHooks {
  spansDropped(): number;
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

const w3c = new W3CTraceContextPropagator();
const b3 = new B3Propagator();

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);

/** Byte offsets in `00-<32 hex trace id>-<16 hex span id>-00`. */
const TP_TRACE = 3;
const TP_SPAN = 36;
const TP_LENGTH = 55;

/**
 * Random ids for unsampled roots from the pooled CSPRNG buffer, hex-encoded straight into a reusable `traceparent`
 * buffer so that a request costs one flat string and no BigInt or cons string.
 */
class IdPool {
  private readonly pool = new RandomPool();
  private readonly tp = Buffer.from(`00-${'0'.repeat(32)}-${'0'.repeat(16)}-00`, 'latin1');

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

type Decision = { kind: 'none' } | { kind: 'parent'; sc: SpanContext; ctx: Context } | { kind: 'sample' } | { kind: 'deny' };

/** Read the incoming trace context: W3C first (OTel providers), then B3 (Istio's Zipkin setup), single or multi. */
function extract(headers: Headers): Decision {
  if (headers.traceparent !== undefined) {
    const ctx = w3c.extract(ROOT_CONTEXT, headers, defaultTextMapGetter);
    const sc = trace.getSpanContext(ctx);
    if (sc !== undefined && trace.isSpanContextValid(sc)) return { kind: 'parent', sc, ctx };
  }
  const single = first(headers.b3);
  const multiId = headers['x-b3-traceid'];
  if (single !== undefined || multiId !== undefined) {
    const ctx = b3.extract(ROOT_CONTEXT, headers, defaultTextMapGetter);
    const sc = trace.getSpanContext(ctx);
    if (sc !== undefined && trace.isSpanContextValid(sc)) return { kind: 'parent', sc, ctx };
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

class RecordedClient implements ClientSpan {
  private ended = false;
  constructor(
    private readonly span: Span,
    private readonly server: RecordedServer,
    private readonly attempt: number,
  ) {}
  get spanId(): string {
    return this.span.spanContext().spanId;
  }
  headers(): Array<[string, string]> {
    const sc = this.span.spanContext();
    return traceHeaders(sc.traceId, sc.spanId, this.server.spanId, true, this.server.traceState, this.server.singleB3);
  }
  end(status: number | undefined, error?: string): void {
    if (this.ended) return;
    this.ended = true;
    const s = this.span;
    if (status !== undefined && status > 0) s.setAttribute('http.response.status_code', status);
    // Client spans: 4xx and 5xx are errors (OTel HTTP semconv), as is any failure before response headers.
    if (error !== undefined || status === undefined || status >= 400) {
      s.setAttribute('error.type', error ?? (status === undefined ? '_OTHER' : String(status)));
      s.setStatus({ code: SpanStatusCode.ERROR, message: error });
    }
    s.setAttribute('remora.attempt', this.attempt);
    s.end();
  }
}

class RecordedServer implements ServerSpan {
  readonly sampled = true;
  private ended = false;
  private readonly ctx: Context;
  readonly traceState: string;
  constructor(
    private readonly tracer: Tracer,
    private readonly span: Span,
    parentCtx: Context,
    private readonly method: string,
    readonly singleB3: boolean,
  ) {
    this.ctx = trace.setSpan(parentCtx, span);
    this.traceState = span.spanContext().traceState?.serialize() ?? '';
  }
  get traceId(): string {
    return this.span.spanContext().traceId;
  }
  get spanId(): string {
    return this.span.spanContext().spanId;
  }
  startAttempt(attempt: number, attrs: AttemptAttrs): ClientSpan {
    const { host, port } = splitHostPort(attrs.upstreamHost);
    const a: Attributes = {
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
    const span = this.tracer.startSpan(KNOWN_METHODS.has(this.method) ? this.method : 'HTTP', { kind: SpanKind.CLIENT, attributes: a }, this.ctx);
    return new RecordedClient(span, this, attempt);
  }
  end(rec: RequestRecord): void {
    if (this.ended) return;
    this.ended = true;
    const s = this.span;
    if (rec.status > 0) s.setAttribute('http.response.status_code', rec.status);
    if (rec.routeName !== undefined) s.setAttribute('remora.route', rec.routeName);
    if (rec.upstreamCluster !== undefined) s.setAttribute('remora.cluster', rec.upstreamCluster);
    if (rec.upstreamHost !== undefined) s.setAttribute('remora.upstream_host', rec.upstreamHost);
    s.setAttribute('remora.response_flags', rec.flags || '-');
    s.setAttribute('remora.attempt', rec.attempts);
    s.setAttribute('remora.request_id', rec.requestId);
    // Inbound over mutual TLS: Istio's source.principal (the caller's SPIFFE ID).
    if (rec.peer !== undefined) s.setAttribute('source.principal', rec.peer.spiffeId);
    // Server spans: 5xx (not 4xx) are errors per semconv; any Envoy response flag marks a proxy-side failure.
    const flagged = rec.flags !== '' && rec.flags !== '-';
    if (rec.status >= 500 || rec.status === 0 || flagged) {
      s.setAttribute('error.type', flagged ? rec.flags : rec.status === 0 ? 'downstream_disconnect' : String(rec.status));
      s.setStatus({ code: SpanStatusCode.ERROR, message: rec.details || undefined });
    }
    s.end();
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

/** Tracing over any `Tracer` (the SDK's, or a test's). */
export class Tracing implements ProxyTracing {
  readonly enabled = true;
  private readonly threshold: number;
  private readonly rand: () => number;
  private readonly propagateUnsampled: boolean;

  constructor(
    private readonly tracer: Tracer,
    opts: TracingOptions,
    private readonly hooks: SdkHooks,
  ) {
    if (!(opts.samplingPercent >= 0 && opts.samplingPercent <= 100)) {
      throw new RangeError(`trace sampling must be a percentage in [0, 100], got ${opts.samplingPercent}`);
    }
    this.threshold = opts.samplingPercent / 100;
    this.rand = opts.rand ?? Math.random;
    this.propagateUnsampled = opts.propagateUnsampled ?? true;
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

    let parentCtx = ROOT_CONTEXT;
    if (d.kind === 'parent') {
      // Parent-based: a sampled parent is always kept, an unsampled one never is; its headers pass through unchanged.
      if ((d.sc.traceFlags & TraceFlags.SAMPLED) === 0) return undefined;
      parentCtx = d.ctx;
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
    const a: Attributes = {
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
    const span = this.tracer.startSpan(known ? method : 'HTTP', { kind: SpanKind.SERVER, attributes: a }, parentCtx);
    return new RecordedServer(this.tracer, span, parentCtx, known ? method : attrs.method, headers.b3 !== undefined);
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
