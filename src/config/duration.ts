/**
 * Istio/protobuf durations → milliseconds. Accepts Go's duration syntax as the Kubernetes API server does:
 * one or more `<number><unit>` terms, unit h, m, s, ms, us/µs, ns ("1.5s", "250ms", "1m30s", "1h0m0s").
 * Istio's validation requires ≥ 1ms for most timeouts; callers check the bounds they need.
 */

const DURATION_RE = /^(?:\d+(?:\.\d+)?(?:h|ms|m|s|us|µs|ns))+$/;
const TERM_RE = /(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)/g;
const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001, 'µs': 0.001, ns: 0.000001 };

/** Parse a duration string; returns undefined when it is not a valid duration. */
export function parseDurationMs(value: unknown): number | undefined {
  if (typeof value !== 'string') return undefined;
  const v = value.trim();
  if (!DURATION_RE.test(v)) return undefined;
  let ms = 0;
  for (const m of v.matchAll(TERM_RE)) ms += Number(m[1]) * UNIT_MS[m[2]!]!;
  return ms;
}

/** Parse a duration that validation already accepted; `fallback` when absent. */
export function durationMs(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const ms = parseDurationMs(value);
  return ms === undefined ? fallback : ms;
}
