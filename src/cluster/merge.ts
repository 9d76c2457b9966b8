/**
 * Pure merging of per-worker admin answers under `--concurrency N`: Prometheus expositions (counters and histogram
 * buckets add), cluster views, and the worker restart backoff. Values in, values out; no I/O, no clock.
 */
import type { ClusterView, EndpointView } from '../model.js';
import { formatValue } from '../telemetry/metrics.js';

/**
 * How a family's samples combine across workers. Counters, histogram buckets/sums/counts and most gauges (active
 * requests, connections, RSS, CPU seconds) are per-worker quantities and add up. A few gauges describe state every
 * worker holds a copy of (the config, the endpoint set), so adding would multiply them by N:
 * - `remora_config_info` is 1 per active config: max (two versions mid-reload stay two series, each 1);
 * - `envoy_cluster_membership_total`: every worker knows the same endpoints: max;
 * - `envoy_cluster_membership_healthy`: outlier detection is per worker, so a host ejected in any worker is counted
 *   unhealthy: min;  `envoy_cluster_outlier_detection_ejections_active`: max (the worker that ejected most);
 * - `process_start_time_seconds`: the oldest worker: min;  `remora_kubernetes_staleness_seconds`: the stalest: max.
 */
export type MergeRule = 'sum' | 'max' | 'min';
export const MERGE_RULES: Readonly<Record<string, MergeRule>> = Object.freeze({
  remora_config_info: 'max',
  envoy_cluster_membership_total: 'max',
  envoy_cluster_membership_healthy: 'min',
  envoy_cluster_outlier_detection_ejections_active: 'max',
  process_start_time_seconds: 'min',
  remora_kubernetes_staleness_seconds: 'max',
});

interface Family {
  /** `# HELP` / `# TYPE` lines as first seen. */
  header: string[];
  rule: MergeRule;
  /** Sample key (`name{labels}`) → value, in first-seen order. */
  samples: Map<string, number>;
}

/** Split `name{labels} value` / `name value` at the last space (label values may contain spaces, never a raw newline). */
function splitSample(line: string): [string, number] | undefined {
  const i = line.lastIndexOf(' ');
  if (i <= 0) return undefined;
  const v = line.slice(i + 1);
  const n = v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : Number(v);
  return [line.slice(0, i), n];
}

function sampleName(key: string): string {
  const b = key.indexOf('{');
  return b < 0 ? key : key.slice(0, b);
}

function combine(rule: MergeRule, a: number, b: number): number {
  if (rule === 'max') return a >= b ? a : b;
  if (rule === 'min') return a <= b ? a : b;
  return a + b;
}

/**
 * Merge Prometheus text expositions (format 0.0.4) of N workers into one: families stay contiguous and in first-seen
 * order, a series present in only some workers is kept, equal series combine by `MERGE_RULES` (default: sum).
 * Cumulative histogram buckets of the same `le` add up to the cumulative bucket of the union, so histograms stay valid.
 */
export function mergeExpositions(texts: readonly string[], rules: Readonly<Record<string, MergeRule>> = MERGE_RULES): string {
  const families = new Map<string, Family>();
  for (const text of texts) {
    let current: Family | undefined;
    for (const line of text.split('\n')) {
      if (line === '') continue;
      if (line.startsWith('#')) {
        const m = /^# (HELP|TYPE) (\S+)/.exec(line);
        if (!m) continue;
        const name = m[2]!;
        let fam = families.get(name);
        if (fam === undefined) {
          fam = { header: [], rule: rules[name] ?? 'sum', samples: new Map() };
          families.set(name, fam);
        }
        if (!fam.header.some((h) => h.startsWith(`# ${m[1]} `))) fam.header.push(line);
        current = fam;
        continue;
      }
      const s = splitSample(line);
      if (s === undefined) continue;
      const [key, value] = s;
      let fam = current;
      if (fam === undefined) {
        // A sample before any # TYPE: its own untyped family.
        const name = sampleName(key);
        fam = families.get(name);
        if (fam === undefined) families.set(name, (fam = { header: [], rule: rules[name] ?? 'sum', samples: new Map() }));
      }
      const prev = fam.samples.get(key);
      fam.samples.set(key, prev === undefined ? value : combine(fam.rule, prev, value));
    }
  }
  const out: string[] = [];
  for (const fam of families.values()) {
    if (fam.samples.size === 0 && fam.header.length === 0) continue;
    for (const h of fam.header) out.push(`${h}\n`);
    for (const [k, v] of fam.samples) out.push(`${k} ${formatValue(v)}\n`);
  }
  return out.join('');
}

/** Sum of every sample of one family (e.g. `istio_requests_total`) in an exposition: a worker's request count. */
export function sumFamily(text: string, name: string): number {
  let n = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.startsWith(name)) continue;
    const c = line.charCodeAt(name.length);
    if (c !== 123 /* { */ && c !== 32 /* space */) continue;
    const s = splitSample(line);
    if (s !== undefined && Number.isFinite(s[1])) n += s[1];
  }
  return n;
}

/** `/stats` (text) from an exposition: sample lines only, as the single-process admin does. */
export function statsTextOf(exposition: string): string {
  return exposition.split('\n').filter((l) => l && !l.startsWith('#')).join('\n') + '\n';
}

/** `/stats?format=json` from an exposition. */
export function statsJsonOf(exposition: string): { stats: Array<{ name: string; value: number }> } {
  return {
    stats: statsTextOf(exposition).trim().split('\n').filter((l) => l).map((l) => {
      const i = l.lastIndexOf(' ');
      return { name: l.slice(0, i), value: Number(l.slice(i + 1)) };
    }),
  };
}

/**
 * One view per cluster across workers. Request/connection counts add up; outlier state is per worker, so an
 * endpoint is healthy only if it is healthy in every worker (its flags are the union), ejections add up and
 * `ejectionsActive` is the largest per-worker figure. `ejectedUntil` is a per-process monotonic time and is dropped.
 */
export function mergeClusterViews(perWorker: ReadonlyArray<readonly ClusterView[]>): ClusterView[] {
  const byName = new Map<string, { view: ClusterView; eps: Map<string, EndpointView> }>();
  for (const views of perWorker) {
    for (const v of views) {
      let m = byName.get(v.name);
      if (m === undefined) {
        m = { view: { name: v.name, activeRequests: 0, pendingRequests: 0, activeRetries: 0, ejectionsActive: 0, endpoints: [] }, eps: new Map() };
        byName.set(v.name, m);
      }
      const t = m.view;
      t.activeRequests += v.activeRequests;
      t.pendingRequests += v.pendingRequests;
      t.activeRetries += v.activeRetries;
      t.ejectionsActive = Math.max(t.ejectionsActive, v.ejectionsActive);
      for (const e of v.endpoints) {
        const prev = m.eps.get(e.key);
        if (prev === undefined) {
          const { ejectedUntil: _drop, ...rest } = e;
          const copy: EndpointView = { ...rest, labels: { ...e.labels }, healthFlags: [...e.healthFlags] };
          m.eps.set(e.key, copy);
          t.endpoints.push(copy);
          continue;
        }
        prev.healthy = prev.healthy && e.healthy;
        for (const f of e.healthFlags) if (!prev.healthFlags.includes(f)) prev.healthFlags.push(f);
        prev.ejections += e.ejections;
        prev.activeRequests += e.activeRequests;
        prev.totalRequests += e.totalRequests;
        prev.successRequests += e.successRequests;
        prev.errorRequests += e.errorRequests;
      }
    }
  }
  return [...byName.values()].map((m) => m.view);
}

/** Envoy's `/clusters` text format (`cluster::host:port::stat::value`), as the single-process admin renders it. */
export function clustersText(views: readonly ClusterView[]): string {
  const out: string[] = [];
  for (const c of views) {
    for (const e of c.endpoints) {
      const p = `${c.name}::${e.address}:${e.port}`;
      out.push(`${p}::health_flags::${e.healthFlags.length ? e.healthFlags.map((f) => `/${f}`).join('') : 'healthy'}`);
      out.push(`${p}::weight::${e.weight}`);
      out.push(`${p}::rq_active::${e.activeRequests}`);
      out.push(`${p}::rq_total::${e.totalRequests}`);
      out.push(`${p}::rq_success::${e.successRequests}`);
      out.push(`${p}::rq_error::${e.errorRequests}`);
      out.push(`${p}::outlier::ejections::${e.ejections}`);
    }
  }
  return `${out.join('\n')}\n`;
}

/**
 * Delay before restarting a crashed worker: `baseMs · 2^(crashes−1)`, capped at `capMs`. `crashes` counts crashes in a
 * row (the caller resets it when a worker stayed up long enough), so a worker that dies at start-up is not
 * restarted in a tight loop while a one-off crash is replaced almost at once.
 */
export function restartDelayMs(crashes: number, baseMs = 250, capMs = 10_000): number {
  if (crashes <= 1) return baseMs;
  return Math.min(capMs, baseMs * 2 ** Math.min(crashes - 1, 30));
}
