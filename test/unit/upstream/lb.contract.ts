/**
 * The contract every load balancer satisfies (run by lb.test.ts for each algorithm), in the style of Hono's
 * router common.case tests: empty set, single host, weights, exclusion, fallback, determinism.
 */
import { describe, it, expect } from 'vitest';
import type { Endpoint } from '../../../src/model.js';
import type { LbHost, LoadBalancer } from '../../../src/upstream/lb/load-balancer.js';
import { seededRandom, type Rand } from '../../../src/util/random.js';

export type LbTestFactory = (hosts: readonly LbHost[], rand: Rand) => LoadBalancer;

export interface ContractOptions {
  /** false for PASSTHROUGH, which uses its endpoint as given and ignores weights. */
  weighted?: boolean;
}

export function host(i: number, weight = 1): LbHost {
  const ep: Endpoint = { key: `10.0.${i >> 8}.${i & 255}:8080`, address: `10.0.${i >> 8}.${i & 255}`, port: 8080, labels: {}, weight };
  return { endpoint: ep, weight, active: 0, rttMs: 30, rttAt: 0 };
}

export function tally(lb: LoadBalancer, n: number, key?: (i: number) => string | undefined, exclude?: ReadonlySet<string>): Map<string, number> {
  const m = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const h = lb.pick(key?.(i), exclude, 0)!;
    m.set(h.endpoint.key, (m.get(h.endpoint.key) ?? 0) + 1);
  }
  return m;
}

export function runLbContract(name: string, factory: LbTestFactory, opts: ContractOptions = {}): void {
  const weighted = opts.weighted ?? true;
  describe(`${name}: load-balancer contract`, () => {
    it('empty host set → undefined', () => {
      expect(factory([], seededRandom(1)).pick(undefined, undefined, 0)).toBeUndefined();
      expect(factory([], seededRandom(1)).pick('k', new Set(['x']), 0)).toBeUndefined();
    });

    it('single host is always picked', () => {
      const hs = [host(1)];
      const lb = factory(hs, seededRandom(2));
      for (let i = 0; i < 100; i++) expect(lb.pick(`k${i}`, undefined, 0)).toBe(hs[0]);
    });

    if (weighted) {
      it('respects weights (10k picks, ±2 %)', () => {
        const hs = [host(1, 1), host(2, 2), host(3, 5)];
        const lb = factory(hs, seededRandom(3));
        const c = tally(lb, 10_000);
        for (const h of hs) {
          const share = (c.get(h.endpoint.key) ?? 0) / 10_000;
          expect(Math.abs(share - h.weight / 8)).toBeLessThan(0.02);
        }
      });

      it('equal weights spread evenly (10k picks, ±2 %)', () => {
        const hs = [host(1), host(2), host(3), host(4)];
        const c = tally(factory(hs, seededRandom(4)), 10_000);
        for (const h of hs) expect(Math.abs((c.get(h.endpoint.key) ?? 0) / 10_000 - 0.25)).toBeLessThan(0.02);
      });
    } else {
      it('uses the hosts as given (first one)', () => {
        const hs = [host(1, 1), host(2, 9)];
        const c = tally(factory(hs, seededRandom(3)), 100);
        expect(c.get(hs[0]!.endpoint.key)).toBe(100);
      });
    }

    it('skips excluded hosts when others exist', () => {
      const hs = [host(1), host(2), host(3), host(4), host(5)];
      const lb = factory(hs, seededRandom(5));
      const exclude = new Set([hs[0]!, hs[1]!, hs[2]!, hs[3]!].map((h) => h.endpoint.key));
      for (let i = 0; i < 500; i++) expect(lb.pick(`key-${i}`, exclude, 0)).toBe(hs[4]);
      const two = new Set([hs[0]!.endpoint.key]);
      for (let i = 0; i < 500; i++) expect(lb.pick(`key-${i}`, two, 0)).not.toBe(hs[0]);
    });

    it('still returns a host when every host is excluded', () => {
      const hs = [host(1), host(2), host(3)];
      const lb = factory(hs, seededRandom(6));
      const all = new Set(hs.map((h) => h.endpoint.key));
      for (let i = 0; i < 50; i++) expect(hs).toContain(lb.pick(`k${i}`, all, 0));
    });

    it('is deterministic for the same seed', () => {
      const run = (): string[] => {
        const hs = [host(1, 1), host(2, 3), host(3, 1), host(4, 2)];
        const lb = factory(hs, seededRandom(77));
        const out: string[] = [];
        for (let i = 0; i < 200; i++) out.push(lb.pick(i % 3 === 0 ? `k${i}` : undefined, i % 7 === 0 ? new Set([hs[1]!.endpoint.key]) : undefined, 0)!.endpoint.key);
        return out;
      };
      expect(run()).toEqual(run());
    });
  });
}
