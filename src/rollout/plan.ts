/**
 * The step plan of a canary rollout and the parsing of its flags: durations (`1m`, `500ms`), percentages (`1%`),
 * latencies (`300ms`). Pure: no I/O.
 *
 * A plan is a list of steps. Each step is the canary's weight (0–100) and, for a dark launch, the share of the
 * stable traffic mirrored to the canary. The last step is always 100: reaching it is the promotion (the route is left
 * with the canary alone, weight 100). Two ways to write it, as Argo Rollouts and Flagger do:
 *   - `--steps 5,10,25,50,100` (Argo's `setWeight` steps);
 *   - `--step-weight 10 --max-weight 50` (Flagger's `stepWeight`/`maxWeight`: 10, 20, 30, 40, 50, then promotion).
 * `--mirror P` puts a step with weight 0 and P % mirrored in front (Flagger's `mirror`/`mirrorWeight`).
 */

export interface Step {
  /** Canary weight in percent, 0..100 (Istio weights are integers). */
  canaryWeight: number;
  /** Percentage of the route's requests mirrored (shadowed) to the canary during this step; 0 = none. */
  mirrorPercent: number;
}

export interface PlanSpec {
  steps?: readonly number[];
  stepWeight?: number;
  maxWeight?: number;
  mirrorPercent?: number;
}

export function buildPlan(spec: PlanSpec): Step[] {
  let weights: number[];
  if (spec.steps && spec.steps.length > 0) {
    if (spec.stepWeight !== undefined || spec.maxWeight !== undefined) throw new Error('give either --steps or --step-weight/--max-weight, not both');
    weights = [...spec.steps];
  } else {
    const step = spec.stepWeight ?? 10;
    const max = spec.maxWeight ?? 50;
    if (!Number.isInteger(step) || step < 1 || step > 100) throw new Error(`--step-weight ${step}: an integer 1..100`);
    if (!Number.isInteger(max) || max < 1 || max > 100) throw new Error(`--max-weight ${max}: an integer 1..100`);
    weights = [];
    for (let w = step; w < max; w += step) weights.push(w);
    weights.push(max);
  }
  let prev = 0;
  for (const w of weights) {
    if (!Number.isInteger(w) || w < 1 || w > 100) throw new Error(`step ${w}: weights are integers 1..100`);
    if (w <= prev) throw new Error(`steps must increase: ${weights.join(',')}`);
    prev = w;
  }
  if (weights[weights.length - 1] !== 100) weights.push(100);
  const steps: Step[] = weights.map((w) => ({ canaryWeight: w, mirrorPercent: 0 }));
  const m = spec.mirrorPercent ?? 0;
  if (m !== 0) {
    if (!(m > 0 && m <= 100)) throw new Error(`--mirror ${m}: a percentage in (0, 100]`);
    steps.unshift({ canaryWeight: 0, mirrorPercent: m });
  }
  return steps;
}

/** `1m`, `30s`, `500ms`, `1h`, `1m30s`, or a bare number of seconds → milliseconds. */
export function parseDuration(s: string, flag = 'duration'): number {
  const t = s.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Math.round(Number(t) * 1000);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let total = 0;
  let m: RegExpExecArray | null;
  let end = 0;
  while ((m = re.exec(t)) !== null) {
    const n = Number(m[1]);
    total += n * (m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : m[2] === 'm' ? 60_000 : 3_600_000);
    end = re.lastIndex;
  }
  if (end === 0 || end !== t.length) throw new Error(`--${flag}: "${s}" is not a duration (e.g. 1m, 30s, 500ms)`);
  return Math.round(total);
}

/** `1%`, `0.5%` or a bare number of percent → a fraction (0.01). */
export function parsePercent(s: string, flag = 'percent'): number {
  const t = s.trim().replace(/%$/, '');
  const n = Number(t);
  if (t === '' || !Number.isFinite(n) || n < 0 || n > 100) throw new Error(`--${flag}: "${s}" is not a percentage (e.g. 1%)`);
  return n / 100;
}

/** `300ms`, `1.5s` or a bare number of milliseconds → milliseconds. */
export function parseLatency(s: string, flag = 'latency'): number {
  const t = s.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t);
  const m = /^(\d+(?:\.\d+)?)(ms|s)$/.exec(t);
  if (!m) throw new Error(`--${flag}: "${s}" is not a latency (e.g. 300ms, 1s)`);
  return Number(m[1]) * (m[2] === 's' ? 1000 : 1);
}

/** `--steps 5,10,25` → [5, 10, 25]. */
export function parseSteps(s: string): number[] {
  const out = s.split(',').map((x) => x.trim()).filter(Boolean).map(Number);
  if (out.length === 0 || out.some((n) => !Number.isFinite(n))) throw new Error(`--steps: "${s}" is not a list of weights (e.g. 5,10,25,50,100)`);
  return out;
}

/** `x-canary: true` or `x-canary=true` → {name, value}. */
export function parseHeaderMatch(s: string): { name: string; value: string } {
  const i = s.search(/[:=]/);
  if (i <= 0) throw new Error(`--header-canary: "${s}" is not name: value`);
  const name = s.slice(0, i).trim().toLowerCase();
  const value = s.slice(i + 1).trim();
  if (!/^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(name) || value === '' || /[\r\n\0]/.test(value)) throw new Error(`--header-canary: "${s}" is not name: value`);
  return { name, value };
}
