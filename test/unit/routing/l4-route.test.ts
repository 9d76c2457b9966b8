// VirtualService tcp[] and tls[] routes: compiled from YAML, first match wins (port, destinationSubnets,
// sourceLabels, sourceNamespace, gateways, sniHosts), weighted choice, and the cluster a destination sends to.
import { describe, expect, it } from 'vitest';
import { parseDocuments } from '../../../src/config/parse.js';
import { compile } from '../../../src/config/compile.js';
import { compileL4Routes, l4Cluster, l4RoutesFor, pickL4Destination, selectL4Route, type L4Self } from '../../../src/routing/l4-route.js';
import { DB_SERVICE_YAML } from './db-fixture.js';

const YAML = `${DB_SERVICE_YAML}
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: db, namespace: default }
spec:
  hosts: [db.internal]
  tcp:
  - match: [{ port: 5432, sourceLabels: { app: reporting } }]
    route: [{ destination: { host: db.internal, subset: v2 } }]
  - match: [{ port: 5432, destinationSubnets: [10.96.0.0/16] }, { port: 6000 }]
    route:
    - { destination: { host: db.internal, subset: v1 }, weight: 75 }
    - { destination: { host: db.internal, subset: v2 }, weight: 25 }
  - match: [{ gateways: [edge-gateway] }]
    route: [{ destination: { host: db.internal, subset: v2 } }]
  - route: [{ destination: { host: db.internal, subset: v1, port: { number: 5432 } } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ext, namespace: default }
spec:
  hosts: ['*.example.com']
  ports: [{ number: 443, name: tls, protocol: TLS }]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ext, namespace: default }
spec:
  hosts: ['*.example.com']
  tls:
  - match: [{ port: 443, sniHosts: [api.example.com] }]
    route: [{ destination: { host: db.internal, subset: v1, port: { number: 5432 } } }]
  - match: [{ sniHosts: ['*.example.com'] }]
    route: [{ destination: { host: db.internal, subset: nope } }]
`;

const self: L4Self = { labels: { app: 'web' }, namespace: 'default', clusterDomain: 'cluster.local' };

describe('L4 routes', () => {
  const { resources, errors } = parseDocuments(YAML, 'l4.yaml');
  const snap = compile(resources, { namespace: 'default', clusterDomain: 'cluster.local', labels: self.labels, outboundTrafficPolicy: 'ALLOW_ANY' });
  const vs = resources.find((r) => r.kind === 'VirtualService' && r.metadata.name === 'db')!;

  it('compile in order with their matches decided against this workload once', () => {
    expect(errors).toEqual([]);
    const r = compileL4Routes(vs, self)!;
    expect(r.tcp.map((x) => x.name)).toEqual(['VirtualService/default/db.tcp.0', 'VirtualService/default/db.tcp.1', 'VirtualService/default/db.tcp.2', 'VirtualService/default/db.tcp.3']);
    expect(r.tcp[0]!.matches[0]!.appliesToSelf).toBe(false); // sourceLabels app=reporting, we are app=web
    expect(r.tcp[2]!.matches[0]!.appliesToSelf).toBe(false); // a gateway-only match never applies to a sidecar
    expect(compileL4Routes(vs, { ...self, labels: { app: 'reporting' } })!.tcp[0]!.matches[0]!.appliesToSelf).toBe(true);
    // A lone destination takes all traffic; weights otherwise as written.
    expect(r.tcp[0]!.total).toBe(100);
    expect(r.tcp[1]!.cumulative).toEqual([75, 100]);
  });

  it('select the first matching route: port, destination subnet, then the catch-all', () => {
    const r = l4RoutesFor(snap, 'VirtualService/default/db', self)!;
    expect(l4RoutesFor(snap, 'VirtualService/default/db', self)).toBe(r); // compiled once per snapshot
    expect(selectL4Route(r.tcp, { port: 5432, address: '10.96.0.5' })!.name).toBe('VirtualService/default/db.tcp.1');
    expect(selectL4Route(r.tcp, { port: 6000, address: '192.0.2.1' })!.name).toBe('VirtualService/default/db.tcp.1'); // second match block (OR)
    expect(selectL4Route(r.tcp, { port: 5432, address: '10.1.0.5' })!.name).toBe('VirtualService/default/db.tcp.3'); // outside the subnet
    expect(selectL4Route([], { port: 5432, address: '10.96.0.5' })).toBeUndefined();
  });

  it('split connections by weight', () => {
    const r = l4RoutesFor(snap, 'VirtualService/default/db', self)!.tcp[1]!;
    let v1 = 0;
    const n = 10_000;
    for (let i = 0; i < n; i++) if (pickL4Destination(r, (i + 0.5) / n)!.subset === 'v1') v1++;
    expect(v1).toBe(7500);
    expect(pickL4Destination({ ...r, total: 0 }, 0.5)).toBeUndefined();
  });

  it('match tls routes by SNI (exact and wildcard), never without one', () => {
    const r = l4RoutesFor(snap, 'VirtualService/default/ext', self)!;
    expect(selectL4Route(r.tls, { port: 443, address: '203.0.113.9', sni: 'api.example.com' })!.name).toBe('VirtualService/default/ext.tls.0');
    expect(selectL4Route(r.tls, { port: 443, address: '203.0.113.9', sni: 'www.example.com' })!.name).toBe('VirtualService/default/ext.tls.1');
    expect(selectL4Route(r.tls, { port: 443, address: '203.0.113.9', sni: 'example.org' })).toBeUndefined();
    expect(selectL4Route(r.tls, { port: 443, address: '203.0.113.9' })).toBeUndefined();
    expect(selectL4Route(r.tls, { port: 8443, address: '203.0.113.9', sni: 'api.example.com' })!.name).toBe('VirtualService/default/ext.tls.1');
  });

  it('resolve a destination to its cluster: explicit port, the only port, else the dialled one; unknown subset = none', () => {
    const r = l4RoutesFor(snap, 'VirtualService/default/db', self)!;
    expect(l4Cluster(snap, r.tcp[1]!.destinations[0]!, 9999)?.name).toBe('outbound|5432|v1|db.internal'); // single-port service
    expect(l4Cluster(snap, r.tcp[3]!.destinations[0]!, 9999)?.name).toBe('outbound|5432|v1|db.internal');
    const ext = l4RoutesFor(snap, 'VirtualService/default/ext', self)!;
    expect(l4Cluster(snap, ext.tls[1]!.destinations[0]!, 443)).toBeUndefined();
    expect(l4RoutesFor(snap, 'ServiceEntry/default/db', self)).toBeUndefined();
  });
});
