/** VirtualService edits of `remora rollout`: weights, promotion, rollback, header route, mirror — comments and layout kept. */
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { HEADER_ROUTE_NAME, sameHost, VsEditor, VsFile } from '../../../src/rollout/vs-edit.js';
import { parseDocuments } from '../../../src/config/parse.js';
import { validateResources } from '../../../src/config/validate.js';

const FILE = `# reviews: canary of v2
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews # owned by team-a
  namespace: default
spec:
  hosts: [reviews]
  http:
  # test users first
  - name: jason
    match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: ratings}}]
  - name: main  # the rollout route
    match:
    - uri: {prefix: /api}
    timeout: 3s
    route:
    - {destination: {host: reviews, subset: v1, port: {number: 9080}}, weight: 100}
`;

function vsOf(f: VsFile): VsEditor {
  return f.find('reviews', 'default', 'default');
}

describe('VsEditor on a file', () => {
  it('finds the route of the stable subset; reports weights', () => {
    const e = vsOf(new VsFile(FILE));
    expect(e.findRoute('v1', 'v2')).toMatchObject({ index: 1, name: 'main', host: 'reviews', stable: 100, canary: 0, hasCanary: false, headerRoute: false });
    expect(() => e.findRoute('v7', 'v8')).toThrow(/no http route sends to subset v7 or v8/);
    expect(() => e.findRoute('v1', 'v2', 'details')).toThrow(/of details/);
  });

  it('sets weights in place: the canary destination is a copy of the stable one; comments, other documents and fields stay', () => {
    const f = new VsFile(FILE);
    vsOf(f).setWeights('v1', 'v2', 10);
    const out = f.toString();
    expect(out).toContain('# reviews: canary of v2');
    expect(out).toContain('name: reviews # owned by team-a');
    expect(out).toContain('# test users first');
    expect(out).toContain('# the rollout route');
    expect(out).toContain('timeout: 3s');
    expect(out).toContain('- {destination: {host: reviews, subset: v1, port: {number: 9080}}, weight: 90}');
    expect(out).toContain('- {destination: {host: reviews, subset: v2, port: {number: 9080}}, weight: 10}');
    expect(out).toContain('  - name: jason\n'); // kubectl-style list indent kept
    const docs = parseDocuments(out, 'f.yaml', 'default');
    expect(docs.errors).toEqual([]);
    expect(validateResources(docs.resources, { clusterDomain: 'cluster.local' }).filter((p) => p.severity !== 'warning')).toEqual([]);
    expect(vsOf(new VsFile(out)).findRoute('v1', 'v2')).toMatchObject({ stable: 90, canary: 10, hasCanary: true });
  });

  it('promotion leaves the canary alone at 100; rollback the stable alone at 100', () => {
    const f = new VsFile(FILE);
    vsOf(f).setWeights('v1', 'v2', 50);
    vsOf(f).setWeights('v1', 'v2', 100);
    const promoted = parse(f.toString().split('---\n')[1]!) as { spec: { http: Array<{ route: unknown[] }> } };
    expect(promoted.spec.http[1]!.route).toEqual([{ destination: { host: 'reviews', subset: 'v2', port: { number: 9080 } }, weight: 100 }]);
    const g = new VsFile(FILE);
    vsOf(g).setWeights('v1', 'v2', 25);
    vsOf(g).setWeights('v1', 'v2', 0);
    const back = parse(g.toString().split('---\n')[1]!) as { spec: { http: Array<{ route: unknown[] }> } };
    expect(back.spec.http[1]!.route).toEqual([{ destination: { host: 'reviews', subset: 'v1', port: { number: 9080 } }, weight: 100 }]);
  });

  it('header canary: a route in front, under the route\'s own match, to the canary; removed again cleanly', () => {
    const f = new VsFile(FILE);
    const e = vsOf(f);
    e.setHeaderRoute('v1', 'v2', { name: 'x-canary', value: 'true' });
    e.setHeaderRoute('v1', 'v2', { name: 'x-canary', value: 'true' }); // idempotent
    const vs = parse(f.toString().split('---\n')[1]!) as { spec: { http: Array<Record<string, unknown>> } };
    expect(vs.spec.http.map((r) => r.name)).toEqual(['jason', HEADER_ROUTE_NAME, 'main']);
    expect(vs.spec.http[1]).toEqual({
      name: HEADER_ROUTE_NAME,
      match: [{ uri: { prefix: '/api' }, headers: { 'x-canary': { exact: 'true' } } }],
      route: [{ destination: { host: 'reviews', subset: 'v2', port: { number: 9080 } }, weight: 100 }],
    });
    expect(e.findRoute('v1', 'v2')).toMatchObject({ index: 2, headerRoute: true });
    e.setHeaderRoute('v1', 'v2', undefined);
    expect(f.toString()).toBe(new VsFile(FILE).toString());
  });

  it('mirror: set on the route to the canary subset with a percentage, removed after', () => {
    const f = new VsFile(FILE);
    const e = vsOf(f);
    e.setMirror('v1', 'v2', 20);
    const vs = parse(f.toString().split('---\n')[1]!) as { spec: { http: Array<Record<string, unknown>> } };
    expect(vs.spec.http[1]).toMatchObject({ mirror: { host: 'reviews', subset: 'v2', port: { number: 9080 } }, mirrorPercentage: { value: 20 } });
    expect(e.findRoute('v1', 'v2').mirrorPercent).toBe(20);
    e.setMirror('v1', 'v2', 0);
    expect(f.toString()).toBe(new VsFile(FILE).toString());
  });

  it('refuses a route that also sends to a third destination', () => {
    const f = new VsFile(FILE.replace("route:\n    - {destination: {host: reviews, subset: v1, port: {number: 9080}}, weight: 100}",
      "route:\n    - {destination: {host: reviews, subset: v1}, weight: 90}\n    - {destination: {host: reviews, subset: v0}, weight: 10}"));
    expect(() => vsOf(f).setWeights('v1', 'v2', 10)).toThrow(/also routes to reviews subset v0/);
  });

  it('annotations: set, read back, removed with the empty map', () => {
    const f = new VsFile(FILE);
    const e = vsOf(f);
    e.setAnnotation('remora.io/rollout', '{"a":1}');
    expect(vsOf(new VsFile(f.toString())).annotation('remora.io/rollout')).toBe('{"a":1}');
    e.setAnnotation('remora.io/rollout', undefined);
    expect(f.toString()).toBe(new VsFile(FILE).toString());
  });

  it('finds the VirtualService by name and namespace (a document without one is in the default namespace)', () => {
    expect(() => new VsFile(FILE).find('reviews', 'prod', 'default')).toThrow(/no VirtualService prod\/reviews/);
    expect(() => new VsFile(FILE).find('details', 'default', 'default')).toThrow(/no VirtualService/);
    const noNs = FILE.replace('  namespace: default\nspec:\n  hosts', 'spec:\n  hosts');
    expect(new VsFile(noNs).find('reviews', 'prod', 'prod').name).toBe('reviews');
  });

  it('block-style destinations and indented lists keep their style', () => {
    const text = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
    - reviews
  http:
    - route:
        - destination:
            host: reviews
            subset: v1
`;
    const f = new VsFile(text);
    f.find('reviews', 'default', 'default').setWeights('v1', 'v2', 30);
    expect(f.toString()).toBe(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
    - reviews
  http:
    - route:
        - destination:
            host: reviews
            subset: v1
          weight: 70
        - destination:
            host: reviews
            subset: v2
          weight: 30
`);
  });
});

describe('VsEditor on an object (Kubernetes)', () => {
  it('edits the same way and gives back plain JSON', () => {
    const e = VsEditor.fromObject({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'r', namespace: 'default' }, spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews', subset: 'v1' } }] }] } });
    e.setWeights('v1', 'v2', 5);
    expect(e.toObject()).toEqual({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'r', namespace: 'default' }, spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews', subset: 'v1' }, weight: 95 }, { destination: { host: 'reviews', subset: 'v2' }, weight: 5 }] }] } });
  });
  it('sameHost: short names match their FQDNs', () => {
    expect(sameHost('reviews', 'reviews.default.svc.cluster.local')).toBe(true);
    expect(sameHost('reviews.default', 'reviews.prod')).toBe(false);
    expect(sameHost('reviews', 'ratings')).toBe(false);
  });
});
