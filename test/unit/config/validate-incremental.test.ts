/**
 * Validation kept up to date resource by resource (ValidationState) says exactly what validating the whole set says,
 * after every step of random edit sequences; and the whole-set answer is phase 1's (test/support/reference, the
 * validator before it was split and made incremental), problem for problem, on random configurations.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { parseDocuments } from '../../../src/config/parse.js';
import { ValidationState, validateResources } from '../../../src/config/validate.js';
import type { Resource } from '../../../src/config/resource.js';
import { validateResources as validateV1 } from '../../support/reference/validate-v1.js';
import { Gen, docText, fileText } from '../../support/random-mesh.js';
import { mulberry32 } from '../../../src/bench/schedule.js';

function parse(text: string, file: string): Resource[] {
  const { resources, errors } = parseDocuments(text, file);
  expect(errors).toEqual([]);
  return resources;
}

describe('validateResources', () => {
  it('gives phase 1 answers on random configurations', () => {
    fc.assert(fc.property(fc.integer(), (seed) => {
      const g = new Gen(mulberry32(seed));
      const resources: Resource[] = [];
      for (let f = 0; f < 3; f++) {
        const docs = Array.from({ length: 4 + g.int(10) }, () => docText(g.doc(), g.rand));
        resources.push(...parse(fileText(docs), `f${f}.yaml`));
      }
      expect(validateResources(resources)).toEqual(validateV1(resources));
    }), { seed: 26, numRuns: 300 });
  });
});

describe('ValidationState', () => {
  it('equals a validation of the whole set after every edit', () => {
    fc.assert(fc.property(fc.integer(), (seed) => {
      const g = new Gen(mulberry32(seed));
      // Each resource has a place in the input (a number between its neighbours'), as files and documents give.
      const place = new Map<Resource, number>();
      const state = new ValidationState({ order: (a, b) => place.get(a)! - place.get(b)! });
      let n = 0;
      for (let step = 0; step < 60; step++) {
        const live = [...place.keys()].sort((a, b) => place.get(a)! - place.get(b)!);
        const removed: Resource[] = [];
        const added: Resource[] = [];
        const op = g.int(3);
        if (op > 0 && live.length > 0) removed.push(g.pick(live));
        if (op < 2 || live.length === 0) {
          const [r] = parse(docText(g.doc(), g.rand), `e${n++}.yaml`);
          const at = live.length === 0 ? 0 : g.int(live.length + 1);
          const lo = at === 0 ? -1e9 : place.get(live[at - 1]!)!;
          const hi = at === live.length ? 1e9 : place.get(live[at]!)!;
          place.set(r!, (lo + hi) / 2);
          added.push(r!);
        }
        state.update(removed, added);
        for (const r of removed) place.delete(r);
        const now = [...place.keys()].sort((a, b) => place.get(a)! - place.get(b)!);
        const whole = validateResources(now);
        expect(state.problems()).toEqual(whole);
        expect(state.errorCount).toBe(whole.filter((p) => p.severity !== 'warning').length);
      }
    }), { seed: 26, numRuns: 60 });
  });
});
