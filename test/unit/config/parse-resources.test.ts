/**
 * The resources parseDocuments builds: metadata normalised the same way whether the document's own metadata object is
 * reused or copied, and field lines found on first use, from the kept text.
 */
import { describe, expect, it } from 'vitest';
import { parseDocuments } from '../../../src/config/parse.js';

const doc = (metadata: string) => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: ${metadata}
spec:
  hosts: [a.example.com]
  resolution: STATIC
`;

describe('parseDocuments: resource metadata', () => {
  const cases: Array<[string, Record<string, unknown>]> = [
    ['{name: a, namespace: ns1}', { name: 'a', namespace: 'ns1' }],
    ['{name: a}', { name: 'a', namespace: 'dflt' }],
    ['{name: a, namespace: ""}', { name: 'a', namespace: 'dflt' }],
    ['{name: a, namespace: ns1, labels: {x: "1"}, annotations: {y: "2"}, resourceVersion: "7"}', { name: 'a', namespace: 'ns1', labels: { x: '1' }, annotations: { y: '2' }, resourceVersion: '7' }],
    ['{name: a, namespace: ns1, uid: u-1, generation: 3}', { name: 'a', namespace: 'ns1' }],
    ['{name: a, namespace: ns1, labels: null}', { name: 'a', namespace: 'ns1' }],
    ['{name: 5, namespace: ns1}', { name: '', namespace: 'ns1' }],
    ['{}', { name: '', namespace: 'dflt' }],
  ];
  for (const [md, want] of cases) {
    it(`metadata: ${md}`, () => {
      const { resources, errors } = parseDocuments(doc(md), 'm.yaml', 'dflt');
      expect(errors).toEqual([]);
      expect(resources[0]!.metadata).toEqual(want);
      expect(resources[0]!.apiVersion).toBe('networking.istio.io/v1');
      expect(resources[0]!.kind).toBe('ServiceEntry');
    });
  }

  it('field lines of every document, asked in any order and more than once', () => {
    const text = `${doc('{name: a, namespace: ns1}')}---\n# a comment\n${doc('{name: b}').replace('a.example.com', 'b.example.com')}`;
    const { resources } = parseDocuments(text, 'm.yaml');
    const line = (needle: string, nth = 0) => text.split('\n').map((l, i) => [l, i + 1] as const).filter(([l]) => l.includes(needle))[nth]![1];
    expect(resources[1]!.lineOf(['spec', 'hosts', 0])).toBe(line('b.example.com'));
    expect(resources[0]!.lineOf(['spec', 'resolution'])).toBe(line('resolution'));
    expect(resources[1]!.lineOf(['spec', 'resolution'])).toBe(line('resolution', 1));
    expect(resources[1]!.lineOf(['spec', 'hosts', 0])).toBe(line('b.example.com'));
    expect(resources[1]!.source.line).toBe(line('apiVersion', 1));
  });
});
