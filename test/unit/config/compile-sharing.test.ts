/**
 * compile() builds what many routes have in common once: the clusters of a (host, subset) and the default policy
 * of a port without a DestinationRule are shared objects, and sharing never leaks one rule's policy into another.
 */
import { describe, it, expect } from 'vitest';
import { parseDocuments } from '../../../src/config/parse.js';
import { compile } from '../../../src/config/compile.js';
import { compileClusterPolicy } from '../../../src/upstream/policy.js';
import type { CompiledDestination } from '../../../src/routing/route.js';

const YAML = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a, namespace: default}
spec:
  hosts: [a.example.com]
  ports: [{number: 8080, name: http, protocol: HTTP}, {number: 9090, name: http-admin, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: b, namespace: default}
spec:
  hosts: [b.example.com]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.2}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: c, namespace: default}
spec:
  hosts: [c.example.com]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.3, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: c, namespace: default}
spec:
  host: c.example.com
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a, namespace: default}
spec:
  hosts: [a.example.com]
  http:
  - match: [{uri: {prefix: /x}}]
    route: [{destination: {host: a.example.com}}]
  - route: [{destination: {host: a.example.com}, weight: 50}, {destination: {host: c.example.com, subset: v1}, weight: 50}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: c, namespace: default}
spec:
  hosts: [c.example.com]
  http:
  - route: [{destination: {host: c.example.com, subset: v1}}]
  - route: [{destination: {host: c.example.com, subset: nope}}]
`;

function destinations(snap: ReturnType<typeof compile>, host: string): CompiledDestination[] {
  const vh = snap.hosts.get(host)?.vhost;
  expect(vh).toBeDefined();
  return vh!.routes.flatMap((r) => (r.action.kind === 'route' ? [...r.action.destinations] : []));
}

describe('compile: shared per-host and per-port structures', () => {
  const { resources, errors } = parseDocuments(YAML, 'share.yaml');
  const snap = compile(resources, { namespace: 'default', clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY' });

  it('gives every destination of one (host, subset) the same cluster map', () => {
    expect(errors).toEqual([]);
    const [a1, a2, c1] = destinations(snap, 'a.example.com');
    expect(a1!.clusters).toBe(a2!.clusters);
    expect([...a1!.clusters.keys()]).toEqual([8080, 9090]);
    expect(a1!.clusters.get(8080)).toBe(snap.clusters.get('outbound|8080||a.example.com'));
    const [cv1, cNope] = destinations(snap, 'c.example.com');
    expect(c1!.clusters).toBe(cv1!.clusters);
    expect(cv1!.clusters.get(8080)).toBe(snap.clusters.get('outbound|8080|v1|c.example.com'));
    // A missing subset keeps its own answer: no clusters, flagged.
    expect(cNope!.missingSubset).toBe(true);
    expect(cNope!.clusters.size).toBe(0);
    expect(cv1!.missingSubset).toBe(false);
  });

  it('shares the default policy per port among clusters without a DestinationRule, and only among them', () => {
    const a8080 = snap.clusters.get('outbound|8080||a.example.com')!;
    const b8080 = snap.clusters.get('outbound|8080||b.example.com')!;
    const a9090 = snap.clusters.get('outbound|9090||a.example.com')!;
    const c8080 = snap.clusters.get('outbound|8080||c.example.com')!;
    expect(a8080.policy).toBe(b8080.policy);
    expect(a8080.policy).toEqual(compileClusterPolicy({}, 8080));
    expect(a9090.policy).toEqual(compileClusterPolicy({}, 9090));
    expect(c8080.policy).not.toBe(a8080.policy);
    expect(c8080.policy.lb.kind).toBe('ROUND_ROBIN');
    expect(a8080.policy.lb.kind).not.toBe('ROUND_ROBIN');
  });

  it('builds a fresh set of shared objects per compile (a reload never reuses the previous snapshot\'s)', () => {
    const again = compile(resources, { namespace: 'default', clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY' });
    expect(again.clusters.get('outbound|8080||a.example.com')).not.toBe(snap.clusters.get('outbound|8080||a.example.com'));
    expect(destinations(again, 'a.example.com')[0]!.clusters).not.toBe(destinations(snap, 'a.example.com')[0]!.clusters);
  });
});

describe('compile: routes are compiled on first use', () => {
  const yaml = `${YAML}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: two-hosts, namespace: default}
spec:
  hosts: [d.example.com, e.example.com]
  http:
  - match: [{headers: {x-canary: {exact: "1"}}}]
    route: [{destination: {host: b.example.com}}]
  - route: [{destination: {host: a.example.com, port: {number: 9090}}}]
`;
  const { resources, errors } = parseDocuments(yaml, 'lazy.yaml');
  const compiled = (snap: ReturnType<typeof compile>, host: string): boolean => (snap.hosts.get(host)!.vhost as unknown as { compiled: boolean }).compiled;

  it('settles hosts and clusters at compile time and builds the routes when first read, once, for all its hosts', () => {
    expect(errors).toEqual([]);
    const snap = compile(resources, { namespace: 'default', clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY' });
    // Every cluster a route can name exists before any route is built (the cluster manager starts them all).
    expect(snap.clusters.has('outbound|9090||a.example.com')).toBe(true);
    expect(snap.hosts.get('d.example.com')!.vhost!.origin).toBe('VirtualService/default/two-hosts');
    expect(compiled(snap, 'd.example.com')).toBe(false);
    expect(compiled(snap, 'e.example.com')).toBe(false);
    const routes = snap.hosts.get('e.example.com')!.vhost!.routes;
    expect(routes.map((r) => r.name)).toEqual(['two-hosts.0', 'two-hosts.1']);
    expect(compiled(snap, 'd.example.com')).toBe(true);
    expect(snap.hosts.get('d.example.com')!.vhost!.routes).toBe(routes);
    expect(snap.hosts.get('e.example.com')!.vhost!.routes).toBe(routes);
    // The destinations point at the snapshot's own clusters, as an eager build did.
    const d = routes[1]!.action.kind === 'route' ? routes[1]!.action.destinations[0]! : undefined;
    expect(d?.clusters.get(9090)).toBe(snap.clusters.get('outbound|9090||a.example.com'));
    // Another VirtualService's routes stay unbuilt until read; so does a service's default route (b has no
    // VirtualService), which then sends everything to the service on the request's port.
    expect(compiled(snap, 'c.example.com')).toBe(false);
    expect(compiled(snap, 'b.example.com')).toBe(false);
    const [def] = snap.hosts.get('b.example.com')!.vhost!.routes;
    expect(def!.name).toBe('default');
    expect(def!.action.kind === 'route' && def!.action.destinations[0]!.followsRequestPort).toBe(true);
    expect(compiled(snap, 'b.example.com')).toBe(true);
  });
});

describe('compile: clusters with equal DestinationRule policies share one policy object', () => {
  const se = (n: string) => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${n}, namespace: default}
spec:
  hosts: [${n}.example.com]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.1, labels: {version: v1}}, {address: 10.0.0.2, labels: {version: v2}}]
`;
  const dr = (n: string, extra = '', annotations = '') => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ${n}, namespace: default${annotations}}
spec:
  host: ${n}.example.com
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}${n === 'q' ? ', trafficPolicy: {loadBalancer: {simple: RANDOM}}' : ''}}]${extra}
`;
  const yaml = [
    se('p'), dr('p'),
    se('q'), dr('q'),
    se('r'), dr('r', '\n  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}'),
    se('s'), dr('s', '\n  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}'),
    se('t'), dr('t', '', ', annotations: {remora.io/lb-algorithm: peak-ewma}'),
  ].join('---\n');
  const { resources, errors } = parseDocuments(yaml, 'policies.yaml');
  const snap = compile(resources, { namespace: 'default', clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY' });
  const policy = (subset: string, n: string) => snap.clusters.get(`outbound|8080|${subset}|${n}.example.com`)!.policy;

  it('one object for every cluster whose merged policy is equal, including across DestinationRules', () => {
    expect(errors).toEqual([]);
    // No trafficPolicy anywhere: the default cluster and both subsets of p, and q's default and v1, share one.
    expect(policy('', 'p')).toBe(policy('v1', 'p'));
    expect(policy('', 'p')).toBe(policy('v2', 'p'));
    expect(policy('', 'p')).toBe(policy('', 'q'));
    expect(policy('v1', 'q')).toBe(policy('', 'p'));
    expect(policy('', 'p')).toEqual(compileClusterPolicy({}, 8080));
    // Equal DR-level policies on two rules share; a subset that overrides gets its own.
    expect(policy('', 'r')).toBe(policy('', 's'));
    expect(policy('v2', 'r')).toBe(policy('', 's'));
    expect(policy('', 'r').lb.kind).toBe('ROUND_ROBIN');
    expect(policy('v2', 'q')).not.toBe(policy('', 'q'));
    expect(policy('v2', 'q').lb.kind).toBe('RANDOM');
  });

  it('never shares across different policies or options', () => {
    expect(policy('', 'r')).not.toBe(policy('', 'p'));
    expect(policy('', 'p').lb.kind).toBe('LEAST_REQUEST');
    // The peak-EWMA annotation is an input too.
    expect(policy('', 't')).not.toBe(policy('', 'p'));
    expect(policy('', 't').lb.peakEwma).toBe(true);
    expect(policy('', 'p').lb.peakEwma).toBeUndefined();
  });
});

describe('compile: the clusters of one service port share their Endpoint objects', () => {
  const yaml = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: p, namespace: default}
spec:
  hosts: [p.example.com]
  ports: [{number: 8080, name: http, protocol: HTTP}, {number: 9090, name: admin, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 10.0.0.1, labels: {version: v1}}
  - {address: 10.0.0.2, labels: {version: v2}, ports: {admin: 9999}}
  - {address: 10.0.0.1, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: p, namespace: default}
spec:
  host: p.example.com
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}, {name: v3, labels: {version: v3}}]
`;
  const { resources } = parseDocuments(yaml, 'eps.yaml');
  const snap = compile(resources, { namespace: 'default', clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY' });
  const eps = (port: number, subset: string) => snap.clusters.get(`outbound|${port}|${subset}|p.example.com`)!.endpoints;

  it('a subset holds the default cluster\'s objects, per port', () => {
    expect(eps(8080, '').map((e) => e.key)).toEqual(['10.0.0.1:8080', '10.0.0.2:8080']);
    expect(eps(8080, 'v1')[0]).toBe(eps(8080, '')[0]);
    expect(eps(8080, 'v2')[0]).toBe(eps(8080, '')[1]);
    expect(eps(9090, 'v2').map((e) => e.key)).toEqual(['10.0.0.2:9999']);
    expect(eps(9090, 'v2')[0]).toBe(eps(9090, '')[1]);
    expect(eps(9090, 'v2')[0]).not.toBe(eps(8080, 'v2')[0]);
  });

  it('keeps each cluster\'s own selection: a subset of a workload whose address:port repeats an earlier one still gets it', () => {
    // The default cluster keeps the first of the two 10.0.0.1:8080 workloads; subset v3 selects the second.
    expect(eps(8080, '')[0]!.labels).toEqual({ version: 'v1' });
    expect(eps(8080, 'v3').map((e) => [e.key, e.labels.version])).toEqual([['10.0.0.1:8080', 'v3']]);
  });
});

describe('compile: several DestinationRules for one host', () => {
  const se = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: h, namespace: svc-ns}
spec:
  hosts: [h.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.1}]
`;
  const dr = (ns: string, lb: string) => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: h, namespace: ${ns}}
spec:
  host: h.example.com
  trafficPolicy: {loadBalancer: {simple: ${lb}}}
`;
  const lbOf = (docs: string[], proxyNs: string) => {
    const { resources } = parseDocuments(docs.join('---\n'), 'drs.yaml');
    return compile(resources, { namespace: proxyNs, clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY' }).clusters.get('outbound|80||h.example.com')!.policy.lb.kind;
  };

  it("takes the client's namespace first, then the service's, then the first one (Istio's order)", () => {
    expect(lbOf([se, dr('other', 'RANDOM'), dr('svc-ns', 'ROUND_ROBIN'), dr('client', 'PASSTHROUGH')], 'client')).toBe('PASSTHROUGH');
    expect(lbOf([se, dr('other', 'RANDOM'), dr('svc-ns', 'ROUND_ROBIN')], 'client')).toBe('ROUND_ROBIN');
    expect(lbOf([se, dr('other', 'RANDOM'), dr('third', 'ROUND_ROBIN')], 'client')).toBe('RANDOM');
    expect(lbOf([se, dr('other', 'RANDOM')], 'client')).toBe('RANDOM');
  });
});
