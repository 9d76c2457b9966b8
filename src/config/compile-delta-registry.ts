/**
 * The registry and cluster part of compile-delta.ts: from edited ServiceEntries (same object and file, same hosts
 * and addresses), DestinationRules of exact hosts added, changed or removed, Kubernetes objects in files and
 * registry entries from other sources (the API watch, the environment: replaced in place, unchanged ones keeping
 * their identity and order), the hosts whose ServiceDef or clusters change, their new ServiceDefs, DestinationRule
 * index entries and clusters (every port × subset). Nothing here changes the context: compile-delta.ts commits it.
 * Undefined when the change is not one handled here (hosts added or removed from the registry, addresses changed,
 * wildcard rules, reordered entries…): the caller compiles everything. Pure.
 */
import type { Resource } from './resource.js';
import { objectName } from './resource.js';
import type { DestinationRuleSpec, ServiceEntrySpec } from './types.js';
import type { ClusterDef, ServiceDef } from '../model.js';
import type { CompileContext } from './compile.js';
import { clusterName, findDestinationRule, serviceClusters, type ClusterEnv, type DrLookup } from './compile-clusters.js';
import { serviceEntryDefs } from './compile-registry.js';
import { ClusterSeed } from './cluster-table.js';
import { servicesFromFiles } from '../gateway/mesh.js';
import { expandHost } from './hosts.js';

export interface RegistryChange {
  /** Edited ServiceEntries: old object → new one. */
  editedSe: ReadonlyMap<Resource, Resource>;
  /** Paired unchanged objects (re-parsed with the same content): old → new. */
  same: ReadonlyMap<Resource, Resource>;
  removedDr: readonly Resource[];
  addedDr: readonly Resource[];
  /** Kubernetes Services, EndpointSlices or Pods in files changed. */
  fileK8s: boolean;
  prevExtra: readonly ServiceDef[];
  nextExtra: readonly ServiceDef[];
}

export interface RegistryDelta {
  /** Registry hosts whose ServiceDef is replaced: host → new ServiceDef. */
  services: Map<string, ServiceDef>;
  /** The same as old ServiceDef → new one, for the snapshot's services list. */
  replaced: Map<ServiceDef, ServiceDef>;
  /** New DestinationRule index entries by host (undefined: none left). */
  drIndex: Map<string, Resource | Resource[] | undefined>;
  /** Hosts whose clusters were rebuilt. */
  clusterHosts: Set<string>;
  /** Clusters added or changed (the new ClusterDef) and removed (undefined). */
  clusters: Map<string, ClusterDef | undefined>;
  /** The same as new seeds of the clusterHosts, for a ClusterTable (built on first use: ClusterTable.reseed). */
  seeds: Map<string, ClusterSeed>;
  fileServices: readonly ServiceDef[];
}

export function sameJson(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

export function registryDelta(ctx: CompileContext, ch: RegistryChange, next: readonly Resource[], placeOf: (r: Resource) => number, opts: { dns: ReadonlyMap<string, readonly string[]> | undefined }): RegistryDelta | undefined {
  const { namespace: proxyNs, clusterDomain } = ctx.opts;
  const services = new Map<string, ServiceDef>();
  const replaced = new Map<ServiceDef, ServiceDef>();
  // An entry replaced in place: the host's service when it was the registry's (else it was shadowed and stays so).
  // The same port numbers: the host's subset-less clusters keep their names and so their place in the clusters' order,
  // which l4-destination.ts's endpoint index reads (first cluster wins).
  const replace = (old: ServiceDef, nu: ServiceDef): boolean => {
    if (nu.hostname !== old.hostname || !sameJson(old.addresses, nu.addresses)) return false;
    if (old.ports.length !== nu.ports.length || old.ports.some((p, i) => p.number !== nu.ports[i]!.number)) return false;
    if (ctx.byHost.get(old.hostname) !== old) return true;
    if (services.has(old.hostname)) return false;
    services.set(old.hostname, nu);
    replaced.set(old, nu);
    return true;
  };

  for (const [o, n] of ch.editedSe) {
    const hostsOf = (r: Resource): string[] => ((r.spec as ServiceEntrySpec).hosts ?? []).map((h) => h.toLowerCase());
    if (!sameJson(hostsOf(o), hostsOf(n)) || !sameJson((o.spec as ServiceEntrySpec).addresses ?? [], (n.spec as ServiceEntrySpec).addresses ?? [])) return undefined;
    const origin = objectName(o);
    const done = new Set<string>();
    for (const d of serviceEntryDefs(n, ctx.wes)) {
      // A host listed twice: its first definition is the one compile() keeps.
      if (done.has(d.hostname)) continue;
      done.add(d.hostname);
      const cur = ctx.byHost.get(d.hostname);
      if (cur !== undefined && cur.origin === origin && !replace(cur, d)) return undefined;
    }
  }

  let fileServices = ctx.fileServices;
  if (ch.fileK8s) {
    const f = servicesFromFiles(next, clusterDomain) ?? [];
    if (f.length !== ctx.fileServices.length) return undefined;
    const out: ServiceDef[] = [];
    for (let i = 0; i < f.length; i++) {
      const old = ctx.fileServices[i]!;
      const nu = f[i]!;
      if (sameJson(old, nu)) { out.push(old); continue; }
      if (!replace(old, nu)) return undefined;
      out.push(nu);
    }
    fileServices = out;
  }

  if (ch.prevExtra !== ch.nextExtra) {
    if (ch.prevExtra.length !== ch.nextExtra.length) return undefined;
    for (let i = 0; i < ch.nextExtra.length; i++) {
      const old = ch.prevExtra[i]!;
      const nu = ch.nextExtra[i]!;
      if (old !== nu && !replace(old, nu)) return undefined;
    }
  }

  // DestinationRules of exact hosts: the changed hosts' index entries, in input order as compile() builds them.
  const drIndex = new Map<string, Resource | Resource[] | undefined>();
  const drChanged = new Set<string>();
  const drHost = (dr: Resource): string => expandHost((dr.spec as DestinationRuleSpec).host ?? '', dr.metadata.namespace, clusterDomain);
  const listOf = (h: string): Resource[] => {
    const cur = drIndex.has(h) ? drIndex.get(h) : ctx.drIdx.exact.get(h);
    return cur === undefined ? [] : Array.isArray(cur) ? [...cur] : [cur];
  };
  const setList = (h: string, l: readonly Resource[]): void => { drIndex.set(h, l.length === 0 ? undefined : l.length === 1 ? l[0] : [...l]); };
  // Paired unchanged rules: the index names the new objects from now on.
  for (const [o, n] of ch.same) {
    if (o.kind !== 'DestinationRule') continue;
    const h = drHost(o);
    if (h.startsWith('*')) continue;
    setList(h, listOf(h).map((r) => (r === o ? n : r)));
  }
  const gone = new Set(ch.removedDr);
  for (const dr of [...ch.removedDr, ...ch.addedDr]) {
    const h = drHost(dr);
    if (h.startsWith('*') || h === '') return undefined;
    drChanged.add(h);
  }
  for (const h of drChanged) {
    const l = listOf(h).filter((r) => !gone.has(r));
    for (const dr of ch.addedDr) if (drHost(dr) === h) l.push(dr);
    for (const r of l) if (placeOf(r) < 0) return undefined;
    l.sort((a, b) => placeOf(a) - placeOf(b));
    setList(h, l);
  }
  const newIdx: DrLookup = { exact: { get: (h) => (drIndex.has(h) ? drIndex.get(h) : ctx.drIdx.exact.get(h)) }, wildcard: ctx.drIdx.wildcard };

  // The clusters of every host whose service or rule changed: the old names out, the new clusters in.
  const clusterHosts = new Set<string>(services.keys());
  for (const h of drChanged) if (ctx.byHost.has(h)) clusterHosts.add(h);
  const env: ClusterEnv = { ...ctx.env, dns: opts.dns, recent: { lists: [] } };
  const clusters = new Map<string, ClusterDef | undefined>();
  const seeds = new Map<string, ClusterSeed>();
  for (const h of clusterHosts) {
    const oldSvc = ctx.byHost.get(h)!;
    const newSvc = services.get(h) ?? oldSvc;
    const oldDr = findDestinationRule(ctx.drIdx, h, proxyNs, oldSvc.namespace);
    const subsets = (oldDr?.spec as DestinationRuleSpec | undefined)?.subsets ?? [];
    for (const p of oldSvc.ports) {
      clusters.set(clusterName(p.number, '', h), undefined);
      for (const s of subsets) clusters.set(clusterName(p.number, s.name, h), undefined);
    }
    const built = new Map<string, ClusterDef>();
    const newDr = findDestinationRule(newIdx, h, proxyNs, newSvc.namespace);
    serviceClusters(newSvc, newDr, env, built);
    for (const [name, def] of built) clusters.set(name, def);
    seeds.set(h, new ClusterSeed(newSvc, newDr));
  }
  return { services, replaced, drIndex, clusterHosts, clusters, seeds, fileServices };
}
