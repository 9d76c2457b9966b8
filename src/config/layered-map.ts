/**
 * A persistent map for the snapshot's host index, VIPs and clusters: a snapshot compiled from the previous one
 * (compile-delta.ts) shares the previous one's flat Map and adds a small overlay of its changes, instead of copying
 * ~250,000 entries per edit. A lookup is one Map get in the overlay, then one in the base. When the overlay grows past
 * a sixteenth of the base, the next derivation flattens both into a new Map (amortized: one copy per many edits).
 * Read-only once built (ReadonlyMap: get, has, size, iteration). Pure.
 */

const GONE: unique symbol = Symbol('gone');

/** A map that can make a flat copy of itself with changes applied (undefined: removed), in its own form. */
export interface Rebasable<K, V> { rebase(changes: ReadonlyMap<K, V | undefined>): ReadonlyMap<K, V> }
type Slot<V> = V | typeof GONE;

export class LayeredMap<K, V> implements ReadonlyMap<K, V> {
  private constructor(private readonly base: ReadonlyMap<K, V>, private readonly overlay: ReadonlyMap<K, Slot<V>>, readonly size: number) {}

  /**
   * `prev` with `changes` applied (undefined: removed). `prev` is left as it is. Returns `prev` itself when there is
   * nothing to change, a flat Map when flattening.
   */
  static derive<K, V>(prev: ReadonlyMap<K, V>, changes: ReadonlyMap<K, V | undefined>): ReadonlyMap<K, V> {
    if (changes.size === 0) return prev;
    const base = prev instanceof LayeredMap ? (prev as LayeredMap<K, V>).base : prev;
    const overlay = new Map<K, Slot<V>>(prev instanceof LayeredMap ? (prev as LayeredMap<K, V>).overlay : undefined);
    let size = prev.size;
    for (const [k, v] of changes) {
      const had = prev.has(k);
      if (v === undefined) {
        if (!had) continue;
        size--;
        if (base.has(k)) overlay.set(k, GONE); else overlay.delete(k);
      } else {
        if (!had) size++;
        overlay.set(k, v);
      }
    }
    if (overlay.size > 64 && overlay.size * 16 > base.size) {
      // A base that builds its values on first use (./cluster-table.ts) flattens itself, leaving them unbuilt.
      const rebasable = base as Partial<Rebasable<K, V>>;
      if (typeof rebasable.rebase === 'function') {
        const changes = new Map<K, V | undefined>();
        for (const [k, o] of overlay) changes.set(k, o === GONE ? undefined : o);
        return rebasable.rebase(changes);
      }
      const flat = new Map<K, V>();
      for (const [k, v] of base) { const o = overlay.get(k); if (o === undefined) flat.set(k, v); else if (o !== GONE) flat.set(k, o); }
      for (const [k, o] of overlay) if (o !== GONE && !base.has(k)) flat.set(k, o);
      return flat;
    }
    return new LayeredMap(base, overlay, size);
  }

  get(k: K): V | undefined {
    const o = this.overlay.get(k);
    if (o === undefined) return this.base.get(k);
    return o === GONE ? undefined : o;
  }

  has(k: K): boolean {
    const o = this.overlay.get(k);
    if (o === undefined) return this.base.has(k);
    return o !== GONE;
  }

  *entries(): MapIterator<[K, V]> {
    for (const [k, v] of this.base) {
      const o = this.overlay.get(k);
      if (o === undefined) yield [k, v];
      else if (o !== GONE) yield [k, o];
    }
    for (const [k, o] of this.overlay) if (o !== GONE && !this.base.has(k)) yield [k, o];
  }

  *keys(): MapIterator<K> {
    for (const [k] of this.entries()) yield k;
  }

  *values(): MapIterator<V> {
    for (const [, v] of this.entries()) yield v;
  }

  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.entries();
  }

  forEach(fn: (value: V, key: K, map: ReadonlyMap<K, V>) => void, thisArg?: unknown): void {
    for (const [k, v] of this.entries()) fn.call(thisArg, v, k, this);
  }

  /** Entries in the overlay (for tests and /config_dump's figures). */
  get layered(): number {
    return this.overlay.size;
  }
}
