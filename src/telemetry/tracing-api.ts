/**
 * What the data path sees of tracing: the span and tracer interfaces, with no implementation. The recording
 * implementation (./tracing.ts) and the switched-off one (./tracing-off.ts) both depend on this file, never on each other.
 */
import type { RequestRecord } from '../model.js';

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
   * The array may be shared between attempts: read it, do not modify it.
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
