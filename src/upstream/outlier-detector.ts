/**
 * Istio/Envoy outlier detection for one cluster, as a pure state machine over per-host records: consecutive
 * 5xx / gateway / local-origin failures eject a host (capped by maxEjectionPercent); interval sweeps driven by
 * the caller's `now` return hosts after baseEjectionTime × multiplier and decay the multiplier. No timers.
 */

import type { AttemptOutcome, OutlierPolicy } from '../model.js';

/** Envoy's max_ejection_time default (Istio does not expose it), ms: no ejection lasts longer than 300 s. */
export const MAX_EJECTION_TIME_MS = 300_000;
/** Sweeps processed one by one after an idle gap; beyond this they are applied in bulk. */
const MAX_SWEEPS_PER_TICK = 64;

/** The outlier fields of a host record (the cluster runtime's endpoint state implements this). */
export interface OutlierHost {
  consecutive5xx: number;
  consecutiveGateway: number;
  consecutiveLocal: number;
  ejected: boolean;
  /** When the current/last ejection started (ms, caller clock). */
  ejectedAt: number;
  /** Envoy's eject_time_backoff: +1 per ejection, −1 per sweep while healthy; ejection lasts base × this. */
  ejectMultiplier: number;
  /** Total ejections of this host (for /clusters). */
  ejections: number;
}

export function newOutlierFields(): OutlierHost {
  return { consecutive5xx: 0, consecutiveGateway: 0, consecutiveLocal: 0, ejected: false, ejectedAt: 0, ejectMultiplier: 0, ejections: 0 };
}

/** HTTP status Envoy maps a local-origin failure to when errors are not split: connect failure/reset 503, timeout 504. */
function localOriginStatus(kind: 'connect-failure' | 'reset' | 'timeout'): number {
  return kind === 'timeout' ? 504 : 503;
}

export class OutlierDetector {
  private policy: OutlierPolicy | undefined;
  private hosts: readonly OutlierHost[] = [];
  private ejectedCount = 0;
  /** Time of the next interval sweep (ms); Infinity when detection is off. */
  private nextSweepAt: number;
  /** Counters for stats (Envoy names: ejections_enforced_total, ejections_overflow). */
  ejectionsTotal = 0;
  ejectionsOverflow = 0;

  constructor(policy: OutlierPolicy | undefined, now: number) {
    this.policy = policy;
    this.nextSweepAt = policy === undefined ? Infinity : now + policy.intervalMs;
  }

  get enabled(): boolean {
    return this.policy !== undefined;
  }

  get ejectionsActive(): number {
    return this.ejectedCount;
  }

  /** When `tick` next has work to do (ms). */
  get nextDueAt(): number {
    return this.nextSweepAt;
  }

  /**
   * A new policy (snapshot swap). Host state is kept; turning detection off returns every host at once.
   * The sweep schedule restarts from `now` when the interval changes.
   */
  setPolicy(policy: OutlierPolicy | undefined, now: number): void {
    const old = this.policy;
    this.policy = policy;
    if (policy === undefined) {
      for (const h of this.hosts) if (h.ejected) this.uneject(h);
      this.nextSweepAt = Infinity;
    } else if (old === undefined || old.intervalMs !== policy.intervalMs) {
      this.nextSweepAt = now + policy.intervalMs;
    }
  }

  /** The cluster's current hosts (after an endpoint-set change). */
  setHosts(hosts: readonly OutlierHost[]): void {
    this.hosts = hosts;
    let n = 0;
    for (const h of hosts) if (h.ejected) n++;
    this.ejectedCount = n;
  }

  /** How long the host's current ejection lasts: min(base × multiplier, max(300 s, base)). */
  ejectionDurationMs(h: OutlierHost): number {
    const base = this.policy?.baseEjectionTimeMs ?? 0;
    return Math.min(base * h.ejectMultiplier, Math.max(MAX_EJECTION_TIME_MS, base));
  }

  /**
   * Panic (Istio minHealthPercent → Envoy healthy_panic_threshold): when the healthy share of hosts falls below
   * it, the load balancer ignores ejections and uses every host. 0 (Istio's default) disables panic.
   */
  panic(): boolean {
    const p = this.policy;
    const n = this.hosts.length;
    if (p === undefined || p.minHealthPercent <= 0 || n === 0) return false;
    return ((n - this.ejectedCount) * 100) / n < p.minHealthPercent;
  }

  /**
   * Record one attempt's outcome for `h`. Returns true when this ejected the host (the caller rebuilds its
   * balancer). Any non-5xx response resets the consecutive counters; local-origin failures count as 503/504
   * unless splitExternalLocalOriginErrors, in which case they only feed consecutiveLocalOriginFailures.
   */
  report(h: OutlierHost, outcome: AttemptOutcome, now: number): boolean {
    const p = this.policy;
    if (p === undefined) return false;
    let status: number;
    if (outcome.kind === 'response') {
      status = outcome.status;
      if (p.splitExternalLocalOriginErrors) h.consecutiveLocal = 0; // the connection worked
    } else if (p.splitExternalLocalOriginErrors) {
      h.consecutiveLocal++;
      if (p.consecutiveLocalOriginFailures > 0 && h.consecutiveLocal >= p.consecutiveLocalOriginFailures) {
        h.consecutiveLocal = 0;
        return this.tryEject(h, now);
      }
      return false;
    } else {
      status = localOriginStatus(outcome.kind);
    }

    if (status < 500 || status > 599) {
      h.consecutive5xx = 0;
      h.consecutiveGateway = 0;
      return false;
    }
    let trigger = false;
    if (status >= 502 && status <= 504) {
      h.consecutiveGateway++;
      if (p.consecutiveGatewayErrors > 0 && h.consecutiveGateway >= p.consecutiveGatewayErrors) {
        // As Envoy: the counter restarts when it fires, whether or not the ejection is allowed.
        h.consecutiveGateway = 0;
        trigger = true;
      }
    } else {
      h.consecutiveGateway = 0;
    }
    h.consecutive5xx++;
    if (p.consecutive5xxErrors > 0 && h.consecutive5xx >= p.consecutive5xxErrors) {
      h.consecutive5xx = 0;
      trigger = true;
    }
    return trigger ? this.tryEject(h, now) : false;
  }

  /**
   * Envoy's rule (since 1.27, envoyproxy/envoy#27909): eject only if the ejected share *after* this ejection
   * stays ≤ maxEjectionPercent. So 2 bad hosts of 3 at 50% → 1 ejected, and the default 10% ejects nothing
   * in a cluster of fewer than 10 hosts (Istio does not set always_eject_one_host).
   */
  private tryEject(h: OutlierHost, now: number): boolean {
    const p = this.policy!;
    if (h.ejected) return false;
    const n = this.hosts.length;
    if (n === 0 || ((this.ejectedCount + 1) * 100) / n > Math.min(100, p.maxEjectionPercent)) {
      this.ejectionsOverflow++;
      return false;
    }
    h.ejected = true;
    h.ejectedAt = now;
    h.ejections++;
    // Envoy stops growing the multiplier once base × multiplier already exceeds max_ejection_time.
    if (p.baseEjectionTimeMs * h.ejectMultiplier < Math.max(MAX_EJECTION_TIME_MS, p.baseEjectionTimeMs)) h.ejectMultiplier++;
    this.ejectedCount++;
    this.ejectionsTotal++;
    return true;
  }

  private uneject(h: OutlierHost): void {
    h.ejected = false;
    // As Envoy: fresh counters, so a returning host is not re-ejected by one error on top of old ones.
    h.consecutive5xx = 0;
    h.consecutiveGateway = 0;
    h.consecutiveLocal = 0;
    this.ejectedCount--;
  }

  /**
   * Run every interval sweep due at or before `now` (sweeps fall at start + k × interval, as Envoy's timer).
   * A sweep returns an ejected host when `sweepTime − ejectedAt ≥ ejection duration`, and decrements the
   * multiplier of each host that is not ejected. Returns true when any host came back.
   */
  tick(now: number): boolean {
    const p = this.policy;
    if (p === undefined || now < this.nextSweepAt) return false;
    const interval = p.intervalMs > 0 ? p.intervalMs : 1;
    let changed = false;
    const due = Math.floor((now - this.nextSweepAt) / interval) + 1;
    if (due > MAX_SWEEPS_PER_TICK) {
      // Long idle gap: one sweep at the latest due time, with the multiplier decay of all the skipped sweeps
      // (a host healthy through the gap would have been decremented at each of them).
      const last = this.nextSweepAt + (due - 1) * interval;
      changed = this.sweep(last, due);
      this.nextSweepAt = last + interval;
      return changed;
    }
    while (now >= this.nextSweepAt) {
      if (this.sweep(this.nextSweepAt, 1)) changed = true;
      this.nextSweepAt += interval;
    }
    return changed;
  }

  /** One sweep at time `t`; `sweeps` > 1 stands for that many consecutive sweeps ending at `t` (idle gap). */
  private sweep(t: number, sweeps: number): boolean {
    let changed = false;
    const interval = this.policy!.intervalMs > 0 ? this.policy!.intervalMs : 1;
    for (const h of this.hosts) {
      if (!h.ejected) {
        if (h.ejectMultiplier > 0) h.ejectMultiplier = Math.max(0, h.ejectMultiplier - sweeps);
      } else {
        const duration = this.ejectionDurationMs(h);
        if (t - h.ejectedAt >= duration) {
          this.uneject(h);
          changed = true;
          if (sweeps > 1) {
            // Healthy sweeps after its return within the gap each decayed the multiplier by one.
            const healthySweeps = Math.floor((t - (h.ejectedAt + duration)) / interval);
            h.ejectMultiplier = Math.max(0, h.ejectMultiplier - healthySweeps);
          }
        }
      }
    }
    return changed;
  }
}
