/**
 * The compile- and scope-time indexes answer exactly what the scans they replace answered: HostOverlapSet is
 * "some kept host overlaps", WorkloadEntryIndex.select is "the entries of the namespace the selector matches", in
 * input order. Checked against the scans on random inputs.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { HostOverlapSet, hostsOverlap } from '../../../src/config/hosts.js';
import { WorkloadEntryIndex, labelsMatch } from '../../../src/config/compile.js';
import type { Resource } from '../../../src/config/resource.js';

const label = fc.constantFrom('a', 'b', 'foo', 'x-y');
const host = fc.oneof(
  fc.tuple(fc.constantFrom('', '*', '*.'), fc.array(label, { minLength: 0, maxLength: 3 }), fc.constantFrom('com', 'local', 'svc.cluster.local'))
    .map(([w, ls, tld]) => (w === '*' && ls.length === 0 ? '*' : `${w}${[...ls, tld].join('.')}`)),
  fc.constant('*'),
);

describe('HostOverlapSet', () => {
  it('overlaps(h) ⇔ some added host overlaps h', () => {
    fc.assert(fc.property(fc.array(host, { maxLength: 8 }), fc.array(host, { minLength: 1, maxLength: 8 }), (kept, queries) => {
      const set = new HostOverlapSet();
      for (const k of kept) set.add(k);
      for (const q of queries) expect(set.overlaps(q), `${q} vs [${kept.join(', ')}]`).toBe(kept.some((k) => hostsOverlap(k, q)));
    }), { numRuns: 2000, seed: 42 });
  });

  it('answers exact names, covering wildcards and wildcard queries', () => {
    const set = new HostOverlapSet();
    set.add('a.example.com');
    set.add('*.internal');
    expect(set.overlaps('a.example.com')).toBe(true);
    expect(set.overlaps('b.example.com')).toBe(false);
    expect(set.overlaps('x.internal')).toBe(true);
    expect(set.overlaps('*.example.com')).toBe(true);
    expect(set.overlaps('*.org')).toBe(false);
  });
});

function we(name: string, namespace: string, labels: Record<string, unknown>): Resource {
  return {
    apiVersion: 'networking.istio.io/v1', kind: 'WorkloadEntry', metadata: { name, namespace }, spec: { address: '10.0.0.1', labels },
    raw: {}, source: { file: 'x.yaml', line: 1 }, lineOf: () => 1,
  } as Resource;
}

describe('WorkloadEntryIndex', () => {
  const labels = fc.dictionary(fc.constantFrom('app', 'version', 'zone'), fc.oneof(fc.constantFrom('v1', 'v2', 'a', '1'), fc.constant(1)), { maxKeys: 3 });
  it('select(ns, selector) is the in-order filter of the namespace by labelsMatch', () => {
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.constantFrom('default', 'prod'), labels), { maxLength: 12 }),
      fc.constantFrom('default', 'prod', 'other'),
      labels,
      (entries, ns, selector) => {
        const list = entries.map(([n, l], i) => we(`we-${i}`, n, l));
        const idx = new WorkloadEntryIndex(list);
        const sel = selector as Record<string, string>;
        const want = list.filter((w) => w.metadata.namespace === ns && labelsMatch(sel, w.spec.labels as Record<string, string>));
        expect(idx.select(ns, sel).map((w) => w.metadata.name)).toEqual(want.map((w) => w.metadata.name));
      },
    ), { numRuns: 2000, seed: 7 });
  });

  it('an empty selector selects every entry of the namespace; a number label does not match its string', () => {
    const list = [we('a', 'default', { v: 1 }), we('b', 'prod', {}), we('c', 'default', { v: '1' })];
    const idx = new WorkloadEntryIndex(list);
    expect(idx.select('default', {}).map((w) => w.metadata.name)).toEqual(['a', 'c']);
    expect(idx.select('default', { v: '1' }).map((w) => w.metadata.name)).toEqual(['c']);
  });
});
