/**
 * The snapshot's clusters, built on first use like routes. compile() settles every cluster (service × port × subset)
 * at once, but keeps per service only what building its clusters needs (ClusterSeed: the service and its
 * DestinationRule as they were at compile time), by host: neither a ClusterDef nor even a name per cluster. A
 * ClusterDef is built the first time `get` asks for its name, then kept: a workload calls few of a large mesh's
 * services, and three built clusters (names, Map entries, defs, endpoint lists, Endpoint objects) were ~900 B per
 * service at 50,000 services. Iteration (/config_dump, the L4 endpoint index, tests) builds the clusters not built yet
 * without keeping them. `has`, `size` and the order are those of a full build (serviceClusters()).
 * Read-only for its users (ReadonlyMap); compile-delta.ts derives new tables through LayeredMap (rebase()).
 */
import type { ClusterDef, ServiceDef } from '../model.js';
import type { Resource } from './resource.js';
import type { DestinationRuleSpec } from './types.js';
import { buildCluster, clusterName, type ClusterEnv } from './compile-clusters.js';
import { LayeredMap } from './layered-map.js';

/** What building the clusters of one service needs: the service, its DestinationRule (immutable, as compiled). */
export class ClusterSeed {
  constructor(readonly svc: ServiceDef, readonly dr: Resource | undefined) {}

  /** The names of its clusters, in serviceClusters() order: each port's subset-less cluster, then its subsets'. */
  names(): string[] {
    const out: string[] = [];
    const seen = new Set<string>();
    const subsets = (this.dr?.spec as DestinationRuleSpec | undefined)?.subsets;
    const add = (n: string): void => { if (!seen.has(n)) { seen.add(n); out.push(n); } };
    for (const port of this.svc.ports) {
      add(clusterName(port.number, '', this.svc.hostname));
      if (subsets !== undefined) for (const s of subsets) add(clusterName(port.number, s.name, this.svc.hostname));
    }
    return out;
  }

  /** How many names() are, without making them (nearly always: ports × (1 + subsets)). */
  count(): number {
    const subsets = (this.dr?.spec as DestinationRuleSpec | undefined)?.subsets ?? [];
    const ports = new Set(this.svc.ports.map((p) => p.number));
    const names = new Set(subsets.map((s) => s.name));
    if (ports.size === this.svc.ports.length && names.size === subsets.length && !names.has('')) return ports.size * (1 + names.size);
    return this.names().length;
  }

  /** Whether `port` and `subset` name one of its clusters. */
  has(port: number, subset: string): boolean {
    if (!this.svc.ports.some((p) => p.number === port)) return false;
    return subset === '' || ((this.dr?.spec as DestinationRuleSpec | undefined)?.subsets ?? []).some((s) => s.name === subset);
  }
}

const GONE: unique symbol = Symbol('gone');
type Extra = ReadonlyMap<string, ClusterDef | typeof GONE>;

export class ClusterTable implements ReadonlyMap<string, ClusterDef> {
  /**
   * `seeds`: by host, in compile order. `built`: the defs built so far, by name (shared by the tables rebased from
   * this one: same seeds). `extra`: clusters set or removed since compile (rebase()), checked first.
   */
  constructor(
    private readonly seeds: ReadonlyMap<string, ClusterSeed>,
    private readonly env: ClusterEnv,
    readonly size: number,
    private readonly built_: Map<string, ClusterDef> = new Map(),
    private readonly extra: Extra | undefined = undefined,
  ) {}

  /** The table of `seeds` (one per service, by host). */
  static of(seeds: ReadonlyMap<string, ClusterSeed>, env: ClusterEnv): ClusterTable {
    let size = 0;
    for (const s of seeds.values()) size += s.count();
    return new ClusterTable(seeds, env, size);
  }

  has(name: string): boolean {
    const e = this.extra?.get(name);
    if (e !== undefined) return e !== GONE;
    return this.built_.has(name) || this.seedOf(name) !== undefined;
  }

  get(name: string): ClusterDef | undefined {
    const e = this.extra?.get(name);
    if (e !== undefined) return e === GONE ? undefined : e;
    let def = this.built_.get(name);
    if (def !== undefined) return def;
    const seed = this.seedOf(name);
    if (seed === undefined) return undefined;
    def = this.build(name, seed);
    this.built_.set(name, def);
    return def;
  }

  /** Whether `name`'s def has been built (for tests). */
  built(name: string): boolean {
    const e = this.extra?.get(name);
    if (e !== undefined) return e !== GONE;
    return this.built_.has(name);
  }

  /**
   * The seed whose cluster `name` is: `outbound|<port>|<subset>|<host>`, where the subset may hold '|' (each split
   * is tried, the shortest subset first); undefined when no seed has it.
   */
  private seedOf(name: string): ClusterSeed | undefined {
    if (!name.startsWith('outbound|')) return undefined;
    const p = name.indexOf('|', 9);
    if (p < 0) return undefined;
    const portText = name.slice(9, p);
    const port = Number(portText);
    if (!Number.isInteger(port) || String(port) !== portText) return undefined;
    for (let i = name.indexOf('|', p + 1); i >= 0; i = name.indexOf('|', i + 1)) {
      const seed = this.seeds.get(name.slice(i + 1));
      if (seed !== undefined && seed.has(port, name.slice(p + 1, i))) return seed;
    }
    return undefined;
  }

  private build(name: string, seed: ClusterSeed): ClusterDef {
    const { svc, dr } = seed;
    const rest = name.slice('outbound|'.length, name.length - svc.hostname.length - 1);
    const bar = rest.indexOf('|');
    const number = Number(rest.slice(0, bar));
    const port = svc.ports.find((x) => x.number === number);
    const def = port === undefined ? undefined : buildCluster(svc, port, rest.slice(bar + 1), dr, this.env, name);
    if (def === undefined) throw new Error(`cluster ${name} cannot be built from ${svc.origin}`);
    return def;
  }

  *entries(): MapIterator<[string, ClusterDef]> {
    const extra = this.extra;
    for (const seed of this.seeds.values()) {
      for (const n of seed.names()) {
        const e = extra?.get(n);
        if (e === GONE) continue;
        yield [n, e ?? this.built_.get(n) ?? this.build(n, seed)];
      }
    }
    if (extra !== undefined) for (const [n, e] of extra) if (e !== GONE && this.seedOf(n) === undefined) yield [n, e];
  }

  /** The names alone: nothing is built (the cluster manager and the metrics walk every name on a full update). */
  *keys(): MapIterator<string> {
    const extra = this.extra;
    for (const seed of this.seeds.values()) for (const n of seed.names()) if (extra?.get(n) !== GONE) yield n;
    if (extra !== undefined) for (const [n, e] of extra) if (e !== GONE && this.seedOf(n) === undefined) yield n;
  }

  *values(): MapIterator<ClusterDef> {
    for (const [, v] of this.entries()) yield v;
  }

  [Symbol.iterator](): MapIterator<[string, ClusterDef]> {
    return this.entries();
  }

  forEach(fn: (value: ClusterDef, key: string, map: ReadonlyMap<string, ClusterDef>) => void, thisArg?: unknown): void {
    for (const [k, v] of this.entries()) fn.call(thisArg, v, k, this);
  }

  /**
   * A new table with the seeds of some hosts replaced (a compile delta's changed hosts: their new ServiceDef and
   * DestinationRule; every host must have a seed here). Their clusters are built again on first use; the defs built
   * for other hosts are kept (the same objects). Keeping the delta's built clusters instead (rebase()) kept, under API
   * watch churn, every cluster an event had touched built, and the seeds kept every replaced ServiceDef alive (+11.7 MB
   * live after 6,000 events at 10,000 Services). Undefined when this table holds changes made by rebase().
   */
  reseed(changed: ReadonlyMap<string, ClusterSeed>): ClusterTable | undefined {
    if (changed.size === 0) return this;
    if (this.extra !== undefined && this.extra.size > 0) return undefined;
    let size = this.size;
    for (const [h, seed] of changed) {
      const old = this.seeds.get(h);
      if (old === undefined) return undefined;
      size += seed.count() - old.count();
    }
    const built = new Map<string, ClusterDef>();
    for (const [n, d] of this.built_) if (!changed.has(d.host)) built.set(n, d);
    return new ClusterTable(LayeredMap.derive(this.seeds, changed), this.env, size, built);
  }

  /**
   * A new table: this one with `changes` applied (undefined: removed); names not in this one come after the others.
   * The seeds are shared and stay unbuilt (LayeredMap flattens through this instead of building every cluster).
   */
  rebase(changes: ReadonlyMap<string, ClusterDef | undefined>): ClusterTable {
    const extra = new Map<string, ClusterDef | typeof GONE>(this.extra);
    let size = this.size;
    for (const [k, v] of changes) {
      const had = this.has(k);
      if (v === undefined) {
        if (!had) continue;
        size--;
        if (this.seedOf(k) !== undefined) extra.set(k, GONE); else extra.delete(k);
      } else {
        if (!had) size++;
        extra.set(k, v);
      }
    }
    return new ClusterTable(this.seeds, this.env, size, this.built_, extra);
  }
}
