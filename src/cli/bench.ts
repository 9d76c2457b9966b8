// `remora bench`: argument parsing (node:util parseArgs), the live progress line, and writing
// the requested reports. The load generation itself lives in src/bench/.
import { parseArgs } from 'node:util';
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DEFAULT_LOAD_OPTIONS, type LoadOptions } from '../bench/generator.js';
import { runBench, type BenchTarget } from '../bench/runner.js';
import { renderMarkdown, renderTable } from '../bench/report.js';
import { renderHtml, renderSvg, seriesOf } from '../bench/plot.js';

export const HELP = `Usage: remora bench [options] URL...
       remora bench [options] --compare name=URL name=URL ...

Open-loop HTTP/1.1 latency benchmark. Requests are sent at a fixed rate (or Poisson arrivals)
and latency is measured from each request's intended send time, so a stalled response makes
the requests queued behind it count their wait (coordinated-omission correction, as in wrk2).

Load:
  --rate N             requests per second, open loop (default ${DEFAULT_LOAD_OPTIONS.rate})
  --max                closed loop: each connection sends its next request on each response
  --arrival KIND       fixed | poisson (default fixed)
  --seed N             PRNG seed for poisson arrivals (default ${DEFAULT_LOAD_OPTIONS.seed})
  --duration S         measured seconds per run (default ${DEFAULT_LOAD_OPTIONS.durationMs / 1000})
  --warmup S           unmeasured seconds before each run (default ${DEFAULT_LOAD_OPTIONS.warmupMs / 1000})
  --connections N      keep-alive connections, one request in flight each (default ${DEFAULT_LOAD_OPTIONS.connections})
  --timeout S          per-request timeout in seconds (default ${DEFAULT_LOAD_OPTIONS.timeoutMs / 1000})
  --coarse-timer       schedule with setTimeout (1 ms granularity) instead of a worker-thread timer
Request:
  --method M           HTTP method (default GET)
  -H, --header 'k: v'  extra header (repeatable; a Host header sets the authority)
  --body TEXT          request body
  --body-size N        request body of N bytes ('x' repeated)
  --no-5xx-errors      do not count status >= 500 as errors
Comparison:
  --compare            positional arguments are name=URL; targets run interleaved per round
  --rounds N           rounds of interleaved runs (default 3 with --compare, else 1)
  --baseline NAME      target the others are compared to (default: the one named "direct")
  --pid name=PID[,PID] record CPU time and peak RSS of these processes during name's runs
Output:
  --json FILE          JSON report (schemaVersion 1, see docs/benchmarks.md)
  --markdown FILE      Markdown table
  --html FILE          self-contained HTML page with the percentile plot
  --svg FILE           the percentile plot alone
  --quiet              no table on stdout
  -h, --help           this help
`;

function num(v: string | undefined, name: string, fallback: number, min = 0): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) throw new UsageError(`--${name} must be a number >= ${min}, got ${JSON.stringify(v)}`);
  return n;
}

export class UsageError extends Error {}

export interface ParsedBenchArgs {
  targets: BenchTarget[];
  load: LoadOptions;
  rounds: number;
  baseline: string | null;
  outputs: { json?: string; markdown?: string; html?: string; svg?: string };
  quiet: boolean;
  help: boolean;
}

export function parseBenchArgs(argv: string[]): ParsedBenchArgs {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      rate: { type: 'string' },
      max: { type: 'boolean' },
      arrival: { type: 'string' },
      seed: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string', short: 'c' },
      timeout: { type: 'string' },
      'coarse-timer': { type: 'boolean' },
      method: { type: 'string', short: 'X' },
      header: { type: 'string', short: 'H', multiple: true },
      body: { type: 'string' },
      'body-size': { type: 'string' },
      'no-5xx-errors': { type: 'boolean' },
      compare: { type: 'boolean' },
      rounds: { type: 'string' },
      baseline: { type: 'string' },
      pid: { type: 'string', multiple: true },
      json: { type: 'string' },
      markdown: { type: 'string' },
      html: { type: 'string' },
      svg: { type: 'string' },
      quiet: { type: 'boolean', short: 'q' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const empty: ParsedBenchArgs = { targets: [], load: DEFAULT_LOAD_OPTIONS, rounds: 1, baseline: null, outputs: {}, quiet: false, help: true };
  if (values.help) return empty;

  const targets: BenchTarget[] = positionals.map((p, i) => {
    const eq = p.indexOf('=');
    // name=URL (required with --compare); a bare URL is named after its position.
    if (eq > 0 && !p.slice(0, eq).includes('/')) return { name: p.slice(0, eq), url: p.slice(eq + 1) };
    if (values.compare) throw new UsageError(`--compare targets must be name=URL, got ${JSON.stringify(p)}`);
    return { name: positionals.length === 1 ? 'target' : `target${i + 1}`, url: p };
  });
  if (targets.length === 0) throw new UsageError('no target URL given');
  const names = new Set<string>();
  for (const t of targets) {
    if (names.has(t.name)) throw new UsageError(`duplicate target name ${t.name}`);
    names.add(t.name);
    let u: URL;
    try {
      u = new URL(t.url);
    } catch {
      throw new UsageError(`invalid URL ${JSON.stringify(t.url)}`);
    }
    if (u.protocol !== 'http:') throw new UsageError(`only http:// URLs are supported: ${t.url}`);
  }
  for (const spec of values.pid ?? []) {
    const eq = spec.indexOf('=');
    const t = targets.find((x) => x.name === spec.slice(0, eq));
    const pids = spec.slice(eq + 1).split(',').map(Number);
    if (eq <= 0 || !t || pids.some((p) => !Number.isInteger(p) || p <= 0)) throw new UsageError(`--pid must be name=PID[,PID] naming a target, got ${JSON.stringify(spec)}`);
    t.pids = [...(t.pids ?? []), ...pids];
  }

  const headers: Array<[string, string]> = (values.header ?? []).map((h) => {
    const c = h.indexOf(':');
    if (c <= 0) throw new UsageError(`-H must be 'name: value', got ${JSON.stringify(h)}`);
    return [h.slice(0, c).trim(), h.slice(c + 1).trim()];
  });
  let body: Buffer | undefined;
  if (values.body !== undefined) body = Buffer.from(values.body);
  if (values['body-size'] !== undefined) body = Buffer.alloc(num(values['body-size'], 'body-size', 0), 'x');
  const arrival = values.arrival ?? 'fixed';
  if (arrival !== 'fixed' && arrival !== 'poisson') throw new UsageError(`--arrival must be fixed or poisson, got ${arrival}`);
  const method = (values.method ?? (body ? 'POST' : 'GET')).toUpperCase();

  const load: LoadOptions = {
    ...DEFAULT_LOAD_OPTIONS,
    mode: values.max ? 'max' : 'open',
    rate: num(values.rate, 'rate', DEFAULT_LOAD_OPTIONS.rate, 0.001),
    arrival,
    seed: num(values.seed, 'seed', DEFAULT_LOAD_OPTIONS.seed),
    durationMs: num(values.duration, 'duration', DEFAULT_LOAD_OPTIONS.durationMs / 1000, 0.01) * 1000,
    warmupMs: num(values.warmup, 'warmup', DEFAULT_LOAD_OPTIONS.warmupMs / 1000) * 1000,
    connections: Math.floor(num(values.connections, 'connections', DEFAULT_LOAD_OPTIONS.connections, 1)),
    timeoutMs: num(values.timeout, 'timeout', DEFAULT_LOAD_OPTIONS.timeoutMs / 1000, 0.001) * 1000,
    method,
    headers,
    body,
    count5xxAsErrors: !values['no-5xx-errors'],
    preciseTimer: !values['coarse-timer'],
  };
  const rounds = Math.floor(num(values.rounds, 'rounds', values.compare ? 3 : 1, 1));
  const baseline = values.baseline ?? (names.has('direct') ? 'direct' : null);
  if (values.baseline !== undefined && !names.has(values.baseline)) throw new UsageError(`--baseline ${values.baseline} is not a target name`);
  return {
    targets,
    load,
    rounds,
    baseline,
    outputs: { json: values.json, markdown: values.markdown, html: values.html, svg: values.svg },
    quiet: values.quiet ?? false,
    help: false,
  };
}

function write(file: string, text: string): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, text);
}

export async function main(argv: string[]): Promise<number> {
  let args: ParsedBenchArgs;
  try {
    args = parseBenchArgs(argv);
  } catch (e) {
    process.stderr.write(`remora bench: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const tty = process.stdout.isTTY === true && !args.quiet;
  const total = args.rounds * args.targets.length;
  let runNo = 0;
  let label = '';
  const progress = (p: { elapsedMs: number; totalMs: number; completed: number; errors: number; queued: number }) => {
    const frac = Math.min(1, p.elapsedMs / p.totalMs);
    const bar = '#'.repeat(Math.round(frac * 20)).padEnd(20, '.');
    process.stdout.write(`\r[${bar}] ${label} ${(p.elapsedMs / 1000).toFixed(1)}/${(p.totalMs / 1000).toFixed(1)}s done=${p.completed} err=${p.errors} queued=${p.queued}   `);
  };
  const report = await runBench({
    targets: args.targets,
    load: { ...args.load, onProgress: tty ? progress : undefined },
    rounds: args.rounds,
    baseline: args.baseline,
    command: ['remora', 'bench', ...argv],
    pauseMs: args.targets.length > 1 ? 200 : 0,
    onRun: (t, round) => {
      runNo++;
      label = `${t.name} (round ${round}/${args.rounds}, run ${runNo}/${total})`;
    },
  });
  if (tty) process.stdout.write('\r\x1b[K');
  if (!args.quiet) process.stdout.write(renderTable(report));
  const o = args.outputs;
  if (o.json) write(o.json, JSON.stringify(report, null, 2) + '\n');
  if (o.markdown) write(o.markdown, renderMarkdown(report));
  if (o.html) write(o.html, renderHtml(report));
  if (o.svg) write(o.svg, renderSvg(seriesOf(report)));
  return 0;
}
