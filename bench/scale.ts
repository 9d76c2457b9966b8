// `npm run bench:scale`: the scale scenario of issue #26, side by side in one run. Part `mesh`: at 10, 10,000 and
// 50,000 services (each a ServiceEntry with two endpoints, a DestinationRule with two subsets and an 80/20
// VirtualService, over 100 files): ready time, RSS after traffic to 1,000 of them, p50 through the proxy, and how long
// one edited weight takes to serve (p50/p99 over E edits, with a background load whose every error is counted).
// Part `memory`: one service — idle RSS beside a bare `node -e`, peak RSS at max throughput with and without the
// image's NODE_OPTIONS. Proxy pinned to CPU 0, generator and upstream on CPU 1 (as `npm run bench`).
import { parseArgs } from 'node:util';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runBench, machineFacts } from '../src/bench/runner.js';
import { DEFAULT_LOAD_OPTIONS } from '../src/bench/generator.js';
import { renderTable, type BenchReport } from '../src/bench/report.js';
import { mulberry32 } from '../src/bench/schedule.js';
import { hasTaskset, pinSelf, startProcess, stopProcess, freePort, type Started } from './procs.js';
import { policyYaml, POLICY_HOST } from './configs.js';
import { EDIT_HEADER, fileName, fileOf, fileYaml, meshFiles, scaleAddress, scaleHost, spreadServices, type ScaleEdit, type ScalePorts } from './scale-config.js';
import { BackgroundLoad, percentile, visitAll, waitForHeader } from './scale-client.js';

const here = dirname(fileURLToPath(import.meta.url)); // build/bench
const repo = resolve(here, '../..');
const SNAPSHOT = join(repo, 'build/remora-dist-snapshot-scale');
const CLI = join(SNAPSHOT, 'cli.js');
const PROXY_CPU = '0';
const LOAD_CPU = '1';
/** The image's NODE_OPTIONS (Dockerfile), as `npm run bench` runs Remora. */
export const IMAGE_NODE_FLAGS = ['--max-semi-space-size=2'];

const { values: argv } = parseArgs({
  options: {
    sizes: { type: 'string' },
    edits: { type: 'string' },
    traffic: { type: 'string' },
    only: { type: 'string' },
    quick: { type: 'boolean' },
    out: { type: 'string' },
    seed: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (argv.help) {
  process.stdout.write(`usage: npm run bench:scale -- [--quick] [--only mesh,memory] [--sizes 10,10000,50000] [--edits 100] [--traffic 1000]
  --quick: sizes 10,10000, 10 edits, shorter load windows; results in bench/results/tmp/
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
/** An edit not served after this long counts as this long (and three in a row end that size's edits). */
const EDIT_TIMEOUT_MS = 60_000;
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

export interface MemStatus {
  rssMB: number;
  anonMB: number;
  fileMB: number;
  /** VmHWM: the peak RSS since the process started (or since the last clear_refs). */
  hwmMB: number;
}

export function memStatus(pid: number): MemStatus {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN) / 1024;
  return { rssMB: kb('VmRSS'), anonMB: kb('RssAnon'), fileMB: kb('RssFile'), hwmMB: kb('VmHWM') };
}

const REMORA_PORT_ARGS = ['--outbound-port', '0', '--inbound-port', '0', '--admin-port', '0', '--stats-port', '0', '--health-port', '0', '--log-level', 'warn'];

interface Proxy {
  s: Started;
  outbound: number;
  admin: number;
  startupMs: number;
  configMs: unknown;
}

async function startRemora(name: string, configDir: string, nodeFlags = IMAGE_NODE_FLAGS, extra: string[] = []): Promise<Proxy> {
  const s = await start({ name, cmd: process.execPath, args: [...nodeFlags, CLI, 'run', '--config', configDir, ...REMORA_PORT_ARGS, ...extra], cpus: PROXY_CPU, marker: 'remora ready', timeoutMs: 180_000 });
  return { s, outbound: Number(s.ready.outbound), admin: Number(s.ready.admin), startupMs: Number(s.ready.startupMs), configMs: s.ready.configMs };
}

function snapshotDist(): void {
  if (!existsSync(join(repo, 'dist/cli.js'))) throw new Error('dist/cli.js missing: run `npm run build`');
  rmSync(SNAPSHOT, { recursive: true, force: true });
  cpSync(join(repo, 'dist'), SNAPSHOT, { recursive: true });
}

// === part `mesh` ===

interface SizeResult {
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
  edits?: {
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
  };
}

async function meshPart(): Promise<{ sizes: SizeResult[]; latency?: BenchReport; perServiceKB: Record<string, number> }> {
  // One upstream process for every size: the addresses of the services that get traffic, each on ports v1 and v2.
  const trafficked = new Map<number, number[]>(SIZES.map((n) => [n, spreadServices(n, TRAFFIC)]));
  const addresses = [...new Set([...trafficked.values()].flat().map(scaleAddress))];
  writeFileSync(join(tmp, 'addresses.json'), JSON.stringify(addresses));
  const up = await start({ name: 'scale-upstream', cmd: process.execPath, args: [join(here, 'scale-upstream.js'), join(tmp, 'addresses.json')], cpus: LOAD_CPU, marker: 'scale-upstream ready', timeoutMs: 60_000 });
  const ports: ScalePorts = { v1: Number(up.ready.v1), v2: Number(up.ready.v2) };
  log(`upstream on ${addresses.length} addresses, ports v1 ${ports.v1} v2 ${ports.v2}`);

  const results: SizeResult[] = [];
  const proxies: Proxy[] = [];
  try {
    for (const n of SIZES) {
      const dir = join(tmp, `mesh-${n}`);
      mkdirSync(dir, { recursive: true });
      let bytes = 0;
      for (const [name, text] of meshFiles(n, ports)) {
        writeFileSync(join(dir, name), text);
        bytes += Buffer.byteLength(text);
      }
      const t0 = performance.now();
      const p = await startRemora(`remora-${n}`, dir);
      const readyMs = performance.now() - t0;
      proxies.push(p);
      await sleep(1000);
      const atReady = memStatus(p.s.pid);
      log(`${n} services: ready in ${readyMs.toFixed(0)} ms (startupMs ${p.startupMs}, first build ${JSON.stringify(p.configMs)}), RSS ${atReady.rssMB.toFixed(1)} MB (private ${atReady.anonMB.toFixed(1)}, peak ${atReady.hwmMB.toFixed(1)})`);
      const hosts = trafficked.get(n)!.map(scaleHost);
      const trafficStatus = await visitAll(p.outbound, hosts, 5, 16);
      await sleep(2000);
      const afterTraffic = memStatus(p.s.pid);
      log(`${n} services: traffic to ${hosts.length} services ${JSON.stringify(trafficStatus)}, RSS ${afterTraffic.rssMB.toFixed(1)} MB (private ${afterTraffic.anonMB.toFixed(1)}, peak ${afterTraffic.hwmMB.toFixed(1)})`);
      results.push({ services: n, configBytes: bytes, readyMs, startupMs: p.startupMs, configMs: p.configMs, atReady, trafficServices: hosts.length, trafficStatus, afterTraffic });
    }

    // p50 through each proxy and directly, interleaved in one scenario (1,000 req/s open loop to service 0).
    let latency: BenchReport | undefined;
    if (results.length > 0) {
      const load = { ...DEFAULT_LOAD_OPTIONS, rate: 1000, connections: 16, durationMs: quick ? 2000 : 5000, warmupMs: quick ? 500 : 1000 };
      latency = await runBench({
        targets: [
          { name: 'direct', url: `http://${scaleAddress(0)}:${ports.v1}/` },
          ...proxies.map((p, i) => ({ name: `remora-${SIZES[i]}`, url: `http://127.0.0.1:${p.outbound}/`, pids: [p.s.pid], headers: [['host', scaleHost(0)]] as Array<[string, string]> })),
        ],
        load,
        rounds: quick ? 1 : 3,
        baseline: 'direct',
        command: ['npm', 'run', 'bench:scale'],
        pauseMs: 300,
      });
      process.stderr.write(renderTable(latency));
    }

    // Edits, one size at a time (the other proxies idle).
    for (let k = 0; k < SIZES.length; k++) {
      const n = SIZES[k]!;
      const p = proxies[k]!;
      const r = results[k]!;
      const dir = join(tmp, `mesh-${n}`);
      const candidates = trafficked.get(n)!;
      const rand = mulberry32(SEED + n);
      const bgHosts = candidates.slice(0, 50).map(scaleHost);
      const bg = new BackgroundLoad(p.outbound, bgHosts, 200);
      bg.start();
      const edits = new Map<number, ScaleEdit>();
      const latencies: number[] = [];
      let probeErrors = 0;
      let timeouts = 0;
      const rssTrace: number[] = [];
      let timeoutsInARow = 0;
      for (let e = 0; e < EDITS; e++) {
        const svc = candidates[Math.floor(rand() * candidates.length)]!;
        const w = 10 * Math.floor(rand() * 11);
        const edit: ScaleEdit = { service: svc, weights: [w, 100 - w], marker: `e${e}` };
        edits.set(svc, edit);
        const f = fileOf(n, svc);
        // Every edit of this file so far stays applied (an edited service keeps its last edit).
        const withEdits = fileYaml(n, f, ports, edits);
        const path = join(dir, fileName(f));
        writeFileSync(join(dir, `.${fileName(f)}.new`), withEdits);
        const t0 = performance.now();
        renameSync(join(dir, `.${fileName(f)}.new`), path); // as a ConfigMap update: the file changes in one step
        const served = await waitForHeader(p.outbound, scaleHost(svc), EDIT_HEADER, edit.marker, { gapMs: 2, timeoutMs: EDIT_TIMEOUT_MS }).catch((e: Error) => {
          log(`${n} services: edit ${e}: ${e.message.split('\n')[0]}`);
          return undefined;
        });
        if (served === undefined) {
          // Not served within the timeout: counted as the timeout (a lower bound), and after three in a row the rest
          // of this size's edits are skipped (the proxy is not keeping up; the run still reports what it measured).
          latencies.push(EDIT_TIMEOUT_MS);
          timeouts++;
          if (++timeoutsInARow >= 3) break;
        } else {
          latencies.push(served.at - t0);
          probeErrors += served.errors;
          timeoutsInARow = 0;
        }
        rssTrace.push(Math.round(memStatus(p.s.pid).rssMB));
        await sleep(quick ? 300 : 1000);
      }
      const background = { rate: 200, ...(await bg.stop()) };
      const afterEdits = memStatus(p.s.pid);
      r.edits = {
        count: latencies.length, latenciesMs: latencies.map((x) => Math.round(x)),
        p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99), maxMs: Math.max(...latencies),
        background, probeErrors, afterEdits, timeouts, rssAfterEachEditMB: rssTrace,
      };
      log(`${n} services: ${latencies.length} edits (${timeouts} not served within ${EDIT_TIMEOUT_MS / 1000} s), edit → serving p50 ${r.edits.p50Ms.toFixed(0)} ms, p99 ${r.edits.p99Ms.toFixed(0)} ms, max ${r.edits.maxMs.toFixed(0)} ms; background ${background.ok}/${background.sent} ok ${JSON.stringify(background.failures)}; RSS after ${afterEdits.rssMB.toFixed(1)} MB`);
    }
    const base = results.find((r) => r.services === Math.min(...SIZES));
    const perServiceKB: Record<string, number> = {};
    if (base) for (const r of results) if (r !== base) perServiceKB[r.services] = ((r.afterTraffic.rssMB - base.afterTraffic.rssMB) * 1024) / (r.services - base.services);
    return { sizes: results, latency, perServiceKB };
  } finally {
    for (const p of proxies) await stop(p.s);
    await stop(up);
  }
}

// === part `memory` ===

interface MemoryResult {
  bareNode: MemStatus;
  idle: MemStatus;
  max: BenchReport;
  maxWithoutImageFlags: BenchReport;
  idleAfterLoad: MemStatus;
}

async function memoryPart(): Promise<MemoryResult> {
  const [p1, p2] = [await freePort(), await freePort()];
  const up = await start({ name: 'upstream', cmd: process.execPath, args: [join(here, 'upstream.js'), String(p1), String(p2)], cpus: LOAD_CPU, marker: 'upstream ready' });
  const dir = join(tmp, 'one');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'mesh.yaml'), policyYaml(p1, p2));
  let bare: Started | undefined;
  let a: Proxy | undefined;
  let b: Proxy | undefined;
  try {
    bare = await start({ name: 'bare-node', cmd: process.execPath, args: [...IMAGE_NODE_FLAGS, '-e', "console.log('node ready'); setInterval(() => {}, 60000)"], cpus: PROXY_CPU, marker: 'node ready' });
    a = await startRemora('remora-one', dir);
    b = await startRemora('remora-one-no-flags', dir, []);
    await sleep(2000);
    const bareNode = memStatus(bare.pid);
    const idle = memStatus(a.s.pid);
    log(`idle: Remora RSS ${idle.rssMB.toFixed(1)} MB (private ${idle.anonMB.toFixed(1)}, file ${idle.fileMB.toFixed(1)}), bare node -e RSS ${bareNode.rssMB.toFixed(1)} MB (private ${bareNode.anonMB.toFixed(1)}, file ${bareNode.fileMB.toFixed(1)})`);
    const load = { ...DEFAULT_LOAD_OPTIONS, mode: 'max' as const, connections: 64, durationMs: quick ? 2000 : 5000, warmupMs: quick ? 500 : 1000 };
    const target = (p: Proxy, name: string) => ({ name, url: `http://127.0.0.1:${p.outbound}/`, pids: [p.s.pid], headers: [['host', `${POLICY_HOST}:${p1}`]] as Array<[string, string]> });
    const max = await runBench({ targets: [target(a, 'remora (image NODE_OPTIONS)')], load, rounds: quick ? 1 : 3, baseline: null, command: ['npm', 'run', 'bench:scale'], pauseMs: 300 });
    process.stderr.write(renderTable(max));
    const maxWithoutImageFlags = await runBench({ targets: [target(b, 'remora (no NODE_OPTIONS)')], load, rounds: quick ? 1 : 3, baseline: null, command: ['npm', 'run', 'bench:scale'], pauseMs: 300 });
    process.stderr.write(renderTable(maxWithoutImageFlags));
    await sleep(2000);
    const idleAfterLoad = memStatus(a.s.pid);
    return { bareNode, idle, max, maxWithoutImageFlags, idleAfterLoad };
  } finally {
    await stop(bare);
    await stop(a?.s);
    await stop(b?.s);
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
    const p50 = (n: number): string => {
      const t = mesh.latency?.targets.find((x) => x.name === `remora-${n}`);
      const d = mesh.latency?.targets.find((x) => x.name === 'direct');
      return t && d ? `${t.summary.p50Ms.toFixed(3)} ms (direct ${d.summary.p50Ms.toFixed(3)})` : '-';
    };
    process.stdout.write('\n| services | ready after (spawn → ready line; startupMs) | RSS after traffic to 1,000 (private) | KB per service | one edited weight serving after: p50 / p99 (max) | background errors | p50 through the proxy |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n');
    for (const r of mesh.sizes) {
      const e = r.edits;
      const errs = e ? Object.values(e.background.failures).reduce((s, x) => s + x, 0) : NaN;
      process.stdout.write(`| ${r.services.toLocaleString('en-US')} | ${(r.readyMs / 1000).toFixed(2)} s; ${r.startupMs} ms | ${r.afterTraffic.rssMB.toFixed(0)} MB (${r.afterTraffic.anonMB.toFixed(0)}) | ${mesh.perServiceKB[r.services]?.toFixed(1) ?? '-'} | ${e ? `${(e.p50Ms / 1000).toFixed(2)} / ${(e.p99Ms / 1000).toFixed(2)} s (${(e.maxMs / 1000).toFixed(2)})` : '-'} | ${e ? `${errs} of ${e.background.sent}` : '-'} | ${p50(r.services)} |\n`);
    }
  }
  const mem = out.memory as MemoryResult | undefined;
  if (mem) {
    const m = mem.max.targets[0]!.summary;
    const m2 = mem.maxWithoutImageFlags.targets[0]!.summary;
    process.stdout.write(`\none service: idle RSS ${mem.idle.rssMB.toFixed(1)} MB (private ${mem.idle.anonMB.toFixed(1)}) beside a bare node -e ${mem.bareNode.rssMB.toFixed(1)} MB (private ${mem.bareNode.anonMB.toFixed(1)}); peak at max throughput ${m.peakRssMB?.toFixed(1)} MB (private ${m.peakAnonMB?.toFixed(1)}) with ${IMAGE_NODE_FLAGS.join(' ')}, ${m2.peakRssMB?.toFixed(1)} MB (private ${m2.peakAnonMB?.toFixed(1)}) without; ${m.achievedRps.toFixed(0)} vs ${m2.achievedRps.toFixed(0)} req/s\n`);
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
