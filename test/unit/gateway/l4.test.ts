/** TCPRoute and TLSRoute bound to a Service: per-port matches, weighted backends, SNI hostnames, refused unresolved shares. */
import { describe, expect, it } from 'vitest';
import { meshSnapshot, NS } from './support.js';
import { l4Cluster, pickL4Destination, selectL4Route } from '../../../src/routing/l4-route.js';

describe('TCPRoute and TLSRoute', () => {
  const snap = meshSnapshot(`apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: db, namespace: ${NS}}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 9090}]
  rules:
  - backendRefs: [{name: echo-v1, port: 9090, weight: 3}, {name: echo-v2, port: 9090, weight: 1}, {name: gone, port: 9090, weight: 1}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata: {name: tls, namespace: ${NS}}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 443}]
  hostnames: [secure.example.com]
  rules:
  - backendRefs: [{name: echo-v2, port: 443}]
`);
  const routes = snap.mesh!.l4.get(`echo.${NS}.svc.cluster.local`)!;

  it('a TCPRoute takes connections on its port only, split by weight; an unresolved share has no cluster (refused)', () => {
    expect(selectL4Route(routes.tcp, { port: 8080, address: '10.96.0.10' })).toBeUndefined();
    const r = selectL4Route(routes.tcp, { port: 9090, address: '10.96.0.10' })!;
    expect(r.name).toBe(`TCPRoute/${NS}/db.0`);
    const picks = [0.1, 0.5, 0.65, 0.9].map((x) => pickL4Destination(r, x)!);
    expect(picks.map((d) => d.host.split('.')[0] || '(unresolved)')).toEqual(['echo-v1', 'echo-v1', 'echo-v2', '(unresolved)']);
    expect(l4Cluster(snap, picks[0]!, 9090)?.name).toBe(`outbound|9090||echo-v1.${NS}.svc.cluster.local`);
    expect(l4Cluster(snap, picks[3]!, 9090)).toBeUndefined();
  });

  it('a TLSRoute matches its SNI hostnames on its port', () => {
    expect(selectL4Route(routes.tls, { port: 443, address: '10.96.0.10', sni: 'secure.example.com' })?.name).toBe(`TLSRoute/${NS}/tls.0`);
    expect(selectL4Route(routes.tls, { port: 443, address: '10.96.0.10', sni: 'other.example.com' })).toBeUndefined();
  });
});
