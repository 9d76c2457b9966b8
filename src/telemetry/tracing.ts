/**
 * Request tracing through `@opentelemetry/api` only: a server span per downstream request, a client span per upstream
 * attempt (siblings under the server span), W3C + B3 extraction and injection, parent-based percentage sampling.
 * The SDK (provider, batching, OTLP export) is wired in `otel-sdk.ts`; contexts are passed explicitly.
 */
import { randomFillSync } from 'node:crypto';
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

export type Headers = Readonly<Record<string, string | string[] | undefined>>;

export interface ServerAttrs {
  method: string;
  /** Path with query, as the app sent it. */
  path: string;
  authority: string;
  direction: 'outbound' | 'inbound';
  /** Downstream peer address (`ip:port` or ip). */
  peer: string;
}

export interface AttemptAttrs {
  /** Envoy cluster name, e.g. `outbound|9080|v2|reviews.default.svc.cluster.local`. */
  cluster: string;
  /** Upstream `ip:port`. */
  upstreamHost: string;
  url?: string;
}

export interface ServerSpan {
  readonly traceId: string;
  readonly spanId: string;
  /** false for an unsampled root whose decision is only propagated (nothing is exported). */
  readonly sampled: boolean;
  /** Start the client span of upstream attempt `attempt` (1-based); retries are siblings under this server span. */
  startAttempt(attempt: number, attrs: AttemptAttrs): ClientSpan;
  /** Finish with the request's outcome (status, flags, route, cluster, attempts). Idempotent. */
  end(rec: RequestRecord): void;
}

export interface ClientSpan {
  readonly spanId: string;
  /**
   * Trace headers to set on this attempt's upstream request (replacing the app's): `traceparent` (+ `tracestate`),
   * B3 multi-header `x-b3-traceid/spanid/parentspanid/sampled`, and single `b3` when the app used it.
   */
  headers(): Array<[string, string]>;
  /** `status` undefined when no response headers arrived (then `error` says why, e.g. 'timeout', 'connect_failure'). Idempotent. */
  end(status: number | undefined, error?: string): void;
}

export interface ProxyTracing {
  readonly enabled: boolean;
  /**
   * Start the server span of a request. Returns undefined — cheaply — when the request is not sampled and no trace
   * context has to be injected: then the handler forwards the app's own trace headers unchanged.
   */
  startServer(headers: Headers, attrs: ServerAttrs): ServerSpan | undefined;
  /** Spans lost to the bounded export queue or to failed exports (for `remora_tracing_spans_dropped_total`). */
  spansDropped(): number;
  forceFlush(): Promise<void>;
  /** Flush and stop exporting, within `timeoutMs` (default 5000). */
  shutdown(timeoutMs?: number): Promise<void>;
}

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

/** Span ids from a pooled CSPRNG buffer: one randomFillSync per 512 ids instead of one per id. */
class IdPool {
  private readonly buf = Buffer.allocUnsafe(4096);
  private pos = this.buf.length;
  private take(n: number): string {
    for (;;) {
      if (this.pos + n > this.buf.length) {
        randomFillSync(this.buf);
        this.pos = 0;
      }
      const b = this.buf;
      const start = this.pos;
      this.pos += n;
      // All-zero ids are invalid (W3C, B3); checking the first 8 bytes makes the odds of a retry negligible either way.
      if (b.readBigUInt64BE(start + n - 8) === 0n && (n === 8 || b.readBigUInt64BE(start) === 0n)) continue;
      return b.toString('hex', start, start + n);
    }
  }
  traceId(): string {
    return this.take(16);
  }
  spanId(): string {
    return this.take(8);
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

class UnsampledClient implements ClientSpan {
  constructor(private readonly server: UnsampledServer) {}
  get spanId(): string {
    return this.server.spanId;
  }
  /**
   * Only the decision travels: `traceparent …-00` and B3's sampling-only form `x-b3-sampled: 0` (B3 lets a deny
   * omit the ids). Two headers instead of five keep an unsampled request nearly as cheap as an untraced one.
   */
  headers(): Array<[string, string]> {
    return [['traceparent', `00-${this.server.traceId}-${this.server.spanId}-00`], ['x-b3-sampled', '0']];
  }
  end(): void {}
}

class UnsampledServer implements ServerSpan {
  readonly sampled = false;
  readonly traceId = ids.traceId();
  readonly spanId = ids.spanId();
  startAttempt(): ClientSpan {
    return new UnsampledClient(this);
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
      if (!(this.rand() < this.threshold)) return this.propagateUnsampled ? new UnsampledServer() : undefined;
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
