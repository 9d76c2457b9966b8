// Time per batch of watch events spent mapping the Kubernetes cache to registry hosts, in this process, over the
// cluster of `npm run bench:scale-watch` (bench/scale-k8s.ts: 10,000 Services, 50,000 endpoints and Pods, trimmed as
// the source caches them): the full mapping (servicesFromKubernetes over the whole cache, what every batch did
// before) beside the incremental registry (k8s-registry.ts, what a batch does now); with --store, the config store's
// setExternal of the incremental array too (what follows the mapping in the sidecar).
// Usage: node --expose-gc build/bench/scale-watch-mapping.js [--services 10000] [--batches 200] [--events 5] [--store [--store-only incr|full]]
// (--store: the store's time per batch with each array, in alternating passes; the second pass of each is reported.)
import { parseArgs } from 'node:util';
import type { V1EndpointSlice, V1Pod, V1Service } from '@kubernetes/client-node';
import { objectKey, servicesFromKubernetes } from '../src/discovery/k8s-mapping.js';
import { KubernetesRegistry } from '../src/discovery/k8s-registry.js';
import { trimObject, type Obj } from '../src/discovery/k8s-trim.js';
import { ConfigStore } from '../src/discovery/config-store.js';
import { churnSlice, podObjs, serviceObj, sliceObj, type ClusterShape } from './scale-k8s.js';
import { seededRandom } from '../src/util/random.js';

const { values: argv } = parseArgs({ options: { services: { type: 'string' }, batches: { type: 'string' }, events: { type: 'string' }, store: { type: 'boolean' }, 'store-only': { type: 'string' } } });
const N = Number(argv.services ?? 10_000);
const BATCHES = Number(argv.batches ?? 200);
/** Events per batch: 100 events/s with a change every 50 ms. */
const EVENTS = Number(argv.events ?? 5);
const shape: ClusterShape = { services: N, endpointsPerService: 5, targetPort: 8080 };
const opts = { clusterDomain: 'cluster.local' };

const services = new Map<string, V1Service>();
const slices = new Map<string, V1EndpointSlice>();
const pods = new Map<string, V1Pod>();
let rv = 1;
const trimmed = (role: 'service' | 'endpointslice' | 'pod', o: Record<string, unknown>): Obj => {
  (o.metadata as Record<string, unknown>).resourceVersion = String(rv++);
  return trimObject(role, o as Obj);
};
for (let i = 0; i < N; i++) {
  const s = trimmed('service', serviceObj(i, shape));
  services.set(objectKey(s.metadata), s as V1Service);
  for (const p of podObjs(i, shape)) {
    const t = trimmed('pod', p);
    pods.set(objectKey(t.metadata), t as V1Pod);
  }
  const sl = trimmed('endpointslice', sliceObj(i, shape));
  slices.set(objectKey(sl.metadata), sl as unknown as V1EndpointSlice);
}

const reg = new KubernetesRegistry(opts);
reg.sync('service', services);
reg.sync('endpointslice', slices);
reg.sync('pod', pods);
const t0 = performance.now();
const initial = reg.services();
const initialMs = performance.now() - t0;

const pct = (xs: number[], p: number): number => {
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const fmt = (xs: number[]): string => xs.length === 0 ? '-' : `p50 ${pct(xs, 50).toFixed(2)} ms, p99 ${pct(xs, 99).toFixed(2)} ms, mean ${(xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(2)} ms`;

const rand = seededRandom(26);
const fullMs: number[] = [];
const incrMs: number[] = [];
const store = argv.store || argv['store-only'] ? new ConfigStore({ paths: [], namespace: 'default', clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY', log: () => {} }) : undefined;
const storeMs: number[] = [];
if (store) store.setExternal('kubernetes', { resources: [], services: initial });
let mapped = 0;
/** A batch: EVENTS readiness flips on random slices (what the churn sends), applied to the cache (and the registry). */
function batch(toRegistry: boolean): void {
  for (let e = 0; e < EVENTS; e++) {
    const i = Math.floor(rand() * N);
    const sl = trimmed('endpointslice', churnSlice(i, shape, Math.floor(rand() * 5), rand() < 0.5)) as unknown as V1EndpointSlice;
    const key = objectKey(sl.metadata);
    slices.set(key, sl);
    if (toRegistry) reg.set('endpointslice', key, sl);
  }
}
// Each in a pass of its own, so that one's garbage is not collected in the other's time; the set-up's before either.
const gc = (globalThis as { gc?: () => void }).gc ?? ((): void => {});
gc();
for (let b = 0; b < BATCHES; b++) {
  batch(true);
  const a = performance.now();
  const before = reg.stats.mapped;
  reg.services();
  incrMs.push(performance.now() - a);
  mapped += reg.stats.mapped - before;
}
gc();
for (let b = 0; b < BATCHES; b++) {
  batch(false);
  const a = performance.now();
  servicesFromKubernetes({ services: [...services.values()], endpointSlices: [...slices.values()], pods: [...pods.values()] }, opts);
  fullMs.push(performance.now() - a);
}
reg.sync('endpointslice', slices);
const check = servicesFromKubernetes({ services: [...services.values()], endpointSlices: [...slices.values()], pods: [...pods.values()] }, opts);
if (JSON.stringify(check) !== JSON.stringify(reg.services())) throw new Error('incremental and full mappings differ');
const storeFullMs: number[] = [];
function storeIncremental(): void {
  gc();
  for (let b = 0; b < BATCHES; b++) {
    batch(true);
    const incr = reg.services();
    const s0 = performance.now();
    if (!store!.setExternal('kubernetes', { resources: [], services: incr })) throw new Error('rejected');
    storeMs.push(performance.now() - s0);
  }
}
function storeFull(): void {
  gc();
  for (let b = 0; b < BATCHES; b++) {
    batch(true);
    const full = servicesFromKubernetes({ services: [...services.values()], endpointSlices: [...slices.values()], pods: [...pods.values()] }, opts);
    const s0 = performance.now();
    if (!store!.setExternal('kubernetes', { resources: [], services: full })) throw new Error('rejected');
    storeFullMs.push(performance.now() - s0);
  }
}
if (store) {
  // Twice each, alternating (the first pass warms the compiler up); the second pass of each is reported.
  const which = argv['store-only'];
  if (which !== 'full') storeIncremental();
  if (which !== 'incr') storeFull();
  storeMs.length = 0;
  storeFullMs.length = 0;
  if (which !== 'full') storeIncremental();
  if (which !== 'incr') storeFull();
}
process.stdout.write(`${N} Services, ${slices.size} EndpointSlices, ${pods.size} Pods (trimmed as cached); initial mapping ${initialMs.toFixed(0)} ms\n`);
process.stdout.write(`${BATCHES} batches of ${EVENTS} EndpointSlice events; Services mapped per batch: full ${N}, incremental ${(mapped / BATCHES).toFixed(1)}\n`);
process.stdout.write(`mapping per batch, full (servicesFromKubernetes): ${fmt(fullMs)}\n`);
process.stdout.write(`mapping per batch, incremental (KubernetesRegistry): ${fmt(incrMs)}\n`);
if (store) {
  process.stdout.write(`store.setExternal per batch, incremental array: ${fmt(storeMs)}\n`);
  process.stdout.write(`store.setExternal per batch, full mapping's array: ${fmt(storeFullMs)} (compiles: ${JSON.stringify(store.compiles)})\n`);
}
