// The benchmark suite's result shape (bench/results/<date>.json), the check of the issue's
// targets against measured numbers, and the generated docs/benchmarks.md. Pure.
import { renderMarkdown, type BenchReport, type TargetReport } from '../src/bench/report.js';
import type { HandshakeResult } from './handshakes.js';
import { POLL_CALLS, READ_CALLS, WRITE_CALLS, type Anatomy } from './anatomy.js';
import type { ProtocolScenario } from './protocols.js';
import type { TcpScenario } from './tcp.js';
import type { BuildTimings } from '../src/discovery/config-store.js';

export interface Feature {
  /** null: configured but not observable from outside during a clean run. */
  active: boolean | null;
  detail: string;
}

export interface TargetCheck {
  figure: string;
  target: string;
  measured: string;
  /** null: not measured in this run. */
  met: boolean | null;
}

export interface SuiteResult {
  schemaVersion: 1;
  kind: 'remora-bench-suite';
  date: string;
  quick: boolean;
  command: string;
  machine: BenchReport['machine'];
  pinning: { proxy: string; generatorAndUpstream: string; enabled: boolean };
  notes: string[];
  features: Record<string, Feature>;
  /** Per scenario: % busy of the proxy CPU and the generator CPU, and the share of the proxy CPU not used by the measured proxies (other work on the machine; an upper bound). */
  cpuUse: Record<string, { cpu0BusyPct: number; cpu1BusyPct: number; foreignOnCpu0Pct: number; cpu0StealPct?: number; cpu1StealPct?: number }>;
  /** latency-1000, latency-3000, max, body-1k, body-100k: `remora bench` reports. */
  scenarios: Record<string, BenchReport>;
  extras: {
    /** configMs: the first build's split from the ready line (absent in results before 2026-12-02). */
    services?: { sizes: Array<{ services: number; startupMs: number | null; readyMs: number; configBytes: number; configMs?: BuildTimings }>; report: BenchReport | undefined };
    reload?: { rewrites: number; configVersionAfter: unknown; report: BenchReport };
    coldStart?: {
      runs: number; readyLineMs: number[]; readyHttpMs: number[]; medianReadyLineMs: number; medianReadyHttpMs: number; medianInternalStartupMs: number | null;
      /** Spawn → exit of a bare `node -e 0` before each start (absent in results before 2026-12-02). */
      bareNodeMs?: number[]; medianBareNodeMs?: number;
    };
    concurrency?: { supported: boolean; detail: string; report: BenchReport | undefined };
    /** An idle `node` process doing nothing, same flags: the memory floor of any Node.js proxy on this machine. */
    /** An idle bare `node -e` and, in the same run, an idle Remora with one service (absent before 2026-12-07). */
    nodeFloor?: { rssMB: number; anonMB: number; remoraIdle?: { rssMB: number; anonMB: number } };
    /** Where the time goes at a fixed rate, per proxy (bench/anatomy.ts): medians over rounds. */
    anatomy?: { rate: number; rounds: number; targets: Record<string, Anatomy> };
    /** Unary gRPC calls over HTTP/2 (bench/protocols.ts), nginx grpc_pass vs Remora (absent before 2026-12-04). */
    grpc?: ProtocolScenario;
    /** WebSocket round trips through an upgraded connection, nginx vs Remora (absent before 2026-12-04). */
    websocket?: ProtocolScenario;
    /** Raw TCP through nginx's stream module and Remora's TCP proxy: echo, bulk, churn (absent before 2026-12-07). */
    tcp?: TcpScenario;
    /**
     * A sidecar-to-sidecar hop at 1,000 req/s (and, from 2026-12-07, `report3000` at 3,000 req/s): both Remoras with
     * mutual TLS, the same in plaintext, nginx with TLS on both sides; `handshakes`: mTLS connections the server
     * sidecar accepted, `requests`: requests it served (absent before 2026-12-04); `handshakeRates`: new mTLS
     * connections per second against the server sidecar and nginx's TLS back (from 2026-12-07).
     */
    mtls?: { report: BenchReport; report3000?: BenchReport; handshakes: number; requests: number; handshakeRates?: HandshakeResult[] };
  };
  targets: TargetCheck[];
}

const t = (r: BenchReport | undefined, name: string): TargetReport | undefined => r?.targets.find((x) => x.name === name);
const ms = (n: number) => `${n.toFixed(3)} ms`;

/** Checks each of the issue's targets against this run's numbers; unmeasured ones get met: null. */
export function evaluateTargets(s: SuiteResult): TargetCheck[] {
  const out: TargetCheck[] = [];
  const max = s.scenarios['max'];
  const rMax = t(max, 'remora');
  const nMax = t(max, 'nginx');
  if (rMax && nMax && rMax.summary.rpsPerCore !== null && nMax.summary.rpsPerCore !== null) {
    const ratio = rMax.summary.rpsPerCore / nMax.summary.rpsPerCore;
    out.push({ figure: 'max throughput per core (full policy path)', target: '≥ 0.5 × nginx', measured: `${ratio.toFixed(2)} × nginx (${rMax.summary.rpsPerCore.toFixed(0)} vs ${nMax.summary.rpsPerCore.toFixed(0)} req/s per CPU-second)`, met: ratio >= 0.5 });
  } else out.push({ figure: 'max throughput per core (full policy path)', target: '≥ 0.5 × nginx', measured: 'not measured', met: null });

  for (const rate of [1000, 3000]) {
    const sc = s.scenarios[`latency-${rate}`];
    const r = t(sc, 'remora')?.comparison;
    const n = t(sc, 'nginx')?.comparison;
    const figure = `added p50 at ${rate.toLocaleString('en-US')} req/s`;
    if (r && n) out.push({ figure, target: "≤ nginx's added p50 + 0.05 ms", measured: `${ms(r.addedMs.p50)} vs nginx ${ms(n.addedMs.p50)}`, met: r.addedMs.p50 <= n.addedMs.p50 + 0.05 });
    else out.push({ figure, target: "≤ nginx's added p50 + 0.05 ms", measured: 'not measured', met: null });
  }

  for (const [key, figure, unit] of [['grpc', 'gRPC calls per CPU-second', 'calls'], ['websocket', 'WebSocket round trips per CPU-second', 'round trips']] as const) {
    const sc = s.extras[key];
    const r = sc?.targets['remora'];
    const n = sc?.targets['nginx'];
    if (r && n && n.perCpuSecond > 0) {
      const ratio = r.perCpuSecond / n.perCpuSecond;
      out.push({ figure, target: '≥ 0.5 × nginx', measured: `${ratio.toFixed(2)} × nginx (${r.perCpuSecond.toFixed(0)} vs ${n.perCpuSecond.toFixed(0)} ${unit} per CPU-second)`, met: ratio >= 0.5 });
    } else out.push({ figure, target: '≥ 0.5 × nginx', measured: 'not measured', met: null });
  }

  const mt = s.extras.mtls;
  for (const [rate, rep] of [[3000, mt?.report3000]] as const) {
    const h = t(rep, 'remora-mtls-hop')?.summary;
    const ng = t(rep, 'nginx-mtls-hop')?.summary?.cpuMsPer1000Req;
    const figure = `CPU per 1,000 requests with mTLS at ${rate.toLocaleString('en')} req/s (per sidecar)`;
    if (h?.cpuMsPer1000Req != null) {
      const perSidecar = h.cpuMsPer1000Req / 2;
      out.push({ figure, target: '≤ 200 ms (Envoy: 0.20 vCPU per 1,000 req/s)', measured: `${perSidecar.toFixed(1)} ms (${h.cpuMsPer1000Req.toFixed(1)} ms for the hop${ng != null ? `; ${(h.cpuMsPer1000Req / ng).toFixed(2)} × nginx's ${ng.toFixed(1)} ms` : ''})`, met: perSidecar <= 200 });
    } else if (mt !== undefined) out.push({ figure, target: '≤ 200 ms (Envoy: 0.20 vCPU per 1,000 req/s)', measured: 'not measured', met: null });
  }
  const hop = t(mt?.report, 'remora-mtls-hop')?.summary;
  if (hop?.cpuMsPer1000Req != null) {
    // Two sidecars per hop: Envoy's published figure is per proxy.
    const perSidecar = hop.cpuMsPer1000Req / 2;
    const ng = t(mt?.report, 'nginx-mtls-hop')?.summary?.cpuMsPer1000Req;
    const plain = t(mt?.report, 'remora-plain-hop')?.summary?.cpuMsPer1000Req;
    const extra = [
      ng != null ? `nginx with TLS both sides ${ng.toFixed(1)} ms per hop` : '',
      plain != null ? `Remora plaintext ${(plain / 2).toFixed(1)} ms per sidecar` : '',
      mt && Number.isFinite(mt.handshakes) ? `${mt.handshakes} handshakes for ${Number.isFinite(mt.requests) ? mt.requests : '?'} requests` : '',
    ].filter(Boolean).join('; ');
    out.push({ figure: 'CPU per 1,000 requests with mTLS at 1,000 req/s (per sidecar)', target: '≤ 200 ms (Envoy: 0.20 vCPU per 1,000 req/s)', measured: `${perSidecar.toFixed(1)} ms (${hop.cpuMsPer1000Req.toFixed(1)} ms for both sidecars of the hop${extra ? `; ${extra}` : ''})`, met: perSidecar <= 200 });
  } else out.push({ figure: 'CPU per 1,000 requests with mTLS at 1,000 req/s (per sidecar)', target: '≤ 200 ms (Envoy: 0.20 vCPU per 1,000 req/s)', measured: 'not measured', met: null });

  const l3 = s.scenarios['latency-3000'];
  const r3 = t(l3, 'remora')?.summary;
  const n3 = t(l3, 'nginx')?.summary;
  if (r3?.cpuMsPer1000Req != null && n3?.cpuMsPer1000Req != null) {
    const ratio = r3.cpuMsPer1000Req / n3.cpuMsPer1000Req;
    out.push({ figure: 'CPU per 1,000 requests at 3,000 req/s', target: '≤ 1.2 × nginx', measured: `${r3.cpuMsPer1000Req.toFixed(1)} ms vs nginx ${n3.cpuMsPer1000Req.toFixed(1)} ms (${ratio.toFixed(2)} ×)`, met: ratio <= 1.2 });
  } else out.push({ figure: 'CPU per 1,000 requests at 3,000 req/s', target: '≤ 1.2 × nginx', measured: 'not measured', met: null });
  const floor = s.extras.nodeFloor;
  const anon = r3?.peakAnonMB != null ? `, of which private ${r3.peakAnonMB.toFixed(1)} MB` : '';
  const floorText = floor ? `; an idle bare \`node\`: ${floor.rssMB.toFixed(1)} MB, private ${floor.anonMB.toFixed(1)} MB` : '';
  if (r3?.peakRssMB != null) out.push({ figure: 'peak RSS at 3,000 req/s', target: '≤ 50 MB', measured: `${r3.peakRssMB.toFixed(1)} MB${anon}${floorText}`, met: r3.peakRssMB <= 50 });
  else out.push({ figure: 'peak RSS at 3,000 req/s', target: '≤ 50 MB', measured: 'not measured', met: null });
  // Issue #26: at max throughput with one service, with the image's NODE_OPTIONS (the suite runs Remora with them).
  const rm = t(s.scenarios['max'], 'remora')?.summary;
  if (rm?.peakRssMB != null && rm.peakAnonMB != null) {
    out.push({ figure: 'peak RSS at max throughput, one service (private)', target: '≤ 55 MB (private ≤ 20 MB)', measured: `${rm.peakRssMB.toFixed(1)} MB (private ${rm.peakAnonMB.toFixed(1)} MB)`, met: rm.peakRssMB <= 55 && rm.peakAnonMB <= 20 });
  } else out.push({ figure: 'peak RSS at max throughput, one service (private)', target: '≤ 55 MB (private ≤ 20 MB)', measured: 'not measured', met: null });
  if (floor?.remoraIdle) {
    out.push({ figure: 'idle RSS, one service, beside a bare `node -e`', target: 'reported', measured: `Remora ${floor.remoraIdle.rssMB.toFixed(1)} MB (private ${floor.remoraIdle.anonMB.toFixed(1)}); bare node ${floor.rssMB.toFixed(1)} MB (private ${floor.anonMB.toFixed(1)})`, met: null });
  }

  const c = s.extras.concurrency;
  const onePt = t(max, 'remora-passthrough');
  const c2 = c?.report?.targets[0];
  if (c?.supported && c2 && onePt) {
    const ratio = c2.summary.achievedRps / onePt.summary.achievedRps;
    out.push({ figure: '`--concurrency 2` throughput', target: '≥ 1.8 × one core', measured: `${ratio.toFixed(2)} × (${c2.summary.achievedRps.toFixed(0)} vs ${onePt.summary.achievedRps.toFixed(0)} req/s; the generator shares CPU 1)`, met: ratio >= 1.8 });
  } else out.push({ figure: '`--concurrency 2` throughput', target: '≥ 1.8 × one core', measured: c ? c.detail : 'not measured', met: c && !c.supported ? false : null });

  const sv = s.extras.services;
  const s10 = t(sv?.report, 'remora-10-services')?.summary;
  const s10k = t(sv?.report, 'remora-10000-services')?.summary;
  if (s10?.cpuMsPer1000Req != null && s10k?.cpuMsPer1000Req != null) {
    const ratio = s10k.cpuMsPer1000Req / s10.cpuMsPer1000Req;
    out.push({ figure: '10,000 services: per-request CPU', target: 'within 5% of 10 services', measured: `${((ratio - 1) * 100).toFixed(1)}% (${s10k.cpuMsPer1000Req.toFixed(1)} vs ${s10.cpuMsPer1000Req.toFixed(1)} ms per 1,000 requests)`, met: ratio <= 1.05 });
  } else out.push({ figure: '10,000 services: per-request CPU', target: 'within 5% of 10 services', measured: 'not measured', met: null });
  const big = sv?.sizes.find((x) => x.services === 10_000);
  if (big) {
    const startup = big.startupMs ?? big.readyMs;
    const split = big.configMs ? `: read + parse ${big.configMs.read}, validate ${big.configMs.validate}, compile ${big.configMs.compile} ms` : '';
    out.push({ figure: '10,000 services: config load + compile', target: '≤ 1 s', measured: `${startup.toFixed(0)} ms to ready (startupMs in the ready line${split}; spawn → ready ${big.readyMs.toFixed(0)} ms)`, met: startup <= 1000 });
  } else out.push({ figure: '10,000 services: config load + compile', target: '≤ 1 s', measured: 'not measured', met: null });

  const cs = s.extras.coldStart;
  if (cs) out.push({ figure: 'cold start to ready', target: '≤ 300 ms', measured: `${cs.medianReadyHttpMs.toFixed(0)} ms spawn → /ready 200 (ready line ${cs.medianReadyLineMs.toFixed(0)} ms), median of ${cs.runs}${cs.medianBareNodeMs !== undefined ? `; a bare \`node -e 0\` took ${cs.medianBareNodeMs.toFixed(0)} ms` : ''}`, met: cs.medianReadyHttpMs <= 300 });
  else out.push({ figure: 'cold start to ready', target: '≤ 300 ms', measured: 'not measured', met: null });
  return out;
}

const METHOD = `## How to run

\`\`\`sh
npm run bench                 # full run (~10 minutes): 3 interleaved rounds of 10 s per target and scenario
npm run bench -- --quick      # ~3 minutes: 2 rounds of 2 s, results in bench/results/tmp (CI smoke test)
npm run bench -- --only latency-1000,max   # a subset of scenarios
\`\`\`

The harness needs \`nginx\` (Debian \`nginx-light\` or \`nginx\`; the raw TCP scenario also its stream module,
\`libnginx-mod-stream\`) and \`taskset\` (util-linux), and for the
"where the time goes" table \`perf\` (Debian \`linux-perf\`, root or \`perf_event_paranoid\` ≤ 1); without them it
says so in the notes below and measures what it can. Results go to \`bench/results/<date>.json\`; this page
and \`docs/bench-latency.svg\` are regenerated from them.

\`remora bench\` is the same generator as a command for your own services:

\`\`\`sh
remora bench --rate 1000 --duration 10 http://127.0.0.1:8080/
remora bench --compare --rounds 5 --rate 3000 --pid remora=$(pgrep -f 'remora run') \\
  direct=http://127.0.0.1:8080/ remora=http://127.0.0.1:15001/ -H 'Host: reviews:9080' --html report.html
remora bench --max --connections 64 --duration 5 http://127.0.0.1:8080/
\`\`\`

## Methodology

- **Open loop.** Requests are scheduled at fixed intervals of 1/rate (or Poisson arrivals with
  \`--arrival poisson\`, seeded) regardless of how fast responses come back. A worker thread sleeping in
  \`Atomics.wait\` wakes the scheduler (Node's \`setTimeout\` has 1 ms granularity, more than a proxy adds).
- **Coordinated-omission correction.** Latency is measured from each request's *intended* send time. When
  all connections are busy, requests wait in a FIFO queue and the wait counts, as in wrk2 and Fortio — a
  stalled response shows up in the latencies of every request queued behind it, not just its own.
  "service" latency (from the socket write) is in the JSON for comparison.
- **The generator is not the bottleneck.** Raw \`net\` sockets, one request in flight per keep-alive
  connection, preformatted request bytes, a minimal response parser (status line, content-length/chunked,
  \`x-envoy-upstream-service-time\`). Every run records the generator's CPU (\`process.cpuUsage\`) and its
  scheduler lag; a warning is printed when the achieved rate is below 97% of the asked rate, when the
  generator used more than 90% of a core, or when its scheduler lag p99 exceeds 1 ms. The closed-loop
  \`direct\` row of the *max* scenario is the generator's own ceiling on this machine.
- **Interleaving.** Targets run A B C A B C … for several rounds; the tables show medians over rounds, so
  drifts of the machine spread over every target instead of favouring the one that ran first.
- **CPU pinning.** The proxy under test (nginx, http-proxy, Remora) runs on CPU 0 (\`taskset -c 0\`); the
  generator and the upstream share CPU 1. On a 2-core machine anything else makes the numbers meaningless.
- **Per-process cost.** CPU is utime + stime from \`/proc/PID/stat\` over the measured window, divided by the
  completed requests ("CPU ms per 1k req"); "req/s per core" is completed requests per CPU-second of the
  proxy process, which is the proxy's throughput per core even when the generator saturates first. Peak
  RSS is \`VmHWM\` after resetting it through \`/proc/PID/clear_refs\` (with 100 ms \`VmRSS\` samples as a
  fallback). nginx counts master + worker.
- **Peers.** *direct*: the upstream itself (\`bench/upstream.ts\`, a raw \`net\` server answering 98-byte
  bodies) — the floor. *nginx*: one worker, \`proxy_pass\` with upstream \`keepalive\`, no access log — the
  native anchor. *http-proxy*: \`bench/peers/http-proxy.ts\` with a keep-alive agent — the Node.js anchor.
  *remora-passthrough*: one ServiceEntry with one endpoint, tracing off. *remora*: the full policy path —
  a VirtualService with a header match and an 80/20 weighted split over two subsets, Istio's default retry
  policy, a DestinationRule with outlier detection and a connection pool, metrics on, tracing sampled at
  1% to an OTLP sink. What was actually active is checked and listed under "Features".

- **Reading results from a shared machine.** Each scenario states how busy both CPUs were and how much
  of the proxy CPU went to processes other than the measured proxies. When other work competes for the
  CPUs, p99 and above mostly measure that contention (and the generator warns about its scheduler lag);
  p50, CPU per request, requests per CPU-second and RSS are the figures that stay comparable.

## Columns

| column | meaning |
| --- | --- |
| req/s | completed responses per second over the measured window (median over rounds) |
| p50 … max ms | latency from the intended send time, ms (median over rounds of each round's percentile) |
| errors | connect + timeout + reset + parse errors + responses with status ≥ 500 |
| added p50 / p99 | this target's percentile minus the baseline's (\`direct\`), ms |
| proxy p50 | service time minus \`x-envoy-upstream-service-time\` (time inside the proxy incl. loopback hops); Remora reports whole ms like Envoy, so this is coarse |
| upstream p50 | \`x-envoy-upstream-service-time\` as reported by the proxy |
| CPU ms/1k req | CPU time of the proxy process(es) per 1,000 completed requests |
| req/s per core | completed requests per CPU-second of the proxy process(es) |
| peak RSS MB | the proxy's peak resident memory during the run |

## \`remora bench --json\` schema (schemaVersion 1)

\`{ schemaVersion: 1, tool: "remora bench", startedAt, finishedAt, command[], options{mode, rate, arrival,
durationMs, warmupMs, connections, timeoutMs, method, headers, bodyBytes, rounds, baseline}, machine{nproc,
cpuModel, node, platform, loadavg1}, targets[{name, url, rounds[{round, completed, scheduled, askedRps,
achievedRps, measuredMs, errors{connect, timeout, reset, parse, status5xx}, statusCounts, latency, service,
upstream|null, proxy|null, scheduleLagMs{p50, p99, max}, generatorCpu, preciseTimer, process|null{pids,
cpuMs, cpuMsPer1000Req, cpuCores, peakRssMB}}], summary{achievedRps, p50Ms, p90Ms, p99Ms, p999Ms, maxMs,
errors, upstreamP50Ms, proxyP50Ms, proxyP99Ms, cpuMsPer1000Req, peakRssMB, rpsPerCore}, curve[[percentile,
ms]], comparison|null{baseline, addedMs{p50, p90, p99, p999}, ratio{p50, achievedRps, cpuMsPer1000Req,
peakRssMB, rpsPerCore}}}], warnings[] }\`. Latency objects are \`{count, minMs, meanMs, stdevMs, p50Ms, p90Ms,
p99Ms, p999Ms, maxMs}\`. Fields are only ever added within a schema version.
`;

function ratioLine(r: BenchReport, peer: string): string {
  const base = t(r, peer);
  if (!base) return '';
  const rows = r.targets
    .filter((x) => x.name !== peer && x.name !== 'direct')
    .map((x) => {
      const a = x.summary;
      const b = base.summary;
      const parts = [`p50 ${(a.p50Ms / b.p50Ms).toFixed(2)}×`];
      if (r.options.mode === 'max') parts.push(`req/s ${(a.achievedRps / b.achievedRps).toFixed(2)}×`);
      if (a.rpsPerCore !== null && b.rpsPerCore !== null && r.options.mode === 'max') parts.push(`req/s per core ${(a.rpsPerCore / b.rpsPerCore).toFixed(2)}×`);
      if (a.cpuMsPer1000Req !== null && b.cpuMsPer1000Req !== null) parts.push(`CPU/req ${(a.cpuMsPer1000Req / b.cpuMsPer1000Req).toFixed(2)}×`);
      if (a.peakRssMB !== null && b.peakRssMB !== null) parts.push(`RSS ${(a.peakRssMB / b.peakRssMB).toFixed(2)}×`);
      return `${x.name}: ${parts.join(', ')}`;
    });
  return rows.length ? `Ratios vs ${peer}: ${rows.join('; ')}.\n` : '';
}

/** One line per kind of generator warning instead of one per run (the full list is in the JSON). */
export function summarizeWarnings(r: BenchReport): string {
  const runs = r.targets.reduce((n, x) => n + x.rounds.length, 0);
  const kinds: Array<[RegExp, string]> = [
    [/scheduler lag p99 ([\d.]+) ms/, 'scheduler lag p99 above 1 ms (sends late: busy generator CPU)'],
    [/achieved (\d+) req\/s/, 'achieved rate below 97% of the asked rate'],
    [/generator CPU at (\d+)%/, 'generator CPU above 90% of a core'],
    [/errors /, 'errors'],
  ];
  const parts: string[] = [];
  for (const [re, label] of kinds) {
    const hits = r.warnings.filter((w) => re.test(w));
    if (hits.length === 0) continue;
    const nums = hits.map((w) => Number(re.exec(w)?.[1])).filter((n) => Number.isFinite(n));
    const worst = label.startsWith('scheduler') && nums.length ? ` (worst ${Math.max(...nums).toFixed(1)} ms)` : '';
    parts.push(`${label} in ${hits.length} of ${runs} runs${worst}`);
  }
  return parts.length ? `Generator warnings: ${parts.join('; ')}.\n` : '';
}

/** Closed loop: the generator's own ceiling (direct) and whether each proxy was CPU-saturated. */
function maxNotes(r: BenchReport): string[] {
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? 0;
  const out: string[] = [];
  const d = t(r, 'direct');
  if (d) out.push(`Generator ceiling (closed loop against direct, generator and upstream sharing CPU 1): ${d.summary.achievedRps.toFixed(0)} req/s, generator CPU ${(med(d.rounds.map((x) => x.generatorCpu)) * 100).toFixed(0)}% of a core.`);
  const busy = r.targets.filter((x) => x.rounds.some((y) => y.process)).map((x) => `${x.name} ${med(x.rounds.map((y) => y.process?.cpuCores ?? 0)).toFixed(2)}`);
  if (busy.length) out.push(`Proxy CPU used (cores, median): ${busy.join(', ')}. A proxy below ~0.95 was not the bottleneck — the generator/upstream core was — so compare "req/s per core" rather than req/s.`);
  return out.map((l) => l + '\n');
}

const TITLES: Record<string, string> = {
  'latency-1000': 'Latency at 1,000 req/s (98-byte responses)',
  'latency-3000': 'Latency at 3,000 req/s (98-byte responses)',
  max: 'Maximum throughput (closed loop, 64 connections)',
  'body-1k': '1 KB responses at 1,000 req/s',
  'body-100k': '100 KB responses at 1,000 req/s',
};

export function renderBenchmarksDoc(s: SuiteResult, jsonPath: string): string {
  const out: string[] = [];
  out.push('# Benchmarks', '');
  out.push('<!-- generated by `npm run bench` (bench/run.ts, bench/doc.ts); edit those, not this file -->', '');
  out.push('Remora is measured the same way users measure their services with `remora bench`: open loop, latency from the intended send time, peers interleaved on the same machine in the same run. Only numbers measured by the run named below appear on this page.', '');
  out.push(METHOD);
  out.push('## Results', '');
  out.push(`Run: \`${s.command}\` on ${s.date.slice(0, 16).replace('T', ' ')} UTC — ${s.quick ? '**`--quick` run** (2 s runs, 2 rounds: indicative, noisier than a full run)' : 'full run'}. Raw data: \`${jsonPath}\`.`, '');
  out.push(`Machine: ${s.machine.nproc} CPUs (${s.machine.cpuModel}), Node ${s.machine.node}, ${s.machine.platform}; load average ${s.machine.loadavg1.toFixed(2)} at start. Pinning: ${s.pinning.enabled ? `proxy on CPU ${s.pinning.proxy}, generator + upstream on CPU ${s.pinning.generatorAndUpstream}` : 'off'}.`, '');
  if (s.notes.length) out.push('Notes:', '', ...s.notes.map((n) => `- ${n}`), '');

  out.push('### Issue targets', '', '| figure | target | measured | met |', '| --- | --- | --- | --- |');
  for (const c of s.targets) out.push(`| ${c.figure} | ${c.target} | ${c.measured} | ${c.met === null ? 'not measured' : c.met ? 'yes' : '**no**'} |`);
  out.push('');

  const feats = Object.entries(s.features);
  if (feats.length) {
    out.push('### Features active on the full policy path (`remora`)', '');
    for (const [k, f] of feats) out.push(`- ${k}: ${f.active === null ? 'configured' : f.active ? 'active' : '**not active**'} — ${f.detail}`);
    out.push('');
  }

  if (s.scenarios['latency-1000']) out.push('![Latency by percentile at 1,000 req/s](bench-latency.svg)', '');
  for (const [name, r] of Object.entries(s.scenarios)) {
    out.push(renderMarkdown({ ...r, warnings: [] }, TITLES[name] ?? name, { machine: false }).replace(/^## /, '### '));
    const w = summarizeWarnings(r);
    if (w) out.push(w);
    const cu = s.cpuUse?.[name];
    if (cu) {
      const steal = cu.cpu0StealPct === undefined || cu.cpu1StealPct === undefined ? '' : ` Steal (the hypervisor ran something else while these CPUs had work): ${cu.cpu0StealPct.toFixed(1)}% / ${cu.cpu1StealPct.toFixed(1)}% of the time.`;
      out.push(`CPU during this scenario: proxy CPU ${s.pinning.proxy} ${cu.cpu0BusyPct.toFixed(0)}% busy, of which up to ${cu.foreignOnCpu0Pct.toFixed(0)} points were other processes or steal; generator/upstream CPU ${s.pinning.generatorAndUpstream} ${cu.cpu1BusyPct.toFixed(0)}% busy.${steal}\n`);
    }
    const lines = [ratioLine(r, 'nginx')].filter(Boolean);
    if (lines.length) out.push(...lines);
    if (name === 'max') out.push(...maxNotes(r));
    out.push('');
  }

  const an = s.extras.anatomy;
  if (an) out.push(...renderAnatomy(an));
  for (const [key, title, what] of [['grpc', 'gRPC (HTTP/2)', 'unary calls (64-byte message, trailers with grpc-status), closed loop over 4 HTTP/2 connections; nginx: `grpc_pass` with upstream keep-alive; Remora: a GRPC ServiceEntry port, upstream HTTP/2'], ['websocket', 'WebSocket', 'round trips of a 64-byte message on upgraded connections, one in flight per connection; nginx: `proxy_pass` with the Upgrade headers; Remora: the same route as any request, then a tunnel']] as const) {
    const sc = s.extras[key];
    if (sc) out.push(...renderProtocol(title, what, sc));
  }
  if (s.extras.tcp) out.push(...renderTcp(s.extras.tcp));

  const mt = s.extras.mtls;
  if (mt) {
    out.push('### Mutual TLS between two sidecars', '');
    out.push(`One hop at 1,000 and 3,000 req/s: client → outbound sidecar → inbound sidecar → upstream, both sidecars on the proxy CPU (their CPU summed per hop); \`remora-mtls-hop\` with mutual TLS verified at both ends (auto mTLS to the endpoint's service account, STRICT PeerAuthentication, the client's chain checked by the server and the server's chain and identity by the client; certificates from \`remora certs\`), \`remora-plain-hop\` the same in plaintext, \`nginx-mtls-hop\` one nginx with a plaintext front proxying over mTLS (\`proxy_ssl_certificate\`, \`proxy_ssl_verify on\`, keep-alive, session reuse) to a TLS back with \`ssl_verify_client on\`. The server sidecar accepted ${Number.isFinite(mt.handshakes) ? mt.handshakes : '?'} mTLS connections for ${Number.isFinite(mt.requests) ? mt.requests : '?'} requests: pooled connections keep handshakes off the per-request path.`, '');
    out.push(renderMarkdown({ ...mt.report, warnings: [] }, 'mTLS hop at 1,000 req/s', { machine: false }).replace(/^## /, '#### '), summarizeWarnings(mt.report));
    if (mt.report3000) out.push(renderMarkdown({ ...mt.report3000, warnings: [] }, 'mTLS hop at 3,000 req/s', { machine: false }).replace(/^## /, '#### '), summarizeWarnings(mt.report3000));
    const added = [mt.report, mt.report3000].flatMap((rep) => {
      const m = t(rep, 'remora-mtls-hop')?.summary;
      const p = t(rep, 'remora-plain-hop')?.summary;
      const n = t(rep, 'nginx-mtls-hop')?.summary;
      const rate = rep?.options.rate;
      if (m === undefined || p === undefined || rate == null) return [];
      return [`| ${rate.toLocaleString('en')} | ${ms(m.p50Ms - p.p50Ms)} | ${ms(m.p99Ms - p.p99Ms)} | ${n !== undefined ? `${ms(n.p50Ms)} / ${ms(n.p99Ms)}` : '—'} | ${m.cpuMsPer1000Req != null && p.cpuMsPer1000Req != null ? `${(m.cpuMsPer1000Req - p.cpuMsPer1000Req).toFixed(1)} ms` : '—'} |`];
    });
    if (added.length > 0) {
      out.push('What mTLS adds to the Remora hop over the same hop in plaintext (medians of the rounds), with nginx\'s mTLS hop for reference:', '');
      out.push('| req/s | added p50 | added p99 | nginx mTLS hop p50 / p99 | added CPU per 1,000 requests (both sidecars) |', '| --- | --- | --- | --- | --- |', ...added, '');
    }
    const hs = mt.handshakeRates ?? [];
    if (hs.length > 0) {
      out.push('New mutual-TLS connections per second (each a full handshake with a client certificate, no resumption, and one request), 8 in flight, against the server sidecar and against nginx\'s TLS back (`ssl_verify_client on`); CPU is the server\'s:', '');
      out.push('| server | handshakes/s | CPU per handshake | failed |', '| --- | --- | --- | --- |');
      for (const h of hs) out.push(`| ${h.name} | ${h.perSecond.toFixed(0)} | ${h.cpuMsPerHandshake != null ? `${h.cpuMsPerHandshake.toFixed(2)} ms` : '—'} | ${h.failed} |`);
      out.push('');
    }
  }

  const sv = s.extras.services;
  if (sv) {
    out.push('### Services in the config', '');
    out.push('| services | config size | startupMs (ready line) | of which read + parse / validate / compile | spawn → ready |', '| ---: | ---: | ---: | ---: | ---: |');
    for (const x of sv.sizes) out.push(`| ${x.services.toLocaleString('en-US')} | ${(x.configBytes / 1024).toFixed(0)} KB | ${x.startupMs ?? '-'} | ${x.configMs ? `${x.configMs.read} / ${x.configMs.validate} / ${x.configMs.compile} ms` : '-'} | ${x.readyMs.toFixed(0)} ms |`);
    out.push('');
    if (sv.report) out.push(renderMarkdown({ ...sv.report, warnings: [] }, 'Per-request cost at 3,000 req/s by config size', { machine: false }).replace(/^## /, '#### '), summarizeWarnings(sv.report));
  }
  const rl = s.extras.reload;
  if (rl) {
    const r0 = rl.report.targets[0]!.rounds[0]!;
    const errs = Object.entries(r0.errors).filter(([, n]) => n > 0);
    out.push('### Config reload under load', '');
    out.push(`The full-policy config file was rewritten (write + rename) every 250 ms, alternating the split between 80/20 and 50/50, ${rl.rewrites} times during a ${(rl.report.options.durationMs / 1000).toFixed(0)} s run at 1,000 req/s: ${r0.completed} responses, ${errs.length ? `errors ${errs.map(([k, n]) => `${k}=${n}`).join(', ')}` : '**no errors**'}, statuses ${JSON.stringify(r0.statusCounts)}, p50 ${r0.latency.p50Ms.toFixed(3)} ms, p99 ${r0.latency.p99Ms.toFixed(3)} ms, max ${r0.latency.maxMs.toFixed(2)} ms. Config version after the run: ${String(rl.configVersionAfter)}${typeof rl.configVersionAfter === 'number' ? ` — ${rl.configVersionAfter - 1} of the ${rl.rewrites} rewrites were applied${rl.configVersionAfter - 1 < rl.rewrites / 2 ? ' (the proxy missed most file changes; consecutive rewrites always differ, so each should have produced a new version)' : ''}` : ''}.`, '');
  }
  const cs = s.extras.coldStart;
  if (cs) {
    out.push('### Cold start', '');
    out.push(`Spawn of \`node dist/cli.js run\` (pass-through config) to the \`remora ready\` line: median ${cs.medianReadyLineMs.toFixed(0)} ms; to \`GET /ready\` → 200 on the admin port: median ${cs.medianReadyHttpMs.toFixed(0)} ms (n = ${cs.runs}; individual: ${cs.readyHttpMs.map((x) => x.toFixed(0)).join(', ')} ms).${cs.medianInternalStartupMs !== null ? ` The proxy's own \`startupMs\` (after Node and module loading): median ${cs.medianInternalStartupMs} ms.` : ''}${cs.medianBareNodeMs !== undefined ? ` Before each start, a bare \`node -e 0\` (same flags, same CPU) ran from spawn to exit in a median ${cs.medianBareNodeMs.toFixed(0)} ms: what this host charges any Node.js process, so Remora's own part of the ready line is about ${(cs.medianReadyLineMs - cs.medianBareNodeMs).toFixed(0)} ms.` : ''}`, '');
  }
  const cc = s.extras.concurrency;
  if (cc) {
    out.push('### `--concurrency 2`', '');
    if (cc.report) out.push(renderMarkdown({ ...cc.report, warnings: [] }, 'Closed loop, proxy on CPUs 0 and 1 (the generator shares CPU 1)', { machine: false }).replace(/^## /, '#### '), summarizeWarnings(cc.report));
    else out.push(cc.detail, '');
  }
  return out.join('\n').replace(/\n{3,}/g, '\n\n');
}

/** A protocol scenario's table (bench/protocols.ts). */
export function renderProtocol(title: string, what: string, sc: ProtocolScenario): string[] {
  const out = [`### ${title}`, '', `${what}; ${sc.concurrency} in flight, ${(sc.durationMs / 1000).toFixed(0)} s per round, median of ${sc.rounds} round(s).`, ''];
  out.push('| proxy | per second | per CPU-second | CPU ms / 1k | p50 | errors |', '| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const [name, r] of Object.entries(sc.targets)) out.push(`| ${name} | ${r.perSecond.toFixed(0)} | ${r.perCpuSecond.toFixed(0)} | ${r.cpuMsPer1k.toFixed(1)} | ${ms(r.p50Ms)} | ${r.errors} |`);
  out.push('');
  for (const n of sc.notes) out.push(`- ${n}`);
  if (sc.notes.length) out.push('');
  return out;
}

/** The raw TCP scenario (bench/tcp.ts): echo round trips, bulk bytes, connection churn, per proxy. */
export function renderTcp(sc: TcpScenario): string[] {
  const out = ['### Raw TCP', ''];
  out.push(`The same bytes direct to an echo server, through nginx's stream module (\`proxy_pass\` at L4, one worker) and through Remora's TCP proxy (a TCP ServiceEntry port; each connection opened with HTTP CONNECT under \`--connect\`, the bench's stand-in for iptables capture, which costs Remora one extra round trip per connection); ${(sc.durationMs / 1000).toFixed(0)} s per load and round, median of ${sc.rounds} round(s).`, '');
  out.push(`**Echo**: a 64-byte round trip in flight on each of ${sc.echoConnections} long-lived connections.`, '');
  out.push('| proxy | round trips/s | per CPU-second | CPU ms / 1k | p50 | errors |', '| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const [name, r] of Object.entries(sc.echo)) out.push(`| ${name} | ${r.perSecond.toFixed(0)} | ${r.perCpuSecond.toFixed(0)} | ${r.cpuMsPer1k.toFixed(1)} | ${ms(r.p50Ms)} | ${r.errors} |`);
  out.push('', `**Bulk**: ${sc.bulkConnections} connections each keeping up to 1 MiB of 64 KiB writes in flight, every byte echoed back (so it crosses the proxy twice).`, '');
  out.push('| proxy | MiB/s echoed | MiB per CPU-second | CPU ms / GiB | errors |', '| --- | ---: | ---: | ---: | ---: |');
  for (const [name, r] of Object.entries(sc.bulk)) out.push(`| ${name} | ${r.mibPerSecond.toFixed(0)} | ${r.mibPerCpuSecond.toFixed(0)} | ${r.cpuMsPerGiB.toFixed(0)} | ${r.errors} |`);
  out.push('', `**Churn**: ${sc.churnConcurrency} loops of open, one 64-byte round trip, close (Remora's CONNECT included).`, '');
  out.push('| proxy | connections/s | per CPU-second | CPU ms / 1k | p50 per connection | errors |', '| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const [name, r] of Object.entries(sc.churn)) out.push(`| ${name} | ${r.perSecond.toFixed(0)} | ${r.perCpuSecond.toFixed(0)} | ${r.cpuMsPer1k.toFixed(1)} | ${ms(r.p50Ms)} | ${r.errors} |`);
  out.push('');
  for (const n of sc.notes) out.push(`- ${n}`);
  if (sc.notes.length) out.push('');
  return out;
}

/** The "where the time goes" table (bench/anatomy.ts). */
export function renderAnatomy(an: NonNullable<SuiteResult['extras']['anatomy']>): string[] {
  const out = [`### Where the time goes at ${an.rate.toLocaleString('en-US')} req/s`, ''];
  out.push(
    'Measured from outside each proxy process in the same way (`bench/anatomy.ts`; medians over ' + `${an.rounds} round${an.rounds === 1 ? '' : 's'}` + '): CPU per 1,000 requests split into user and kernel time (/proc/PID/stat, no tracer attached), system calls per request (`perf stat` on syscall tracepoints), and the time the proxy spends in user space on each leg of a request — from the exit of the read that brought the request to the entry of the write that sends it upstream, and from the read of the upstream answer to the write back to the client (`perf record` of those tracepoints; the write itself is kernel time and not included).',
    '',
    '| proxy | user CPU ms/1k | kernel CPU ms/1k | syscalls/req | reads | writes | polls | request leg p50 / p90 µs | response leg p50 / p90 µs |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  );
  const f = (n: number | undefined, d = 2) => (n === undefined ? '-' : n.toFixed(d));
  for (const [name, a] of Object.entries(an.targets) as Array<[string, Anatomy]>) {
    const sc = a.syscallsPerRequest;
    const sum = (ks: string[]) => (sc === null ? undefined : ks.reduce((s, k) => s + (sc[k] ?? 0), 0));
    const leg = (g: Anatomy['requestSide']) => (g === null ? '-' : `${g.p50Us.toFixed(0)} / ${g.p90Us.toFixed(0)}`);
    out.push(`| ${name} | ${f(a.userMsPer1k, 1)} | ${f(a.sysMsPer1k, 1)} | ${f(sc?.total)} | ${f(sum(READ_CALLS))} | ${f(sum(WRITE_CALLS))} | ${f(sum(POLL_CALLS))} | ${leg(a.requestSide)} | ${leg(a.responseSide)} |`);
  }
  out.push('');
  return out;
}
