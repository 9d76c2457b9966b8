/**
 * VirtualService `retries` → RetryPolicy with Istio's defaults, plus the pure per-attempt retry decision,
 * Envoy's jittered backoff and the x-envoy-* request-header overrides. No timers or I/O here.
 */

import type { AttemptOutcome, RetryOn, RetryPolicy } from '../model.js';
import type { HTTPRetry } from '../config/types.js';
import { durationMs } from '../config/duration.js';

type Headers = Record<string, string | string[] | undefined>;

/** gRPC status codes the retry conditions name (read from `grpc-status` in response *headers*). */
const GRPC_CODE_NAMES: Readonly<Record<number, string>> = {
  1: 'cancelled', 4: 'deadline-exceeded', 8: 'resource-exhausted', 13: 'internal', 14: 'unavailable',
};
const GRPC_NAMES = new Set(Object.values(GRPC_CODE_NAMES));
/**
 * Accepted (Istio's validation allows them) but without effect here: `retriable-headers` needs
 * retriable_request_headers, which Istio cannot express; `envoy-ratelimited` needs Envoy's rate-limit filter;
 * `http3-post-connect-failure` needs HTTP/3. Noted in docs/resilience.md.
 */
const ACCEPTED_NO_OP = new Set(['retriable-headers', 'envoy-ratelimited', 'http3-post-connect-failure']);

/** Envoy's default backoff base interval, ms; the cap is 10 × base (250 ms). */
export const DEFAULT_BACKOFF_BASE_MS = 25;

function emptyRetryOn(): { -readonly [K in keyof RetryOn]: RetryOn[K] extends readonly (infer T)[] ? T[] : RetryOn[K] } {
  return {
    fiveXx: false, gatewayError: false, reset: false, connectFailure: false, refusedStream: false,
    retriable4xx: false, statusCodes: [], grpc: [],
  };
}

/** Istio's default when a route has no `retries` block (pilot route/retry DefaultPolicy). */
export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = Object.freeze({
  attempts: 2, // retries (so at most 3 tries)
  perTryTimeoutMs: 0, // no per-try timeout: the route timeout bounds everything
  retryOn: Object.freeze({
    // connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes + retriable codes [503]
    ...emptyRetryOn(), connectFailure: true, refusedStream: true,
    statusCodes: Object.freeze([503]), grpc: Object.freeze(['cancelled', 'unavailable']),
  }),
  retryIgnorePreviousHosts: true, // previous_hosts predicate (host_selection_retry_max_attempts 5)
  retryRemoteLocalities: false,
  backoffBaseMs: DEFAULT_BACKOFF_BASE_MS,
  backoffMaxMs: 10 * DEFAULT_BACKOFF_BASE_MS,
}) as Readonly<RetryPolicy>;

/** `attempts: 0` (or absent in a `retries` block: proto default 0): Istio installs no retry policy. */
export const NO_RETRY_POLICY: Readonly<RetryPolicy> = Object.freeze({
  ...DEFAULT_RETRY_POLICY, attempts: 0, retryOn: Object.freeze(emptyRetryOn()),
}) as Readonly<RetryPolicy>;

/**
 * Parse an Istio `retryOn` string. Numeric tokens (100–599) become retriable status codes (Istio then adds
 * `retriable-status-codes` itself). Returns `{ error }` on the first token Istio's validation would reject.
 */
export function parseRetryOn(s: string): RetryOn | { error: string } {
  return parseTokens(s, true);
}

function parseTokens(s: string, strict: boolean): RetryOn | { error: string } {
  const out = emptyRetryOn();
  for (const raw of s.split(',')) {
    const t = raw.trim();
    if (t === '') continue;
    if (/^\d+$/.test(t)) {
      const code = Number(t);
      if (code < 100 || code > 599) {
        if (strict) return { error: `${t} is not a valid HTTP status code` };
        continue;
      }
      if (!out.statusCodes.includes(code)) out.statusCodes.push(code);
      continue;
    }
    switch (t) {
      case '5xx': out.fiveXx = true; break;
      case 'gateway-error': out.gatewayError = true; break;
      case 'reset': out.reset = true; break;
      case 'connect-failure': out.connectFailure = true; break;
      // A connection failure is the only reset we can prove happened before the request was sent.
      case 'reset-before-request': out.connectFailure = true; break;
      case 'refused-stream': out.refusedStream = true; break;
      case 'retriable-4xx': out.retriable4xx = true; break;
      case 'retriable-status-codes': break; // the codes themselves are the numeric tokens
      default:
        if (GRPC_NAMES.has(t)) {
          if (!out.grpc.includes(t)) out.grpc.push(t);
        } else if (!ACCEPTED_NO_OP.has(t) && strict) {
          return { error: `"${t}" is not a valid retryOn policy` };
        }
    }
  }
  return out;
}

/**
 * Istio's ConvertPolicy: no block → DEFAULT_RETRY_POLICY; attempts ≤ 0 → off; otherwise start from the default
 * and override what is given (retryOn replaces both conditions and codes). perTryTimeout is capped by the route
 * timeout when both are set; `backoff` becomes the base interval and the cap is 10 × base (Envoy's default).
 */
export function compileRetryPolicy(raw: HTTPRetry | undefined, routeTimeoutMs: number): RetryPolicy {
  if (raw === undefined) return DEFAULT_RETRY_POLICY;
  if (raw.attempts === undefined || raw.attempts <= 0) return NO_RETRY_POLICY;
  let retryOn: RetryOn = DEFAULT_RETRY_POLICY.retryOn;
  if (raw.retryOn !== undefined && raw.retryOn.trim() !== '') {
    // Validation already rejected bad tokens; anything left over is ignored here.
    retryOn = parseTokens(raw.retryOn, false) as RetryOn;
  }
  let perTry = durationMs(raw.perTryTimeout, 0);
  if (routeTimeoutMs > 0 && perTry > routeTimeoutMs) perTry = routeTimeoutMs;
  const base = raw.backoff !== undefined ? durationMs(raw.backoff, DEFAULT_BACKOFF_BASE_MS) : DEFAULT_BACKOFF_BASE_MS;
  const baseMs = base > 0 ? base : DEFAULT_BACKOFF_BASE_MS;
  return {
    attempts: Math.floor(raw.attempts),
    perTryTimeoutMs: perTry,
    retryOn,
    retryIgnorePreviousHosts: raw.retryIgnorePreviousHosts ?? true,
    retryRemoteLocalities: raw.retryRemoteLocalities ?? false,
    backoffBaseMs: baseMs,
    backoffMaxMs: 10 * baseMs,
  };
}

/**
 * Envoy's RetryStateImpl decision, without the limits (attempt count, budget, timeouts) the caller checks:
 * - a response is retried by `5xx` (any 5xx), `gateway-error` (502/503/504), `retriable-4xx` (409), a listed
 *   status code, or a listed gRPC condition matching `grpc-status` in the response headers;
 * - a connect failure by `connect-failure`, and — as every upstream reset — by `5xx`, `gateway-error`, `reset`;
 * - a reset or a per-try timeout (Envoy resets the stream locally) by `5xx`, `gateway-error`, `reset`.
 * `refused-stream` is HTTP/2 only and never matches an HTTP/1 outcome. Never call this for the route timeout.
 */
export function shouldRetry(policy: RetryPolicy, outcome: AttemptOutcome): boolean {
  if (policy.attempts <= 0) return false;
  const r = policy.retryOn;
  switch (outcome.kind) {
    case 'response': {
      const s = outcome.status;
      if (s >= 500 && s <= 599 && r.fiveXx) return true;
      if (s >= 502 && s <= 504 && r.gatewayError) return true;
      if (s === 409 && r.retriable4xx) return true;
      if (r.statusCodes.length !== 0 && r.statusCodes.includes(s)) return true;
      if (outcome.grpcStatus !== undefined && r.grpc.length !== 0) {
        const name = GRPC_CODE_NAMES[outcome.grpcStatus];
        if (name !== undefined && r.grpc.includes(name)) return true;
      }
      return false;
    }
    case 'connect-failure':
      return r.connectFailure || r.fiveXx || r.gatewayError || r.reset;
    case 'reset':
    case 'timeout':
      return r.fiveXx || r.gatewayError || r.reset;
  }
}

/**
 * Envoy's JitteredExponentialBackOffStrategy: retry N (≥ 1) waits U[0, min(base·2^(N−1), max)) ms, integer.
 * (Envoy's docs still describe (2^N − 1)·base; its code has used the doubling interval since 2020 — we follow
 * the code: 0–24 ms, 0–49, 0–99, 0–199, then 0–249 with the defaults.)
 */
export function backoffMs(retryNumber: number, policy: RetryPolicy, rand: () => number): number {
  const n = retryNumber >= 1 ? Math.floor(retryNumber) : 1;
  const upper = Math.min(policy.backoffBaseMs * Math.pow(2, n - 1), policy.backoffMaxMs);
  const min = policy.backoffMinMs ?? 0;
  if (!(upper > 0)) return min;
  // A Gateway API `retry.backoff` is a minimum (GEP-1731): the jittered wait never goes below it.
  return Math.max(min, Math.min(Math.floor(rand() * upper), policy.backoffMaxMs));
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function nonNegativeInt(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const t = v.trim();
  if (!/^\d+$/.test(t)) return undefined;
  return Number(t);
}

/**
 * Request headers from the trusted local app that override the route's retry policy (Envoy semantics):
 * `x-envoy-retry-on` / `x-envoy-retry-grpc-on` are OR-ed into the route's conditions (unknown tokens ignored);
 * `x-envoy-retriable-status-codes` adds codes (effective only with retriable-status-codes: when the route
 * already has codes or the header's retry-on names it); `x-envoy-max-retries` sets attempts (a retry-on header
 * on a route without retries gives Envoy's default of 1); `x-envoy-upstream-rq-per-try-timeout-ms` sets the
 * per-try timeout. Returns `policy` itself when none is present (no allocation on the hot path).
 * The caller must strip these headers from untrusted (inbound) traffic.
 */
export function applyRetryOverrides(policy: RetryPolicy, headers: Headers): RetryPolicy {
  const hMax = headers['x-envoy-max-retries'];
  const hOn = headers['x-envoy-retry-on'];
  const hGrpc = headers['x-envoy-retry-grpc-on'];
  const hCodes = headers['x-envoy-retriable-status-codes'];
  const hPerTry = headers['x-envoy-upstream-rq-per-try-timeout-ms'];
  if (hMax === undefined && hOn === undefined && hGrpc === undefined && hCodes === undefined && hPerTry === undefined) {
    return policy;
  }
  const base = policy.retryOn;
  const on = { ...base, statusCodes: [...base.statusCodes], grpc: [...base.grpc] };
  let statusCodesEnabled = base.statusCodes.length !== 0;
  const onStr = first(hOn);
  if (onStr !== undefined) {
    for (const raw of onStr.split(',')) {
      const t = raw.trim();
      if (t === 'retriable-status-codes') statusCodesEnabled = true;
      else if (/^\d+$/.test(t)) continue; // Envoy's header parser knows only named policies
      else mergeToken(on, t);
    }
  }
  const grpcStr = first(hGrpc);
  if (grpcStr !== undefined) {
    for (const raw of grpcStr.split(',')) {
      const t = raw.trim();
      if (GRPC_NAMES.has(t) && !on.grpc.includes(t)) on.grpc.push(t);
    }
  }
  const codesStr = first(hCodes);
  if (codesStr !== undefined && statusCodesEnabled) {
    for (const raw of codesStr.split(',')) {
      const c = nonNegativeInt(raw);
      if (c !== undefined && c >= 100 && c <= 599 && !on.statusCodes.includes(c)) on.statusCodes.push(c);
    }
  }
  let attempts = policy.attempts;
  const max = nonNegativeInt(first(hMax));
  if (max !== undefined) attempts = max;
  else if (attempts === 0 && (onStr !== undefined || grpcStr !== undefined)) attempts = 1; // Envoy's num_retries default
  let perTry = policy.perTryTimeoutMs;
  const pt = nonNegativeInt(first(hPerTry));
  if (pt !== undefined && pt > 0) perTry = pt;
  return { ...policy, attempts, perTryTimeoutMs: perTry, retryOn: on };
}

function mergeToken(on: ReturnType<typeof emptyRetryOn>, t: string): void {
  const parsed = parseTokens(t, false) as RetryOn;
  if (parsed.fiveXx) on.fiveXx = true;
  if (parsed.gatewayError) on.gatewayError = true;
  if (parsed.reset) on.reset = true;
  if (parsed.connectFailure) on.connectFailure = true;
  if (parsed.refusedStream) on.refusedStream = true;
  if (parsed.retriable4xx) on.retriable4xx = true;
  for (const g of parsed.grpc) if (!on.grpc.includes(g)) on.grpc.push(g);
}

/**
 * `x-envoy-upstream-rq-timeout-ms` from the trusted local app: the route timeout in ms (0 = none, as Envoy),
 * or undefined when absent or not a non-negative integer.
 */
export function routeTimeoutOverride(headers: Headers): number | undefined {
  const v = headers['x-envoy-upstream-rq-timeout-ms'];
  if (v === undefined) return undefined;
  return nonNegativeInt(first(v));
}
