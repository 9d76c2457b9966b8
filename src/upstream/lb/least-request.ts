/**
 * LEAST_REQUEST (Istio's default). As Envoy: with equal weights, power of two choices over active requests
 * (O(1)); with unequal weights, EDF where a host's weight is `weight / (active + 1)` (active_request_bias 1.0).
 */

import type { Rand } from '../../util/random.js';
import {
  EdfScheduler, allWeightsEqual, isExcluded, pickAvoiding,
  type LbHost, type LoadBalancer,
} from './load-balancer.js';

export class LeastRequestLb implements LoadBalancer {
  private readonly hosts: readonly LbHost[];
  private readonly rand: Rand;
  private readonly edf: EdfScheduler | undefined;

  constructor(hosts: readonly LbHost[], rand: Rand) {
    this.hosts = hosts;
    this.rand = rand;
    if (hosts.length > 1 && !allWeightsEqual(hosts)) {
      this.edf = new EdfScheduler(hosts.map((h) => h.weight / (h.active + 1)));
      // Random start so that proxies built at the same moment don't all begin with the same host.
      for (let k = Math.floor(rand() * hosts.length); k > 0; k--) this.once();
    }
  }

  private once(): LbHost {
    const hosts = this.hosts;
    const n = hosts.length;
    if (n === 1) return hosts[0]!;
    const edf = this.edf;
    if (edf !== undefined) {
      const i = edf.peek();
      const h = hosts[i]!;
      edf.next(h.weight / (h.active + 1));
      return h;
    }
    // Two distinct random candidates; the one with fewer requests in flight wins, ties go to the first.
    const rand = this.rand;
    const i = Math.floor(rand() * n);
    let j = Math.floor(rand() * (n - 1));
    if (j >= i) j++;
    const a = hosts[i]!;
    const b = hosts[j]!;
    return b.active < a.active ? b : a;
  }

  pick(_hashKey: string | undefined, exclude: ReadonlySet<string> | undefined): LbHost | undefined {
    if (this.hosts.length === 0) return undefined;
    // Fast path without a closure: nothing excluded, or the first draw is fine.
    const first = this.once();
    if (!isExcluded(first, exclude)) return first;
    return pickAvoiding(first, () => this.once(), this.hosts, exclude, this.rand);
  }
}

export const leastRequest = (hosts: readonly LbHost[], rand: Rand): LoadBalancer => new LeastRequestLb(hosts, rand);
