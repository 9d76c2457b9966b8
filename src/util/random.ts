/**
 * Randomness as a value: every pure module takes a `() => number` in [0, 1) so tests can seed it.
 * `seededRandom` is mulberry32 (32-bit state, fast, good enough for load balancing and jitter; not crypto).
 */

export type Rand = () => number;

/** Deterministic PRNG: the same seed always yields the same sequence. */
export function seededRandom(seed: number): Rand {
  let a = seed >>> 0;
  return function mulberry32(): number {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
