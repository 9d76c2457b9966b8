/**
 * Istio/protobuf durations ("1.5s", "250ms", "1m", "1h", "100us", "10ns") → milliseconds.
 * Istio's validation requires ≥ 1ms for most timeouts; callers check the bounds they need.
 */

const DURATION_RE = /^(\d+(?:\.\d+)?)(h|m|s|ms|us|µs|ns)$/;
const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001, 'µs': 0.001, ns: 0.000001 };

/** Parse a duration string; returns undefined when it is not a valid duration. */
export function parseDurationMs(value: unknown): number | undefined {
  if (typeof value !== 'string') return undefined;
  const m = DURATION_RE.exec(value.trim());
  if (!m) return undefined;
  return Number(m[1]) * (UNIT_MS[m[2]!] ?? NaN);
}

/** Parse a duration that validation already accepted; `fallback` when absent. */
export function durationMs(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const ms = parseDurationMs(value);
  return ms === undefined ? fallback : ms;
}
