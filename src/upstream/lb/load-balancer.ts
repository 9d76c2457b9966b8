/**
 * The load-balancer contract: an algorithm is built once per endpoint-set (or weight) change over a fixed
 * array of hosts and then answers `pick` per request without allocating. Shared helpers live here too.
 */

import type { Endpoint } from '../../model.js';
import type { Rand } from '../../util/random.js';

/**
 * Per-endpoint state a balancer reads. The cluster runtime owns these objects and mutates `active` and the
 * RTT estimate in place, so balancers see live values without being rebuilt.
 */
export interface LbHost {
  readonly endpoint: Endpoint;
  /** Effective weight (endpoint weight × slow-start factor), > 0. */
  weight: number;
  /** Requests in flight to this endpoint. */
  active: number;
  /** Peak-EWMA round-trip estimate (ms) and the time (ms, caller clock) it was last updated. */
  rttMs: number;
  rttAt: number;
}

export interface LoadBalancer {
  /**
   * Choose a host. `hashKey` is only read by consistent-hash balancers. Hosts in `exclude` (endpoint keys) are
   * skipped when any other host exists; when every host is excluded one is still returned (Envoy's
   * host_selection_retry_max_attempts gives up and uses the last pick). undefined only for an empty set.
   */
  pick(hashKey: string | undefined, exclude: ReadonlySet<string> | undefined, now: number): LbHost | undefined;
}

export interface LbOptions {
  /** ringHash.minimumRingSize, entries; default 1024 (Envoy/Istio). */
  ringMinSize?: number;
  /** maglev.tableSize, entries, must be prime; default 65537 (Envoy/Istio). */
  maglevTableSize?: number;
  /** Peak EWMA: RTT assumed for an endpoint with no sample yet, ms; default 30 (Linkerd). */
  defaultRttMs?: number;
  /** Peak EWMA: decay time constant, ms; default 10 000 (Linkerd). */
  ewmaDecayMs?: number;
}

export type LbFactory = (hosts: readonly LbHost[], rand: Rand, opts?: LbOptions) => LoadBalancer;

/** Istio sets host_selection_retry_max_attempts to 5 with the previous_hosts predicate. */
export const HOST_SELECTION_ATTEMPTS = 5;

export function isExcluded(h: LbHost, exclude: ReadonlySet<string> | undefined): boolean {
  return exclude !== undefined && exclude.size !== 0 && exclude.has(h.endpoint.key);
}

export function allWeightsEqual(hosts: readonly LbHost[]): boolean {
  const w = hosts[0]?.weight;
  for (let i = 1; i < hosts.length; i++) if (hosts[i]!.weight !== w) return false;
  return true;
}

/**
 * Slow path when an algorithm's own picks kept landing on excluded hosts: a weighted-random choice among the
 * hosts not excluded (O(n), only on retries). Returns `fallback` when every host is excluded.
 */
export function pickNotExcluded(
  hosts: readonly LbHost[], exclude: ReadonlySet<string> | undefined, rand: Rand, fallback: LbHost,
): LbHost {
  let total = 0;
  for (const h of hosts) if (!isExcluded(h, exclude)) total += h.weight;
  if (total <= 0) return fallback;
  let r = rand() * total;
  let last: LbHost = fallback;
  for (const h of hosts) {
    if (isExcluded(h, exclude)) continue;
    last = h;
    r -= h.weight;
    if (r < 0) return h;
  }
  return last; // floating-point remainder
}

/**
 * Envoy's host-selection retries for a randomized balancer whose `first` draw was excluded: up to
 * HOST_SELECTION_ATTEMPTS draws in all, then the weighted slow path over the hosts not excluded.
 */
export function pickAvoiding(
  first: LbHost, once: () => LbHost, hosts: readonly LbHost[], exclude: ReadonlySet<string> | undefined, rand: Rand,
): LbHost {
  for (let k = 1; k < HOST_SELECTION_ATTEMPTS; k++) {
    const h = once();
    if (!isExcluded(h, exclude)) return h;
  }
  return pickNotExcluded(hosts, exclude, rand, first);
}

/** Cumulative weights for O(log n) weighted sampling. */
export function cumulativeWeights(hosts: readonly LbHost[]): Float64Array {
  const cum = new Float64Array(hosts.length);
  let acc = 0;
  for (let i = 0; i < hosts.length; i++) {
    acc += hosts[i]!.weight;
    cum[i] = acc;
  }
  return cum;
}

/** Index i such that cum[i-1] <= x < cum[i] (binary search). */
export function searchCumulative(cum: Float64Array, x: number): number {
  let lo = 0;
  let hi = cum.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cum[mid]! > x) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/**
 * 32-bit string hash: FNV-1a over UTF-16 code units, then the murmur3 finalizer so that near-identical
 * inputs ("10.0.0.1:80_1", "_2" …) spread uniformly over the ring. `seed` gives independent hash functions.
 */
export function hash32(s: string, seed = 0): number {
  let h = (0x811c9dc5 ^ Math.imul(seed, 0x9e3779b1)) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Earliest-deadline-first scheduler over host indices (Envoy's weighted RR / weighted least-request core).
 * Each host's next deadline is `now + 1/weight`; the root of a binary min-heap is picked, advanced and sifted
 * down: O(log n), no allocation. Ties break by insertion sequence so the order is deterministic.
 */
export class EdfScheduler {
  private readonly heap: Int32Array;
  private readonly deadline: Float64Array;
  private readonly seq: Float64Array;
  private nextSeq = 0;

  constructor(weights: ArrayLike<number>) {
    const n = weights.length;
    this.heap = new Int32Array(n);
    this.deadline = new Float64Array(n);
    this.seq = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      this.heap[i] = i;
      this.deadline[i] = 1 / weights[i]!;
      this.seq[i] = this.nextSeq++;
    }
    for (let i = (n >>> 1) - 1; i >= 0; i--) this.siftDown(i);
  }

  /** The index at the root (earliest deadline), or -1 when empty. */
  peek(): number {
    return this.heap.length === 0 ? -1 : this.heap[0]!;
  }

  /** Pick the earliest host and reschedule it `1/weight` later. */
  next(weight: number): number {
    const i = this.heap[0]!;
    this.deadline[i] = this.deadline[i]! + 1 / weight;
    this.seq[i] = this.nextSeq++;
    this.siftDown(0);
    return i;
  }

  private less(a: number, b: number): boolean {
    const da = this.deadline[a]!;
    const db = this.deadline[b]!;
    return da < db || (da === db && this.seq[a]! < this.seq[b]!);
  }

  private siftDown(pos: number): void {
    const heap = this.heap;
    const n = heap.length;
    const item = heap[pos]!;
    for (;;) {
      let child = 2 * pos + 1;
      if (child >= n) break;
      if (child + 1 < n && this.less(heap[child + 1]!, heap[child]!)) child++;
      if (!this.less(heap[child]!, item)) break;
      heap[pos] = heap[child]!;
      pos = child;
    }
    heap[pos] = item;
  }
}
