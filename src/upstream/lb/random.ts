/**
 * RANDOM: uniform over hosts when weights are equal (O(1)), else weighted by cumulative-sum binary search
 * (O(log n)).
 */

import type { Rand } from '../../util/random.js';
import {
  allWeightsEqual, cumulativeWeights, isExcluded, pickAvoiding, searchCumulative,
  type LbHost, type LoadBalancer,
} from './load-balancer.js';

export class RandomLb implements LoadBalancer {
  private readonly hosts: readonly LbHost[];
  private readonly rand: Rand;
  private readonly cum: Float64Array | undefined;

  constructor(hosts: readonly LbHost[], rand: Rand) {
    this.hosts = hosts;
    this.rand = rand;
    if (hosts.length > 1 && !allWeightsEqual(hosts)) this.cum = cumulativeWeights(hosts);
  }

  private once(): LbHost {
    const cum = this.cum;
    if (cum === undefined) return this.hosts[Math.floor(this.rand() * this.hosts.length)]!;
    return this.hosts[searchCumulative(cum, this.rand() * cum[cum.length - 1]!)]!;
  }

  pick(_hashKey: string | undefined, exclude: ReadonlySet<string> | undefined): LbHost | undefined {
    if (this.hosts.length === 0) return undefined;
    // Fast path without a closure: nothing excluded, or the first draw is fine.
    const first = this.once();
    if (!isExcluded(first, exclude)) return first;
    return pickAvoiding(first, () => this.once(), this.hosts, exclude, this.rand);
  }
}

export const random = (hosts: readonly LbHost[], rand: Rand): LoadBalancer => new RandomLb(hosts, rand);
