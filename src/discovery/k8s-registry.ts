/**
 * The Kubernetes registry kept up to date per object: the merged cache of Services, EndpointSlices and Pods, and the
 * ServiceDefs mapped from it (k8s-mapping.ts), each Service's kept until something it reads changes: the Service,
 * one of its EndpointSlices (by the `kubernetes.io/service-name` label; a slice moving between Services or deleted
 * touches both), or a Pod one of its endpoints names, when what is read of the Pod (labels, service account) changed.
 * A batch of watch events maps only those Services again; the others keep their ServiceDef objects and their place
 * in the output (the compiler rebuilds only what changed identity; the first definition of a host wins), and equals
 * servicesFromKubernetes over the same cache (test/unit/discovery/k8s-registry.test.ts). Pure: objects in,
 * ServiceDefs out; the watch lives in k8s-source.ts.
 */
import type { V1EndpointSlice, V1Pod, V1Service } from '@kubernetes/client-node';
import type { ServiceDef } from '../model.js';
import { compareDefs, compareSlices, mapService, serviceLookupKey, sliceOwnerKey, type MappingOptions } from './k8s-mapping.js';

export type RegistryKind = 'service' | 'endpointslice' | 'pod';

/** What the mapping reads of a Pod: the same view maps to the same workloads. */
function samePodView(a: V1Pod | undefined, b: V1Pod | undefined): boolean {
  const am = a?.metadata?.name ? a.metadata : undefined;
  const bm = b?.metadata?.name ? b.metadata : undefined;
  if (am === undefined || bm === undefined) return am === bm;
  if ((am.namespace ?? 'default') !== (bm.namespace ?? 'default')) return false;
  if ((a!.spec?.serviceAccountName || 'default') !== (b!.spec?.serviceAccountName || 'default')) return false;
  return sameLabels(am.labels, bm.labels);
}

function sameLabels(a: Record<string, string> | undefined, b: Record<string, string> | undefined): boolean {
  if (a === b) return true;
  const x = a ?? {};
  const y = b ?? {};
  const kx = Object.keys(x);
  if (kx.length !== Object.keys(y).length) return false;
  for (const k of kx) if (!Object.prototype.hasOwnProperty.call(y, k) || x[k] !== y[k]) return false;
  return true;
}

/** Structural equality of plain data (what ServiceDefs are made of). */
function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!deepEqual(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    if (!Object.prototype.hasOwnProperty.call(b, k)) return false;
    if (!deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  }
  return true;
}

/**
 * An index from a key to a few keys: a string when one (most Pods have one Service, most Services one slice), a Set
 * past that. 50,000 Pods would otherwise cost 50,000 Sets.
 */
type Index = Map<string, string | Set<string>>;

function addTo(index: Index, at: string, key: string): void {
  const cur = index.get(at);
  if (cur === undefined) index.set(at, key);
  else if (typeof cur === 'string') {
    if (cur !== key) index.set(at, new Set([cur, key]));
  } else cur.add(key);
}

function removeFrom(index: Index, at: string, key: string): void {
  const cur = index.get(at);
  if (cur === undefined) return;
  if (typeof cur === 'string') {
    if (cur === key) index.delete(at);
    return;
  }
  cur.delete(key);
  if (cur.size === 1) index.set(at, cur.values().next().value!);
}

function* each(index: Index, at: string): Generator<string> {
  const cur = index.get(at);
  if (cur === undefined) return;
  if (typeof cur === 'string') yield cur;
  else yield* cur;
}

const NONE: readonly ServiceDef[] = [];
const NO_KEYS: readonly string[] = [];

/** The cache keys (`namespace/name`) of the Pods a Service's slices name in their endpoints' targetRefs, in order, once each. */
export function podsNamed(svc: V1Service, slices: readonly V1EndpointSlice[]): string[] {
  const ns = svc.metadata?.namespace ?? 'default';
  let out: string[] | undefined;
  let seen: Set<string> | undefined;
  for (const slice of slices) {
    for (const ep of slice.endpoints ?? []) {
      const ref = ep.targetRef;
      if (ref?.kind !== 'Pod' || !ref.name) continue;
      const k = [ns, ref.name].join('/'); // flat (a template literal would be a cons string kept as the key)
      if (out === undefined) { out = [k]; continue; }
      if (seen === undefined) { seen = new Set(out); }
      if (seen.has(k)) continue;
      seen.add(k);
      out.push(k);
    }
  }
  return out ?? [];
}

export class KubernetesRegistry {
  private readonly svcs = new Map<string, V1Service>();
  private readonly slices = new Map<string, V1EndpointSlice>();
  private readonly pods = new Map<string, V1Pod>();
  /** Service lookup key (`ns/name`, serviceLookupKey) → the cache keys of the Services there (one, but for odd input). */
  private readonly servicesAt: Index = new Map();
  /** Labelled slice → the Service lookup key it belongs to, and the reverse. */
  private readonly sliceOwner = new Map<string, string>();
  private readonly slicesOf: Index = new Map();
  /** Pod key → the Services whose endpoints named it when last mapped, and the reverse. */
  private readonly podUsers: Index = new Map();
  private readonly podsUsed = new Map<string, readonly string[]>();
  /** Each Service's ServiceDefs as last mapped. */
  private readonly defs = new Map<string, readonly ServiceDef[]>();
  /** Services to map again at the next services(). */
  private readonly dirty = new Set<string>();
  /** The output, in compareDefs order, with each entry's Service key and place in that Service's output. */
  private out: ServiceDef[] = [];
  private outKeys: string[] = [];
  private outIdx: number[] = [];
  private podList: V1Pod[] | undefined = [];
  /** Services mapped (again), and of those the ones whose ServiceDefs changed; for the bench and the tests. */
  readonly stats = { mapped: 0, changed: 0 };

  constructor(private readonly opts: MappingOptions) {}

  /**
   * Set (`obj`) or remove (undefined) one cached object. `key` is its cache key, `namespace/name` with '' for an
   * absent namespace (objectKey; the key the informers use). Setting the object already held costs nothing.
   */
  set(kind: RegistryKind, key: string, obj: V1Service | V1EndpointSlice | V1Pod | undefined): void {
    switch (kind) {
      case 'service':
        return this.setService(key, obj as V1Service | undefined);
      case 'endpointslice':
        return this.setSlice(key, obj as V1EndpointSlice | undefined);
      case 'pod':
        return this.setPod(key, obj as V1Pod | undefined);
    }
  }

  /** Replace every object of a kind (a relist): each is set, and those absent from `objs` removed. */
  sync(kind: RegistryKind, objs: Iterable<[string, V1Service | V1EndpointSlice | V1Pod]>): void {
    const held = kind === 'service' ? this.svcs : kind === 'endpointslice' ? this.slices : this.pods;
    // Nothing held (the first list): nothing to remove, no need to remember what was seen.
    const seen = held.size > 0 ? new Set<string>() : undefined;
    for (const [key, obj] of objs) {
      seen?.add(key);
      this.set(kind, key, obj);
    }
    if (seen) for (const key of [...held.keys()]) if (!seen.has(key)) this.set(kind, key, undefined);
  }

  get(kind: RegistryKind, key: string): V1Service | V1EndpointSlice | V1Pod | undefined {
    return kind === 'service' ? this.svcs.get(key) : kind === 'endpointslice' ? this.slices.get(key) : this.pods.get(key);
  }

  private setService(key: string, svc: V1Service | undefined): void {
    const prev = this.svcs.get(key);
    if (prev === svc) return;
    if (svc === undefined) this.svcs.delete(key);
    else this.svcs.set(key, svc);
    const before = prev ? serviceLookupKey(prev) : undefined;
    const after = svc ? serviceLookupKey(svc) : undefined;
    if (before !== after) {
      if (before !== undefined) removeFrom(this.servicesAt, before, key);
      if (after !== undefined) addTo(this.servicesAt, after, key);
    }
    this.dirty.add(key);
  }

  private setSlice(key: string, slice: V1EndpointSlice | undefined): void {
    const prev = this.slices.get(key);
    if (prev === slice) return;
    if (slice === undefined) this.slices.delete(key);
    else this.slices.set(key, slice);
    const before = this.sliceOwner.get(key);
    const after = slice ? sliceOwnerKey(slice) : undefined;
    if (before !== after) {
      if (before !== undefined) {
        removeFrom(this.slicesOf, before, key);
        this.sliceOwner.delete(key);
      }
      if (after !== undefined) {
        addTo(this.slicesOf, after, key);
        this.sliceOwner.set(key, after);
      }
    }
    for (const at of [before, after]) {
      if (at === undefined) continue;
      for (const s of each(this.servicesAt, at)) this.dirty.add(s);
    }
  }

  private setPod(key: string, pod: V1Pod | undefined): void {
    const prev = this.pods.get(key);
    if (prev === pod) return;
    if (pod === undefined) this.pods.delete(key);
    else this.pods.set(key, pod);
    this.podList = undefined;
    if (samePodView(prev, pod)) return;
    for (const s of each(this.podUsers, key)) this.dirty.add(s);
  }

  /** Every cached Pod (for peer IP → pod); the same array until a Pod changes. */
  podsList(): V1Pod[] {
    this.podList ??= [...this.pods.values()];
    return this.podList;
  }

  /** Every cached Service (for the tests: the input of the full mapping). */
  servicesList(): V1Service[] {
    return [...this.svcs.values()];
  }

  slicesList(): V1EndpointSlice[] {
    return [...this.slices.values()];
  }

  /** Services waiting to be mapped again. */
  get pending(): number {
    return this.dirty.size;
  }

  /**
   * The registry: the array of last time when nothing it reads changed, else a new array in which every Service not
   * touched keeps its ServiceDef objects, in order (a Service mapped again to equal ServiceDefs keeps them too).
   */
  services(): ServiceDef[] {
    if (this.dirty.size === 0) return this.out;
    const changed = new Map<string, readonly ServiceDef[]>();
    for (const key of this.dirty) {
      this.stats.mapped++;
      const svc = this.svcs.get(key);
      let named: string[] = [];
      let next: readonly ServiceDef[] = NONE;
      if (svc !== undefined) {
        const slices: V1EndpointSlice[] = [];
        for (const k of each(this.slicesOf, serviceLookupKey(svc))) slices.push(this.slices.get(k)!);
        if (slices.length > 1) slices.sort(compareSlices);
        next = mapService(svc, slices, (k) => this.pods.get(k), this.opts);
        named = podsNamed(svc, slices);
      }
      this.usePods(key, named);
      const prev = this.defs.get(key) ?? NONE;
      if (next.length === 0) this.defs.delete(key);
      if (prev.length === next.length && prev.every((d, i) => deepEqual(d, next[i]))) continue;
      if (next.length > 0) this.defs.set(key, next);
      changed.set(key, next);
    }
    this.dirty.clear();
    if (changed.size === 0) return this.out;
    this.stats.changed += changed.size;
    this.merge(changed);
    return this.out;
  }

  /**
   * The Pods a Service's endpoints name, ready or not (a superset of those the mapping reads: it reads the ready ones'),
   * so a readiness flip leaves the index alone; only the keys that come or go are touched. Deleting and adding a key
   * back on every flip left a deleted entry in the Map's table each time, until the table doubled (50,000 Pods:
   * +1.7 MB that stayed after the churn).
   */
  private usePods(key: string, named: string[]): void {
    const before = this.podsUsed.get(key) ?? NO_KEYS;
    if (before.length === named.length && before.every((k, i) => k === named[i])) return;
    if (before.length > 0 || named.length > 0) {
      const now = new Set(named);
      const was = new Set(before);
      for (const p of was) if (!now.has(p)) removeFrom(this.podUsers, p, key);
      for (const p of now) if (!was.has(p)) addTo(this.podUsers, p, key);
    }
    if (named.length > 0) this.podsUsed.set(key, named);
    else this.podsUsed.delete(key);
  }

  /** The output without the changed Services' old entries, merged with their new ones (both in compareDefs order). */
  private merge(changed: Map<string, readonly ServiceDef[]>): void {
    const added: Array<{ def: ServiceDef; key: string; idx: number }> = [];
    for (const [key, defs] of changed) defs.forEach((def, idx) => added.push({ def, key, idx }));
    added.sort((a, b) => compareDefs(a.def, a.key, a.idx, b.def, b.key, b.idx));
    if (this.out.length === 0) {
      this.out = added.map((a) => a.def);
      this.outKeys = added.map((a) => a.key);
      this.outIdx = added.map((a) => a.idx);
      return;
    }
    const out: ServiceDef[] = [];
    const keys: string[] = [];
    const idxs: number[] = [];
    let j = 0;
    for (let i = 0; i < this.out.length; i++) {
      const key = this.outKeys[i]!;
      if (changed.has(key)) continue;
      const def = this.out[i]!;
      const idx = this.outIdx[i]!;
      while (j < added.length && compareDefs(added[j]!.def, added[j]!.key, added[j]!.idx, def, key, idx) < 0) {
        out.push(added[j]!.def);
        keys.push(added[j]!.key);
        idxs.push(added[j]!.idx);
        j++;
      }
      out.push(def);
      keys.push(key);
      idxs.push(idx);
    }
    for (; j < added.length; j++) {
      out.push(added[j]!.def);
      keys.push(added[j]!.key);
      idxs.push(added[j]!.idx);
    }
    this.out = out;
    this.outKeys = keys;
    this.outIdx = idxs;
  }
}
