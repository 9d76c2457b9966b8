/**
 * Chooses the balancer for a cluster's LbPolicy. Slow start is applied by the caller through host weights.
 */

import type { LbPolicy } from '../../model.js';
import type { Rand } from '../../util/random.js';
import type { LbHost, LoadBalancer } from './load-balancer.js';
import { LeastRequestLb } from './least-request.js';
import { MaglevLb } from './maglev.js';
import { PassthroughLb } from './passthrough.js';
import { PeakEwmaLb } from './peak-ewma.js';
import { RandomLb } from './random.js';
import { RingHashLb } from './ring-hash.js';
import { RoundRobinLb } from './round-robin.js';

export function createLoadBalancer(policy: LbPolicy, hosts: readonly LbHost[], rand: Rand): LoadBalancer {
  switch (policy.kind) {
    case 'ROUND_ROBIN':
      return new RoundRobinLb(hosts, rand);
    case 'LEAST_REQUEST':
      return policy.peakEwma === true ? new PeakEwmaLb(hosts, rand) : new LeastRequestLb(hosts, rand);
    case 'RANDOM':
      return new RandomLb(hosts, rand);
    case 'PASSTHROUGH':
      return new PassthroughLb(hosts);
    case 'RING_HASH':
      return new RingHashLb(hosts, rand, { ringMinSize: policy.ringMinSize });
    case 'MAGLEV':
      return new MaglevLb(hosts, rand, { maglevTableSize: policy.maglevTableSize });
  }
}

/** Envoy applies slow start only to these two. */
export function supportsSlowStart(policy: LbPolicy): boolean {
  return policy.kind === 'ROUND_ROBIN' || policy.kind === 'LEAST_REQUEST';
}

export type { LbHost, LoadBalancer } from './load-balancer.js';
