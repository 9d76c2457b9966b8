/**
 * RING_HASH (consistent hash, Karger ring): each host owns points on a 32-bit ring in proportion to its weight
 * (at least `ringMinSize` points in total); a key maps to the first point at or after its hash. A host's points
 * depend only on its own key, so removing one of N hosts moves only the ~1/N of keys it owned.
 * The ring is built once per endpoint-set change; a lookup is a binary search.
 */

import type { Rand } from '../../util/random.js';
import { hash32, isExcluded, pickNotExcluded, type LbHost, type LbOptions, type LoadBalancer } from './load-balancer.js';

/** ringHash.minimumRingSize default, entries (Envoy/Istio). */
export const DEFAULT_RING_MIN_SIZE = 1024;
/** Envoy's maximum_ring_size default, entries: a bound on memory whatever the weights. */
export const MAX_RING_SIZE = 8 * 1024 * 1024;

export class RingHashLb implements LoadBalancer {
  private readonly hosts: readonly LbHost[];
  private readonly rand: Rand;
  private readonly points: Uint32Array;
  private readonly owner: Int32Array;

  constructor(hosts: readonly LbHost[], rand: Rand, opts?: LbOptions) {
    this.hosts = hosts;
    this.rand = rand;
    const minSize = Math.max(1, opts?.ringMinSize ?? DEFAULT_RING_MIN_SIZE);
    let total = 0;
    for (const h of hosts) total += h.weight;
    if (hosts.length === 0 || total <= 0) {
      this.points = new Uint32Array(0);
      this.owner = new Int32Array(0);
      return;
    }
    // As Envoy: scale so the lightest host still gets ceil(minNormalizedWeight × minSize) points.
    let minNorm = Infinity;
    for (const h of hosts) minNorm = Math.min(minNorm, h.weight / total);
    const scale = Math.min(Math.ceil(minNorm * minSize) / minNorm, MAX_RING_SIZE);
    const hashes: number[] = [];
    const owners: number[] = [];
    let target = 0;
    let made = 0;
    for (let i = 0; i < hosts.length; i++) {
      const h = hosts[i]!;
      target += scale * (h.weight / total);
      for (let k = 0; made < target; k++, made++) {
        hashes.push(hash32(`${h.endpoint.key}_${k}`));
        owners.push(i);
      }
    }
    const order = hashes.map((_, i) => i).sort((a, b) => hashes[a]! - hashes[b]! || owners[a]! - owners[b]!);
    this.points = Uint32Array.from(order, (i) => hashes[i]!);
    this.owner = Int32Array.from(order, (i) => owners[i]!);
  }

  /** Index of the first ring point ≥ h (wrapping to 0). */
  private locate(h: number): number {
    const pts = this.points;
    let lo = 0;
    let hi = pts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (pts[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    return lo === pts.length ? 0 : lo;
  }

  pick(hashKey: string | undefined, exclude: ReadonlySet<string> | undefined): LbHost | undefined {
    const n = this.points.length;
    if (n === 0) return undefined;
    // No key (header/cookie absent): Envoy picks a random point.
    const h = hashKey === undefined ? Math.floor(this.rand() * 4294967296) : hash32(hashKey);
    let idx = this.locate(h);
    const first = this.hosts[this.owner[idx]!]!;
    if (!isExcluded(first, exclude)) return first;
    // Walk clockwise to the next host not excluded, so a retry keeps the ring's stickiness order.
    // Bounded: when nearly every host is excluded the scan below is cheaper than walking a huge ring.
    const maxSteps = Math.min(n, 64 * this.hosts.length);
    for (let step = 1; step < maxSteps; step++) {
      idx = idx + 1 === n ? 0 : idx + 1;
      const cand = this.hosts[this.owner[idx]!]!;
      if (!isExcluded(cand, exclude)) return cand;
    }
    return pickNotExcluded(this.hosts, exclude, this.rand, first);
  }

  /** Ring size (for tests and /clusters). */
  get size(): number {
    return this.points.length;
  }
}

export const ringHash = (hosts: readonly LbHost[], rand: Rand, opts?: LbOptions): LoadBalancer =>
  new RingHashLb(hosts, rand, opts);
