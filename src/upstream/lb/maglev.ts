/**
 * MAGLEV (Google's Maglev hashing, as Envoy's weighted variant): a lookup table of prime size M where each host
 * fills slots in its own permutation order, in proportion to weight. Lookup is `table[hash(key) % M]` (O(1));
 * removing one of N hosts remaps about 1/N of keys. The table is built once per endpoint-set change.
 */

import type { Rand } from '../../util/random.js';
import { hash32, isExcluded, pickNotExcluded, HOST_SELECTION_ATTEMPTS, type LbHost, type LbOptions, type LoadBalancer } from './load-balancer.js';

/** maglev.tableSize default, entries (Envoy/Istio); must be prime. */
export const DEFAULT_MAGLEV_TABLE_SIZE = 65537;
/** Envoy's upper bound for the table size (5000011, prime). */
export const MAX_MAGLEV_TABLE_SIZE = 5000011;

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/** Smallest prime ≥ n (a non-prime size is a config error that validation reports; here we stay usable). */
export function nextPrime(n: number): number {
  let p = Math.max(2, Math.ceil(n));
  while (!isPrime(p)) p++;
  return p;
}

export class MaglevLb implements LoadBalancer {
  private readonly hosts: readonly LbHost[];
  private readonly rand: Rand;
  private readonly table: Int32Array;

  constructor(hosts: readonly LbHost[], rand: Rand, opts?: LbOptions) {
    this.hosts = hosts;
    this.rand = rand;
    const m = nextPrime(Math.min(opts?.maglevTableSize ?? DEFAULT_MAGLEV_TABLE_SIZE, MAX_MAGLEV_TABLE_SIZE));
    const n = hosts.length;
    this.table = new Int32Array(n === 0 ? 0 : m).fill(-1);
    if (n === 0) return;
    const offset = new Float64Array(n);
    const skip = new Float64Array(n);
    const next = new Float64Array(n);
    const target = new Float64Array(n);
    let maxWeight = 0;
    for (let i = 0; i < n; i++) {
      const key = hosts[i]!.endpoint.key;
      offset[i] = hash32(key, 1) % m;
      skip[i] = (hash32(key, 2) % (m - 1)) + 1;
      maxWeight = Math.max(maxWeight, hosts[i]!.weight);
    }
    // Weighted fill: in round `iter` a host may take a slot only while iter × weight ≥ its running target, so a
    // host of maximal weight takes one slot per round and a host of a third of it one every three rounds.
    let filled = 0;
    for (let iter = 1; filled < m; iter++) {
      for (let i = 0; i < n && filled < m; i++) {
        const w = hosts[i]!.weight;
        if (iter * w < target[i]!) continue;
        target[i] = target[i]! + maxWeight;
        let c = (offset[i]! + next[i]! * skip[i]!) % m;
        while (this.table[c] !== -1) {
          next[i] = next[i]! + 1;
          c = (offset[i]! + next[i]! * skip[i]!) % m;
        }
        this.table[c] = i;
        next[i] = next[i]! + 1;
        filled++;
      }
    }
  }

  pick(hashKey: string | undefined, exclude: ReadonlySet<string> | undefined): LbHost | undefined {
    const m = this.table.length;
    if (m === 0) return undefined;
    const h = hashKey === undefined ? Math.floor(this.rand() * 4294967296) : hash32(hashKey);
    const first = this.hosts[this.table[h % m]!]!;
    if (!isExcluded(first, exclude)) return first;
    // Retry with a rehash of the key per attempt (deterministic for a given key and exclusion set).
    for (let k = 1; k < HOST_SELECTION_ATTEMPTS; k++) {
      const cand = this.hosts[this.table[hash32(hashKey ?? String(h), k + 2) % m]!]!;
      if (!isExcluded(cand, exclude)) return cand;
    }
    return pickNotExcluded(this.hosts, exclude, this.rand, first);
  }

  get tableSize(): number {
    return this.table.length;
  }
}

export const maglev = (hosts: readonly LbHost[], rand: Rand, opts?: LbOptions): LoadBalancer =>
  new MaglevLb(hosts, rand, opts);
