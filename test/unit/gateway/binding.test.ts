/**
 * Mesh binding (GEP-1294): name/namespace/port of the parent Service, producer vs consumer routes, route kinds on
 * one port, a VirtualService on the same host, DestinationRule policy on backendRefs, invalid backends. No sockets.
 */
import { describe, expect, it } from 'vitest';
import { meshSnapshot, parse, route, NS, MESH_BASE } from './support.js';
import { bindRoutes } from '../../../src/gateway/binding.js';
import { compile, lookupHost } from '../../../src/config/compile.js';
import { frontendEntry } from '../../../src/gateway/frontend.js';
import { pickDestination } from '../../../src/routing/route.js';
import { resolveCaptured } from '../../../src/routing/l4-destination.js';

const CONSUMER = `${NS}-consumer`;
const header = (name: string, ns: string, parent: string, value: string, port = ''): string => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ${name}, namespace: ${ns}}
spec:
  parentRefs: [{group: "", kind: Service, name: ${parent}, namespace: ${NS}${port}}]
  rules:
  - filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: X-Header-Set, value: ${value}}]}}]
    backendRefs: [{name: ${parent}, namespace: ${NS}, port: 80}]
`;
const setHeader = (r: ReturnType<typeof route>): string | undefined => r.route?.responseHeaders?.set[0]?.[1];

describe('which calls a route applies to', () => {
  it('MeshFrontend / MeshPorts: only the parent Service, only the parentRef port', () => {
    const snap = meshSnapshot(`${header('v1', NS, 'echo-v1', 'v1', ', port: 80')}---\n${header('v2', NS, 'echo-v2', 'v2')}`);
    expect(setHeader(route(snap, `echo-v1.${NS}`, '/'))).toBe('v1');
    expect(setHeader(route(snap, `echo-v1.${NS}:8080`, '/', { port: 8080 }))).toBeUndefined();
    expect(route(snap, `echo-v1.${NS}:8080`, '/', { port: 8080 }).backend).toBe('echo-v1');
    expect(setHeader(route(snap, `echo-v2.${NS}`, '/'))).toBe('v2');
    expect(setHeader(route(snap, `echo-v2.${NS}:8080`, '/', { port: 8080 }))).toBe('v2');
    expect(setHeader(route(snap, `echo.${NS}`, '/'))).toBeUndefined();
  });

  it('every name of the Service: short name (own namespace), name.ns, name.ns.svc, FQDN, ClusterIP', () => {
    const snap = meshSnapshot(header('v2', NS, 'echo-v2', 'v2'));
    for (const h of ['echo-v2', `echo-v2.${NS}`, `echo-v2.${NS}.svc`, `echo-v2.${NS}.svc.cluster.local`, '10.96.0.12']) {
      expect(setHeader(route(snap, h, '/')), h).toBe('v2');
    }
  });

  it('MeshConsumerRoute: a consumer route applies in its namespace only, and there replaces the producer route', () => {
    const routes = `${header('consumer', CONSUMER, 'echo-v1', 'consumer')}---\n${header('producer', NS, 'echo-v1', 'producer')}`;
    expect(setHeader(route(meshSnapshot(routes, CONSUMER), `echo-v1.${NS}`, '/'))).toBe('consumer');
    expect(setHeader(route(meshSnapshot(routes, NS), `echo-v1.${NS}`, '/'))).toBe('producer');
    expect(setHeader(route(meshSnapshot(routes, 'elsewhere'), `echo-v1.${NS}`, '/'))).toBe('producer');
    expect(setHeader(route(meshSnapshot(header('consumer', CONSUMER, 'echo-v1', 'consumer'), NS), `echo-v1.${NS}`, '/'))).toBeUndefined();
  });

  it('a consumer route on one port leaves the producer route on the others', () => {
    const routes = `${header('consumer', CONSUMER, 'echo-v1', 'consumer', ', port: 80')}---\n${header('producer', NS, 'echo-v1', 'producer')}`;
    const snap = meshSnapshot(routes, CONSUMER);
    expect(setHeader(route(snap, `echo-v1.${NS}`, '/'))).toBe('consumer');
    expect(setHeader(route(snap, `echo-v1.${NS}:8080`, '/', { port: 8080 }))).toBe('producer');
  });

  it('ClusterIP matching and pod IPs: the dialled ClusterIP decides, an endpoint address gets no route', () => {
    const snap = meshSnapshot(header('v2', NS, 'echo-v2', 'v2'));
    const mesh = snap.mesh!;
    const at = (address: string, port: number) => resolveCaptured(snap, { address, port });
    // Dialled echo-v2's ClusterIP with Host: echo-v1 → echo-v2 (its route applies).
    expect(frontendEntry(mesh, lookupHost(snap, `echo-v1.${NS}`), at('10.96.0.12', 80))?.host).toBe(`echo-v2.${NS}.svc.cluster.local`);
    // Dialled echo-v1's ClusterIP with Host: echo-v2 → echo-v1 (no route).
    expect(frontendEntry(mesh, lookupHost(snap, `echo-v2.${NS}`), at('10.96.0.11', 80))?.host).toBe(`echo-v1.${NS}.svc.cluster.local`);
    // Dialled a pod of echo-v2: the plain default route, not the HTTPRoute.
    const pod = frontendEntry(mesh, undefined, at('10.0.0.2', 8080))!;
    expect(pod.vhost!.routes.map((r) => r.name)).toEqual(['default']);
    expect(pod.vhost!.routes[0]!.responseHeaders).toBeUndefined();
  });
});

describe('route kinds and parents', () => {
  it('GRPCRoute wins a port over HTTPRoute (GEP-1294), which keeps the other ports; status says Conflicted per port', () => {
    const yaml = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: h, namespace: ${NS}}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules: [{backendRefs: [{name: echo-v1, port: 80}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: ${NS}}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 7070}]
  rules: [{backendRefs: [{name: echo-v2, port: 7070}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: lost, namespace: ${NS}}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 7070}, {group: "", kind: Service, name: nope}]
  rules: [{backendRefs: [{name: echo-v1, port: 80}]}]
`;
    const snap = meshSnapshot(yaml);
    expect(route(snap, `echo.${NS}`, '/x', { port: 7070 }).backend).toBe('echo-v2');
    expect(route(snap, `echo.${NS}`, '/x', { port: 80 }).backend).toBe('echo-v1');
    const resources = parse(`${MESH_BASE}---\n${yaml}`);
    const byHost = new Map(compile(resources, { namespace: NS, clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY' }).services.map((s) => [s.hostname, s]));
    const b = bindRoutes(resources.filter((r) => r.kind.endsWith('Route')), byHost, 'cluster.local', undefined);
    const lost = [...b.parents].find(([r]) => r.metadata.name === 'lost')![1];
    expect(lost[0]).toMatchObject({ conflicted: true, conflicts: [{ port: 7070, winner: 'GRPCRoute' }] });
    expect(lost[1]!.resolution).toMatchObject({ ok: false, reason: 'NoMatchingParent', message: `Service ${NS}/nope not found` });
    const h = [...b.parents].find(([r]) => r.metadata.name === 'h')![1];
    expect(h[0]).toMatchObject({ conflicted: false, conflicts: [{ port: 7070, winner: 'GRPCRoute' }] });
  });
});

describe('backends', () => {
  it('weights split per request; a weight of 0 is never chosen; an unresolved backend answers 500 for its share', () => {
    const snap = meshSnapshot(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: w, namespace: ${NS}}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - backendRefs: [{name: echo-v1, port: 80, weight: 70}, {name: echo-v2, port: 80, weight: 0}, {name: missing, port: 80, weight: 30}]
`);
    const a = route(snap, `echo.${NS}`, '/').route!.action;
    if (a.kind !== 'route') throw new Error('not a route');
    const picks = new Map<string, number>();
    for (let i = 0; i < 1000; i++) {
      const d = pickDestination(a, i / 1000)!;
      const k = d.failStatus !== undefined ? `fail:${d.failStatus}` : d.host.split('.')[0]!;
      picks.set(k, (picks.get(k) ?? 0) + 1);
    }
    expect(Object.fromEntries(picks)).toEqual({ 'echo-v1': 700, 'fail:500': 300 });
  });

  it('DestinationRule traffic policy applies to the backendRefs, as in Istio', () => {
    const snap = meshSnapshot(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: v1, namespace: ${NS}}
spec:
  host: echo-v1
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool: {tcp: {maxConnections: 7}}
    outlierDetection: {consecutive5xxErrors: 3}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: ${NS}}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules: [{backendRefs: [{name: echo-v1, port: 80}]}]
`);
    const a = route(snap, `echo.${NS}`, '/').route!.action;
    if (a.kind !== 'route') throw new Error('not a route');
    const c = a.destinations[0]!.clusters.get(80)!;
    expect(c.policy.lb.kind).toBe('ROUND_ROBIN');
    expect(c.policy.pool.maxConnections).toBe(7);
    expect(c.policy.outlier?.consecutive5xxErrors).toBe(3);
  });

  it('a VirtualService and an HTTPRoute on one host: the older object applies, with a warning naming both', () => {
    const vs = (time: string) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs, namespace: ${NS}${time ? `, creationTimestamp: "${time}"` : ''}}
spec:
  hosts: [echo]
  http: [{route: [{destination: {host: echo-v2}}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: hr, namespace: ${NS}, creationTimestamp: "2025-02-01T00:00:00Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules: [{backendRefs: [{name: echo-v1, port: 80}]}]
`;
    const older = meshSnapshot(vs('2025-01-01T00:00:00Z'));
    expect(route(older, `echo.${NS}`, '/').backend).toBe('echo-v2');
    expect(older.warnings).toContainEqual(expect.stringContaining(`HTTPRoute/${NS}/hr: host echo.${NS}.svc.cluster.local is also routed by VirtualService/${NS}/vs; VirtualService/${NS}/vs applies`));
    const newer = meshSnapshot(vs('2025-03-01T00:00:00Z'));
    expect(route(newer, `echo.${NS}`, '/').backend).toBe('echo-v1');
    expect(newer.warnings).toContainEqual(expect.stringContaining(`the older HTTPRoute/${NS}/hr applies, VirtualService/${NS}/vs is ignored`));
    // Without a timestamp an object counts as the newer (files); with none on either side the VirtualService stays.
    expect(route(meshSnapshot(vs('')), `echo.${NS}`, '/').backend).toBe('echo-v1');
    expect(route(meshSnapshot(vs('').replace(', creationTimestamp: "2025-02-01T00:00:00Z"', '')), `echo.${NS}`, '/').backend).toBe('echo-v2');
  });
});
