/**
 * Tracing's export side (loaded only with `--trace-endpoint`): a bounded queue of encoded spans, exported in batches
 * as OTLP/HTTP protobuf (`POST …/v1/traces`, `application/x-protobuf`) over node:http(s), one request at a time, with
 * the OTLP exporter's retries. It does what `@opentelemetry/sdk-trace-base`'s BatchSpanProcessor and
 * `@opentelemetry/exporter-trace-otlp-proto` did here, at a fraction of their memory: a queued span is its encoded
 * bytes (~0.3 KB) in a reused buffer, not an SDK span object, and every export is written into one reused buffer (docs/telemetry.md, "Tracing").
 * The file keeps its name (app.ts imports it lazily; the lazy-loading test looks for its chunk).
 */
import * as http from 'node:http';
import { ProtoWriter, RequestFrame } from './otlp-encode.js';
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

/** Bytes per queue chunk: ~45 spans of Remora's ~350 bytes. */
const CHUNK_BYTES = 16 * 1024;

/** Encoded spans, back to back as `ScopeSpans.spans` fields, in a reused off-heap buffer. */
interface Chunk {
  buf: Buffer;
  used: number;
  spans: number;
}

/**
 * The batch span processor's behaviour, over encoded spans: a span arriving at a full queue is dropped and counted;
 * a full batch is exported at once, a partial one after `scheduledDelayMillis`; one export is in flight at a time,
 * and one that has not succeeded within `exportTimeoutMillis` counts its spans as failed.
 *
 * Spans are copied into 16 KB chunks that are reused after their export, and every request body is written into one
 * reused buffer, so tracing makes no garbage that outlives a request: queued spans would otherwise be promoted to V8's
 * old space (they wait up to seconds) and pile up there dead until a full GC (+5 MB private at peak, measured).
 */
export class SpanQueue {
  private readonly chunks: Chunk[] = [];
  private readonly free: Buffer[] = [];
  /** Spans queued (not in flight). */
  private queued = 0;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private closed = false;
  /** Export bodies are written here, one export at a time; replaced when an abandoned export may still hold it. */
  private body = new ProtoWriter(0);
  queueDropped = 0;
  exportFailed = 0;

  constructor(
    private readonly frame: RequestFrame,
    private readonly send: Send,
    private readonly opts: BatchOptions,
  ) {}

  /** Queue the span in `w.buf[0, w.pos)`. */
  add(w: ProtoWriter): void {
    if (this.closed) return;
    if (this.queued >= this.opts.maxQueueSize) {
      this.queueDropped++;
      return;
    }
    const n = w.pos;
    let c = this.chunks.at(-1);
    if (c === undefined || c.used + n > c.buf.length || c.spans >= this.opts.maxExportBatchSize) {
      const buf = n > CHUNK_BYTES ? Buffer.allocUnsafe(n) : (this.free.pop() ?? Buffer.allocUnsafe(CHUNK_BYTES));
      c = { buf, used: 0, spans: 0 };
      this.chunks.push(c);
    }
    w.buf.copy(c.buf, c.used, 0, n);
    c.used += n;
    c.spans++;
    this.queued++;
    if (this.inFlight !== undefined) return; // its completion looks at the queue again
    if (this.queued >= this.opts.maxExportBatchSize) this.startExport();
    else this.timer ??= setTimeout(() => this.onTimer(), this.opts.scheduledDelayMillis).unref();
  }

  private onTimer(): void {
    this.timer = undefined;
    if (this.inFlight === undefined && this.queued > 0) this.startExport();
  }

  private startExport(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    // Whole chunks from the head, up to a batch of spans (a chunk never holds more than one batch).
    let k = 0;
    let spans = 0;
    while (k < this.chunks.length && (k === 0 || spans + this.chunks[k]!.spans <= this.opts.maxExportBatchSize)) spans += this.chunks[k++]!.spans;
    const batch = this.chunks.splice(0, k);
    this.queued -= spans;
    this.inFlight = this.exportBatch(batch, spans).finally(() => {
      this.inFlight = undefined;
      if (this.queued >= this.opts.maxExportBatchSize) this.startExport();
      else if (this.queued > 0 && !this.closed) this.timer ??= setTimeout(() => this.onTimer(), this.opts.scheduledDelayMillis).unref();
    });
  }

  private async exportBatch(batch: Chunk[], spans: number): Promise<void> {
    const body = this.frame.encode(batch, this.body);
    // The body holds a copy: the chunks can take new spans (a few are kept, enough for one batch).
    for (const c of batch) if (c.buf.length === CHUNK_BYTES && this.free.length < this.maxFree()) this.free.push(c.buf);
    const timeout = this.opts.exportTimeoutMillis;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((r) => {
      timer = setTimeout(() => r(false), timeout);
      timer.unref();
    });
    let ok = false;
    let settled = false;
    try {
      ok = await Promise.race([sendWithRetries(this.send, body, Date.now() + timeout).finally(() => (settled = true)), timedOut]);
    } catch {
      ok = false;
    } finally {
      clearTimeout(timer);
    }
    if (!ok) this.exportFailed += spans;
    // A request still under way (timed out, or retrying) may yet write this body: the next export gets a new buffer.
    if (!settled) this.body = new ProtoWriter(0);
  }

  private maxFree(): number {
    return Math.ceil((this.opts.maxExportBatchSize * 400) / CHUNK_BYTES) + 1;
  }

  /** Export everything queued (after the export in flight), batch by batch. */
  async forceFlush(): Promise<void> {
    for (;;) {
      if (this.inFlight !== undefined) await this.inFlight;
      else if (this.queued > 0) this.startExport();
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
    (w) => queue.add(w),
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
