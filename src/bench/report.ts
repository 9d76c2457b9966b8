// The benchmark report: the stable JSON schema (schemaVersion 1), medians across interleaved
// rounds, added latency and ratios against a baseline target, warnings about the generator's own
// limits, and the terminal and Markdown renderings. Pure: takes run outcomes, returns values.
import type { ErrorKind, LoadOptions, RunOutcome } from './generator.js';
import { LatencyHistogram, median, type Curve, type LatencyStats } from './histogram.js';
import type { ProcUsage } from './proc.js';

export const SCHEMA_VERSION = 1;

/** Achieved rate below this fraction of the asked rate prints a warning. */
export const MIN_ACHIEVED_FRACTION = 0.97;
/** Generator CPU above this fraction of one core prints a warning. */
export const MAX_GENERATOR_CPU = 0.9;
/** Scheduler lag p99 above this (ms) prints a warning: sends were late, not the server slow. */
export const MAX_SCHEDULE_LAG_P99_MS = 1;

export interface ProcessUsage {
  pids: number[];
  cpuMs: number;
  /** CPU time of the watched process(es) per 1000 completed requests (ms). */
  cpuMsPer1000Req: number;
  /** CPU time / wall time of the measured window: cores kept busy. */
  cpuCores: number;
  peakRssMB: number;
  /** Peak private (anonymous) resident memory; absent in reports written before it was recorded. */
  peakAnonMB?: number;
}

export interface RoundResult {
  round: number;
  completed: number;
  scheduled: number;
  askedRps: number | null;
  achievedRps: number;
  measuredMs: number;
  errors: Record<ErrorKind, number>;
  statusCounts: Record<string, number>;
  /** From each request's intended send time (coordinated-omission corrected). */
  latency: LatencyStats;
  /** From the moment the request was written. */
  service: LatencyStats;
  /** x-envoy-upstream-service-time, null when no response carried it. */
  upstream: LatencyStats | null;
  /** service − upstream (time inside the proxy), null when no response carried the header. */
  proxy: LatencyStats | null;
  scheduleLagMs: { p50: number; p99: number; max: number };
  generatorCpu: number;
  preciseTimer: boolean;
  process: ProcessUsage | null;
}

/** Medians over rounds of the headline figures. */
export interface TargetSummary {
  achievedRps: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  errors: number;
  upstreamP50Ms: number | null;
  proxyP50Ms: number | null;
  proxyP99Ms: number | null;
  cpuMsPer1000Req: number | null;
  peakRssMB: number | null;
  /** Median peak private (RssAnon) memory, MB. */
  peakAnonMB?: number | null;
  /** Completed requests per second of the watched process's CPU time (throughput per core). */
  rpsPerCore: number | null;
}

export interface Comparison {
  baseline: string;
  /** This target's median minus the baseline's, ms. */
  addedMs: { p50: number; p90: number; p99: number; p999: number };
  /** This target / baseline. */
  ratio: { p50: number; achievedRps: number; cpuMsPer1000Req: number | null; peakRssMB: number | null; rpsPerCore: number | null };
}

export interface TargetReport {
  name: string;
  url: string;
  rounds: RoundResult[];
  summary: TargetSummary;
  /** Percentile curve of all rounds merged: [percentile, ms]. */
  curve: Curve;
  comparison: Comparison | null;
}

export interface BenchReport {
  schemaVersion: typeof SCHEMA_VERSION;
  tool: 'remora bench';
  startedAt: string;
  finishedAt: string;
  command: string[];
  options: {
    mode: 'open' | 'max';
    rate: number | null;
    arrival: string;
    durationMs: number;
    warmupMs: number;
    connections: number;
    timeoutMs: number;
    method: string;
    headers: Array<[string, string]>;
    bodyBytes: number;
    rounds: number;
    baseline: string | null;
  };
  /** loadavg1: the 1-minute load average when the run started (other work on the machine skews results). */
  machine: { nproc: number; cpuModel: string; node: string; platform: string; loadavg1: number };
  targets: TargetReport[];
  warnings: string[];
}

export interface TargetInput {
  name: string;
  url: string;
  rounds: Array<{ outcome: RunOutcome; usage: ProcUsage[] | null }>;
}

export function roundResult(round: number, o: RunOutcome, opts: LoadOptions, usage: ProcUsage[] | null): RoundResult {
  const lag = o.scheduleLag;
  let proc: ProcessUsage | null = null;
  if (usage && usage.length > 0) {
    const cpuMs = usage.reduce((s, u) => s + u.cpuMs, 0);
    proc = {
      pids: usage.map((u) => u.pid),
      cpuMs,
      cpuMsPer1000Req: o.completed > 0 ? (cpuMs * 1000) / o.completed : 0,
      cpuCores: o.measuredMs > 0 ? cpuMs / o.measuredMs : 0,
      peakRssMB: usage.reduce((s, u) => s + u.peakRssMB, 0),
      peakAnonMB: usage.reduce((s, u) => s + u.peakAnonMB, 0),
    };
  }
  return {
    round,
    completed: o.completed,
    scheduled: o.scheduled,
    askedRps: opts.mode === 'open' ? opts.rate : null,
    achievedRps: o.achievedRps,
    measuredMs: o.measuredMs,
    errors: { ...o.errors },
    statusCounts: { ...o.statusCounts },
    latency: o.latency.stats(),
    service: o.service.stats(),
    upstream: o.upstream.count > 0 ? o.upstream.stats() : null,
    proxy: o.proxy.count > 0 ? o.proxy.stats() : null,
    scheduleLagMs: { p50: lag.at(50), p99: lag.at(99), max: lag.at(100) },
    generatorCpu: o.generatorCpu,
    preciseTimer: o.preciseTimer,
    process: proc,
  };
}

function medianOrNull(vals: Array<number | null | undefined>): number | null {
  const v = vals.filter((x): x is number => typeof x === 'number');
  return v.length === 0 ? null : median(v);
}

export function summarize(rounds: RoundResult[]): TargetSummary {
  const m = (f: (r: RoundResult) => number) => median(rounds.map(f));
  return {
    achievedRps: m((r) => r.achievedRps),
    p50Ms: m((r) => r.latency.p50Ms),
    p90Ms: m((r) => r.latency.p90Ms),
    p99Ms: m((r) => r.latency.p99Ms),
    p999Ms: m((r) => r.latency.p999Ms),
    maxMs: m((r) => r.latency.maxMs),
    errors: m((r) => Object.values(r.errors).reduce((a, b) => a + b, 0)),
    upstreamP50Ms: medianOrNull(rounds.map((r) => r.upstream?.p50Ms)),
    proxyP50Ms: medianOrNull(rounds.map((r) => r.proxy?.p50Ms)),
    proxyP99Ms: medianOrNull(rounds.map((r) => r.proxy?.p99Ms)),
    cpuMsPer1000Req: medianOrNull(rounds.map((r) => r.process?.cpuMsPer1000Req)),
    peakRssMB: medianOrNull(rounds.map((r) => r.process?.peakRssMB)),
    peakAnonMB: medianOrNull(rounds.map((r) => r.process?.peakAnonMB)),
    rpsPerCore: medianOrNull(rounds.map((r) => (r.process && r.process.cpuMs > 0 ? (r.completed * 1000) / r.process.cpuMs : undefined))),
  };
}

function ratio(a: number | null, b: number | null): number | null {
  return a === null || b === null || b === 0 ? null : a / b;
}

export function compare(t: TargetSummary, base: TargetSummary, baseline: string): Comparison {
  return {
    baseline,
    addedMs: { p50: t.p50Ms - base.p50Ms, p90: t.p90Ms - base.p90Ms, p99: t.p99Ms - base.p99Ms, p999: t.p999Ms - base.p999Ms },
    ratio: {
      p50: base.p50Ms > 0 ? t.p50Ms / base.p50Ms : 0,
      achievedRps: base.achievedRps > 0 ? t.achievedRps / base.achievedRps : 0,
      cpuMsPer1000Req: ratio(t.cpuMsPer1000Req, base.cpuMsPer1000Req),
      peakRssMB: ratio(t.peakRssMB, base.peakRssMB),
      rpsPerCore: ratio(t.rpsPerCore, base.rpsPerCore),
    },
  };
}

/** Warnings about results that reflect the generator rather than the target. */
export function warningsFor(name: string, r: RoundResult, mode: 'open' | 'max'): string[] {
  const w: string[] = [];
  const tag = `${name} round ${r.round}`;
  if (mode === 'open' && r.askedRps !== null && r.achievedRps < r.askedRps * MIN_ACHIEVED_FRACTION) {
    w.push(`${tag}: achieved ${r.achievedRps.toFixed(0)} req/s of ${r.askedRps} asked (< ${MIN_ACHIEVED_FRACTION * 100}%)`);
  }
  if (r.generatorCpu > MAX_GENERATOR_CPU) {
    w.push(`${tag}: generator CPU at ${(r.generatorCpu * 100).toFixed(0)}% of a core — the generator may be the bottleneck`);
  }
  if (mode === 'open' && r.scheduleLagMs.p99 > MAX_SCHEDULE_LAG_P99_MS) {
    w.push(`${tag}: scheduler lag p99 ${r.scheduleLagMs.p99.toFixed(2)} ms — sends were late (busy generator event loop)`);
  }
  const errs = Object.entries(r.errors).filter(([, n]) => n > 0);
  if (errs.length > 0) w.push(`${tag}: errors ${errs.map(([k, n]) => `${k}=${n}`).join(' ')}`);
  return w;
}

/** Builds the report from raw rounds; the baseline (if present among targets) gets no comparison. */
export function buildReport(args: {
  targets: TargetInput[];
  opts: LoadOptions;
  rounds: number;
  baseline: string | null;
  startedAt: Date;
  finishedAt: Date;
  command: string[];
  machine: BenchReport['machine'];
}): BenchReport {
  const { opts } = args;
  const warnings: string[] = [];
  const targets: TargetReport[] = args.targets.map((t) => {
    const rounds = t.rounds.map((r, i) => roundResult(i + 1, r.outcome, opts, r.usage));
    for (const r of rounds) warnings.push(...warningsFor(t.name, r, opts.mode));
    const merged = new LatencyHistogram();
    for (const r of t.rounds) merged.add(r.outcome.latency);
    return { name: t.name, url: t.url, rounds, summary: summarize(rounds), curve: merged.curve(), comparison: null };
  });
  const base = args.baseline === null ? undefined : targets.find((t) => t.name === args.baseline);
  if (args.baseline !== null && !base && targets.length > 1) warnings.push(`baseline "${args.baseline}" is not among the targets; no added latency computed`);
  if (base) for (const t of targets) if (t !== base) t.comparison = compare(t.summary, base.summary, base.name);
  return {
    schemaVersion: SCHEMA_VERSION,
    tool: 'remora bench',
    startedAt: args.startedAt.toISOString(),
    finishedAt: args.finishedAt.toISOString(),
    command: args.command,
    options: {
      mode: opts.mode,
      rate: opts.mode === 'open' ? opts.rate : null,
      arrival: opts.arrival,
      durationMs: opts.durationMs,
      warmupMs: opts.warmupMs,
      connections: opts.connections,
      timeoutMs: opts.timeoutMs,
      method: opts.method,
      headers: opts.headers,
      bodyBytes: opts.body?.length ?? 0,
      rounds: args.rounds,
      baseline: base ? base.name : null,
    },
    machine: args.machine,
    targets,
    warnings,
  };
}

/** Checks the shape of a parsed JSON report (for CI comparisons); returns the problems found. */
export function validateReport(x: unknown): string[] {
  const errs: string[] = [];
  const o = x as Record<string, unknown>;
  if (typeof o !== 'object' || o === null) return ['not an object'];
  if (o.schemaVersion !== SCHEMA_VERSION) errs.push(`schemaVersion must be ${SCHEMA_VERSION}`);
  for (const k of ['startedAt', 'finishedAt']) if (typeof o[k] !== 'string') errs.push(`${k} must be a string`);
  if (!Array.isArray(o.targets)) errs.push('targets must be an array');
  else
    o.targets.forEach((t: Record<string, unknown>, i: number) => {
      if (typeof t.name !== 'string') errs.push(`targets[${i}].name must be a string`);
      const s = t.summary as Record<string, unknown> | undefined;
      if (!s) errs.push(`targets[${i}].summary missing`);
      else for (const k of ['achievedRps', 'p50Ms', 'p90Ms', 'p99Ms', 'p999Ms', 'maxMs', 'errors']) if (typeof s[k] !== 'number') errs.push(`targets[${i}].summary.${k} must be a number`);
      if (!Array.isArray(t.rounds) || t.rounds.length === 0) errs.push(`targets[${i}].rounds must be a non-empty array`);
      if (!Array.isArray(t.curve)) errs.push(`targets[${i}].curve must be an array`);
    });
  if (!Array.isArray(o.warnings)) errs.push('warnings must be an array');
  return errs;
}

// === Rendering ===

const f2 = (n: number | null): string => (n === null ? '-' : n.toFixed(n >= 100 ? 1 : n >= 10 ? 2 : 3));
const signed = (n: number): string => (n >= 0 ? '+' : '') + n.toFixed(3);
const fx = (n: number | null): string => (n === null ? '-' : `${n.toFixed(2)}x`);

export const TABLE_COLUMNS = [
  'target',
  'req/s',
  'p50 ms',
  'p90 ms',
  'p99 ms',
  'p99.9 ms',
  'max ms',
  'errors',
  'added p50',
  'added p99',
  'proxy p50',
  'upstream p50',
  'CPU ms/1k req',
  'req/s per core',
  'peak RSS MB',
] as const;

export function tableRows(r: BenchReport): string[][] {
  return r.targets.map((t) => {
    const s = t.summary;
    const c = t.comparison;
    return [
      t.name,
      s.achievedRps.toFixed(0),
      f2(s.p50Ms),
      f2(s.p90Ms),
      f2(s.p99Ms),
      f2(s.p999Ms),
      f2(s.maxMs),
      String(s.errors),
      c ? signed(c.addedMs.p50) : r.options.baseline === t.name ? '(baseline)' : '-',
      c ? signed(c.addedMs.p99) : '-',
      f2(s.proxyP50Ms),
      f2(s.upstreamP50Ms),
      s.cpuMsPer1000Req === null ? '-' : s.cpuMsPer1000Req.toFixed(1),
      s.rpsPerCore === null ? '-' : s.rpsPerCore.toFixed(0),
      s.peakRssMB === null ? '-' : s.peakRssMB.toFixed(1),
    ];
  });
}

/** Drops columns that are '-' in every row (no PID given, no upstream header...). */
function compact(header: readonly string[], rows: string[][]): { header: string[]; rows: string[][] } {
  const keep = header.map((_, i) => i === 0 || rows.some((row) => row[i] !== '-'));
  return { header: header.filter((_, i) => keep[i]), rows: rows.map((row) => row.filter((_, i) => keep[i])) };
}

function describeOptions(r: BenchReport): string {
  const o = r.options;
  const load = o.mode === 'open' ? `open loop, ${o.rate} req/s ${o.arrival}` : 'closed loop (--max)';
  return `${load}, ${o.connections} connections, ${o.durationMs / 1000}s (+${o.warmupMs / 1000}s warm-up) x ${o.rounds} round(s), ${o.method}${o.bodyBytes ? ` ${o.bodyBytes}-byte body` : ''}`;
}

export function renderTable(r: BenchReport): string {
  const { header, rows } = compact(TABLE_COLUMNS, tableRows(r));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const out = [describeOptions(r), '', line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)];
  if (r.options.rounds > 1) out.push('', `medians over ${r.options.rounds} interleaved rounds; latency from intended send time (CO-corrected)`);
  if (r.warnings.length > 0) out.push('', ...r.warnings.map((w) => `warning: ${w}`));
  return out.join('\n') + '\n';
}

/** `machine: false` leaves out the machine sentence (when a page states it once for many tables). */
export function renderMarkdown(r: BenchReport, title = 'remora bench', opts: { machine?: boolean } = {}): string {
  const { header, rows } = compact(TABLE_COLUMNS, tableRows(r));
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const machine = opts.machine === false ? '' : ` Machine: ${r.machine.nproc} CPUs, ${r.machine.cpuModel}, Node ${r.machine.node}, load average ${r.machine.loadavg1.toFixed(2)} at start.`;
  const out = [
    `## ${title}`,
    '',
    `${describeOptions(r)}.${machine}`,
    '',
    `| ${header.map(esc).join(' | ')} |`,
    `| ${header.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`,
    ...rows.map((row) => `| ${row.map(esc).join(' | ')} |`),
  ];
  const cmp = r.targets.filter((t) => t.comparison);
  if (cmp.length > 0) {
    out.push('', `Ratios vs \`${r.options.baseline}\`: ` + cmp.map((t) => `${t.name} p50 ${fx(t.comparison!.ratio.p50)}, req/s ${fx(t.comparison!.ratio.achievedRps)}` + (t.comparison!.ratio.cpuMsPer1000Req !== null ? `, CPU/req ${fx(t.comparison!.ratio.cpuMsPer1000Req)}` : '')).join('; ') + '.');
  }
  if (r.warnings.length > 0) out.push('', ...r.warnings.map((w) => `- warning: ${esc(w)}`));
  return out.join('\n') + '\n';
}
