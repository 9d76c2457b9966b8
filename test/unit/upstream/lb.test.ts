import { describe, it, expect } from 'vitest';
import { host, runLbContract, tally } from './lb.contract.js';
import { RoundRobinLb } from '../../../src/upstream/lb/round-robin.js';
import { LeastRequestLb } from '../../../src/upstream/lb/least-request.js';
import { RandomLb } from '../../../src/upstream/lb/random.js';
import { PassthroughLb } from '../../../src/upstream/lb/passthrough.js';
import { RingHashLb } from '../../../src/upstream/lb/ring-hash.js';
import { MaglevLb, isPrime, nextPrime } from '../../../src/upstream/lb/maglev.js';
import { PeakEwmaLb, decayedRtt, observeRtt } from '../../../src/upstream/lb/peak-ewma.js';
import { EdfScheduler, type LbHost, type LoadBalancer } from '../../../src/upstream/lb/load-balancer.js';
import { seededRandom } from '../../../src/util/random.js';

runLbContract('ROUND_ROBIN', (h, r) => new RoundRobinLb(h, r));
runLbContract('LEAST_REQUEST', (h, r) => new LeastRequestLb(h, r));
runLbContract('LEAST_REQUEST peak-EWMA', (h, r) => new PeakEwmaLb(h, r));
runLbContract('RANDOM', (h, r) => new RandomLb(h, r));
runLbContract('PASSTHROUGH', (h) => new PassthroughLb(h), { weighted: false });
// A large ring so the ±2 % weight check measures the algorithm, not the variance of a 1024-point ring.
runLbContract('RING_HASH', (h, r) => new RingHashLb(h, r, { ringMinSize: 16384 }));
runLbContract('MAGLEV', (h, r) => new MaglevLb(h, r));

describe('ROUND_ROBIN', () => {
  it('alternates exactly between two equal hosts', () => {
    const hs = [host(1), host(2)];
    const lb = new RoundRobinLb(hs, seededRandom(1));
    const c = tally(lb, 10_000);
    expect(c.get(hs[0]!.endpoint.key)).toBe(5000);
    expect(c.get(hs[1]!.endpoint.key)).toBe(5000);
  });

  it('interleaves weighted hosts smoothly (weight 2 vs 3: never 3 of the same in a row)', () => {
    const hs = [host(1, 2), host(2, 3)];
    const lb: LoadBalancer = new RoundRobinLb(hs, seededRandom(2));
    let run = 0;
    let maxRun = 0;
    for (let i = 0; i < 400; i++) {
      if (lb.pick(undefined, undefined, 0) === hs[1]) { run++; maxRun = Math.max(maxRun, run); } else run = 0;
    }
    expect(maxRun).toBeLessThanOrEqual(2);
    expect(tally(lb, 5000).get(hs[0]!.endpoint.key)).toBe(2000);
  });
});

describe('LEAST_REQUEST', () => {
  it('favours idle hosts (P2C over active requests)', () => {
    const hs = [host(1), host(2), host(3), host(4)];
    hs[0]!.active = 10;
    hs[1]!.active = 10;
    const c = tally(new LeastRequestLb(hs, seededRandom(3)), 10_000);
    // A busy host wins only when both candidates are busy: 1/6 of draws.
    const busy = (c.get(hs[0]!.endpoint.key) ?? 0) + (c.get(hs[1]!.endpoint.key) ?? 0);
    expect(busy / 10_000).toBeGreaterThan(0.13);
    expect(busy / 10_000).toBeLessThan(0.2);
  });

  it('with two hosts always picks the one with fewer requests in flight', () => {
    const hs = [host(1), host(2)];
    hs[1]!.active = 1;
    expect(tally(new LeastRequestLb(hs, seededRandom(4)), 1000).get(hs[0]!.endpoint.key)).toBe(1000);
  });

  it('weighted (EDF): active requests lower a host’s effective weight as in Envoy', () => {
    const hs = [host(1, 2), host(2, 1)];
    hs[0]!.active = 3; // effective 2/4 = 0.5 vs 1/1
    const c = tally(new LeastRequestLb(hs, seededRandom(5)), 3000);
    expect((c.get(hs[1]!.endpoint.key) ?? 0) / 3000).toBeCloseTo(2 / 3, 1);
  });
});

describe('peak EWMA', () => {
  it('avoids a slow host', () => {
    const hs = [host(1), host(2)];
    for (let t = 0; t < 10; t++) {
      observeRtt(hs[0]!, 10, t * 10);
      observeRtt(hs[1]!, 100, t * 10);
    }
    const lb = new PeakEwmaLb(hs, seededRandom(6));
    let slow = 0;
    for (let i = 0; i < 1000; i++) if (lb.pick(undefined, undefined, 100) === hs[1]) slow++;
    expect(slow).toBe(0);
  });

  it('jumps to a slower sample at once and decays toward faster ones', () => {
    const h = host(1);
    observeRtt(h, 500, 1000);
    expect(h.rttMs).toBe(500);
    observeRtt(h, 10, 1000 + 10_000); // one time constant later: weight e^-1 on the old value
    expect(h.rttMs).toBeCloseTo(500 * Math.exp(-1) + 10 * (1 - Math.exp(-1)), 6);
    expect(decayedRtt(h, 11_000 + 10_000, 10_000)).toBeCloseTo(h.rttMs * Math.exp(-1), 6);
  });
});

describe('consistent hashing', () => {
  const keys = Array.from({ length: 1000 }, (_, i) => `user-${i}`);
  const mapping = (lb: LoadBalancer): string[] => keys.map((k) => lb.pick(k, undefined, 0)!.endpoint.key);
  const cases: Array<[string, (h: LbHost[]) => LoadBalancer]> = [
    ['RING_HASH', (h) => new RingHashLb(h, seededRandom(1))],
    ['MAGLEV', (h) => new MaglevLb(h, seededRandom(1))],
  ];
  for (const [name, make] of cases) {
    it(`${name}: same key → same host, independent of seed`, () => {
      const hs = [host(1), host(2), host(3), host(4)];
      const a = mapping(make(hs));
      const b = mapping(make([...hs]));
      expect(a).toEqual(b);
      const lb = make(hs);
      for (let i = 0; i < 5; i++) expect(lb.pick('user-42', undefined, 0)!.endpoint.key).toBe(a[42]);
    });

    it(`${name}: removing 1 of 4 hosts moves 25 ± 8 % of 1000 keys`, () => {
      const hs = [host(1), host(2), host(3), host(4)];
      const before = mapping(make(hs));
      const after = mapping(make([hs[0]!, hs[1]!, hs[3]!]));
      let moved = 0;
      for (let i = 0; i < keys.length; i++) if (before[i] !== after[i]) moved++;
      expect(moved / keys.length).toBeGreaterThan(0.17);
      expect(moved / keys.length).toBeLessThan(0.33);
      // Keys that stayed on surviving hosts did not move (ring: exactly; maglev: nearly).
      let strayMoves = 0;
      for (let i = 0; i < keys.length; i++) if (before[i] !== hs[2]!.endpoint.key && before[i] !== after[i]) strayMoves++;
      expect(strayMoves / keys.length).toBeLessThan(0.03);
    });
  }

  it('RING_HASH honours minimumRingSize', () => {
    expect(new RingHashLb([host(1), host(2), host(3)], seededRandom(1)).size).toBeGreaterThanOrEqual(1024);
    expect(new RingHashLb([host(1), host(2)], seededRandom(1), { ringMinSize: 4096 }).size).toBeGreaterThanOrEqual(4096);
  });

  it('MAGLEV uses a prime table (default 65537; a non-prime size is raised to the next prime)', () => {
    expect(new MaglevLb([host(1)], seededRandom(1)).tableSize).toBe(65537);
    expect(new MaglevLb([host(1)], seededRandom(1), { maglevTableSize: 1000 }).tableSize).toBe(1009);
    expect(isPrime(65537)).toBe(true);
    expect(nextPrime(65536)).toBe(65537);
  });
});

describe('EDF scheduler', () => {
  it('picks in proportion to weight', () => {
    const edf = new EdfScheduler([1, 2, 3]);
    const n = [0, 0, 0];
    const w = [1, 2, 3];
    for (let i = 0; i < 600; i++) {
      const idx = edf.peek();
      edf.next(w[idx]!);
      n[idx]!++;
    }
    expect(n).toEqual([100, 200, 300]);
  });
});
