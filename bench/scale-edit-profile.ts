// Where one edit's cost goes at N services: builds the scale scenario's mesh, loads it with the sidecar's own
// ConfigStore, then applies edits (one VirtualService weight in one file, as `npm run bench:scale` does) and reports
// each rebuild's split (read + parse, validate, compile), whether it compiled from the previous snapshot, the live
// heap and RSS; with --profile, a CPU profile of the edits alone (V8's inspector profiler), summarised by self time per
// function and by source file. --edit vs|dr|endpoints: what each edit changes (bench/scale.ts's --edit).
// Usage: node --expose-gc build/bench/scale-edit-profile.js [--services 50000] [--edits 5] [--edit vs] [--profile FILE]
import { parseArgs } from 'node:util';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Session } from 'node:inspector/promises';
import { ConfigStore } from '../src/discovery/config-store.js';
import { SPARE_ADDRESS, fileName, fileOf, fileYaml, meshFiles, spreadServices, type ScaleEdit, type ScaleEditKind, type ScaleShape } from './scale-config.js';

const { values: argv } = parseArgs({ options: { services: { type: 'string' }, edits: { type: 'string' }, edit: { type: 'string' }, profile: { type: 'string' }, top: { type: 'string' }, gc: { type: 'boolean' } } });
const N = Number(argv.services ?? 50_000);
const EDITS = Number(argv.edits ?? 5);
const ports = { v1: 8080, v2: 8081 };
const gc = (globalThis as { gc?: () => void }).gc;
const KIND = (argv.edit ?? 'vs') as ScaleEditKind;
const services = spreadServices(N, EDITS);
const shape: ScaleShape | undefined = KIND === 'dr' ? { v3: new Set(services) } : undefined;
const rssMB = (): string => (process.memoryUsage().rss / 1048576).toFixed(0);

const dir = mkdtempSync(join(tmpdir(), 'remora-scale-edit-'));
for (const [name, text] of meshFiles(N, ports, shape)) writeFileSync(join(dir, name), text);
const store = new ConfigStore({ paths: [dir], namespace: 'default', clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY', log: () => {} });
let t0 = performance.now();
if (!(await store.reloadFiles(true))) throw new Error(store.lastError?.errors.join('\n'));
process.stdout.write(`${N} services: first load ${(performance.now() - t0).toFixed(0)} ms ${JSON.stringify(store.lastBuild)}, RSS ${rssMB()} MB\n`);
gc?.();
process.stdout.write(`after a GC: live heap ${(process.memoryUsage().heapUsed / 1048576).toFixed(0)} MB, RSS ${rssMB()} MB\n`);

const session = new Session();
if (argv.profile) {
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 500 });
  await session.post('Profiler.start');
}
const edits = new Map<number, ScaleEdit>();
const times: number[] = [];
for (let e = 0; e < EDITS; e++) {
  const svc = services[e]!;
  edits.set(svc, { service: svc, weights: [50, 50], marker: KIND === 'vs' ? `e${e}` : SPARE_ADDRESS, kind: KIND });
  const f = fileOf(N, svc);
  writeFileSync(join(dir, fileName(f)), fileYaml(N, f, ports, edits, shape));
  const before = store.compiles.delta;
  t0 = performance.now();
  await store.reloadFiles();
  const ms = performance.now() - t0;
  times.push(ms);
  // --gc: a full GC after each edit, for the live heap (it also hides the GC cost the edits leave to later).
  if (argv.gc) gc?.();
  process.stdout.write(`edit ${e}: ${ms.toFixed(0)} ms ${JSON.stringify(store.lastBuild)} ${store.compiles.delta > before ? 'delta' : 'FULL'}, heap ${(process.memoryUsage().heapUsed / 1048576).toFixed(0)} MB, RSS ${rssMB()} MB\n`);
}
const sorted = [...times].sort((a, b) => a - b);
const q = (p: number): number => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
gc?.();
process.stdout.write(`${KIND} edits: ${EDITS}, p50 ${q(50).toFixed(0)} ms, p99 ${q(99).toFixed(0)} ms, max ${sorted[sorted.length - 1]!.toFixed(0)} ms; compiles ${JSON.stringify(store.compiles)}; after a GC: live heap ${(process.memoryUsage().heapUsed / 1048576).toFixed(0)} MB, RSS ${rssMB()} MB\n`);
if (argv.profile) {
  const { profile } = await session.post('Profiler.stop');
  writeFileSync(argv.profile, JSON.stringify(profile));
  summarize(profile, Number(argv.top ?? 25));
}
rmSync(dir, { recursive: true, force: true });

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number; children?: number[] }
function summarize(profile: { nodes: ProfileNode[]; samples?: number[]; timeDeltas?: number[] }, top: number): void {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) selfUs.set(samples[i]!, (selfUs.get(samples[i]!) ?? 0) + (deltas[i] ?? 0));
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const byFn = new Map<string, number>();
  const byFile = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    const file = n.callFrame.url.replace(/^.*\/(build|node_modules)\//, '$1/') || `(${n.callFrame.functionName || 'native'})`;
    const fn = `${n.callFrame.functionName || '(anonymous)'} ${file}:${n.callFrame.lineNumber + 1}`;
    byFn.set(fn, (byFn.get(fn) ?? 0) + us);
    byFile.set(file, (byFile.get(file) ?? 0) + us);
  }
  const show = (title: string, m: Map<string, number>): void => {
    process.stdout.write(`${title} (of ${(total / 1000).toFixed(0)} ms sampled):\n`);
    for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`  ${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms  ${k}\n`);
  };
  show('self time by source file', byFile);
  show('self time by function', byFn);
}
