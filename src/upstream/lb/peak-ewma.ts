/**
 * LEAST_REQUEST with Linkerd's peak-EWMA cost (opt-in): power of two choices (candidates sampled by weight)
 * where a host's cost is `rttEstimate × (active + 1)`. The estimate jumps up to any slower sample at once (peak) and decays
 * toward faster samples — and toward 0 while idle — with time constant `ewmaDecayMs` (default 10 s).
 */

import type { Rand } from '../../util/random.js';
import {
  HOST_SELECTION_ATTEMPTS, allWeightsEqual, cumulativeWeights, isExcluded, pickNotExcluded, searchCumulative,
  type LbHost, type LbOptions, type LoadBalancer,
} from './load-balancer.js';

/** Linkerd defaults: DEFAULT_RTT 30 ms, decay 10 s. */
export const DEFAULT_RTT_MS = 30;
export const DEFAULT_EWMA_DECAY_MS = 10_000;

/** The estimate as seen at `now`: decayed since the last sample, as Linkerd does on every load read. */
export function decayedRtt(h: LbHost, now: number, decayMs: number): number {
  const elapsed = now - h.rttAt;
  return elapsed <= 0 ? h.rttMs : h.rttMs * Math.exp(-elapsed / decayMs);
}

/**
 * Feed one observed latency (ms) into a host's estimate. A sample above the estimate replaces it (peak
 * sensitivity: a host that slows down is avoided at once); otherwise it is blended in, weighted by how long
 * it has been since the previous update.
 */
export function observeRtt(h: LbHost, sampleMs: number, now: number, decayMs = DEFAULT_EWMA_DECAY_MS): void {
  if (sampleMs > h.rttMs) {
    h.rttMs = sampleMs;
  } else {
    const elapsed = now > h.rttAt ? now - h.rttAt : 0;
    const w = Math.exp(-elapsed / decayMs);
    h.rttMs = h.rttMs * w + sampleMs * (1 - w);
  }
  h.rttAt = now;
}

export class PeakEwmaLb implements LoadBalancer {
  private readonly hosts: readonly LbHost[];
  private readonly rand: Rand;
  private readonly decayMs: number;
  /** Candidates are sampled in proportion to weight when weights differ, so weight is respected at equal cost. */
  private readonly cum: Float64Array | undefined;

  constructor(hosts: readonly LbHost[], rand: Rand, opts?: LbOptions) {
    this.hosts = hosts;
    this.rand = rand;
    this.decayMs = opts?.ewmaDecayMs ?? DEFAULT_EWMA_DECAY_MS;
    if (hosts.length > 1 && !allWeightsEqual(hosts)) this.cum = cumulativeWeights(hosts);
  }

  private sample(): number {
    const cum = this.cum;
    if (cum === undefined) return Math.floor(this.rand() * this.hosts.length);
    return searchCumulative(cum, this.rand() * cum[cum.length - 1]!);
  }

  private once(now: number): LbHost {
    const hosts = this.hosts;
    const n = hosts.length;
    if (n === 1) return hosts[0]!;
    const i = this.sample();
    let j = this.sample();
    if (j === i) j = i + 1 === n ? 0 : i + 1; // two distinct candidates even when one weight dominates
    const a = hosts[i]!;
    const b = hosts[j]!;
    const costA = decayedRtt(a, now, this.decayMs) * (a.active + 1);
    const costB = decayedRtt(b, now, this.decayMs) * (b.active + 1);
    return costB < costA ? b : a;
  }

  pick(_hashKey: string | undefined, exclude: ReadonlySet<string> | undefined, now: number): LbHost | undefined {
    if (this.hosts.length === 0) return undefined;
    const first = this.once(now);
    if (!isExcluded(first, exclude)) return first;
    for (let k = 1; k < HOST_SELECTION_ATTEMPTS; k++) {
      const h = this.once(now);
      if (!isExcluded(h, exclude)) return h;
    }
    return pickNotExcluded(this.hosts, exclude, this.rand, first);
  }
}

export const peakEwma = (hosts: readonly LbHost[], rand: Rand, opts?: LbOptions): LoadBalancer =>
  new PeakEwmaLb(hosts, rand, opts);
