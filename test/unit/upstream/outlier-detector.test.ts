import { describe, it, expect } from 'vitest';
import { OutlierDetector, newOutlierFields, type OutlierHost } from '../../../src/upstream/outlier-detector.js';
import type { AttemptOutcome, OutlierPolicy } from '../../../src/model.js';

const R500: AttemptOutcome = { kind: 'response', status: 500 };
const R502: AttemptOutcome = { kind: 'response', status: 502 };
const R200: AttemptOutcome = { kind: 'response', status: 200 };
const CF: AttemptOutcome = { kind: 'connect-failure' };

function policy(p: Partial<OutlierPolicy> = {}): OutlierPolicy {
  return {
    consecutive5xxErrors: 3, consecutiveGatewayErrors: 0, splitExternalLocalOriginErrors: false,
    consecutiveLocalOriginFailures: 5, intervalMs: 1000, baseEjectionTimeMs: 5000, maxEjectionPercent: 100,
    minHealthPercent: 0, ...p,
  };
}

function setup(n: number, p: Partial<OutlierPolicy> = {}): { d: OutlierDetector; hosts: OutlierHost[] } {
  const d = new OutlierDetector(policy(p), 0);
  const hosts = Array.from({ length: n }, () => newOutlierFields());
  d.setHosts(hosts);
  return { d, hosts };
}

function fail(d: OutlierDetector, h: OutlierHost, times: number, now: number, o: AttemptOutcome = R500): boolean {
  let ejected = false;
  for (let i = 0; i < times; i++) if (d.report(h, o, now)) ejected = true;
  return ejected;
}

describe('OutlierDetector', () => {
  it('ejects after N consecutive 5xx, not before', () => {
    const { d, hosts } = setup(3);
    expect(fail(d, hosts[0]!, 2, 10)).toBe(false);
    expect(hosts[0]!.ejected).toBe(false);
    expect(fail(d, hosts[0]!, 1, 10)).toBe(true);
    expect(hosts[0]!.ejected).toBe(true);
    expect(d.ejectionsActive).toBe(1);
  });

  it('a success resets the consecutive counter', () => {
    const { d, hosts } = setup(3);
    fail(d, hosts[0]!, 2, 0);
    d.report(hosts[0]!, R200, 0);
    fail(d, hosts[0]!, 2, 0);
    expect(hosts[0]!.ejected).toBe(false);
    expect(hosts[0]!.consecutive5xx).toBe(2);
  });

  it('a 4xx is a success for outlier detection', () => {
    const { d, hosts } = setup(3);
    fail(d, hosts[0]!, 2, 0);
    d.report(hosts[0]!, { kind: 'response', status: 404 }, 0);
    expect(hosts[0]!.consecutive5xx).toBe(0);
  });

  it('local-origin failures count as 5xx when not split (connection failures eject)', () => {
    const { d, hosts } = setup(3);
    fail(d, hosts[0]!, 3, 0, CF);
    expect(hosts[0]!.ejected).toBe(true);
    fail(d, hosts[1]!, 1, 0, { kind: 'reset' });
    fail(d, hosts[1]!, 2, 0, { kind: 'timeout' });
    expect(hosts[1]!.ejected).toBe(true);
  });

  it('ejection lasts baseEjectionTime × times ejected; the host returns at the next interval sweep', () => {
    const { d, hosts } = setup(3);
    const h = hosts[2]!;
    fail(d, h, 3, 300); // ejected at 0.3 s for 5 s
    expect(d.ejectionDurationMs(h)).toBe(5000);
    for (let t = 300; t < 6000; t += 100) {
      d.tick(t);
      expect(h.ejected).toBe(true);
    }
    expect(d.tick(6000)).toBe(true); // sweeps at 1 s, 2 s …; 6 s is the first with 6 − 0.3 ≥ 5
    expect(h.ejected).toBe(false);
    // Fails again before any decay: second ejection lasts 10 s.
    fail(d, h, 3, 6000);
    expect(h.ejections).toBe(2);
    expect(d.ejectionDurationMs(h)).toBe(10_000);
    d.tick(15_999);
    expect(h.ejected).toBe(true);
    d.tick(16_000);
    expect(h.ejected).toBe(false);
  });

  it('the multiplier decays by one per sweep while the host is healthy', () => {
    const { d, hosts } = setup(3);
    const h = hosts[0]!;
    fail(d, h, 3, 0);
    d.tick(5000); // back at 5 s (multiplier 1)
    expect(h.ejected).toBe(false);
    expect(h.ejectMultiplier).toBe(1);
    d.tick(6000); // one healthy sweep
    expect(h.ejectMultiplier).toBe(0);
    fail(d, h, 3, 6500);
    expect(d.ejectionDurationMs(h)).toBe(5000); // back to base × 1
  });

  it('caps an ejection at 300 s (Envoy max_ejection_time)', () => {
    const { d, hosts } = setup(1, { baseEjectionTimeMs: 200_000 });
    const h = hosts[0]!;
    fail(d, h, 3, 0);
    d.tick(200_000);
    fail(d, h, 3, 200_000);
    expect(d.ejectionDurationMs(h)).toBe(300_000);
  });

  it('maxEjectionPercent 50 with two bad hosts of 3: at most 1 ejected', () => {
    const { d, hosts } = setup(3, { maxEjectionPercent: 50 });
    fail(d, hosts[0]!, 3, 0);
    fail(d, hosts[1]!, 3, 0);
    fail(d, hosts[1]!, 3, 0);
    expect(hosts.filter((h) => h.ejected)).toHaveLength(1);
    expect(d.ejectionsOverflow).toBeGreaterThan(0);
  });

  it('default 10 % ejects nobody in a cluster of 3 (Envoy ≥ 1.27 rule)', () => {
    const { d, hosts } = setup(3, { maxEjectionPercent: 10 });
    fail(d, hosts[0]!, 3, 0);
    expect(hosts[0]!.ejected).toBe(false);
    const big = setup(10, { maxEjectionPercent: 10 });
    fail(big.d, big.hosts[0]!, 3, 0);
    fail(big.d, big.hosts[1]!, 3, 0);
    expect(big.hosts.filter((h) => h.ejected)).toHaveLength(1);
  });

  it('panics below minHealthPercent', () => {
    const { d, hosts } = setup(4, { minHealthPercent: 80 });
    expect(d.panic()).toBe(false);
    fail(d, hosts[0]!, 3, 0);
    expect(d.ejectionsActive).toBe(1);
    expect(d.panic()).toBe(true); // 75 % healthy < 80 %
    const none = setup(4, { minHealthPercent: 0 });
    fail(none.d, none.hosts[0]!, 3, 0);
    fail(none.d, none.hosts[1]!, 3, 0);
    expect(none.d.panic()).toBe(false);
  });

  it('consecutive gateway errors: only 502/503/504 (and local-origin) count; another 5xx resets them', () => {
    const { d, hosts } = setup(3, { consecutive5xxErrors: 0, consecutiveGatewayErrors: 2 });
    fail(d, hosts[0]!, 5, 0, R500);
    expect(hosts[0]!.ejected).toBe(false);
    d.report(hosts[0]!, R502, 0);
    d.report(hosts[0]!, R500, 0);
    d.report(hosts[0]!, R502, 0);
    expect(hosts[0]!.ejected).toBe(false);
    d.report(hosts[0]!, { kind: 'response', status: 504 }, 0);
    expect(hosts[0]!.ejected).toBe(true);
    fail(d, hosts[1]!, 2, 0, CF);
    expect(hosts[1]!.ejected).toBe(true);
  });

  it('split local-origin errors: connect failures feed only consecutiveLocalOriginFailures', () => {
    const { d, hosts } = setup(3, { splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 2, consecutive5xxErrors: 3 });
    const h = hosts[0]!;
    d.report(h, R500, 0);
    d.report(h, R500, 0);
    d.report(h, CF, 0); // does not count as the third 5xx
    expect(h.ejected).toBe(false);
    expect(h.consecutive5xx).toBe(2);
    d.report(h, R500, 0); // third 5xx
    expect(h.ejected).toBe(true);
    const g = hosts[1]!;
    d.report(g, CF, 0);
    d.report(g, R500, 0); // a response means the connection worked: local counter resets
    d.report(g, CF, 0);
    expect(g.ejected).toBe(false);
    d.report(g, CF, 0);
    expect(g.ejected).toBe(true);
  });

  it('no policy: nothing is ever ejected; turning detection off returns ejected hosts', () => {
    const off = new OutlierDetector(undefined, 0);
    const hs = [newOutlierFields()];
    off.setHosts(hs);
    fail(off, hs[0]!, 100, 0);
    expect(hs[0]!.ejected).toBe(false);
    const { d, hosts } = setup(2);
    fail(d, hosts[0]!, 3, 0);
    d.setPolicy(undefined, 10);
    expect(hosts[0]!.ejected).toBe(false);
    expect(d.ejectionsActive).toBe(0);
  });

  it('a long idle gap is handled without looping over every missed sweep', () => {
    const { d, hosts } = setup(2);
    fail(d, hosts[0]!, 3, 0);
    expect(d.tick(1e12)).toBe(true);
    expect(hosts[0]!.ejected).toBe(false);
    expect(hosts[0]!.ejectMultiplier).toBe(0);
    expect(d.nextDueAt).toBeGreaterThan(1e12);
  });
});
