/**
 * The downstream stream timeouts as one policy for every codec: what Envoy's connection manager applies to each
 * stream whatever its protocol (request_headers_timeout, stream_idle_timeout). The HTTP/1 server and the HTTP/2
 * listener hold a `StreamTimeouts` and ask these pure functions from their once-a-tick sweeps, with their own clock.
 */

export interface StreamTimeouts {
  /**
   * A request head (HTTP/1: request line and headers; HTTP/2: a header block, HEADERS and its CONTINUATIONs, or a
   * frame of one) must be complete this long after its first byte (ms; `--request-headers-timeout`). Envoy's
   * request_headers_timeout.
   */
  readonly headersTimeoutMs: number;
  /**
   * A request in flight with no byte moving either way (its body, its response, the response draining) for this
   * long is ended (ms; 0 = never; `--stream-idle-timeout`). Envoy's stream_idle_timeout.
   */
  readonly streamIdleTimeoutMs: number;
}

/** Envoy's defaults where Istio keeps them: 5 min of stream silence; the head timeout is Remora's 30 s (Envoy: off). */
export const DEFAULT_STREAM_TIMEOUTS: StreamTimeouts = Object.freeze({ headersTimeoutMs: 30_000, streamIdleTimeoutMs: 300_000 });

/** A head that began at `startedAt` (ms; 0 = none pending) is overdue at `now`. */
export function headersOverdue(t: StreamTimeouts, startedAt: number, now: number): boolean {
  return startedAt !== 0 && now - startedAt >= t.headersTimeoutMs;
}

/** A stream whose last byte moved at `lastProgress` (ms) has been silent too long at `now`. */
export function streamIdle(t: StreamTimeouts, lastProgress: number, now: number): boolean {
  return t.streamIdleTimeoutMs > 0 && now - lastProgress >= t.streamIdleTimeoutMs;
}

/**
 * How a silent stream ends (Envoy): a request not answered yet gets `408` (its connection closed after it on
 * HTTP/1, the stream ended on HTTP/2); one whose response started can only be reset.
 */
export function idleStreamEnd(responseStarted: boolean): 'answer-408' | 'reset' {
  return responseStarted ? 'reset' : 'answer-408';
}

/**
 * How often a listener sweeps its connections for these timeouts and its own idle one (`idleMs`): a quarter of the
 * shortest, between 10 ms and 1 s, so a timeout fires at most a quarter late and a sweep costs little.
 */
export function sweepIntervalMs(t: StreamTimeouts, idleMs: number): number {
  const shortest = Math.min(t.headersTimeoutMs, idleMs, t.streamIdleTimeoutMs || Infinity);
  return Math.min(1000, Math.max(10, shortest / 4));
}
