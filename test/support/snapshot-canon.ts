/**
 * A canonical serialization of a Snapshot, for comparing two builds of the same inputs: maps by sorted key, lazily
 * compiled routes forced, RegExps and Buffers as text; version and load time left out (they differ by design), and
 * warnings sorted (a snapshot compiled from the previous one lists them in another order; they are read as a set:
 * logged when new, listed in /config_dump).
 */
import type { Snapshot } from '../../src/config/snapshot.js';
import { LayeredMap } from '../../src/config/layered-map.js';
import { ClusterTable } from '../../src/config/cluster-table.js';

export function canonSnapshot(s: Snapshot): string {
  const { version: _v, loadedAt: _l, resources, mesh, warnings, ...rest } = s;
  void _v; void _l;
  const out: Record<string, unknown> = {
    ...rest,
    warnings: [...warnings].sort(),
    resources: resources.map((r) => `${r.source.file}:${r.source.line} ${r.apiVersion} ${r.kind}/${r.metadata.namespace}/${r.metadata.name}@${r.metadata.resourceVersion ?? ''} ${JSON.stringify(r.spec)}`),
  };
  if (mesh !== undefined) {
    const plain: Record<string, unknown> = {};
    for (const h of [...s.hosts.keys()].sort()) if (mesh.plain.has(h)) plain[h] = mesh.plain.get(h);
    out.mesh = { plain, l4: mesh.l4 };
  }
  return JSON.stringify(canon(out, 0));
}

function canon(v: unknown, depth: number): unknown {
  if (depth > 40) return '<deep>';
  if (v === null || typeof v !== 'object') {
    if (typeof v === 'function') return '<fn>';
    if (typeof v === 'bigint') return `${v}n`;
    if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
    return v === undefined ? '<undefined>' : v;
  }
  if (v instanceof RegExp) return `/${v.source}/${v.flags}`;
  if (Buffer.isBuffer(v)) return `<buf ${v.toString('hex')}>`;
  // A snapshot compiled from the previous one holds LayeredMaps (the previous maps plus its changes).
  if (v instanceof Map || v instanceof LayeredMap || v instanceof ClusterTable) return { '<map>': [...(v as ReadonlyMap<unknown, unknown>).entries()].map(([k, x]) => [canon(k, depth + 1), canon(x, depth + 1)] as const).sort((a, b) => cmp(JSON.stringify(a[0]), JSON.stringify(b[0]))) };
  if (v instanceof Set) return { '<set>': [...v].map((x) => canon(x, depth + 1)).map((x) => JSON.stringify(x)).sort() };
  if (Array.isArray(v)) return v.map((x) => canon(x, depth + 1));
  const o: Record<string, unknown> = {};
  const proto = Object.getPrototypeOf(v) as object | null;
  // Class instances (compiled virtual hosts): their getters too (routes are compiled on first read).
  if (proto !== null && proto !== Object.prototype) {
    for (const [k, d] of Object.entries(Object.getOwnPropertyDescriptors(proto))) if (k !== 'constructor' && d.get !== undefined) o[k] = canon((v as Record<string, unknown>)[k], depth + 1);
  }
  for (const k of Object.keys(v).sort()) {
    if (k === 'cell' || k.startsWith('_')) continue;
    o[k] = canon((v as Record<string, unknown>)[k], depth + 1);
  }
  return Object.fromEntries(Object.entries(o).sort((a, b) => cmp(a[0], b[0])));
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
