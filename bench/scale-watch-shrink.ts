// What the heap shrink after API-watch churn (src/util/heap-shrink.ts, native/heap.cc) costs and gives back, in one
// process: the scale cluster's registry (bench/scale-k8s.ts, 10,000 Services by default) through the config store,
// then BATCHES batches of endpoint readiness flips (the churn's garbage), then the shrink, timed by the event loop
// (the longest gap of a 1 ms timer, and monitorEventLoopDelay) and by V8's GC entries (perf_hooks 'gc'); heap reserved
// and used before and after. Twice: `moderate` (incremental memory-reducing marking, what the sidecar does) and
// `critical` (one atomic memory-reducing GC, for comparison).
// Usage: node --max-semi-space-size=1 --v8-pool-size=1 build/bench/scale-watch-shrink.js [--services 10000] [--batches 300]
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import { getHeapStatistics } from 'node:v8';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import type { V1EndpointSlice, V1Pod, V1Service } from '@kubernetes/client-node';
import { objectKey } from '../src/discovery/k8s-mapping.js';
import { KubernetesRegistry } from '../src/discovery/k8s-registry.js';
import { trimObject, type Obj } from '../src/discovery/k8s-trim.js';
import { ConfigStore } from '../src/discovery/config-store.js';
import { findAddon } from '../src/net/original-dst.js';
import { churnSlice, podObjs, serviceObj, sliceObj, type ClusterShape } from './scale-k8s.js';
import { seededRandom } from '../src/util/random.js';

const { values: argv } = parseArgs({ options: { services: { type: 'string' }, batches: { type: 'string' } } });
const N = Number(argv.services ?? 10_000);
const BATCHES = Number(argv.batches ?? 300);
const shape: ClusterShape = { services: N, endpointsPerService: 5, targetPort: 8080 };
const addonPath = findAddon();
if (!addonPath) throw new Error('native addon not built (node scripts/build-native.mjs)');
const addon = createRequire(import.meta.url)(addonPath) as { reduceHeap: (level: number) => void };
const MB = 2 ** 20;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const heap = (): string => { const h = getHeapStatistics(); return `${(h.used_heap_size / MB).toFixed(1)} used / ${(h.total_heap_size / MB).toFixed(1)} reserved MB`; };

let rv = 1;
const trimmed = (role: 'service' | 'endpointslice' | 'pod', o: Record<string, unknown>): Obj => {
  (o.metadata as Record<string, unknown>).resourceVersion = String(rv++);
  return trimObject(role, o as Obj);
};
const reg = new KubernetesRegistry({ clusterDomain: 'cluster.local' });
for (let i = 0; i < N; i++) {
  const s = trimmed('service', serviceObj(i, shape));
  reg.set('service', objectKey(s.metadata), s as V1Service);
  for (const p of podObjs(i, shape)) { const t = trimmed('pod', p); reg.set('pod', objectKey(t.metadata), t as V1Pod); }
  const sl = trimmed('endpointslice', sliceObj(i, shape));
  reg.set('endpointslice', objectKey(sl.metadata), sl as unknown as V1EndpointSlice);
}
const store = new ConfigStore({ paths: [], namespace: 'default', clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY', log: () => {} });
store.setExternal('kubernetes', { resources: [], services: reg.services() });
const rand = seededRandom(26);
async function churn(): Promise<void> {
  for (let b = 0; b < BATCHES; b++) {
    for (let e = 0; e < 5; e++) {
      const sl = trimmed('endpointslice', churnSlice(Math.floor(rand() * N), shape, Math.floor(rand() * 5), rand() < 0.5)) as unknown as V1EndpointSlice;
      reg.set('endpointslice', objectKey(sl.metadata), sl);
    }
    store.setExternal('kubernetes', { resources: [], services: reg.services() });
    if (b % 10 === 0) await sleep(1);
  }
}

async function shrink(level: number, label: string): Promise<void> {
  await churn();
  await sleep(2000); // quiet, as the sidecar waits
  const before = heap();
  const gcs: Array<{ kind: number; ms: number }> = [];
  const obs = new PerformanceObserver((l) => { for (const e of l.getEntries()) gcs.push({ kind: (e as unknown as { detail?: { kind?: number } }).detail?.kind ?? 0, ms: e.duration }); });
  obs.observe({ entryTypes: ['gc'] });
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  let last = performance.now();
  let maxGap = 0;
  const tick = setInterval(() => { const t = performance.now(); maxGap = Math.max(maxGap, t - last); last = t; }, 1);
  const t0 = performance.now();
  addon.reduceHeap(level);
  const callMs = performance.now() - t0;
  // Until the reserved heap holds still for a second (at most 15 s).
  let prev = -1;
  for (let k = 0; k < 150; k++) {
    await sleep(100);
    const tot = getHeapStatistics().total_heap_size;
    if (k % 10 === 9) { if (tot === prev) break; prev = tot; }
  }
  const doneMs = performance.now() - t0;
  clearInterval(tick);
  h.disable();
  await sleep(50);
  obs.disconnect();
  const major = gcs.filter((g) => g.kind === 4 /* NODE_PERFORMANCE_GC_MAJOR */);
  process.stdout.write(`${label}: heap ${before} → ${heap()}; the call ${callMs.toFixed(1)} ms; settled within ${(doneMs / 1000).toFixed(1)} s; ` +
    `mark-compact pauses ${major.map((g) => g.ms.toFixed(1)).join(', ') || '-'} ms (all GCs ${gcs.length}, longest ${Math.max(0, ...gcs.map((g) => g.ms)).toFixed(1)} ms); ` +
    `longest event-loop gap (1 ms timer) ${maxGap.toFixed(1)} ms, loop delay p99 ${(h.percentile(99) / 1e6).toFixed(1)} ms, max ${(h.max / 1e6).toFixed(1)} ms\n`);
}

process.stdout.write(`${N} Services, ${N * 5} endpoints and Pods; ${BATCHES} batches of 5 readiness flips through the store before each shrink; heap at start ${heap()}\n`);
await shrink(1, 'moderate (incremental, the sidecar\'s)');
await shrink(2, 'critical (atomic, for comparison)');
await shrink(1, 'moderate again');
