/**
 * The snapshot's clusters, built on first use like routes. compile() names every cluster (service × port × subset) at
 * once, in order, but builds a ClusterDef (policy, endpoints) only when one is first asked for by name: a workload
 * calls few of a large mesh's services, and a built cluster with its endpoint list and Endpoint objects was ~600 B
 * per service at 50,000 services. A name's slot holds what building it needs (the service and its DestinationRule as
 * they were at compile time, shared by the service's clusters), then the built def, which `get` returns from then on.
 * Iteration (/config_dump, the L4 endpoint index, tests) builds the clusters not built yet without keeping them.
 * Read-only for its users (ReadonlyMap); compile-delta.ts derives new tables through LayeredMap.
 */
import type { ClusterDef, ServiceDef } from '../model.js';
import type { Resource } from './resource.js';
import { buildCluster, type ClusterEnv } from './compile-clusters.js';

/** What building the clusters of one service needs: the service, its DestinationRule (immutable, as compiled). */
export class ClusterSeed {
  constructor(readonly svc: ServiceDef, readonly dr: Resource | undefined) {}
}

type Slot = ClusterDef | ClusterSeed;

export class ClusterTable implements ReadonlyMap<string, ClusterDef> {
  constructor(private readonly slots: Map<string, Slot>, private readonly env: ClusterEnv) {}

  get size(): number {
    return this.slots.size;
  }

  has(name: string): boolean {
    return this.slots.has(name);
  }

  get(name: string): ClusterDef | undefined {
    const s = this.slots.get(name);
    if (!(s instanceof ClusterSeed)) return s;
    const def = this.build(name, s);
    this.slots.set(name, def);
    return def;
  }

  /** Whether `name`'s def has been built (for tests and the figures of /config_dump). */
  built(name: string): boolean {
    const s = this.slots.get(name);
    return s !== undefined && !(s instanceof ClusterSeed);
  }

  private build(name: string, seed: ClusterSeed): ClusterDef {
    // `outbound|<port>|<subset>|<host>` with the seed's host: the subset is what lies between (it may hold '|').
    const { svc, dr } = seed;
    const rest = name.slice('outbound|'.length, name.length - svc.hostname.length - 1);
    const bar = rest.indexOf('|');
    const number = Number(rest.slice(0, bar));
    const subset = rest.slice(bar + 1);
    const port = svc.ports.find((p) => p.number === number);
    const def = port === undefined ? undefined : buildCluster(svc, port, subset, dr, this.env, name);
    if (def === undefined) throw new Error(`cluster ${name} cannot be built from ${svc.origin}`);
    return def;
  }

  *entries(): MapIterator<[string, ClusterDef]> {
    for (const [k, s] of this.slots) yield [k, s instanceof ClusterSeed ? this.build(k, s) : s];
  }

  keys(): MapIterator<string> {
    return this.slots.keys();
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
   * A new table: this one with `changes` applied (undefined: removed), names not in this one added at the end. Slots
   * not yet built stay unbuilt (LayeredMap flattens through this instead of building every cluster).
   */
  rebase(changes: ReadonlyMap<string, ClusterDef | undefined>): ClusterTable {
    const slots = new Map<string, Slot>();
    for (const [k, s] of this.slots) {
      if (!changes.has(k)) slots.set(k, s);
      else { const v = changes.get(k); if (v !== undefined) slots.set(k, v); }
    }
    for (const [k, v] of changes) if (v !== undefined && !this.slots.has(k)) slots.set(k, v);
    return new ClusterTable(slots, this.env);
  }
}
