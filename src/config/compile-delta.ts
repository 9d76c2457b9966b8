/**
 * A snapshot from the previous one when only mesh VirtualServices, DestinationRules of exact hosts, ServiceEntries
 * edited in place, Kubernetes objects in files or registry entries of other sources changed: the changed hosts'
 * ServiceDefs and clusters (./compile-delta-registry.ts), the virtual hosts of the hosts claimed by changed
 * VirtualServices, of the hosts whose clusters changed and of every host claimed by a VirtualService routing or
 * mirroring to one of those (new route cells: no route keeps a replaced ClusterDef), and the host index slots of those
 * hosts, their aliases and VIPs; everything else is the previous snapshot's, shared (the host index, VIPs and
 * clusters as LayeredMaps over the previous maps). The result equals compile() of the new inputs
 * (test/integration/config/store-incremental.test.ts compares both after random edits), apart from the order of
 * `warnings` (the store reads them as a set) and of map iteration. Anything else returns undefined and the caller
 * compiles everything. Pure.
 */
import type { Resource } from './resource.js';
import { objectName } from './resource.js';
import type { HostEntry, Snapshot } from './snapshot.js';
import type { VirtualServiceSpec } from './types.js';
import type { ServiceDef } from '../model.js';
import type { VirtualHost } from '../routing/route.js';
import { adoptContext, compileContext, hostAliases, recordChangedClusters, type CompileOptions } from './compile.js';
import { foreignHosts } from './compile-routes.js';
import { expandHost } from './hosts.js';
import { ClusterTable } from './cluster-table.js';
import { LayeredMap } from './layered-map.js';
import { registryDelta, type RegistryDelta } from './compile-delta-registry.js';

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
    // A parsed document's spec is its raw document's: serialized once, inside raw (0 marks that case).
    if (t === undefined) { t = JSON.stringify([r.apiVersion, r.kind, r.metadata, r.spec === r.raw.spec ? 0 : r.spec, r.raw], exact); text.set(r, t); }
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
export function changedBetween(prev: readonly Resource[], next: readonly Resource[]): { removed: Resource[]; added: Resource[]; at: number; length: number } {
  let a = 0;
  const n = Math.min(prev.length, next.length);
  while (a < n && prev[a] === next[a]) a++;
  let b = 0;
  while (b < n - a && prev[prev.length - 1 - b] === next[next.length - 1 - b]) b++;
  const oldMid = prev.slice(a, prev.length - b);
  const newMid = next.slice(a, next.length - b);
  // `at`, `length`: where the run is in `next`.
  if (oldMid.length === 0 || newMid.length === 0) return { removed: oldMid, added: newMid, at: a, length: newMid.length };
  const inNew = new Set(newMid);
  const inOld = new Set(oldMid);
  return { removed: oldMid.filter((r) => !inNew.has(r)), added: newMid.filter((r) => !inOld.has(r)), at: a, length: newMid.length };
}

function meshBound(vs: Resource): boolean {
  const g = (vs.spec as VirtualServiceSpec).gateways;
  return !(g && g.length > 0 && !g.includes('mesh'));
}


/** What kinds of change each snapshot compiled from the previous one took (for tests and the store's counters). */
const KINDS = new WeakMap<Snapshot, readonly DeltaKind[]>();
export type DeltaKind = 'VirtualService' | 'DestinationRule' | 'ServiceEntry' | 'file-k8s' | 'external';
export function deltaKinds(s: Snapshot): readonly DeltaKind[] {
  return KINDS.get(s) ?? [];
}

const K8S_IN_FILES = (r: Resource): boolean => (r.kind === 'Service' && r.apiVersion === 'v1') || (r.kind === 'EndpointSlice' && r.apiVersion === 'discovery.k8s.io/v1') || (r.kind === 'Pod' && r.apiVersion === 'v1');

/**
 * The snapshot of `next` built from `prev` (compiled from `prevResources` and `prevExtra` with the same options but
 * version, hash, time and extra services), or undefined when the change is not one this handles.
 */
export function compileDelta(prev: Snapshot, prevResources: readonly Resource[], next: readonly Resource[], opts: CompileOptions, prevExtra: readonly ServiceDef[] = opts.extraServices ?? []): Snapshot | undefined {
  const ctx = compileContext(prev);
  if (ctx === undefined || prev.mesh !== undefined) return undefined;
  const nextExtra = opts.extraServices ?? [];
  const extraSame = prevExtra === nextExtra || (prevExtra.length === nextExtra.length && prevExtra.every((s, i) => s === nextExtra[i]));
  const changed = changedBetween(prevResources, next);
  // A file edited in one place is parsed again whole: its other documents come back as new objects with the same
  // content. Those are the same input to the compilation (which reads no line numbers): paired, and not a change.
  const same = pairUnchanged(changed.removed, changed.added);
  let removed = same.size === 0 ? changed.removed : changed.removed.filter((r) => !same.has(r));
  const reused = new Set(same.values());
  let added = same.size === 0 ? changed.added : changed.added.filter((r) => !reused.has(r));
  // A ServiceEntry edited in place (same object and file): paired with its old self.
  const editedSe = new Map<Resource, Resource>();
  const seKey = (r: Resource): string => `${r.metadata.namespace}\0${r.metadata.name}\0${r.source.file}`;
  const oldSe = new Map<string, Resource>();
  for (const r of removed) if (r.kind === 'ServiceEntry') { if (oldSe.has(seKey(r))) return undefined; oldSe.set(seKey(r), r); }
  for (const r of added) {
    if (r.kind !== 'ServiceEntry') continue;
    const o = oldSe.get(seKey(r));
    if (o === undefined) return undefined;
    oldSe.delete(seKey(r));
    editedSe.set(o, r);
  }
  if (oldSe.size > 0) return undefined;
  // Paired objects must keep their order (the first ServiceEntry, DestinationRule, VirtualService of a host wins).
  if (same.size + editedSe.size > 0) {
    const at = new Map(changed.removed.map((r, i) => [r, i] as const));
    const backTo = new Map<Resource, Resource>();
    for (const [o, n] of same) backTo.set(n, o);
    for (const [o, n] of editedSe) backTo.set(n, o);
    let last = -1;
    for (const a of changed.added) {
      const o = backTo.get(a);
      if (o === undefined) continue;
      const i = at.get(o)!;
      if (i < last) return undefined;
      last = i;
    }
  }
  if (editedSe.size > 0) {
    removed = removed.filter((r) => !editedSe.has(r));
    const nu = new Set(editedSe.values());
    added = added.filter((r) => !nu.has(r));
  }
  if (removed.length + added.length === 0 && same.size === 0 && editedSe.size === 0 && extraSame) return undefined;
  const kinds = new Set<DeltaKind>();
  let fileK8s = false;
  for (const r of [...removed, ...added]) {
    if (r.kind === 'VirtualService' || r.kind === 'DestinationRule') kinds.add(r.kind);
    else if (K8S_IN_FILES(r)) { fileK8s = true; kinds.add('file-k8s'); }
    else return undefined;
  }
  if (editedSe.size > 0) kinds.add('ServiceEntry');
  if (!extraSame) kinds.add('external');
  const { namespace: proxyNs, clusterDomain } = ctx.opts;
  const hostsOf = (vs: Resource): string[] => ((vs.spec as VirtualServiceSpec).hosts ?? []).map((h) => expandHost(h, vs.metadata.namespace, clusterDomain));

  // Input places are looked up only for the resources claiming (or ruling) an affected host: those of the changed run
  // (most of them: the edited file's) by a map of that run, the others by a scan.
  const position = new Map<Resource, number>();
  if (changed.length <= 8192) for (let i = changed.at; i < changed.at + changed.length; i++) position.set(next[i]!, i);
  const placeOf = (r: Resource): number => {
    let p = position.get(r);
    if (p === undefined) { p = next.indexOf(r); position.set(r, p); }
    return p;
  };

  // The registry and the clusters (paired unchanged rules too: their index entries name the new objects).
  const removedDr = removed.filter((r) => r.kind === 'DestinationRule');
  const addedDr = added.filter((r) => r.kind === 'DestinationRule');
  let reg: RegistryDelta | undefined;
  if (editedSe.size > 0 || fileK8s || !extraSame || removedDr.length + addedDr.length > 0 || [...same.keys()].some((r) => r.kind === 'DestinationRule')) {
    reg = registryDelta(ctx, { editedSe, same, removedDr, addedDr, fileK8s, prevExtra, nextExtra }, next, placeOf, { dns: opts.dns });
    if (reg === undefined) return undefined;
  }
  const svcOf = (h: string): ServiceDef | undefined => reg?.services.get(h) ?? ctx.byHost.get(h);
  const removedVs = removed.filter((r) => r.kind === 'VirtualService');
  const addedVs = added.filter((r) => r.kind === 'VirtualService');

  // The affected hosts: claimed by a changed VirtualService; with changed clusters; claimed by a VirtualService that
  // routes or mirrors to a host with changed clusters (its routes hold ClusterDefs: a new route cell).
  const affected = new Set<string>();
  for (const vs of [...removedVs, ...addedVs]) if (meshBound(vs)) for (const h of hostsOf(vs)) affected.add(h);
  if (reg !== undefined && reg.clusterHosts.size > 0) {
    const foreign = ctx.foreign;
    for (const h of reg.clusterHosts) {
      affected.add(h);
      for (const vs of [...(ctx.claims.get(h) ?? []), ...(foreign.get(h) ?? [])]) for (const c of hostsOf(vs)) affected.add(c);
    }
  }
  for (const h of affected) if (h.startsWith('*') || h === '') return undefined;

  // The claims: the removed VirtualServices out, the added ones in at their place (this namespace's first, then input
  // order).
  const rank = (r: Resource): number => (r.metadata.namespace === proxyNs ? 0 : 1);
  const newClaims = new Map<string, Resource[]>();
  // The hosts claimed by a paired VirtualService name its new object from now on (the claims are by identity).
  for (const [o, n] of same) {
    if (o.kind !== 'VirtualService' || !meshBound(o)) continue;
    for (const h of hostsOf(o)) newClaims.set(h, (newClaims.get(h) ?? ctx.claims.get(h) ?? []).map((r) => (r === o ? n : r)));
  }
  const gone = new Set(removedVs);
  for (const h of affected) {
    const list = (newClaims.get(h) ?? ctx.claims.get(h) ?? []).filter((r) => !gone.has(r));
    for (const vs of addedVs) {
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
    const svc = svcOf(h);
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
  const hostChanges = new Map<string, HostEntry | undefined>();
  const keys = new Set<string>();
  for (const h of affected) { keys.add(h); for (const a of hostAliases(h, proxyNs, clusterDomain)) keys.add(a); }
  const suffix = `.svc.${clusterDomain}`;
  for (const k of keys) {
    if (hasEntry(k)) {
      const e = entryOf(k);
      if (e === undefined) return undefined;
      hostChanges.set(k, e);
      continue;
    }
    const cands = [`${k}.${clusterDomain}`, `${k}${suffix}`, `${k}.${proxyNs}${suffix}`].filter((c) => hasEntry(c) && hostAliases(c, proxyNs, clusterDomain).includes(k));
    const uniq = [...new Set(cands)];
    if (uniq.length > 1) return undefined;
    if (uniq.length === 0) hostChanges.set(k, undefined);
    else {
      const e = entryOf(uniq[0]!);
      if (e === undefined) return undefined;
      hostChanges.set(k, e);
    }
  }
  // Service VIPs point at their service's entry (a delta never changes a service's addresses).
  const addressChanges = new Map<string, HostEntry>();
  for (const h of affected) {
    const svc = svcOf(h);
    if (svc === undefined || svc.addresses.length === 0) continue;
    const oldE = prev.hosts.get(h);
    const e = newEntry.get(h)!;
    for (const a of svc.addresses) if (prev.addresses.get(a) === oldE) addressChanges.set(a, e);
  }

  // A table built on first use takes the changed hosts' new seeds (nothing stays built that was not asked for).
  const clusters = reg === undefined ? prev.clusters
    : (prev.clusters instanceof ClusterTable ? prev.clusters.reseed(reg.seeds) : undefined) ?? LayeredMap.derive(prev.clusters, reg.clusters);
  const snapshot: Snapshot = {
    ...prev,
    version: opts.version ?? 0,
    hash: opts.hash ?? '',
    loadedAt: opts.now ?? 0,
    resources: next,
    hosts: LayeredMap.derive(prev.hosts, hostChanges),
    addresses: LayeredMap.derive(prev.addresses, addressChanges),
    clusters,
    services: reg === undefined || reg.replaced.size === 0 ? prev.services : prev.services.map((s) => reg.replaced.get(s) ?? s),
    warnings,
  };

  // Commit: from here on the context describes the new snapshot.
  if (reg !== undefined) {
    for (const [h, svc] of reg.services) ctx.byHost.set(h, svc);
    for (const [h, e] of reg.drIndex) if (e === undefined) ctx.drIdx.exact.delete(h); else ctx.drIdx.exact.set(h, e);
    ctx.world.clusters = clusters;
    for (const h of reg.clusterHosts) ctx.world.portClusters.delete(h);
    ctx.fileServices = reg.fileServices;
  }
  for (const [h, list] of newClaims) if (list.length === 0) ctx.claims.delete(h); else ctx.claims.set(h, list);
  // The foreign index follows the VirtualServices.
  const f = ctx.foreign;
  for (const vs of removedVs) {
    if (!meshBound(vs)) continue;
    for (const h of foreignHosts(vs, clusterDomain)) {
      const l = (f.get(h) ?? []).filter((r) => r !== vs);
      if (l.length === 0) f.delete(h); else f.set(h, l);
    }
  }
  for (const [o, n] of same) {
    if (o.kind !== 'VirtualService' || !meshBound(o)) continue;
    for (const h of foreignHosts(o, clusterDomain)) f.set(h, (f.get(h) ?? []).map((r) => (r === o ? n : r)));
  }
  for (const vs of addedVs) if (meshBound(vs)) for (const h of foreignHosts(vs, clusterDomain)) { const l = f.get(h); if (l === undefined) f.set(h, [vs]); else l.push(vs); }
  recordChangedClusters(snapshot, prev.clusters, new Set(reg?.clusters.keys() ?? []));
  KINDS.set(snapshot, [...kinds]);
  adoptContext(prev, snapshot);
  return snapshot;
}
