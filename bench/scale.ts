// `npm run bench:scale`: the scale scenario of issue #26, side by side in one run. Part `mesh`: at 10, 10,000 and
// 50,000 services (each a ServiceEntry with two endpoints, a DestinationRule with two subsets and an 80/20
// VirtualService, over 100 files): ready time, RSS after traffic to 1,000 of them, p50 through the proxy, and how long
// one edited weight takes to serve (p50/p99 over E edits, with a background load whose every error is counted).
// Part `memory`: one service — idle RSS beside a bare `node -e`, peak RSS at max throughput with and without the
// image's NODE_OPTIONS. Proxy pinned to CPU 0, generator and upstream on CPU 1 (as `npm run bench`).
// `--baseline DIR` (a built checkout, e.g. of main) runs every measurement for that build too, side by side: sizes
// start one after the other, traffic and p50 are interleaved, and edits alternate between the two builds.
import { parseArgs } from 'node:util';
import { cpSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runBench, machineFacts } from '../src/bench/runner.js';
import { DEFAULT_LOAD_OPTIONS } from '../src/bench/generator.js';
import { renderTable, type BenchReport } from '../src/bench/report.js';
import { mulberry32 } from '../src/bench/schedule.js';
import { hasTaskset, pinSelf, startProcess, stopProcess, freePort, type Started } from './procs.js';
import { policyYaml, POLICY_HOST } from './configs.js';
import { EDIT_HEADER, SPARE_ADDRESS, fileName, fileOf, fileYaml, meshFiles, scaleAddress, scaleHost, spreadServices, type ScaleEdit, type ScaleEditKind, type ScalePorts, type ScaleShape } from './scale-config.js';
import { BackgroundLoad, percentile, visitAll, waitForHeader } from './scale-client.js';
import { memStatus, type MemStatus } from './scale-mem.js';

const here = dirname(fileURLToPath(import.meta.url)); // build/bench
const repo = resolve(here, '../..');
const SNAPSHOT = join(repo, 'build/remora-dist-snapshot-scale');
const BASE_SNAPSHOT = join(repo, 'build/remora-dist-base-scale');
const PROXY_CPU = '0';
const LOAD_CPU = '1';
/** The image's NODE_OPTIONS (Dockerfile), as `npm run bench` runs Remora. */
export const IMAGE_NODE_FLAGS = ['--max-semi-space-size=1', '--v8-pool-size=1'];

const { values: argv } = parseArgs({
  options: {
    sizes: { type: 'string' },
    edits: { type: 'string' },
    traffic: { type: 'string' },
    only: { type: 'string' },
    quick: { type: 'boolean' },
    out: { type: 'string' },
    seed: { type: 'string' },
    baseline: { type: 'string' },
    'baseline-node-flags': { type: 'string' },
    edit: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (argv.help) {
  process.stdout.write(`usage: npm run bench:scale -- [--quick] [--only mesh,memory] [--sizes 10,10000,50000] [--edits 100] [--traffic 1000] [--baseline DIR]
  --quick: sizes 10,10000, 10 edits, shorter load windows; results in bench/results/tmp/
  --baseline DIR: a built checkout (DIR/dist/cli.js) measured side by side with this one
  --baseline-node-flags "F …": part memory runs the baseline build with these Node flags (and the bare node with
    both sets), e.g. the flags of the image the baseline shipped with; default: the image's (IMAGE_NODE_FLAGS)
  --edit vs|dr|endpoints: what each timed edit changes (default vs: one VirtualService's weights and a response
    header; dr: one DestinationRule's subset v1 selects another endpoint; endpoints: one ServiceEntry's endpoints move
    to another address), each dr/endpoints edit on a service not edited before, seen in x-served-by
`);
  process.exit(0);
}
const quick = argv.quick === true;
const only = argv.only ? new Set(argv.only.split(',')) : null;
const want = (s: string): boolean => only === null || only.has(s);
const SIZES = (argv.sizes ?? (quick ? '10,10000' : '10,10000,50000')).split(',').map(Number);
const EDITS = Number(argv.edits ?? (quick ? 10 : 100));
const TRAFFIC = Number(argv.traffic ?? 1000);
const SEED = Number(argv.seed ?? 26);
const EDIT_KIND = (argv.edit ?? 'vs') as ScaleEditKind;
if (!['vs', 'dr', 'endpoints'].includes(EDIT_KIND)) throw new Error(`--edit: vs, dr or endpoints, not ${EDIT_KIND}`);
/** An edit not served after this long counts as this long (and three in a row end that size's edits). */
const EDIT_TIMEOUT_MS = 60_000;
/** The builds measured: this one, and the baseline's when --baseline is given. */
interface Build { label: string; cli: string }
const BUILDS: Build[] = [{ label: 'now', cli: join(SNAPSHOT, 'cli.js') }, ...(argv.baseline ? [{ label: 'base', cli: join(BASE_SNAPSHOT, 'cli.js') }] : [])];
/** Part memory: the baseline build's Node flags (--baseline-node-flags), the image's by default. */
const BASE_NODE_FLAGS = argv['baseline-node-flags'] !== undefined ? argv['baseline-node-flags'].split(' ').filter(Boolean) : IMAGE_NODE_FLAGS;
const outDir = resolve(repo, argv.out ?? (quick ? 'bench/results/tmp' : 'bench/results'));

const tmp = mkdtempSync(join(tmpdir(), 'remora-scale-'));
const started: Started[] = [];
const log = (s: string): void => void process.stderr.write(`[scale] ${s}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function start(opts: Parameters<typeof startProcess>[0]): Promise<Started> {
  const s = await startProcess(opts);
  started.push(s);
  return s;
}
async function stop(s: Started | undefined): Promise<void> {
  if (!s) return;
  const i = started.indexOf(s);
  if (i >= 0) started.splice(i, 1);
  await stopProcess(s, 10_000);
}
async function cleanup(): Promise<void> {
  await Promise.all(started.splice(0).map((s) => stopProcess(s).catch(() => undefined)));
  rmSync(tmp, { recursive: true, force: true });
}
process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));

const REMORA_PORT_ARGS = ['--outbound-port', '0', '--inbound-port', '0', '--admin-port', '0', '--stats-port', '0', '--health-port', '0', '--log-level', 'warn'];

interface Proxy {
  s: Started;
  outbound: number;
  admin: number;
  startupMs: number;
  configMs: unknown;
}

async function startRemora(name: string, build: Build, configDir: string, nodeFlags = IMAGE_NODE_FLAGS, extra: string[] = []): Promise<Proxy> {
  const s = await start({ name, cmd: process.execPath, args: [...nodeFlags, build.cli, 'run', '--config', configDir, ...REMORA_PORT_ARGS, ...extra], cpus: PROXY_CPU, marker: 'remora ready', timeoutMs: 180_000 });
  return { s, outbound: Number(s.ready.outbound), admin: Number(s.ready.admin), startupMs: Number(s.ready.startupMs), configMs: s.ready.configMs };
}

/** Private copies of the builds (inside build/, so node_modules resolves): a rebuild meanwhile changes nothing. */
function snapshotDist(): void {
  if (!existsSync(join(repo, 'dist/cli.js'))) throw new Error('dist/cli.js missing: run `npm run build`');
  rmSync(SNAPSHOT, { recursive: true, force: true });
  cpSync(join(repo, 'dist'), SNAPSHOT, { recursive: true });
  if (argv.baseline) {
    const dist = join(resolve(argv.baseline), 'dist');
    if (!existsSync(join(dist, 'cli.js'))) throw new Error(`${dist}/cli.js missing: build the baseline first`);
    rmSync(BASE_SNAPSHOT, { recursive: true, force: true });
    cpSync(dist, BASE_SNAPSHOT, { recursive: true });
  }
}

// === part `mesh` ===

interface SizeResult {
  build: string;
  services: number;
  configBytes: number;
  /** Spawn → `remora ready` line (ms), and the proxy's own startupMs / first build split from that line. */
  readyMs: number;
  startupMs: number;
  configMs: unknown;
  atReady: MemStatus;
  trafficServices: number;
  trafficStatus: Record<string, number>;
  afterTraffic: MemStatus;
  /** 12 s after afterTraffic, with nothing happening. */
  settled: MemStatus;
  edits?: {
    /** What each edit changed (--edit). */
    kind: ScaleEditKind;
    count: number;
    /** Rename of the edited file → first response carrying the edit (ms). */
    latenciesMs: number[];
    p50Ms: number;
    p99Ms: number;
    maxMs: number;
    background: { rate: number; sent: number; ok: number; failures: Record<string, number> };
    probeErrors: number;
    afterEdits: MemStatus;
    /** Edits not served within EDIT_TIMEOUT_MS (their latency is counted as the timeout). */
    timeouts: number;
    /** RSS (MB) right after each edit served. */
    rssAfterEachEditMB: number[];
    /**
     * Per edit, the proxy's own account of the builds it applied between the rename and the first response with the
     * edit (its "config version N applied" log lines, ConfigStore.BuildTimings, ms summed over those builds), and
     * how many builds that was: what the edit → serving time is made of.
     */
    stages: Array<{ builds: number; wait: number; read: number; validate: number; hash: number; compile: number; apply: number }>;
  };
}

async function meshPart(): Promise<{ sizes: SizeResult[]; latency?: BenchReport; perServiceKB: Record<string, number> }> {
  // One upstream process for every size: the addresses of the services that get traffic, each on ports v1 and v2.
  const trafficked = new Map<number, number[]>(SIZES.map((n) => [n, spreadServices(n, TRAFFIC)]));
  const addresses = [...new Set([...trafficked.values()].flat().map(scaleAddress)), ...(EDIT_KIND === 'vs' ? [] : [SPARE_ADDRESS])];
  writeFileSync(join(tmp, 'addresses.json'), JSON.stringify(addresses));
  // A dr run gives the services it may edit (those that get traffic) a third endpoint, selected only once edited.
  const shapeOf = (n: number): ScaleShape | undefined => (EDIT_KIND === 'dr' ? { v3: new Set(trafficked.get(n)!) } : undefined);
  const up = await start({ name: 'scale-upstream', cmd: process.execPath, args: [join(here, 'scale-upstream.js'), join(tmp, 'addresses.json'), ...(EDIT_KIND === 'vs' ? [] : ['--tagged'])], cpus: LOAD_CPU, marker: 'scale-upstream ready', timeoutMs: 60_000 });
  const ports: ScalePorts = { v1: Number(up.ready.v1), v2: Number(up.ready.v2) };
  log(`upstream on ${addresses.length} addresses, ports v1 ${ports.v1} v2 ${ports.v2}`);

  const results: SizeResult[] = [];
  const proxies: Proxy[] = [];
  const name = (b: Build, n: number): string => `remora-${n}${b.label === 'now' ? '' : `-${b.label}`}`;
  try {
    for (const n of SIZES) {
      for (const b of BUILDS) {
        const dir = join(tmp, `mesh-${n}-${b.label}`);
        mkdirSync(dir, { recursive: true });
        let bytes = 0;
        for (const [file, text] of meshFiles(n, ports, shapeOf(n))) {
          writeFileSync(join(dir, file), text);
          bytes += Buffer.byteLength(text);
        }
        const t0 = performance.now();
        const p = await startRemora(name(b, n), b, dir);
        const readyMs = performance.now() - t0;
        proxies.push(p);
        await sleep(1000);
        const atReady = memStatus(p.s.pid);
        log(`${name(b, n)}: ready in ${readyMs.toFixed(0)} ms (startupMs ${p.startupMs}, first build ${JSON.stringify(p.configMs)}), RSS ${atReady.rssMB.toFixed(1)} MB (private ${atReady.anonMB.toFixed(1)}, peak ${atReady.hwmMB.toFixed(1)})`);
        const hosts = trafficked.get(n)!.map(scaleHost);
        const trafficStatus = await visitAll(p.outbound, hosts, 5, 16);
        await sleep(2000);
        const afterTraffic = memStatus(p.s.pid);
        // And once V8's memory reducer has run (it shrinks the heap ~10 s after activity stops).
        await sleep(12_000);
        const settled = memStatus(p.s.pid);
        log(`${name(b, n)}: traffic to ${hosts.length} services ${JSON.stringify(trafficStatus)}, RSS ${afterTraffic.rssMB.toFixed(1)} MB (private ${afterTraffic.anonMB.toFixed(1)}, peak ${afterTraffic.hwmMB.toFixed(1)}), 12 s later ${settled.rssMB.toFixed(1)} MB (private ${settled.anonMB.toFixed(1)})`);
        results.push({ build: b.label, services: n, configBytes: bytes, readyMs, startupMs: p.startupMs, configMs: p.configMs, atReady, trafficServices: hosts.length, trafficStatus, afterTraffic, settled });
      }
    }

    // p50 through each proxy and directly, interleaved in one scenario (1,000 req/s open loop to service 0).
    let latency: BenchReport | undefined;
    if (results.length > 0) {
      const load = { ...DEFAULT_LOAD_OPTIONS, rate: 1000, connections: 16, durationMs: quick ? 2000 : 5000, warmupMs: quick ? 500 : 1000 };
      latency = await runBench({
        targets: [
          { name: 'direct', url: `http://${scaleAddress(0)}:${ports.v1}/` },
          ...proxies.map((p, i) => ({ name: p.s.name, url: `http://127.0.0.1:${p.outbound}/`, pids: [p.s.pid], headers: [['host', scaleHost(0)]] as Array<[string, string]> })),
        ],
        load,
        rounds: quick ? 1 : 3,
        baseline: 'direct',
        command: ['npm', 'run', 'bench:scale'],
        pauseMs: 300,
      });
      process.stderr.write(renderTable(latency));
    }

    // Edits, one size at a time (the other proxies idle); with a baseline, each edit is made on both builds in turn.
    for (const n of SIZES) {
      const mine = BUILDS.map((b) => ({ b, p: proxies[results.findIndex((r) => r.services === n && r.build === b.label)]!, r: results.find((r) => r.services === n && r.build === b.label)! }));
      const candidates = trafficked.get(n)!;
      const rand = mulberry32(SEED + n);
      const bgHosts = candidates.slice(0, 50).map(scaleHost);
      const state = mine.map(({ b, p }) => ({
        b, p,
        dir: join(tmp, `mesh-${n}-${b.label}`),
        bg: new BackgroundLoad(p.outbound, bgHosts, 200 / mine.length),
        latencies: [] as number[], probeErrors: 0, timeouts: 0, timeoutsInARow: 0, rssTrace: [] as number[],
        builds: watchBuilds(p.s.proc), stages: [] as StageSum[],
      }));
      // The proxies run at --log-level warn; their "config version N applied" lines (info) say what each edit cost them.
      for (const st of state) await adminPost(st.p.admin, '/logging?level=info');
      for (const st of state) st.bg.start();
      const edits = new Map<number, ScaleEdit>();
      for (let e = 0; e < EDITS && state.some((st) => st.timeoutsInARow < 3); e++) {
        let svc = candidates[Math.floor(rand() * candidates.length)]!;
        // A dr or endpoints edit goes to a service not edited before (its marker is the spare address).
        while (EDIT_KIND !== 'vs' && edits.has(svc) && edits.size < candidates.length) svc = candidates[Math.floor(rand() * candidates.length)]!;
        const w = 10 * Math.floor(rand() * 11);
        const edit: ScaleEdit = { service: svc, weights: [w, 100 - w], marker: EDIT_KIND === 'vs' ? `e${e}` : SPARE_ADDRESS, kind: EDIT_KIND };
        edits.set(svc, edit);
        const f = fileOf(n, svc);
        // Every edit of this file so far stays applied (an edited service keeps its last edit).
        const withEdits = fileYaml(n, f, ports, edits, shapeOf(n));
        const header = EDIT_KIND === 'vs' ? EDIT_HEADER : 'x-served-by';
        for (const st of state) {
          if (st.timeoutsInARow >= 3) continue;
          writeFileSync(join(st.dir, `.${fileName(f)}.new`), withEdits);
          st.builds.seen.length = 0;
          const t0 = performance.now();
          renameSync(join(st.dir, `.${fileName(f)}.new`), join(st.dir, fileName(f))); // as a ConfigMap update: one step
          const served = await waitForHeader(st.p.outbound, scaleHost(svc), header, edit.marker, { gapMs: 2, timeoutMs: EDIT_TIMEOUT_MS }).catch((err: Error) => {
            log(`${st.p.s.name}: edit e${e}: ${err.message.split('\n')[0]}`);
            return undefined;
          });
          if (served === undefined) {
            // Not served within the timeout: counted as the timeout (a lower bound); after three in a row that proxy's
            // edits stop (it is not keeping up; the run still reports what it measured).
            st.latencies.push(EDIT_TIMEOUT_MS);
            st.timeouts++;
            st.timeoutsInARow++;
          } else {
            st.latencies.push(served.at - t0);
            st.probeErrors += served.errors;
            st.timeoutsInARow = 0;
          }
          st.rssTrace.push(Math.round(memStatus(st.p.s.pid).rssMB));
          await sleep(quick ? 300 : 1000);
          // The proxy logs a build before it serves it; after the pause its log lines have arrived on the pipe too.
          st.stages.push(sumStages(st.builds.seen));
        }
      }
      for (const st of state) {
        const background = { rate: 200 / mine.length, ...(await st.bg.stop()) };
        const afterEdits = memStatus(st.p.s.pid);
        const r = mine.find((m) => m.b === st.b)!.r;
        const lat = st.latencies;
        r.edits = {
          kind: EDIT_KIND,
          count: lat.length, latenciesMs: lat.map((x) => Math.round(x)),
          p50Ms: percentile(lat, 50), p99Ms: percentile(lat, 99), maxMs: Math.max(...lat),
          background, probeErrors: st.probeErrors, afterEdits, timeouts: st.timeouts, rssAfterEachEditMB: st.rssTrace,
          stages: st.stages,
        };
        st.builds.stop();
        log(`${st.p.s.name}: ${lat.length} edits (${st.timeouts} not served within ${EDIT_TIMEOUT_MS / 1000} s), edit → serving p50 ${r.edits.p50Ms.toFixed(0)} ms, p99 ${r.edits.p99Ms.toFixed(0)} ms, max ${r.edits.maxMs.toFixed(0)} ms; background ${background.ok}/${background.sent} ok ${JSON.stringify(background.failures)}; RSS after ${afterEdits.rssMB.toFixed(1)} MB`);
        // The slowest edits, with what the proxy says they were made of.
        const slow = lat.map((ms, i) => ({ ms, i })).sort((a, b) => b.ms - a.ms).slice(0, 5);
        for (const { ms, i } of slow) log(`  edit e${i}: ${ms.toFixed(0)} ms = ${formatStages(st.stages[i])}`);
      }
    }
    // KB per service: the RSS above the smallest size's (same build), per service added.
    const perServiceKB: Record<string, number> = {};
    for (const r of results) {
      const base = results.find((x) => x.build === r.build && x.services === Math.min(...SIZES));
      if (base && base !== r) perServiceKB[`${r.build}:${r.services}`] = ((r.settled.rssMB - base.settled.rssMB) * 1024) / (r.services - base.services);
    }
    return { sizes: results, latency, perServiceKB };
  } finally {
    for (const p of proxies) await stop(p.s);
    await stop(up);
  }
}

// === part `memory` ===

interface MemoryResult {
  bareNode: MemStatus;
  /** A bare node with the baseline's flags, when --baseline-node-flags differ from the image's. */
  bareNodeBase?: MemStatus;
  baseNodeFlags: string[];
  /** Per build: idle RSS with one service (2 s after ready), and again 2 s after the max-throughput runs. */
  idle: Record<string, MemStatus>;
  idleAfterLoad: Record<string, MemStatus>;
  /** Max throughput, 64 connections, every build with the image's NODE_OPTIONS and without, interleaved. */
  max: BenchReport;
}

async function memoryPart(): Promise<MemoryResult> {
  const [p1, p2] = [await freePort(), await freePort()];
  const up = await start({ name: 'upstream', cmd: process.execPath, args: [join(here, 'upstream.js'), String(p1), String(p2)], cpus: LOAD_CPU, marker: 'upstream ready' });
  const dir = join(tmp, 'one');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'mesh.yaml'), policyYaml(p1, p2));
  let bare: Started | undefined;
  let bareBase: Started | undefined;
  const otherBaseFlags = BUILDS.length > 1 && BASE_NODE_FLAGS.join(' ') !== IMAGE_NODE_FLAGS.join(' ');
  const proxies: Array<{ name: string; b: Build; p: Proxy; flags: boolean }> = [];
  try {
    bare = await start({ name: 'bare-node', cmd: process.execPath, args: [...IMAGE_NODE_FLAGS, '-e', "console.log('node ready'); setInterval(() => {}, 60000)"], cpus: PROXY_CPU, marker: 'node ready' });
    if (otherBaseFlags) bareBase = await start({ name: 'bare-node-base', cmd: process.execPath, args: [...BASE_NODE_FLAGS, '-e', "console.log('node ready'); setInterval(() => {}, 60000)"], cpus: PROXY_CPU, marker: 'node ready' });
    for (const b of BUILDS) {
      const tag = b.label === 'now' ? '' : ` ${b.label}`;
      const flags = b.label === 'now' ? IMAGE_NODE_FLAGS : BASE_NODE_FLAGS;
      proxies.push({ name: `remora${tag}${flags === IMAGE_NODE_FLAGS ? '' : ` (${flags.join(' ')})`}`, b, p: await startRemora(`remora-one${tag}`, b, dir, flags), flags: true });
      proxies.push({ name: `remora${tag} (no NODE_OPTIONS)`, b, p: await startRemora(`remora-one-no-flags${tag}`, b, dir, []), flags: false });
    }
    await sleep(2000);
    const bareNode = memStatus(bare.pid);
    const bareNodeBase = bareBase ? memStatus(bareBase.pid) : undefined;
    const idle: Record<string, MemStatus> = {};
    for (const x of proxies) if (x.flags) idle[x.b.label] = memStatus(x.p.s.pid);
    for (const [label, m] of Object.entries(idle)) log(`idle (${label}): Remora RSS ${m.rssMB.toFixed(1)} MB (private ${m.anonMB.toFixed(1)}, file ${m.fileMB.toFixed(1)}); bare node -e RSS ${bareNode.rssMB.toFixed(1)} MB (private ${bareNode.anonMB.toFixed(1)}, file ${bareNode.fileMB.toFixed(1)})`);
    const load = { ...DEFAULT_LOAD_OPTIONS, mode: 'max' as const, connections: 64, durationMs: quick ? 2000 : 5000, warmupMs: quick ? 500 : 1000 };
    const max = await runBench({
      targets: proxies.map((x) => ({ name: x.name, url: `http://127.0.0.1:${x.p.outbound}/`, pids: [x.p.s.pid], headers: [['host', `${POLICY_HOST}:${p1}`]] as Array<[string, string]> })),
      load, rounds: quick ? 1 : 3, baseline: null, command: ['npm', 'run', 'bench:scale'], pauseMs: 300,
    });
    process.stderr.write(renderTable(max));
    await sleep(2000);
    const idleAfterLoad: Record<string, MemStatus> = {};
    for (const x of proxies) if (x.flags) idleAfterLoad[x.b.label] = memStatus(x.p.s.pid);
    return { bareNode, ...(bareNodeBase ? { bareNodeBase } : {}), baseNodeFlags: BASE_NODE_FLAGS, idle, idleAfterLoad, max };
  } finally {
    await stop(bare);
    await stop(bareBase);
    for (const x of proxies) await stop(x.p.s);
    await stop(up);
  }
}

async function main(): Promise<void> {
  if (!hasTaskset() || !pinSelf(LOAD_CPU)) log('CPU pinning unavailable: proxy and generator share CPUs');
  snapshotDist();
  const out: Record<string, unknown> = { kind: 'remora-bench-scale', date: new Date().toISOString(), quick, machine: machineFacts(), command: `npm run bench:scale${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`, nodeFlags: IMAGE_NODE_FLAGS };
  try {
    const notes: string[] = [];
    out.notes = notes;
    const part = async <T>(name: string, f: () => Promise<T>): Promise<T | undefined> => {
      if (!want(name)) return undefined;
      try {
        return await f();
      } catch (e) {
        notes.push(`${name} failed: ${(e as Error).message.split('\n')[0]}`);
        log(notes.at(-1)!);
        return undefined;
      }
    };
    out.memory = await part('memory', memoryPart);
    out.mesh = await part('mesh', meshPart);
  } finally {
    await cleanup();
  }
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `scale-${(out.date as string).slice(0, 10)}${quick ? '-quick' : ''}.json`);
  writeFileSync(file, JSON.stringify(out, null, 2) + '\n');
  log(`wrote ${file}`);
  printSummary(out);
}

function printSummary(out: Record<string, unknown>): void {
  const mesh = out.mesh as Awaited<ReturnType<typeof meshPart>> | undefined;
  if (mesh) {
    const d = mesh.latency?.targets.find((x) => x.name === 'direct');
    process.stdout.write('\n| build | services | ready after (spawn → ready line; startupMs) | RSS after traffic to 1,000 (private): at 2 s / 14 s | KB per service (at 14 s) | one edited weight serving after: p50 / p99 (max) | background errors | p50 through the proxy |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n');
    for (const r of mesh.sizes) {
      const e = r.edits;
      const errs = e ? Object.values(e.background.failures).reduce((s, x) => s + x, 0) : NaN;
      const t = mesh.latency?.targets.find((x) => x.name === `remora-${r.services}${r.build === 'now' ? '' : `-${r.build}`}`);
      const p50 = t && d ? `${t.summary.p50Ms.toFixed(3)} ms (direct ${d.summary.p50Ms.toFixed(3)})` : '-';
      process.stdout.write(`| ${r.build} | ${r.services.toLocaleString('en-US')} | ${(r.readyMs / 1000).toFixed(2)} s; ${r.startupMs} ms | ${r.afterTraffic.rssMB.toFixed(0)} MB (${r.afterTraffic.anonMB.toFixed(0)}) / ${r.settled.rssMB.toFixed(0)} MB (${r.settled.anonMB.toFixed(0)}) | ${mesh.perServiceKB[`${r.build}:${r.services}`]?.toFixed(1) ?? '-'} | ${e ? `${(e.p50Ms / 1000).toFixed(2)} / ${(e.p99Ms / 1000).toFixed(2)} s (${(e.maxMs / 1000).toFixed(2)})` : '-'} | ${e ? `${errs} of ${e.background.sent}` : '-'} | ${p50} |\n`);
    }
  }
  const mem = out.memory as MemoryResult | undefined;
  if (mem) {
    process.stdout.write(`\nbare node -e (${IMAGE_NODE_FLAGS.join(' ')}): RSS ${mem.bareNode.rssMB.toFixed(1)} MB (private ${mem.bareNode.anonMB.toFixed(1)})\n`);
    if (mem.bareNodeBase) process.stdout.write(`bare node -e (${mem.baseNodeFlags.join(' ')}): RSS ${mem.bareNodeBase.rssMB.toFixed(1)} MB (private ${mem.bareNodeBase.anonMB.toFixed(1)})\n`);
    for (const [label, m] of Object.entries(mem.idle)) process.stdout.write(`one service, idle (${label}): RSS ${m.rssMB.toFixed(1)} MB (private ${m.anonMB.toFixed(1)}); after the max-throughput runs ${mem.idleAfterLoad[label]!.rssMB.toFixed(1)} MB\n`);
    for (const t of mem.max.targets) process.stdout.write(`max throughput, ${t.name}: peak RSS ${t.summary.peakRssMB?.toFixed(1)} MB (private ${t.summary.peakAnonMB?.toFixed(1)}), ${t.summary.achievedRps.toFixed(0)} req/s, ${t.summary.rpsPerCore?.toFixed(0)} req/s per CPU-second\n`);
  }
}

main().then(
  () => process.exit(0),
  async (e: Error) => {
    process.stderr.write(`bench:scale failed: ${e.stack ?? e.message}\n`);
    await cleanup();
    process.exit(1);
  },
);

// === the proxy's account of its builds (its "config version N applied" log lines) ===

async function adminPost(port: number, path: string): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST' });
  await res.text();
  if (!res.ok) throw new Error(`POST ${path}: ${res.status}`);
}

type StageSum = { builds: number; wait: number; read: number; validate: number; hash: number; compile: number; apply: number };
const STAGES = ['wait', 'read', 'validate', 'hash', 'compile', 'apply'] as const;

/** Collects the build timings the proxy logs on stderr (ConfigStore.BuildTimings), until stop(). */
function watchBuilds(proc: Started['proc']): { seen: Array<Record<string, number>>; stop: () => void } {
  const seen: Array<Record<string, number>> = [];
  let buf = '';
  const onData = (d: Buffer): void => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line.includes('applied')) continue;
      try {
        const rec = JSON.parse(line) as { msg?: string; ms?: Record<string, number> };
        if (rec.ms !== undefined && /^config version \d+ applied$/.test(rec.msg ?? '')) seen.push(rec.ms);
      } catch { /* not a log record */ }
    }
  };
  proc.stderr!.on('data', onData);
  return { seen, stop: () => void proc.stderr!.off('data', onData) };
}

function sumStages(builds: ReadonlyArray<Record<string, number>>): StageSum {
  const out: StageSum = { builds: builds.length, wait: 0, read: 0, validate: 0, hash: 0, compile: 0, apply: 0 };
  for (const b of builds) for (const k of STAGES) out[k] += b[k] ?? 0;
  return out;
}

function formatStages(s: StageSum | undefined): string {
  if (s === undefined) return 'no build logged';
  const parts = STAGES.map((k) => `${k} ${s[k]}`).join(' + ');
  return `${parts} (${s.builds} build${s.builds === 1 ? '' : 's'}; the rest is the watcher's event, the probe and the route's first use)`;
}
