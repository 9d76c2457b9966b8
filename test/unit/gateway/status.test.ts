/** Route status as a controller writes it: Accepted, ResolvedRefs, PartiallyInvalid, with the spec's reasons. */
import { describe, expect, it } from 'vitest';
import { parse, MESH_BASE, NS } from './support.js';
import { compile } from '../../../src/config/compile.js';
import { validateResources } from '../../../src/config/validate.js';
import { routeStatuses, formatRouteStatus } from '../../../src/gateway/status.js';
import { dropInvalidRules, originalRuleIndex } from '../../../src/gateway/api-errors.js';
import type { Resource } from '../../../src/config/resource.js';

/** A parsed resource as the API watch would hand it over (its lines found through its own method). */
const asFromApi = (r: Resource): Resource => ({ ...r, source: { file: 'kubernetes', line: 0 }, lineOf: (p) => r.lineOf(p) });

function statuses(routes: string, asKubernetes = false) {
  let resources = parse(`${MESH_BASE}---\n${routes}`);
  if (asKubernetes) resources = resources.map((r) => (r.kind.endsWith('Route') ? asFromApi(r) : r));
  const base = resources.filter((r) => !r.kind.endsWith('Route'));
  const services = compile(base, { namespace: NS, clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY' }).services;
  let problems = validateResources(resources);
  let dropped: Map<string, number[]> | undefined;
  if (asKubernetes) {
    const p = dropInvalidRules(resources, problems);
    if (p !== undefined) { resources = p.resources; dropped = p.dropped; problems = validateResources(resources); }
  }
  const routesOnly = resources.filter((r) => r.kind.endsWith('Route'));
  const out = routeStatuses({ routes: routesOnly, errors: problems, byHost: new Map(services.map((s) => [s.hostname, s])), clusterDomain: 'cluster.local', ...(dropped ? { dropped } : {}) });
  const byName = (n: string) => [...out].find(([r]) => r.metadata.name === n)![1];
  return { out, byName, resources: routesOnly };
}

describe('route status', () => {
  it('Accepted and ResolvedRefs true, with observedGeneration and the parentRef as stored', () => {
    const { byName } = statuses(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ok, namespace: ${NS}, generation: 4}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 80}]
  rules: [{backendRefs: [{name: echo-v1, port: 8080}]}]
`);
    expect(byName('ok')).toEqual([{
      parentRef: { group: '', kind: 'Service', name: 'echo', port: 80 },
      controllerName: 'remora.io/mesh-controller',
      conditions: [
        { type: 'Accepted', status: 'True', reason: 'Accepted', message: `Bound to Service ${NS}/echo port 80 (producer route: applies to every client)`, observedGeneration: 4 },
        { type: 'ResolvedRefs', status: 'True', reason: 'ResolvedRefs', message: 'All references resolved', observedGeneration: 4 },
      ],
    }]);
  });

  it('NoMatchingParent, BackendNotFound, InvalidKind; a Gateway parent is not reported', () => {
    const { byName } = statuses(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bad, namespace: ${NS}}
spec:
  parentRefs: [{group: "", kind: Service, name: nope}, {group: "", kind: Service, name: echo, port: 1234}, {name: some-gateway}]
  rules:
  - backendRefs: [{name: missing, port: 80}, {group: example.com, kind: Thing, name: x}]
`);
    const s = byName('bad');
    expect(s).toHaveLength(2);
    expect(s[0]!.conditions[0]).toMatchObject({ status: 'False', reason: 'NoMatchingParent', message: `Service ${NS}/nope not found` });
    expect(s[1]!.conditions[0]).toMatchObject({ status: 'False', reason: 'NoMatchingParent', message: `Service ${NS}/echo has no port 1234` });
    expect(s[0]!.conditions[1]).toMatchObject({ status: 'False', reason: 'BackendNotFound', message: `Service ${NS}/missing not found; backendRef kind example.com/Thing is not supported (Service, or networking.istio.io/Hostname)` });
  });

  it('an invalid route is Accepted=False (UnsupportedValue) with the first problem', () => {
    const { byName } = statuses(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: broken, namespace: ${NS}}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - filters: [{type: Teleport}]
    backendRefs: [{name: echo-v1, port: 80}]
`);
    expect(byName('broken')[0]!.conditions[0]).toMatchObject({ status: 'False', reason: 'UnsupportedValue', message: 'spec.rules[0].filters[0].type: unknown filter type "Teleport": HTTPRoute filters are RequestHeaderModifier, ResponseHeaderModifier, RequestMirror, RequestRedirect, URLRewrite, ExtensionRef, CORS' });
  });

  it('from the API, invalid rules are dropped: Accepted=True and PartiallyInvalid=True "Dropped Rule(s)"', () => {
    const { byName, resources } = statuses(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: partly, namespace: ${NS}}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: RegularExpression, value: "(("}}]
    backendRefs: [{name: echo-v1, port: 80}]
  - backendRefs: [{name: echo-v2, port: 80}]
`, true);
    const s = byName('partly')[0]!;
    expect(s.conditions.map((c) => `${c.type}=${c.status}/${c.reason}`)).toEqual(['Accepted=True/Accepted', 'ResolvedRefs=True/ResolvedRefs', 'PartiallyInvalid=True/UnsupportedValue']);
    expect(s.conditions[2]!.message).toMatch(/^Dropped Rule\(s\) rules\[0\]/);
    const pruned = resources.find((r) => r.metadata.name === 'partly') as Resource;
    expect((pruned.spec.rules as unknown[]).length).toBe(1);
    expect(originalRuleIndex(pruned, 0)).toBe(1);
    expect(formatRouteStatus(pruned, byName('partly'))[0]).toMatch(new RegExp(`^HTTPRoute/${NS}/partly → Service ${NS}/echo: Accepted=True`));
  });

  it('from the API, a route invalid outside its rules (or in all of them) is not pruned', () => {
    const res = parse(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: p, namespace: ${NS}}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 99999}]
  rules: [{backendRefs: [{name: echo-v1, port: 80}]}, {backendRefs: [{name: echo-v1, port: 80, weight: -3}]}]
`).map(asFromApi);
    expect(dropInvalidRules(res, validateResources(res))).toBeUndefined();
  });
});
