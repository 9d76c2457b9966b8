/**
 * The OpenTelemetry SDK adapter (the only importer of SDK packages): a BasicTracerProvider whose spans go through a
 * bounded BatchSpanProcessor to OTLP/HTTP protobuf, with drops counted so a slow or dead collector costs nothing more.
 */
import type { Context } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  type ReadableSpan,
  type Span,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { NOOP_TRACING, Tracing, type ProxyTracing } from './tracing.js';

export interface BatchOptions {
  /** Spans buffered before new ones are dropped. Default 2048 (OTel BSP default, OTEL_BSP_MAX_QUEUE_SIZE). */
  maxQueueSize: number;
  /** Spans per OTLP request. Default 512. */
  maxExportBatchSize: number;
  /** Delay before a partial batch is exported (ms). Default 5000. */
  scheduledDelayMillis: number;
  /** An export that takes longer is abandoned (ms). Default 10000 (OTel default is 30 s; a sidecar should give up sooner). */
  exportTimeoutMillis: number;
}

export interface CreateTracingOptions {
  /** OTLP/HTTP traces URL, e.g. `http://otel-collector.observability:4318/v1/traces` (`--trace-endpoint`). */
  endpoint?: string;
  /** `--trace-sampling`: percent of root requests traced; Istio's default 1. */
  samplingPercent: number;
  /** `service.name` resource attribute, e.g. `productpage.default` (Istio uses `<app>.<namespace>`). */
  serviceName: string;
  /** Extra resource attributes (e.g. `k8s.pod.name`). */
  resource?: Record<string, string>;
  /** Replaces the OTLP exporter (tests: InMemorySpanExporter). */
  exporter?: SpanExporter;
  batch?: Partial<BatchOptions>;
  rand?: () => number;
  propagateUnsampled?: boolean;
}

/**
 * Counts what the BatchSpanProcessor would silently drop. The BSP removes spans from its queue exactly when it hands
 * them to the exporter, so `accepted - handedToExporter` is its queue length; a span arriving at a full queue is
 * dropped here (and counted) instead of inside the BSP, where the count is private.
 */
interface SpanCounts {
  accepted: number;
  handed: number;
  queueDropped: number;
  exportFailed: number;
}

class CountingProcessor implements SpanProcessor {
  constructor(
    private readonly inner: SpanProcessor,
    private readonly maxQueueSize: number,
    private readonly counts: SpanCounts,
  ) {}
  onStart(span: Span, ctx: Context): void {
    this.inner.onStart(span, ctx);
  }
  onEnd(span: ReadableSpan): void {
    const c = this.counts;
    if (c.accepted - c.handed >= this.maxQueueSize) {
      c.queueDropped++;
      return;
    }
    c.accepted++;
    this.inner.onEnd(span);
  }
  forceFlush(): Promise<void> {
    return this.inner.forceFlush();
  }
  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }
}

class CountingExporter implements SpanExporter {
  constructor(
    private readonly inner: SpanExporter,
    private readonly counts: SpanCounts,
  ) {}
  export(spans: ReadableSpan[], done: (r: ExportResult) => void): void {
    this.counts.handed += spans.length;
    let called = false;
    try {
      this.inner.export(spans, (r) => {
        if (called) return;
        called = true;
        if (r.code !== ExportResultCode.SUCCESS) this.counts.exportFailed += spans.length;
        done(r);
      });
    } catch (error) {
      if (!called) {
        called = true;
        this.counts.exportFailed += spans.length;
        done({ code: ExportResultCode.FAILED, error: error as Error });
      }
    }
  }
  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }
  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

/** Build the proxy's tracing. Without an endpoint or exporter tracing is off (`NOOP_TRACING`). */
export function createTracing(opts: CreateTracingOptions): ProxyTracing {
  if (opts.endpoint === undefined && opts.exporter === undefined) return NOOP_TRACING;
  const b: BatchOptions = {
    maxQueueSize: 2048,
    maxExportBatchSize: 512,
    scheduledDelayMillis: 5000,
    exportTimeoutMillis: 10_000,
    ...opts.batch,
  };
  const base =
    opts.exporter ??
    new OTLPTraceExporter({
      url: opts.endpoint,
      // The exporter's own HTTP timeout, kept within the BSP's export timeout.
      timeoutMillis: b.exportTimeoutMillis,
    });
  const counts: SpanCounts = { accepted: 0, handed: 0, queueDropped: 0, exportFailed: 0 };
  // The BSP's queue gets one extra slot so that our count, not the BSP's, decides every drop.
  const bsp = new BatchSpanProcessor(new CountingExporter(base, counts), { ...b, maxQueueSize: b.maxQueueSize + 1 });
  const counting = new CountingProcessor(bsp, b.maxQueueSize, counts);
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': opts.serviceName, ...opts.resource }),
    // The sampling decision (parent-based percentage) is taken in tracing.ts before a span is started.
    sampler: new AlwaysOnSampler(),
    spanProcessors: [counting],
  });
  const tracer = provider.getTracer('remora');
  return new Tracing(
    tracer,
    { samplingPercent: opts.samplingPercent, rand: opts.rand, propagateUnsampled: opts.propagateUnsampled },
    {
      spansDropped: () => counts.queueDropped + counts.exportFailed,
      forceFlush: () => provider.forceFlush(),
      shutdown: () => provider.shutdown(),
    },
  );
}
