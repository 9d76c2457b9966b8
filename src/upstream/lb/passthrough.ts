/**
 * PASSTHROUGH: no balancing. The cluster's endpoint (one: the original destination) is used as given; with
 * several, the first one not excluded, in order.
 */

import { isExcluded, type LbHost, type LoadBalancer } from './load-balancer.js';

export class PassthroughLb implements LoadBalancer {
  constructor(private readonly hosts: readonly LbHost[]) {}

  pick(_hashKey: string | undefined, exclude: ReadonlySet<string> | undefined): LbHost | undefined {
    const hosts = this.hosts;
    for (let i = 0; i < hosts.length; i++) if (!isExcluded(hosts[i]!, exclude)) return hosts[i];
    return hosts[0];
  }
}

export const passthrough = (hosts: readonly LbHost[]): LoadBalancer => new PassthroughLb(hosts);
