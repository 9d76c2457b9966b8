// Where the bytes per service go: builds the scale scenario's mesh in this process with the sidecar's own steps
// (read + parse, validate, compile, routes of the services that get traffic) and reports the live heap after each,
// per service; with --snapshot, writes a V8 heap snapshot and prints its self size by object type and constructor.
// What the ConfigStore keeps between builds is kept here too: the parse cache (per file and per document) and the
// validation state (GroupedValidation), so that the first two stages are what a running sidecar holds.
// Usage: node --expose-gc build/bench/scale-heap.js [--services 10000] [--traffic 1000] [--snapshot FILE]
import { parseArgs } from 'node:util';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeHeapSnapshot } from 'node:v8';
import { loadConfig, type ParseCache } from '../src/config/load.js';
import { GroupedValidation } from '../src/config/validate/groups.js';
import { compile, lookupHost } from '../src/config/compile.js';
import { meshFiles, scaleHost, spreadServices } from './scale-config.js';

const { values: argv } = parseArgs({ options: { services: { type: 'string' }, traffic: { type: 'string' }, snapshot: { type: 'string' }, top: { type: 'string' } } });
const N = Number(argv.services ?? 10_000);
const TRAFFIC = Number(argv.traffic ?? 1000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');

function heapMB(): number {
  gc!();
  gc!();
  const m = process.memoryUsage();
  return (m.heapUsed + m.external) / 1048576;
}

const dir = mkdtempSync(join(tmpdir(), 'remora-scale-heap-'));
mkdirSync(dir, { recursive: true });
for (const [name, text] of meshFiles(N, { v1: 8080, v2: 8081 })) writeFileSync(join(dir, name), text);

const stages: Array<{ stage: string; heapMB: number }> = [];
const mark = (stage: string): void => {
  stages.push({ stage, heapMB: heapMB() });
};
mark('empty');
const cache: ParseCache = new Map();
const loaded = await loadConfig([dir], 'default', cache);
if (loaded.errors.length > 0) throw new Error(loaded.errors[0]!.message);
mark('read + parse (resources, parse cache)');
const validation = new GroupedValidation({ clusterDomain: 'cluster.local' });
const problems = validation.update(loaded.files.map((f) => ({ key: `file:${f}`, resources: cache.get(f)?.resources ?? [] })));
if (problems.some((p) => p.severity !== 'warning')) throw new Error(problems[0]!.message);
mark('validate (state kept)');
const snap = compile(loaded.resources, { namespace: 'default', clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY', extraServices: [], version: 1, hash: 'x', now: Date.now() });
mark('compile (snapshot held)');
let routes = 0;
for (const i of spreadServices(N, TRAFFIC)) routes += lookupHost(snap, scaleHost(i))?.vhost?.routes.length ?? 0;
mark(`routes of ${TRAFFIC} services built`);
rmSync(dir, { recursive: true, force: true });

process.stdout.write(`${N} services (${routes} routes built): live heap (heapUsed + external, after GC)\n`);
let prev = stages[0]!.heapMB;
for (const s of stages) {
  process.stdout.write(`  ${s.stage.padEnd(34)} ${s.heapMB.toFixed(1).padStart(8)} MB  (+${(s.heapMB - prev).toFixed(1)} MB, ${(((s.heapMB - prev) * 1048576) / N).toFixed(0)} B per service)\n`);
  prev = s.heapMB;
}
process.stdout.write(`  total above empty: ${(((prev - stages[0]!.heapMB) * 1048576) / N).toFixed(0)} B per service\n`);

if (argv.snapshot) {
  // Named roots, so that a dominator analysis of the snapshot can find what each structure retains.
  (globalThis as Record<string, unknown>).__scaleHeap = { resources: loaded.resources, cache, validation, snapshot: snap };
  const file = writeHeapSnapshot(argv.snapshot);
  process.stdout.write(`heap snapshot: ${file}\n`);
  breakdown(file, Number(argv.top ?? 30));
}
// Keep everything alive until the snapshot has been taken.
void snap.hosts.size;
void loaded.resources.length;
void cache.size;
void validation.lastTouched;

/** Self size by (type, name) of a heap snapshot: the object kinds the bytes are in. */
function breakdown(file: string, top: number): void {
  const h = JSON.parse(readFileSync(file, 'utf8')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const f = h.snapshot.meta.node_fields;
  const width = f.length;
  const iType = f.indexOf('type');
  const iName = f.indexOf('name');
  const iSize = f.indexOf('self_size');
  const types = h.snapshot.meta.node_types[0];
  const agg = new Map<string, { count: number; bytes: number }>();
  let total = 0;
  for (let i = 0; i < h.nodes.length; i += width) {
    const type = types[h.nodes[i + iType]!]!;
    const size = h.nodes[i + iSize]!;
    total += size;
    // Strings by kind only; objects by constructor name; code and hidden internals by their name.
    let key: string;
    if (type === 'string' || type === 'concatenated string' || type === 'sliced string') key = `(${type})`;
    else if (type === 'number') key = '(heap number)';
    else key = `${type}: ${h.strings[h.nodes[i + iName]!]!.slice(0, 60)}`;
    const a = agg.get(key) ?? { count: 0, bytes: 0 };
    a.count++;
    a.bytes += size;
    agg.set(key, a);
  }
  process.stdout.write(`self size by kind (snapshot total ${(total / 1048576).toFixed(1)} MB; per service = bytes / ${N}):\n`);
  for (const [k, a] of [...agg].sort((x, y) => y[1].bytes - x[1].bytes).slice(0, top)) {
    process.stdout.write(`  ${k.padEnd(64)} ${String(a.count).padStart(9)}  ${(a.bytes / 1048576).toFixed(2).padStart(8)} MB  ${(a.bytes / N).toFixed(0).padStart(6)} B/service\n`);
  }
}
