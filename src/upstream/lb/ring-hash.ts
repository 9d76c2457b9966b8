/**
 * RING_HASH (consistent hash, Karger ring): each host owns points on a 32-bit ring in proportion to its weight
 * (at least `ringMinSize` points in total); a key maps to the first point at or after its hash. A host's points
 * depend only on its own key and weight, so removing one of N hosts moves only the ~1/N of keys it owned.
 * The ring is built once per endpoint-set change; a lookup is a binary search.
 */

import type { Rand } from '../../util/random.js';
import { hash32, isExcluded, pickNotExcluded, type LbHost, type LbOptions, type LoadBalancer } from './load-balancer.js';

/** ringHash.minimumRingSize default, entries (Envoy/Istio). */
export const DEFAULT_RING_MIN_SIZE = 1024;
/** Envoy's maximum_ring_size default, entries: a bound on memory whatever the weights. */
export const MAX_RING_SIZE = 8 * 1024 * 1024;
/** Above this many points the per-host count shrinks (build time), unless ringMinSize asks for more. */
const STABLE_RING_CAP = 1 << 18;

/** gcd of the weights (integers in practice); the smallest weight when they are not integers. */
function weightGcd(hosts: readonly LbHost[]): number {
  let g = 0;
  let min = Infinity;
  let integral = true;
  for (const h of hosts) {
    min = Math.min(min, h.weight);
    if (!Number.isInteger(h.weight)) integral = false;
  }
  if (!integral) return min;
  for (const h of hosts) {
    let a = h.weight;
    let b = g;
    while (b !== 0) [a, b] = [b, a % b];
    g = a;
  }
  return g > 0 ? g : 1;
}

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
    // Each host gets `weight/g × perUnit` points, g the gcd of the weights. Unlike Envoy (which rescales every
    // host when the set changes, so a removal also shuffles keys between survivors), a host's points do not
    // depend on the other hosts, so removing one of N moves only its ~1/N of keys. perUnit = ringMinSize
    // (the ring is then ≥ ringMinSize), reduced only for big clusters to keep the build cheap.
    const g = weightGcd(hosts);
    let units = 0;
    for (const h of hosts) units += h.weight / g;
    let perUnit = minSize;
    if (units * perUnit > STABLE_RING_CAP) perUnit = Math.max(Math.ceil(minSize / units), Math.floor(STABLE_RING_CAP / units));
    if (units * perUnit > MAX_RING_SIZE) perUnit = Math.max(1, Math.floor(MAX_RING_SIZE / units));
    // Pack (hash, host index) into one float so a native numeric sort orders the ring (hash < 2^32, index < 2^20).
    const packed: number[] = [];
    for (let i = 0; i < hosts.length; i++) {
      const h = hosts[i]!;
      const count = Math.max(1, Math.round((h.weight / g) * perUnit));
      for (let k = 0; k < count; k++) packed.push(hash32(`${h.endpoint.key}_${k}`) * 1048576 + i);
    }
    const sorted = Float64Array.from(packed).sort();
    this.points = new Uint32Array(sorted.length);
    this.owner = new Int32Array(sorted.length);
    for (let j = 0; j < sorted.length; j++) {
      const v = sorted[j]!;
      const hv = Math.floor(v / 1048576);
      this.points[j] = hv;
      this.owner[j] = v - hv * 1048576;
    }
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
