/**
 * The Prometheus text exposition format (0.0.4) as every metric family here writes it: value and `le` formatting,
 * label and help escaping, label sets. Pure string work, no metric state.
 */

export type Labels = Readonly<Record<string, string>>;

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** `le` values formatted like Go's strconv 'g' (what Envoy/Prometheus clients emit: `3.6e+06`), so series match Istio's. */
export function formatLe(v: number): string {
  if (v === Infinity) return '+Inf';
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e21 || a < 1e-4 || a >= 1e6)) {
    const [m, e] = v.toExponential().split('e') as [string, string];
    const sign = e.startsWith('-') ? '-' : '+';
    const digits = e.replace(/^[+-]/, '');
    return `${m}e${sign}${digits.length < 2 ? '0' + digits : digits}`;
  }
  return String(v);
}

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** Label value escaping of the text format: backslash, double quote and line feed. */
export function escapeLabelValue(v: string): string {
  if (!/[\\"\n]/.test(v)) return v;
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

export function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

export function renderLabels(labels: Labels): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(labels)) {
    if (!LABEL_NAME.test(k) || k.startsWith('__')) throw new Error(`invalid label name ${JSON.stringify(k)}`);
    parts.push(`${k}="${escapeLabelValue(v)}"`);
  }
  return parts.join(',');
}

/** A scrape-time reader's value; NaN when it throws (one broken observer does not fail the scrape). */
export function safeRead(fn: () => number): number {
  try {
    return fn();
  } catch {
    return NaN;
  }
}
