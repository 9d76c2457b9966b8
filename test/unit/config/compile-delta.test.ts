/**
 * compileDelta: a file parsed again after one VirtualService changed compiles from the previous snapshot (its other
 * documents, new objects of the same content, are not a change) and equals a full compile; what it does not handle
 * (content-equal documents in a new order, other kinds changed) gives undefined, for a full compile.
 */
import { describe, it, expect } from 'vitest';
import { parseDocuments } from '../../../src/config/parse.js';
import { compile, type CompileOptions } from '../../../src/config/compile.js';
import { compileDelta } from '../../../src/config/compile-delta.js';
import type { Resource } from '../../../src/config/resource.js';
import { canonSnapshot } from '../../support/snapshot-canon.js';

const opts: CompileOptions = { namespace: 'default', clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY' };

function parse(text: string): Resource[] {
  const { resources, errors } = parseDocuments(text, 'mesh.yaml');
  expect(errors).toEqual([]);
  return resources;
}

const se = (name: string, host: string, ip: string): string => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${name}, namespace: default}
spec: {hosts: [${host}], ports: [{number: 80, name: http, protocol: HTTP}], resolution: STATIC, endpoints: [{address: ${ip}}]}
`;
const dr = (name: string, host: string): string => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ${name}, namespace: default}
spec: {host: ${host}, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}
`;
const vs = (name: string, host: string, w: number): string => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${name}, namespace: default}
spec:
  hosts: [${host}]
  http:
  - route:
    - {destination: {host: ${host}, subset: v1}, weight: ${w}}
    - {destination: {host: ${host}, subset: v2}, weight: ${100 - w}}
`;
const mesh = (n: number, edited: number, w: number): string =>
  Array.from({ length: n }, (_, i) => [se(`s${i}`, `s${i}.example.com`, `10.0.0.${i + 1}`), dr(`s${i}`, `s${i}.example.com`), vs(`s${i}`, `s${i}.example.com`, i === edited ? w : 80)].join('---\n')).join('---\n');

describe('compileDelta', () => {
  it('one VirtualService edited in a file parsed again: from the previous snapshot, equal to a full compile', () => {
    const before = parse(mesh(20, -1, 80));
    const prev = compile(before, opts);
    let cur = prev;
    let curRes = before;
    for (const [edited, w] of [[3, 50], [3, 20], [7, 10], [3, 80]] as const) {
      const after = parse(mesh(20, edited, w));
      const full = compile(after, opts);
      const delta = compileDelta(cur, curRes, after, opts);
      expect(delta).toBeDefined();
      expect(canonSnapshot(delta!)).toBe(canonSnapshot(full));
      // The unchanged hosts keep their compiled entries (shared, not rebuilt).
      expect(delta!.hosts.get('s0.example.com')).toBe(cur.hosts.get('s0.example.com'));
      expect(delta!.clusters).toBe(cur.clusters);
      cur = delta!;
      curRes = after;
    }
  });

  it('content-equal documents in a new order, or another kind changed: undefined (a full compile)', () => {
    const a = se('a', 'x.example.com', '10.0.0.1');
    const b = se('b', 'x.example.com', '10.0.0.2');
    const before = parse([a, b, vs('v', 'x.example.com', 80)].join('---\n'));
    const prev = compile(before, opts);
    // The first ServiceEntry of a host wins: swapping them changes the snapshot, so this cannot be a delta.
    const swapped = parse([b, a, vs('v', 'x.example.com', 50)].join('---\n'));
    expect(compileDelta(prev, before, swapped, opts)).toBeUndefined();
    const otherKind = parse([se('a', 'x.example.com', '10.0.0.9'), b, vs('v', 'x.example.com', 80)].join('---\n'));
    expect(compileDelta(prev, before, otherKind, opts)).toBeUndefined();
  });
});
