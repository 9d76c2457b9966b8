// Where an outbound L4 connection goes (src/routing/l4-decision.ts), pure: the service's cluster by VIP or endpoint,
// a tcp[] route and its weighted destination, a tls[] route by SNI, a CONNECT's host name, NC for a missing subset,
// BlackHoleCluster under REGISTRY_ONLY, passthrough (and a resolution NONE ServiceEntry's), never a proxy port.
import { describe, expect, it } from 'vitest';
import { parseDocuments } from '../../../src/config/parse.js';
import { compile } from '../../../src/config/compile.js';
import { decideOutboundL4, isOwnEndpoint, type OwnEndpoints } from '../../../src/routing/l4-decision.js';
import type { L4Self } from '../../../src/routing/l4-route.js';
import type { Snapshot } from '../../../src/config/snapshot.js';
import { DB_SERVICE_YAML } from './db-fixture.js';

const YAML = `${DB_SERVICE_YAML}
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: db, namespace: default }
spec:
  hosts: [db.internal]
  tcp:
  - match: [{ port: 5432 }]
    route:
    - { destination: { host: db.internal, subset: v1 }, weight: 75 }
    - { destination: { host: db.internal, subset: v2 }, weight: 25 }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: cache, namespace: default }
spec:
  hosts: [cache.internal]
  addresses: [10.96.0.6]
  ports: [{ number: 6379, name: tcp-redis, protocol: TCP }]
  resolution: STATIC
  endpoints: [{ address: 10.0.0.7 }]
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
    route: [{ destination: { host: cache.internal, port: { number: 6379 } } }]
  - match: [{ port: 443, sniHosts: [broken.example.com] }]
    route: [{ destination: { host: db.internal, subset: nope } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: range, namespace: default }
spec:
  hosts: [range.internal]
  addresses: [192.0.2.0/24]
  ports: [{ number: 7000, name: tcp, protocol: TCP }]
  resolution: NONE
`;

const SELF: L4Self = { labels: { app: 'web' }, namespace: 'default', clusterDomain: 'cluster.local' };

function snapshot(policy: 'ALLOW_ANY' | 'REGISTRY_ONLY' = 'ALLOW_ANY'): Snapshot {
  const { resources, errors } = parseDocuments(YAML, 'l4.yaml');
  expect(errors).toEqual([]);
  return compile(resources, { namespace: 'default', clusterDomain: 'cluster.local', labels: SELF.labels, outboundTrafficPolicy: policy });
}

const OWN: OwnEndpoints = { ports: new Set([15000, 15001, 15006, 15021, 15090]), addresses: new Set(['10.1.2.3', 'fd00::3']) };

describe('decideOutboundL4', () => {
  const snap = snapshot();

  it('a VIP with a tcp[] route: its weighted destination, named by the route', () => {
    const low = decideOutboundL4(snap, { dst: { address: '10.96.0.5', port: 5432 } }, SELF, 0.1);
    const high = decideOutboundL4(snap, { dst: { address: '10.96.0.5', port: 5432 } }, SELF, 0.9);
    expect(low).toMatchObject({ kind: 'cluster', cluster: { name: 'outbound|5432|v1|db.internal' }, routeName: 'VirtualService/default/db.tcp.0' });
    expect(high).toMatchObject({ kind: 'cluster', cluster: { name: 'outbound|5432|v2|db.internal' } });
  });

  it('a VIP without routes: the service cluster; an endpoint address: its service', () => {
    expect(decideOutboundL4(snap, { dst: { address: '10.96.0.6', port: 6379 } }, SELF, 0.5)).toMatchObject({ kind: 'cluster', cluster: { name: 'outbound|6379||cache.internal' }, routeName: undefined });
    expect(decideOutboundL4(snap, { dst: { address: '10.0.0.7', port: 6379 } }, SELF, 0.5)).toMatchObject({ kind: 'cluster', cluster: { name: 'outbound|6379||cache.internal' } });
  });

  it('a tls[] route by the ClientHello server name; a route to a missing subset is NC', () => {
    expect(decideOutboundL4(snap, { dst: { address: '203.0.113.9', port: 443 }, sni: 'api.example.com' }, SELF, 0.5)).toMatchObject({ kind: 'cluster', cluster: { name: 'outbound|6379||cache.internal' }, routeName: 'VirtualService/default/ext.tls.0' });
    expect(decideOutboundL4(snap, { dst: { address: '203.0.113.9', port: 443 }, sni: 'broken.example.com' }, SELF, 0.5)).toEqual({ kind: 'no-cluster', routeName: 'VirtualService/default/ext.tls.1', host: '*.example.com' });
    // A name the routes do not match: the resolution NONE ServiceEntry's cluster, passed through to the address.
    expect(decideOutboundL4(snap, { dst: { address: '203.0.113.9', port: 443 }, sni: 'other.example.com' }, SELF, 0.5)).toMatchObject({ kind: 'passthrough', cluster: { name: 'outbound|443||*.example.com' } });
  });

  it('a CONNECT host name names the service', () => {
    expect(decideOutboundL4(snap, { dst: { address: 'cache.internal', port: 6379 }, connectHost: 'cache.internal' }, SELF, 0.5)).toMatchObject({ kind: 'cluster', cluster: { name: 'outbound|6379||cache.internal' } });
  });

  it('an address in a ServiceEntry CIDR: that NONE service, passed through', () => {
    expect(decideOutboundL4(snap, { dst: { address: '192.0.2.44', port: 7000 } }, SELF, 0.5)).toMatchObject({ kind: 'passthrough', cluster: { name: 'outbound|7000||range.internal' } });
  });

  it('an unknown destination: passthrough under ALLOW_ANY, BlackHoleCluster under REGISTRY_ONLY', () => {
    expect(decideOutboundL4(snap, { dst: { address: '198.51.100.1', port: 9999 } }, SELF, 0.5)).toEqual({ kind: 'passthrough', cluster: undefined });
    expect(decideOutboundL4(snapshot('REGISTRY_ONLY'), { dst: { address: '198.51.100.1', port: 9999 } }, SELF, 0.5)).toEqual({ kind: 'blackhole' });
    // A registry service stays reachable under REGISTRY_ONLY.
    expect(decideOutboundL4(snapshot('REGISTRY_ONLY'), { dst: { address: '10.96.0.6', port: 6379 } }, SELF, 0.5).kind).toBe('cluster');
  });

  it('never one of the proxy ports on a local address (loopback, the pod, any), whatever the policy', () => {
    for (const address of ['127.0.0.1', '127.0.0.53', 'localhost', '::1', '::ffff:127.0.0.1', '10.1.2.3', 'fd00::3', '0.0.0.0']) {
      expect({ address, d: decideOutboundL4(snap, { dst: { address, port: 15000 } }, SELF, 0.5, OWN) }).toEqual({ address, d: { kind: 'own-port' } });
    }
    // Another host's 15000, or our address on another port, is ordinary traffic.
    expect(decideOutboundL4(snap, { dst: { address: '198.51.100.1', port: 15000 } }, SELF, 0.5, OWN).kind).toBe('passthrough');
    expect(decideOutboundL4(snap, { dst: { address: '127.0.0.1', port: 8080 } }, SELF, 0.5, OWN).kind).toBe('passthrough');
  });

  it('without a snapshot: passthrough (nothing known), still never a proxy port', () => {
    expect(decideOutboundL4(undefined, { dst: { address: '198.51.100.1', port: 80 } }, SELF, 0.5)).toEqual({ kind: 'passthrough', cluster: undefined });
    expect(isOwnEndpoint(OWN, '127.0.0.1', 15006)).toBe(true);
    expect(isOwnEndpoint(undefined, '127.0.0.1', 15006)).toBe(false);
  });

  it('an HTTP host in brackets is the same address (the outbound HTTP path asks with the URL host)', () => {
    expect(isOwnEndpoint(OWN, '[fd00::3]', 15090)).toBe(true);
    expect(isOwnEndpoint(OWN, '[FD00::3]', 15090)).toBe(true);
    expect(isOwnEndpoint(OWN, '[::1]', 15000)).toBe(true);
    expect(isOwnEndpoint(OWN, '[fd00::9]', 15090)).toBe(false);
  });
});
