/**
 * Tracing's export side (loaded only with `--trace-endpoint`): a bounded queue of encoded spans, exported in batches
 * as OTLP/HTTP protobuf (`POST …/v1/traces`, `application/x-protobuf`) over node:http(s), one request at a time, with
 * the OTLP exporter's retries. It does what `@opentelemetry/sdk-trace-base`'s BatchSpanProcessor and
 * `@opentelemetry/exporter-trace-otlp-proto` did here, at a fraction of their memory: a queued span is its encoded
 * bytes (~0.3 KB), not an SDK span object, and an export is one Buffer (docs/telemetry.md, "Tracing").
 * The file keeps its name (app.ts imports it lazily; the lazy-loading test looks for its chunk).
 */
import * as http from 'node:http';
import { RequestFrame } from './otlp-encode.js';
import { NOOP_TRACING, Tracing, type ProxyTracing } from './tracing.js';

export interface BatchOptions {
  /** Spans buffered before new ones are dropped. Default 2048 (OTel BSP default, OTEL_BSP_MAX_QUEUE_SIZE). */
  maxQueueSize: number;
  /** Spans per OTLP request. Default 512. */
  maxExportBatchSize: number;
  /** Delay before a partial batch is exported (ms). Default 5000. */
  scheduledDelayMillis: number;
  /** An export (retries included) that takes longer is abandoned (ms). Default 10000 (OTel default is 30 s; a sidecar should give up sooner). */
  exportTimeoutMillis: number;
}

/** One attempt's outcome, as the OTLP exporter classifies it. */
export type SendResult = { status: 'success' } | { status: 'retryable'; retryInMillis?: number; error?: Error } | { status: 'failure'; error: Error };

/** Sends one ExportTraceServiceRequest body; `timeoutMs` bounds this attempt. */
export type Send = (body: Buffer, timeoutMs: number) => Promise<SendResult>;

export interface CreateTracingOptions {
  /** OTLP/HTTP traces URL, e.g. `http://otel-collector.observability:4318/v1/traces` (`--trace-endpoint`). */
  endpoint?: string;
  /** `--trace-sampling`: percent of root requests traced; Istio's default 1. */
  samplingPercent: number;
  /** `service.name` resource attribute, e.g. `productpage.default` (Istio uses `<app>.<namespace>`). */
  serviceName: string;
  /** Extra resource attributes (e.g. `k8s.pod.name`). */
  resource?: Record<string, string>;
  /** Replaces the HTTP transport (tests: decode the bodies in process). */
  send?: Send;
  batch?: Partial<BatchOptions>;
  rand?: () => number;
  propagateUnsampled?: boolean;
}

/** Retries as `@opentelemetry/otlp-exporter-base` does: up to 5 more attempts, backoff 1 s × 1.5ⁿ (±20 % jitter) capped at 5 s, Retry-After honoured, all within the export timeout. */
const MAX_RETRIES = 5;
const INITIAL_BACKOFF = 1000;
const MAX_BACKOFF = 5000;
const BACKOFF_MULTIPLIER = 1.5;
const JITTER = 0.2;

function retryable(status: number): boolean {
  return status === 429 || status === 502 || status === 503 || status === 504;
}

function retryAfterMs(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const seconds = Number.parseInt(v, 10);
  if (Number.isInteger(seconds)) return seconds > 0 ? seconds * 1000 : -1;
  const delay = new Date(v).getTime() - Date.now();
  return delay >= 0 ? delay : 0;
}

/** Network errors worth another attempt (the exporter's list). */
const RETRYABLE_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT']);

/**
 * POST to an OTLP/HTTP endpoint over a keep-alive agent (its idle socket does not hold the process open). node:https
 * (and with it node:tls) is loaded by the first export to an https endpoint, not before.
 */
export function httpSender(endpoint: string): { send: Send; close: () => void } {
  const url = new URL(endpoint);
  let client: Promise<{ mod: typeof http; agent: http.Agent }> | undefined;
  let agent: http.Agent | undefined;
  const load = async (): Promise<{ mod: typeof http; agent: http.Agent }> => {
    const mod: typeof http = url.protocol === 'https:' ? ((await import('node:https')) as unknown as typeof http) : http;
    agent = new mod.Agent({ keepAlive: true, maxFreeSockets: 1 });
    return { mod, agent };
  };
  const post = (mod: typeof http, agent: http.Agent, body: Buffer, timeoutMs: number): Promise<SendResult> =>
    new Promise((resolve) => {
      const req = mod.request(
        url,
        {
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/x-protobuf', 'content-length': body.length, 'user-agent': 'remora' },
        },
        (res) => {
          res.resume(); // the ExportTraceServiceResponse (partial success) is not read
          const status = res.statusCode ?? 0;
          const settle = (): void => {
            if (status >= 200 && status <= 299) resolve({ status: 'success' });
            else if (retryable(status)) resolve({ status: 'retryable', retryInMillis: retryAfterMs(first(res.headers['retry-after'])) });
            else resolve({ status: 'failure', error: new Error(`OTLP export: HTTP ${status}`) });
          };
          res.on('end', settle);
          res.on('error', settle);
        },
      );
      req.setTimeout(timeoutMs, () => {
        req.destroy();
        resolve({ status: 'retryable', error: new Error('OTLP export: request timed out') });
      });
      req.on('error', (error: NodeJS.ErrnoException) => {
        resolve(RETRYABLE_CODES.has(error.code ?? '') ? { status: 'retryable', error } : { status: 'failure', error });
      });
      req.end(body);
    });
  const send: Send = async (body, timeoutMs) => {
    const c = await (client ??= load());
    return post(c.mod, c.agent, body, timeoutMs);
  };
  return { send, close: () => agent?.destroy() };
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

const sleep = (ms: number): Promise<void> =>
  new Promise((r) => {
    setTimeout(r, ms).unref();
  });

/** One export with the exporter's retry policy, never past `deadline` (Date.now() ms). */
async function sendWithRetries(send: Send, body: Buffer, deadline: number): Promise<boolean> {
  let backoff = INITIAL_BACKOFF;
  let result = await send(body, Math.max(1, deadline - Date.now()));
  for (let retries = MAX_RETRIES; result.status === 'retryable' && retries > 0; retries--) {
    const jittered = Math.min(backoff * (1 + (Math.random() * 2 - 1) * JITTER), MAX_BACKOFF);
    backoff *= BACKOFF_MULTIPLIER;
    const wait = result.retryInMillis ?? jittered;
    if (wait > deadline - Date.now()) break;
    await sleep(Math.max(0, wait));
    result = await send(body, Math.max(1, deadline - Date.now()));
  }
  return result.status === 'success';
}

/**
 * The batch span processor's behaviour, over encoded spans: a span arriving at a full queue is dropped and counted;
 * a full batch is exported at once, a partial one after `scheduledDelayMillis`; one export is in flight at a time,
 * and one that has not succeeded within `exportTimeoutMillis` counts its spans as failed.
 */
export class SpanQueue {
  private queue: Buffer[] = [];
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private closed = false;
  queueDropped = 0;
  exportFailed = 0;

  constructor(
    private readonly frame: RequestFrame,
    private readonly send: Send,
    private readonly opts: BatchOptions,
  ) {}

  add(span: Buffer): void {
    if (this.closed) return;
    if (this.queue.length >= this.opts.maxQueueSize) {
      this.queueDropped++;
      return;
    }
    this.queue.push(span);
    if (this.inFlight !== undefined) return; // its completion looks at the queue again
    if (this.queue.length >= this.opts.maxExportBatchSize) this.startExport();
    else this.timer ??= setTimeout(() => this.onTimer(), this.opts.scheduledDelayMillis).unref();
  }

  private onTimer(): void {
    this.timer = undefined;
    if (this.inFlight === undefined && this.queue.length > 0) this.startExport();
  }

  private startExport(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const batch = this.queue.length <= this.opts.maxExportBatchSize ? this.queue : this.queue.slice(0, this.opts.maxExportBatchSize);
    this.queue = batch === this.queue ? [] : this.queue.slice(batch.length);
    this.inFlight = this.exportBatch(batch).finally(() => {
      this.inFlight = undefined;
      if (this.queue.length >= this.opts.maxExportBatchSize) this.startExport();
      else if (this.queue.length > 0 && !this.closed) this.timer ??= setTimeout(() => this.onTimer(), this.opts.scheduledDelayMillis).unref();
    });
  }

  private async exportBatch(batch: Buffer[]): Promise<void> {
    const body = this.frame.encode(batch);
    const timeout = this.opts.exportTimeoutMillis;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((r) => {
      timer = setTimeout(() => r(false), timeout);
      timer.unref();
    });
    let ok = false;
    try {
      ok = await Promise.race([sendWithRetries(this.send, body, Date.now() + timeout), timedOut]);
    } catch {
      ok = false;
    } finally {
      clearTimeout(timer);
    }
    if (!ok) this.exportFailed += batch.length;
  }

  /** Export everything queued (after the export in flight), batch by batch. */
  async forceFlush(): Promise<void> {
    for (;;) {
      if (this.inFlight !== undefined) await this.inFlight;
      else if (this.queue.length > 0) this.startExport();
      else return;
    }
  }

  async shutdown(): Promise<void> {
    await this.forceFlush();
    this.closed = true;
  }
}

/** Build the proxy's tracing. Without an endpoint or a transport tracing is off (`NOOP_TRACING`). */
export function createTracing(opts: CreateTracingOptions): ProxyTracing {
  if (opts.endpoint === undefined && opts.send === undefined) return NOOP_TRACING;
  const b: BatchOptions = {
    maxQueueSize: 2048,
    maxExportBatchSize: 512,
    scheduledDelayMillis: 5000,
    exportTimeoutMillis: 10_000,
    ...opts.batch,
  };
  const http = opts.send === undefined ? httpSender(opts.endpoint!) : undefined;
  const frame = new RequestFrame({ 'service.name': opts.serviceName, ...opts.resource }, { name: 'remora' });
  const queue = new SpanQueue(frame, opts.send ?? http!.send, b);
  return new Tracing(
    (span) => queue.add(span),
    { samplingPercent: opts.samplingPercent, rand: opts.rand, propagateUnsampled: opts.propagateUnsampled },
    {
      spansDropped: () => queue.queueDropped + queue.exportFailed,
      forceFlush: () => queue.forceFlush(),
      shutdown: async () => {
        await queue.shutdown();
        http?.close();
      },
    },
  );
}
