// `npm run bench:scale -- --watch` (node build/bench/scale-watch.js): the Kubernetes API watch at scale (issue #26,
// goals 3 and 4) against the test API server (test/support/fake-kube-apiserver.ts) in its own process on the
// generator's CPU, the sidecar (`remora run --kubernetes`) pinned to the proxy's CPU.
// Parts: `sync` — 10,000 Services, 50,000 endpoints in EndpointSlices, 50,000 Pods: spawn → ready, RSS; `churn` — 100
// endpoint events/s for 60 s, of which 5/s move a probe service to another address, timed from the API server's write
// to the first response from the new address (p50/p99), a dropped watch mid-churn (resumed, relists counted), RSS
// before and after; then 410 Gone (relists counted); `scope` — the same cluster seen through --watch-namespaces and a
// Sidecar that reaches one namespace, beside a cluster of only that many services; `fanout` — N sidecars (10, 20, 50)
// on one API server: watches, bytes per endpoint change, list bytes per sidecar.
import { parseArgs } from 'node:util';
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { machineFacts } from '../src/bench/runner.js';
import { hasTaskset, pinSelf, startProcess, stopProcess, type Started } from './procs.js';
import { writeKubeconfig } from '../test/support/fake-kube-apiserver.js';
import { k8sHost, nsOf, probeIp, spreadK8s, type ClusterShape } from './scale-k8s.js';
import { percentile, visitAll, waitForHeader } from './scale-client.js';
import { memStatus, type MemStatus } from './scale-mem.js';

const here = dirname(fileURLToPath(import.meta.url)); // build/bench
const repo = resolve(here, '../..');
const PROXY_CPU = '0';
const LOAD_CPU = '1';
const IMAGE_NODE_FLAGS = ['--max-semi-space-size=1', '--v8-pool-size=1'];

const { values: argv } = parseArgs({
  options: {
    only: { type: 'string' },
    quick: { type: 'boolean' },
    services: { type: 'string' },
    seconds: { type: 'string' },
    rate: { type: 'string' },
    sidecars: { type: 'string' },
    baseline: { type: 'string' },
    out: { type: 'string' },
    // Diagnostics: the sidecar started with --heapsnapshot-signal=SIGUSR2 --diagnostic-dir=DIR; before and after the
    // churn (after the RSS is read) a heap snapshot is taken, which first collects all garbage: /memory then gives
    // the live heap. Changes what follows (the snapshot's own memory): not for the RSS figure.
    diag: { type: 'string' },
    'node-flags': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (argv.help) {
  process.stdout.write(`usage: node build/bench/scale-watch.js [--quick] [--only sync,churn,scope,fanout] [--services 10000] [--seconds 60] [--rate 100] [--sidecars 10,20,50] [--baseline DIR] [--diag DIR] [--node-flags '--flag,…']
`);
  process.exit(0);
}
const DIAG_DIR = argv.diag ? resolve(argv.diag) : undefined;
const EXTRA_NODE_FLAGS = [...(argv['node-flags'] ? argv['node-flags'].split(',') : []), ...(DIAG_DIR ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${DIAG_DIR}`] : [])];
const quick = argv.quick === true;
const only = argv.only ? new Set(argv.only.split(',')) : null;
const want = (s: string): boolean => only === null || only.has(s);
const SERVICES = Number(argv.services ?? (quick ? 2000 : 10_000));
const SECONDS = Number(argv.seconds ?? (quick ? 15 : 60));
const RATE = Number(argv.rate ?? 100);
const PROBE_RATE = 5;
const PROBES = 20;
const SIDECARS = (argv.sidecars ?? (quick ? '5,10' : '10,20,50')).split(',').map(Number);
const outDir = resolve(repo, argv.out ?? (quick ? 'bench/results/tmp' : 'bench/results'));
const SHAPE = (services: number, targetPort: number): ClusterShape => ({ services, endpointsPerService: 5, targetPort });

const tmp = mkdtempSync(join(tmpdir(), 'remora-scale-watch-'));
const started: Started[] = [];
const children: ChildProcess[] = [];
const log = (s: string): void => void process.stderr.write(`[watch] ${s}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Build { label: string; cli: string }
const NOW_DIST = join(repo, 'build/remora-dist-snapshot-watch');
const BASE_DIST = join(repo, 'build/remora-dist-base-watch');
const BUILDS: Build[] = [{ label: 'now', cli: join(NOW_DIST, 'cli.js') }, ...(argv.baseline ? [{ label: 'base', cli: join(BASE_DIST, 'cli.js') }] : [])];

function snapshotDist(): void {
  rmSync(NOW_DIST, { recursive: true, force: true });
  cpSync(join(repo, 'dist'), NOW_DIST, { recursive: true });
  if (argv.baseline) {
    rmSync(BASE_DIST, { recursive: true, force: true });
    cpSync(join(resolve(argv.baseline), 'dist'), BASE_DIST, { recursive: true });
  }
}

async function cleanup(): Promise<void> {
  await Promise.all(started.splice(0).map((s) => stopProcess(s).catch(() => undefined)));
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
}
process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));

/** The fake API server in its own process, pinned to the generator's CPU, driven over IPC. */
class ApiServerProcess {
  private nextId = 1;
  private waiting = new Map<number, (m: Record<string, unknown>) => void>();
  url = '';
  kubeconfig = '';
  private cleanupKc: () => void = () => {};
  constructor(private readonly child: ChildProcess) {
    child.on('message', (m: Record<string, unknown>) => {
      const f = this.waiting.get(m.id as number);
      this.waiting.delete(m.id as number);
      f?.(m);
    });
  }

  static async start(): Promise<ApiServerProcess> {
    const script = join(here, 'scale-apiserver.js');
    const args = ['--max-old-space-size=8192', script];
    const child = hasTaskset() ? spawn('taskset', ['-c', LOAD_CPU, process.execPath, ...args], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] }) : spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
    children.push(child);
    const a = new ApiServerProcess(child);
    a.url = await new Promise<string>((ok, fail) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /scale-apiserver ready (\{.*\})/.exec(out);
        if (m) ok((JSON.parse(m[1]!) as { url: string }).url);
      });
      child.once('exit', (c) => fail(new Error(`scale-apiserver exited (${c})`)));
    });
    const kc = writeKubeconfig(a.url);
    a.kubeconfig = kc.path;
    a.cleanupKc = kc.cleanup;
    return a;
  }

  call<T = Record<string, unknown>>(msg: Record<string, unknown>): Promise<T> {
    const id = this.nextId++;
    return new Promise((ok) => {
      this.waiting.set(id, ok as (m: Record<string, unknown>) => void);
      this.child.send({ ...msg, id });
    });
  }

  stop(): void {
    this.cleanupKc();
    this.child.disconnect();
  }
}

interface Sidecar {
  s: Started;
  outbound: number;
  admin: number;
  readyMs: number;
}

async function startSidecar(name: string, build: Build, kubeconfig: string, extra: string[], cpus = PROXY_CPU): Promise<Sidecar> {
  const empty = join(tmp, 'empty');
  mkdirSync(empty, { recursive: true });
  const t0 = performance.now();
  const s = await startProcess({
    name, cmd: process.execPath, cpus, marker: 'remora ready', timeoutMs: 300_000,
    args: [...IMAGE_NODE_FLAGS, ...EXTRA_NODE_FLAGS, build.cli, 'run', '--kubernetes', '--kubeconfig', kubeconfig, '--config', empty, '--outbound-port', '0', '--inbound-port', '0', '--admin-port', '0', '--stats-port', '0', '--health-port', '0', '--log-level', 'warn', ...extra],
  });
  started.push(s);
  return { s, outbound: Number(s.ready.outbound), admin: Number(s.ready.admin), readyMs: performance.now() - t0 };
}
async function stopSidecar(x: Sidecar | undefined): Promise<void> {
  if (!x) return;
  const i = started.indexOf(x.s);
  if (i >= 0) started.splice(i, 1);
  await stopProcess(x.s, 10_000);
}

/** The sidecar's V8 view (admin /memory) beside its RSS: heap used / reserved, external, and the rest (native). */
interface HeapView { rssMB: number; heapUsedMB: number; heapTotalMB: number; externalMB: number; arrayBuffersMB: number; nativeMB: number; oldSpace: { sizeMB: number; usedMB: number } }
async function heapView(admin: number): Promise<HeapView | undefined> {
  try {
    const r = await fetch(`http://127.0.0.1:${admin}/memory`);
    const m = (await r.json()) as { allocated: string; heap_size: string; total_physical_bytes: string; external: string; array_buffers: string; heap_spaces: Array<{ name: string; size: number; used: number }> };
    const mb = (x: string | number): number => Number(x) / 2 ** 20;
    const old = m.heap_spaces.find((x) => x.name === 'old_space');
    return {
      rssMB: mb(m.total_physical_bytes), heapUsedMB: mb(m.allocated), heapTotalMB: mb(m.heap_size), externalMB: mb(m.external), arrayBuffersMB: mb(m.array_buffers),
      nativeMB: mb(Number(m.total_physical_bytes) - Number(m.heap_size) - Number(m.external)),
      oldSpace: { sizeMB: mb(old?.size ?? 0), usedMB: mb(old?.used ?? 0) },
    };
  } catch {
    return undefined;
  }
}
const fmtHeap = (h: HeapView | undefined): string => h ? `rss ${h.rssMB.toFixed(1)} heap ${h.heapUsedMB.toFixed(1)}/${h.heapTotalMB.toFixed(1)} (old ${h.oldSpace.usedMB.toFixed(1)}/${h.oldSpace.sizeMB.toFixed(1)}) external ${h.externalMB.toFixed(1)} (ab ${h.arrayBuffersMB.toFixed(1)}) native ${h.nativeMB.toFixed(1)} MB` : 'n/a';

/** With --diag: a heap snapshot (all garbage collected first), then the live heap. */
async function snapshotHeap(sc: Sidecar, label: string): Promise<HeapView | undefined> {
  if (!DIAG_DIR) return undefined;
  const { readdirSync } = await import('node:fs');
  const before = new Set(readdirSync(DIAG_DIR));
  process.kill(sc.s.pid, 'SIGUSR2');
  const t0 = performance.now();
  for (;;) {
    await sleep(500);
    const fresh = readdirSync(DIAG_DIR).filter((f) => !before.has(f) && f.endsWith('.heapsnapshot'));
    if (fresh.length > 0) {
      // Written once the size holds still.
      let last = -1;
      for (;;) {
        const { statSync } = await import('node:fs');
        const size = statSync(join(DIAG_DIR, fresh[0]!)).size;
        if (size === last && size > 0) break;
        last = size;
        await sleep(1000);
      }
      const { renameSync } = await import('node:fs');
      renameSync(join(DIAG_DIR, fresh[0]!), join(DIAG_DIR, `${label}.heapsnapshot`));
      break;
    }
    if (performance.now() - t0 > 120_000) return undefined;
  }
  await sleep(1000);
  const h = await heapView(sc.admin);
  log(`${label}: after a heap snapshot (all garbage collected, ${((performance.now() - t0) / 1000).toFixed(1)} s): ${fmtHeap(h)}`);
  return h;
}

type Stats = { stats: { listRequests: number; listBytes: number; watchRequests: number; watchBytes: number; watchEvents: number }; openWatches: number; watches: Array<{ typeKey: string; bytes: number; events: number }> };

// === parts sync + churn ===

interface ChurnResult {
  build: string;
  services: number;
  readyMs: number;
  atReady: MemStatus;
  beforeChurn: MemStatus;
  afterChurn: MemStatus;
  /** The V8 view at the same moments (admin /memory); with --diag also after all garbage was collected. */
  heapBefore?: HeapView;
  heapAfter?: HeapView;
  /** The heap each second of the quiet after the churn. */
  quietAfter?: Array<{ s: number; usedMB: number; totalMB: number; rssMB: number }>;
  liveBefore?: HeapView;
  liveAfter?: HeapView;
  rssChangePct: number;
  probes: { count: number; latenciesMs: number[]; p50Ms: number; p99Ms: number; maxMs: number; timeouts: number };
  events: number;
  /** Lists the sidecar made when its watches were cut mid-churn (0: every watch resumed from its resourceVersion). */
  listsAfterDrop: number;
  watchesAfterDrop: number;
  /** Lists after 410 Gone (history compacted, watches cut): one per watched kind. */
  listsAfter410: number;
}

async function syncAndChurn(): Promise<ChurnResult[]> {
  const probes = spreadK8s({ services: SERVICES }, PROBES);
  const addrs = probes.flatMap((i) => [probeIp(i, 0), probeIp(i, 1)]);
  writeFileSync(join(tmp, 'probe-addresses.json'), JSON.stringify(addrs));
  const up = await startProcess({ name: 'probe-upstream', cmd: process.execPath, args: [join(here, 'scale-upstream.js'), join(tmp, 'probe-addresses.json'), '--tagged'], cpus: LOAD_CPU, marker: 'scale-upstream ready', timeoutMs: 60_000 });
  started.push(up);
  const shape = SHAPE(SERVICES, Number(up.ready.v1));
  const api = await ApiServerProcess.start();
  const results: ChurnResult[] = [];
  try {
    const seeded = await api.call<{ ms: number }>({ cmd: 'seed', shape });
    log(`API server: ${SERVICES} Services, ${SERVICES * 5} endpoints, ${SERVICES * 5} Pods seeded in ${seeded.ms.toFixed(0)} ms`);
    for (const b of BUILDS) {
      const sc = await startSidecar(`remora-k8s-${b.label}`, b, api.kubeconfig, ['--namespace', nsOf(0, shape)]);
      await sleep(2000);
      const atReady = memStatus(sc.s.pid);
      log(`${b.label}: initial sync to ready ${sc.readyMs.toFixed(0)} ms; RSS ${atReady.rssMB.toFixed(1)} MB (private ${atReady.anonMB.toFixed(1)}, peak ${atReady.hwmMB.toFixed(1)})`);
      // Each probe service on spare address 0, served, before anything is timed; and some traffic to warm the path.
      const bAt = new Map<number, number>(probes.map((i) => [i, 0]));
      for (const i of probes) await api.call({ cmd: 'probe', service: i, b: 0 });
      for (const i of probes) await waitForHeader(sc.outbound, k8sHost(i, shape), 'x-served-by', probeIp(i, 0), { gapMs: 10, timeoutMs: 120_000 });
      await visitAll(sc.outbound, probes.map((i) => k8sHost(i, shape)), 5, 8);
      // RSS before and after the churn, each after 15 s without events (the start-up's garbage collected alike).
      await sleep(15_000);
      const beforeChurn = memStatus(sc.s.pid);
      const heapBefore = await heapView(sc.admin);
      log(`${b.label}: before the churn: ${fmtHeap(heapBefore)}`);
      const liveBefore = await snapshotHeap(sc, `${b.label}-before`);
      if (liveBefore) await sleep(15_000);
      await api.call({ cmd: 'resetStats' });
      // The churn: RATE − PROBE_RATE readiness flips per second in the API server, and PROBE_RATE probe moves timed here.
      const churn = api.call<{ sent: number }>({ cmd: 'churn', rate: RATE - PROBE_RATE, seconds: SECONDS, exclude: probes, seed: 26 });
      const latencies: number[] = [];
      let timeouts = 0;
      const pending: Array<Promise<void>> = [];
      let dropped: { lists: number; watches: number } | undefined;
      const t0 = performance.now();
      for (let e = 0; performance.now() - t0 < SECONDS * 1000; e++) {
        const at = t0 + (e * 1000) / PROBE_RATE;
        const wait = at - performance.now();
        if (wait > 0) await sleep(wait);
        if (dropped === undefined && performance.now() - t0 >= (SECONDS * 1000) / 2) {
          // Mid-churn, every watch connection is cut: the sidecar resumes each from its resourceVersion.
          const before = await api.call<Stats>({ cmd: 'stats' });
          await api.call({ cmd: 'drop' });
          dropped = { lists: before.stats.listRequests, watches: before.stats.watchRequests };
        }
        const i = probes[e % probes.length]!;
        const b = 1 - bAt.get(i)!;
        bAt.set(i, b);
        const sent = performance.now();
        await api.call({ cmd: 'probe', service: i, b });
        pending.push(
          waitForHeader(sc.outbound, k8sHost(i, shape), 'x-served-by', probeIp(i, b), { gapMs: 5, timeoutMs: 60_000 }).then(
            (r) => void latencies.push(r.at - sent),
            () => void timeouts++,
          ),
        );
      }
      await Promise.all(pending);
      const { sent } = await churn;
      const afterDrop = await api.call<Stats>({ cmd: 'stats' });
      // The 15 s quiet, the heap read each second (the heap shrink after churn: src/util/heap-shrink.ts).
      const quiet: Array<{ s: number; usedMB: number; totalMB: number; rssMB: number }> = [];
      for (let s = 1; s <= 15; s++) {
        await sleep(1000);
        const h = await heapView(sc.admin);
        if (h) quiet.push({ s, usedMB: +h.heapUsedMB.toFixed(1), totalMB: +h.heapTotalMB.toFixed(1), rssMB: +h.rssMB.toFixed(1) });
      }
      log(`${b.label}: the quiet after the churn, heap used/reserved (RSS) MB each 3 s: ${quiet.filter((q) => q.s % 3 === 0).map((q) => `${q.usedMB}/${q.totalMB} (${q.rssMB})`).join(', ')}`);
      const afterChurn = memStatus(sc.s.pid);
      const heapAfter = await heapView(sc.admin);
      log(`${b.label}: after the churn: ${fmtHeap(heapAfter)}`);
      const liveAfter = await snapshotHeap(sc, `${b.label}-after`);
      // 410 Gone: history compacted, then every watch cut: each kind relists once.
      const before410 = await api.call<Stats>({ cmd: 'stats' });
      await api.call({ cmd: 'compact' });
      await api.call({ cmd: 'drop' });
      await sleep(5000);
      const after410 = await api.call<Stats>({ cmd: 'stats' });
      const r: ChurnResult = {
        build: b.label, services: SERVICES, readyMs: sc.readyMs, atReady, beforeChurn, afterChurn,
        ...(heapBefore ? { heapBefore } : {}), ...(heapAfter ? { heapAfter } : {}), quietAfter: quiet, ...(liveBefore ? { liveBefore } : {}), ...(liveAfter ? { liveAfter } : {}),
        rssChangePct: (100 * (afterChurn.rssMB - beforeChurn.rssMB)) / beforeChurn.rssMB,
        probes: { count: latencies.length, latenciesMs: latencies.map((x) => Math.round(x)), p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99), maxMs: Math.max(...latencies), timeouts },
        events: sent + latencies.length + timeouts,
        listsAfterDrop: afterDrop.stats.listRequests - (dropped?.lists ?? 0),
        watchesAfterDrop: afterDrop.stats.watchRequests - (dropped?.watches ?? 0),
        listsAfter410: after410.stats.listRequests - before410.stats.listRequests,
      };
      log(`${b.label}: churn ${r.events} endpoint events in ${SECONDS} s; event → serving p50 ${r.probes.p50Ms.toFixed(0)} ms, p99 ${r.probes.p99Ms.toFixed(0)} ms, max ${r.probes.maxMs.toFixed(0)} ms (${r.probes.count} probes, ${timeouts} timeouts); RSS ${beforeChurn.rssMB.toFixed(1)} → ${afterChurn.rssMB.toFixed(1)} MB (${r.rssChangePct.toFixed(1)}%); after the cut: ${r.listsAfterDrop} lists, ${r.watchesAfterDrop} watches; after 410: ${r.listsAfter410} lists`);
      results.push(r);
      await stopSidecar(sc);
      // The probe services back on address 0 for the next build.
      for (const i of probes) if (bAt.get(i) !== 0) await api.call({ cmd: 'probe', service: i, b: 0 });
    }
  } finally {
    api.stop();
    await stopProcess(up);
  }
  return results;
}

// === part scope ===

interface ScopeResult {
  build: string;
  case: string;
  services: number;
  readyMs: number;
  rssMB: number;
  anonMB: number;
  hwmMB: number;
}

async function scope(): Promise<ScopeResult[]> {
  const out: ScopeResult[] = [];
  const inScope = SERVICES / 100;
  const big = await ApiServerProcess.start();
  const small = await ApiServerProcess.start();
  try {
    const shape = SHAPE(SERVICES, 8080);
    await big.call({ cmd: 'seed', shape });
    // A Sidecar in ns-01 whose egress reaches its own namespace only: the proxies of ns-01 see its 100 services.
    await big.call({ cmd: 'apply', objs: [{ apiVersion: 'networking.istio.io/v1', kind: 'Sidecar', metadata: { name: 'default', namespace: 'ns-01' }, spec: { egress: [{ hosts: ['./*'] }] } }] });
    // The same number of services as in scope, alone in a cluster.
    const smallShape = SHAPE(inScope, 8080);
    await small.call({ cmd: 'seed', shape: smallShape });
    for (const b of BUILDS) {
      const cases: Array<[string, ApiServerProcess, string[], number]> = [
        [`${inScope} services in the cluster`, small, ['--namespace', 'ns-01'], inScope],
        [`${SERVICES} services, --watch-namespaces ns-01 (${inScope} services)`, big, ['--namespace', 'ns-01', '--watch-namespaces', 'ns-01'], inScope],
        [`${SERVICES} services, a Sidecar reaching ns-01 (${inScope} services)`, big, ['--namespace', 'ns-01'], inScope],
        [`${SERVICES} services, no scope`, big, ['--namespace', 'ns-02'], SERVICES],
      ];
      for (const [name, api, args, n] of cases) {
        const sc = await startSidecar(`remora-scope-${b.label}`, b, api.kubeconfig, args);
        await sleep(3000);
        const m = memStatus(sc.s.pid);
        out.push({ build: b.label, case: name, services: n, readyMs: sc.readyMs, rssMB: m.rssMB, anonMB: m.anonMB, hwmMB: m.hwmMB });
        log(`${b.label}: ${name}: ready ${sc.readyMs.toFixed(0)} ms, RSS ${m.rssMB.toFixed(1)} MB (private ${m.anonMB.toFixed(1)}, peak ${m.hwmMB.toFixed(1)})`);
        await stopSidecar(sc);
      }
    }
  } finally {
    big.stop();
    small.stop();
  }
  return out;
}

// === part fanout ===

interface FanoutResult {
  sidecars: number;
  scoped: boolean;
  services: number;
  openWatches: number;
  /** Bytes the API server sent for the sidecars' initial lists, per sidecar. */
  listBytesPerSidecar: number;
  events: number;
  watchBytes: number;
  watchBytesPerEvent: number;
  watchBytesPerSecond: number;
}

async function fanout(): Promise<FanoutResult[]> {
  const out: FanoutResult[] = [];
  const services = Math.min(SERVICES, 1000);
  const api = await ApiServerProcess.start();
  try {
    const shape = SHAPE(services, 8080);
    await api.call({ cmd: 'seed', shape });
    const seconds = quick ? 10 : 20;
    const rate = 10;
    for (const [n, scoped] of [...SIDECARS.map((n) => [n, false] as const), [SIDECARS[0]!, true] as const]) {
      await api.call({ cmd: 'resetStats' });
      const scs: Sidecar[] = [];
      try {
        // Spread over both CPUs: the point is the API server's side.
        for (let k = 0; k < n; k++) scs.push(await startSidecar(`remora-fan-${k}`, BUILDS[0]!, api.kubeconfig, ['--namespace', 'ns-00', ...(scoped ? ['--watch-namespaces', 'ns-00'] : [])], k % 2 === 0 ? PROXY_CPU : LOAD_CPU));
        await sleep(2000);
        const synced = await api.call<Stats>({ cmd: 'stats' });
        await api.call({ cmd: 'resetStats' });
        const { sent } = await api.call<{ sent: number }>({ cmd: 'churn', rate, seconds, exclude: [], seed: 7 });
        await sleep(1000);
        const after = await api.call<Stats>({ cmd: 'stats' });
        const r: FanoutResult = {
          sidecars: n, scoped, services, openWatches: after.openWatches,
          listBytesPerSidecar: synced.stats.listBytes / n,
          events: sent, watchBytes: after.stats.watchBytes, watchBytesPerEvent: after.stats.watchBytes / sent, watchBytesPerSecond: after.stats.watchBytes / seconds,
        };
        out.push(r);
        log(`${n} sidecars${scoped ? ' (--watch-namespaces ns-00)' : ''}: ${r.openWatches} watches; initial lists ${(r.listBytesPerSidecar / 1024).toFixed(0)} KB per sidecar; ${sent} endpoint changes → ${(r.watchBytes / 1024).toFixed(0)} KB on the watches, ${r.watchBytesPerEvent.toFixed(0)} B per change (${(r.watchBytesPerSecond / 1024).toFixed(1)} KB/s at ${rate} changes/s)`);
      } finally {
        for (const sc of scs) await stopSidecar(sc);
      }
    }
  } finally {
    api.stop();
  }
  return out;
}

async function main(): Promise<void> {
  if (!hasTaskset() || !pinSelf(LOAD_CPU)) log('CPU pinning unavailable');
  if (!existsSync(join(repo, 'dist/cli.js'))) throw new Error('dist/cli.js missing: run npm run build');
  snapshotDist();
  const out: Record<string, unknown> = { kind: 'remora-bench-scale-watch', date: new Date().toISOString(), quick, machine: machineFacts(), command: `node build/bench/scale-watch.js ${process.argv.slice(2).join(' ')}`.trim(), services: SERVICES, seconds: SECONDS, rate: RATE, notes: [] as string[] };
  const part = async <T>(name: string, f: () => Promise<T>): Promise<T | undefined> => {
    if (!want(name)) return undefined;
    try {
      return await f();
    } catch (e) {
      (out.notes as string[]).push(`${name} failed: ${(e as Error).message.split('\n')[0]}`);
      log(`${name} failed: ${(e as Error).stack}`);
      return undefined;
    }
  };
  try {
    if (want('sync') || want('churn')) out.churn = await part(want('churn') ? 'churn' : 'sync', syncAndChurn);
    out.scope = await part('scope', scope);
    out.fanout = await part('fanout', fanout);
  } finally {
    await cleanup();
  }
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `scale-watch-${(out.date as string).slice(0, 10)}${quick ? '-quick' : ''}.json`);
  writeFileSync(file, JSON.stringify(out, null, 2) + '\n');
  log(`wrote ${file}`);
  void readFileSync;
}

main().then(
  () => process.exit(0),
  async (e: Error) => {
    process.stderr.write(`scale-watch failed: ${e.stack ?? e.message}\n`);
    await cleanup();
    process.exit(1);
  },
);
