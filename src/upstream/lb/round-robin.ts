/**
 * ROUND_ROBIN: equal weights rotate through the hosts (O(1)); unequal weights (endpoint `weight`, slow start)
 * use Envoy's EDF scheduler, which interleaves hosts smoothly in proportion to weight (O(log n)).
 */

import type { Rand } from '../../util/random.js';
import {
  EdfScheduler, HOST_SELECTION_ATTEMPTS, allWeightsEqual, isExcluded, pickNotExcluded,
  type LbHost, type LoadBalancer,
} from './load-balancer.js';

export class RoundRobinLb implements LoadBalancer {
  private readonly hosts: readonly LbHost[];
  private readonly rand: Rand;
  private readonly edf: EdfScheduler | undefined;
  private idx: number;

  constructor(hosts: readonly LbHost[], rand: Rand) {
    this.hosts = hosts;
    this.rand = rand;
    const n = hosts.length;
    // A random starting point, as Envoy does, so that many proxies starting together don't all hit host 0 first.
    this.idx = n === 0 ? 0 : Math.floor(rand() * n);
    if (n > 1 && !allWeightsEqual(hosts)) {
      this.edf = new EdfScheduler(hosts.map((h) => h.weight));
      for (let k = this.idx; k > 0; k--) this.advance();
    }
  }

  private advance(): LbHost {
    const edf = this.edf;
    if (edf !== undefined) {
      const i = edf.peek();
      edf.next(this.hosts[i]!.weight);
      return this.hosts[i]!;
    }
    const h = this.hosts[this.idx]!;
    this.idx = this.idx + 1 === this.hosts.length ? 0 : this.idx + 1;
    return h;
  }

  pick(_hashKey: string | undefined, exclude: ReadonlySet<string> | undefined): LbHost | undefined {
    if (this.hosts.length === 0) return undefined;
    const first = this.advance();
    if (!isExcluded(first, exclude)) return first;
    for (let k = 1; k < HOST_SELECTION_ATTEMPTS; k++) {
      const h = this.advance();
      if (!isExcluded(h, exclude)) return h;
    }
    return pickNotExcluded(this.hosts, exclude, this.rand, first);
  }
}

export const roundRobin = (hosts: readonly LbHost[], rand: Rand): LoadBalancer => new RoundRobinLb(hosts, rand);
