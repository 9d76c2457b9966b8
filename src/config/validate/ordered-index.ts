/**
 * Small ordered sets of resources, kept in the input order, stored as one resource or an array (nearly every key of a
 * large mesh has one): what the incremental checks index by host or name. Pure.
 */
import type { Resource } from '../resource.js';

/** The input order of resources: negative when `a` comes first. */
export type Order = (a: Resource, b: Resource) => number;

/** One resource, several in order, or none. */
export type Few = Resource | Resource[] | undefined;

export function fewAdd(v: Few, r: Resource, order: Order): Few {
  if (v === undefined) return r;
  if (!Array.isArray(v)) {
    if (v === r) return v;
    return order(r, v) < 0 ? [r, v] : [v, r];
  }
  if (v.includes(r)) return v;
  let i = v.length;
  while (i > 0 && order(r, v[i - 1]!) < 0) i--;
  const out = v.slice();
  out.splice(i, 0, r);
  return out;
}

export function fewRemove(v: Few, r: Resource): Few {
  if (v === undefined || v === r) return undefined;
  if (!Array.isArray(v)) return v;
  const i = v.indexOf(r);
  if (i < 0) return v;
  if (v.length === 2) return v[1 - i];
  const out = v.slice();
  out.splice(i, 1);
  return out;
}

const EMPTY: readonly Resource[] = [];

export function fewList(v: Few): readonly Resource[] {
  return v === undefined ? EMPTY : Array.isArray(v) ? v : [v];
}

export function fewFirst(v: Few): Resource | undefined {
  return v === undefined ? undefined : Array.isArray(v) ? v[0] : v;
}

export function fewLast(v: Few): Resource | undefined {
  return v === undefined ? undefined : Array.isArray(v) ? v[v.length - 1] : v;
}

/** A map from keys to ordered resource sets. */
export class OrderedIndex<K> {
  private readonly m = new Map<K, Resource | Resource[]>();

  constructor(private readonly order: Order) {}

  add(k: K, r: Resource): void {
    this.m.set(k, fewAdd(this.m.get(k), r, this.order)!);
  }

  remove(k: K, r: Resource): void {
    const v = fewRemove(this.m.get(k), r);
    if (v === undefined) this.m.delete(k); else this.m.set(k, v);
  }

  get(k: K): readonly Resource[] {
    return fewList(this.m.get(k));
  }

  first(k: K): Resource | undefined {
    return fewFirst(this.m.get(k));
  }

  last(k: K): Resource | undefined {
    return fewLast(this.m.get(k));
  }

  keys(): IterableIterator<K> {
    return this.m.keys();
  }

  get size(): number {
    return this.m.size;
  }
}
