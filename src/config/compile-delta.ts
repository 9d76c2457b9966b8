/**
 * A snapshot from the previous one when only mesh VirtualServices changed: VirtualServices do not enter the registry,
 * the clusters or the Gateway API routes, so only the virtual hosts of the hosts they claim (before or after) and the
 * host index slots of those hosts and their aliases change; everything else is the previous snapshot's, shared. The
 * result equals compile() of the new inputs (test/integration/config/store-incremental.test.ts compares both after
 * random edits), apart from the order of `warnings` (the store reads them as a set). Anything else returns undefined
 * and the caller compiles everything. Pure.
 */
import type { Resource } from './resource.js';
import { objectName } from './resource.js';
import type { HostEntry, Snapshot } from './snapshot.js';
import type { VirtualServiceSpec } from './types.js';
import type { VirtualHost } from '../routing/route.js';
import { adoptContext, compileContext, hostAliases, type CompileOptions } from './compile.js';
import { expandHost } from './hosts.js';

/** Removed and added resources of the same object, file and content: old → new. */
function pairUnchanged(removed: readonly Resource[], added: readonly Resource[]): Map<Resource, Resource> {
  const out = new Map<Resource, Resource>();
  if (removed.length === 0 || added.length === 0) return out;
  const key = (r: Resource): string => `${r.kind}\0${r.metadata.namespace}\0${r.metadata.name}\0${r.source.file}`;
  const byKey = new Map<string, Resource[]>();
  for (const r of removed) { const k = key(r); const l = byKey.get(k); if (l === undefined) byKey.set(k, [r]); else l.push(r); }
  const text = new Map<Resource, string>();
  const content = (r: Resource): string => {
    let t = text.get(r);
    if (t === undefined) { t = JSON.stringify([r.apiVersion, r.kind, r.metadata, r.spec, r.raw], exact); text.set(r, t); }
    return t;
  };
  for (const a of added) {
    const l = byKey.get(key(a));
    if (l === undefined) continue;
    const i = l.findIndex((o) => content(o) === content(a));
    if (i < 0) continue;
    out.set(l[i]!, a);
    l.splice(i, 1);
  }
  return out;
}

/** JSON that tells apart what JSON.stringify would merge (non-finite numbers, undefined). */
function exact(_k: string, v: unknown): unknown {
  if (typeof v === 'number' && !Number.isFinite(v)) return `\u0000num:${v}`;
  if (v === undefined) return '\u0000undefined';
  return v;
}

/** What changed between two resource lists, by identity: the run between their common prefix and common suffix. */
export function changedBetween(prev: readonly Resource[], next: readonly Resource[]): { removed: Resource[]; added: Resource[] } {
  let a = 0;
  const n = Math.min(prev.length, next.length);
  while (a < n && prev[a] === next[a]) a++;
  let b = 0;
  while (b < n - a && prev[prev.length - 1 - b] === next[next.length - 1 - b]) b++;
  const oldMid = prev.slice(a, prev.length - b);
  const newMid = next.slice(a, next.length - b);
  if (oldMid.length === 0 || newMid.length === 0) return { removed: oldMid, added: newMid };
  const inNew = new Set(newMid);
  const inOld = new Set(oldMid);
  return { removed: oldMid.filter((r) => !inNew.has(r)), added: newMid.filter((r) => !inOld.has(r)) };
}

function meshBound(vs: Resource): boolean {
  const g = (vs.spec as VirtualServiceSpec).gateways;
  return !(g && g.length > 0 && !g.includes('mesh'));
}

/**
 * The snapshot of `next` built from `prev` (compiled from `prevResources` with the same options but version, hash
 * and time), or undefined when the change is not one this handles.
 */
export function compileDelta(prev: Snapshot, prevResources: readonly Resource[], next: readonly Resource[], opts: CompileOptions): Snapshot | undefined {
  const ctx = compileContext(prev);
  if (ctx === undefined || prev.mesh !== undefined) return undefined;
  const changed = changedBetween(prevResources, next);
  // A file edited in one place is parsed again whole: its other documents come back as new objects with the same
  // content. Those are the same input to the compilation (which reads no line numbers): paired, and not a change.
  const same = pairUnchanged(changed.removed, changed.added);
  // Paired objects must keep their order (the first ServiceEntry, DestinationRule, VirtualService of a host wins).
  if (same.size > 0) {
    const at = new Map(changed.removed.map((r, i) => [r, i] as const));
    const backTo = new Map([...same].map(([o, n]) => [n, o] as const));
    let last = -1;
    for (const a of changed.added) {
      const o = backTo.get(a);
      if (o === undefined) continue;
      const i = at.get(o)!;
      if (i < last) return undefined;
      last = i;
    }
  }
  const removed = same.size === 0 ? changed.removed : changed.removed.filter((r) => !same.has(r));
  const reused = new Set(same.values());
  const added = same.size === 0 ? changed.added : changed.added.filter((r) => !reused.has(r));
  if (removed.length + added.length === 0 && same.size === 0) return undefined;
  for (const r of removed) if (r.kind !== 'VirtualService') return undefined;
  for (const r of added) if (r.kind !== 'VirtualService') return undefined;
  const { namespace: proxyNs, clusterDomain } = ctx.opts;
  const hostsOf = (vs: Resource): string[] => ((vs.spec as VirtualServiceSpec).hosts ?? []).map((h) => expandHost(h, vs.metadata.namespace, clusterDomain));
  const affected = new Set<string>();
  for (const vs of [...removed, ...added]) if (meshBound(vs)) for (const h of hostsOf(vs)) affected.add(h);
  for (const h of affected) if (h.startsWith('*') || h === '') return undefined;

  // The claims: the removed VirtualServices out, the added ones in at their place (this namespace's first, then input
  // order). Input places are looked up only for the resources claiming an affected host.
  const position = new Map<Resource, number>();
  const placeOf = (r: Resource): number => {
    let p = position.get(r);
    if (p === undefined) { p = next.indexOf(r); position.set(r, p); }
    return p;
  };
  const rank = (r: Resource): number => (r.metadata.namespace === proxyNs ? 0 : 1);
  const newClaims = new Map<string, Resource[]>();
  // The hosts claimed by a paired VirtualService name its new object from now on (the claims are by identity).
  for (const [o, n] of same) {
    if (o.kind !== 'VirtualService' || !meshBound(o)) continue;
    for (const h of hostsOf(o)) newClaims.set(h, (newClaims.get(h) ?? ctx.claims.get(h) ?? []).map((r) => (r === o ? n : r)));
  }
  const gone = new Set(removed);
  for (const h of affected) {
    const list = (newClaims.get(h) ?? ctx.claims.get(h) ?? []).filter((r) => !gone.has(r));
    for (const vs of added) {
      if (!meshBound(vs)) continue;
      for (const vh of hostsOf(vs)) if (vh === h) list.push(vs);
    }
    // A stable order: namespace rank, then input place (a VirtualService listing a host twice stays twice, together).
    list.sort((x, y) => rank(x) - rank(y) || placeOf(x) - placeOf(y));
    newClaims.set(h, list);
  }
  for (const r of position.keys()) if (position.get(r)! < 0) return undefined;
  for (const [h, list] of newClaims) if (!affected.has(h)) for (const r of list) if (placeOf(r) < 0) return undefined;

  // New entries of the affected hosts (one route cell per VirtualService, shared by its hosts, as compile() does).
  const cells = new Map<Resource, unknown>();
  const warnings = prev.warnings.filter((w) => { for (const h of affected) if (w.includes(` host ${h} is already routed by `)) return false; return true; });
  const newEntry = new Map<string, HostEntry | undefined>();
  for (const h of affected) {
    const list = newClaims.get(h)!;
    const svc = ctx.byHost.get(h);
    let vhost: VirtualHost | undefined;
    if (list.length > 0) {
      const win = list[0]!;
      let cell = cells.get(win);
      if (cell === undefined) { cell = ctx.vsCell(win); cells.set(win, cell); }
      vhost = ctx.vsHost(h, win, cell);
      for (const other of list.slice(1)) warnings.push(`${objectName(other)}: host ${h} is already routed by ${objectName(win)}; ignored for this host`);
    } else if (svc !== undefined) vhost = ctx.defaultHost(svc);
    newEntry.set(h, vhost === undefined && svc === undefined ? undefined : { host: h, vhost, service: svc });
  }

  const hasEntry = (c: string): boolean => (newEntry.has(c) ? newEntry.get(c) !== undefined : ctx.byHost.has(c) || ((newClaims.get(c) ?? ctx.claims.get(c))?.length ?? 0) > 0);
  const entryOf = (c: string): HostEntry | undefined => {
    if (newEntry.has(c)) return newEntry.get(c);
    const e = prev.hosts.get(c);
    return e !== undefined && e.host === c ? e : undefined;
  };
  // The index slots of the affected hosts and their aliases, as compile() fills them: an exact name wins; an alias
  // belongs to the first entry having it (only one candidate is handled: otherwise a full compile).
  const hosts = new Map(prev.hosts);
  const keys = new Set<string>();
  for (const h of affected) { keys.add(h); for (const a of hostAliases(h, proxyNs, clusterDomain)) keys.add(a); }
  const suffix = `.svc.${clusterDomain}`;
  for (const k of keys) {
    if (hasEntry(k)) {
      const e = entryOf(k);
      if (e === undefined) return undefined;
      hosts.set(k, e);
      continue;
    }
    const cands = [`${k}.${clusterDomain}`, `${k}${suffix}`, `${k}.${proxyNs}${suffix}`].filter((c) => hasEntry(c) && hostAliases(c, proxyNs, clusterDomain).includes(k));
    const uniq = [...new Set(cands)];
    if (uniq.length > 1) return undefined;
    if (uniq.length === 0) hosts.delete(k);
    else {
      const e = entryOf(uniq[0]!);
      if (e === undefined) return undefined;
      hosts.set(k, e);
    }
  }
  // Service VIPs point at their service's entry.
  let addresses = prev.addresses;
  for (const h of affected) {
    const svc = ctx.byHost.get(h);
    if (svc === undefined || svc.addresses.length === 0) continue;
    const oldE = prev.hosts.get(h);
    const e = newEntry.get(h)!;
    if (addresses === prev.addresses) addresses = new Map(prev.addresses);
    for (const a of svc.addresses) if ((addresses as Map<string, HostEntry>).get(a) === oldE) (addresses as Map<string, HostEntry>).set(a, e);
  }

  for (const [h, list] of newClaims) if (list.length === 0) ctx.claims.delete(h); else ctx.claims.set(h, list);
  const snapshot: Snapshot = {
    ...prev,
    version: opts.version ?? 0,
    hash: opts.hash ?? '',
    loadedAt: opts.now ?? 0,
    resources: next,
    hosts,
    addresses,
    warnings,
  };
  adoptContext(prev, snapshot);
  return snapshot;
}
