/** Kubernetes Service/EndpointSlice/Pod → registry ServiceDef mapping. */
import { describe, expect, it } from 'vitest';
import type { V1EndpointSlice, V1Pod, V1Service } from '@kubernetes/client-node';
import { protocolOf, servicesFromKubernetes } from '../../../src/discovery/k8s-mapping.js';
import { endpointSlice, pod, service } from '../../support/k8s-objects.js';

const opts = { clusterDomain: 'cluster.local' };
const map = (services: unknown[], endpointSlices: unknown[] = [], pods: unknown[] = []) =>
  servicesFromKubernetes(
    { services: services as V1Service[], endpointSlices: endpointSlices as V1EndpointSlice[], pods: pods as V1Pod[] },
    opts,
  );

describe('servicesFromKubernetes', () => {
  it('ClusterIP Service → FQDN host, ClusterIP address, numeric targetPort, ready endpoints with pod labels', () => {
    const out = map(
      [service('reviews', 'shop', [{ name: 'http', port: 9080, targetPort: 8080 }], { clusterIP: '10.96.0.15' })],
      [endpointSlice('reviews-1', 'shop', 'reviews', [{ ip: '10.0.0.2', pod: 'reviews-v1' }, { ip: '10.0.0.3', pod: 'reviews-v2' }], [{ name: 'http', port: 8080 }])],
      [{ ...pod('reviews-v1', 'shop', '10.0.0.2', { app: 'reviews', version: 'v1' }), spec: { serviceAccountName: 'bookinfo-reviews', containers: [] } }, pod('reviews-v2', 'shop', '10.0.0.3', { app: 'reviews', version: 'v2' })],
    );
    expect(out).toEqual([
      {
        hostname: 'reviews.shop.svc.cluster.local',
        namespace: 'shop',
        ports: [{ number: 9080, name: 'http', protocol: 'http', targetPort: 8080 }],
        resolution: 'STATIC',
        workloads: [
          // The pod's service account is the identity its sidecar must present; a pod that names none runs as default.
          { address: '10.0.0.2', ports: { http: 8080 }, labels: { app: 'reviews', version: 'v1' }, weight: 1, name: 'reviews-v1', identity: { namespace: 'shop', serviceAccount: 'bookinfo-reviews' } },
          { address: '10.0.0.3', ports: { http: 8080 }, labels: { app: 'reviews', version: 'v2' }, weight: 1, name: 'reviews-v2', identity: { namespace: 'shop', serviceAccount: 'default' } },
        ],
        addresses: ['10.96.0.15'],
        location: 'MESH_INTERNAL',
        origin: 'Service/shop/reviews',
      },
    ]);
  });

  it('named targetPort resolves per endpoint from its EndpointSlice (pods may use different numbers)', () => {
    const out = map(
      [service('api', 'default', [{ name: 'http-api', port: 80, targetPort: 'web' }], { clusterIP: '10.96.0.1' })],
      [
        endpointSlice('api-a', 'default', 'api', [{ ip: '10.0.0.2', pod: 'a' }], [{ name: 'http-api', port: 8080 }]),
        endpointSlice('api-b', 'default', 'api', [{ ip: '10.0.0.3', pod: 'b' }], [{ name: 'http-api', port: 9090 }]),
      ],
    );
    const [svc] = out;
    expect(svc!.ports[0]).toEqual({ number: 80, name: 'http-api', protocol: 'http' }); // no service-wide number
    expect(svc!.workloads.map((w) => [w.address, w.ports['http-api']])).toEqual([
      ['10.0.0.2', 8080],
      ['10.0.0.3', 9090],
    ]);
  });

  it('targetPort defaults to port; unnamed single port maps under the empty name', () => {
    const [svc] = map(
      [service('x', 'default', [{ port: 80 }], { clusterIP: '10.96.0.2' })],
      [endpointSlice('x-1', 'default', 'x', [{ ip: '10.0.0.9' }], [{ port: 80 }])],
    );
    expect(svc!.ports).toEqual([{ number: 80, name: '', protocol: '', targetPort: 80 }]);
    expect(svc!.workloads[0]).toEqual({ address: '10.0.0.9', ports: { '': 80 }, labels: {}, weight: 1, name: '10.0.0.9' });
  });

  it.each([
    ['ready', { ready: true }, true],
    ['ready unknown (nil): treated as ready, as the API says', { ready: null }, true],
    ['not ready', { ready: false }, false],
    ['terminating', { ready: false, terminating: true }, false],
    ['terminating but ready (hand-made slice)', { ready: true, terminating: true }, false],
  ])('endpoint %s → included=%s', (_name, cond, included) => {
    const [svc] = map(
      [service('x', 'default', [{ name: 'http', port: 80 }], { clusterIP: '10.96.0.2' })],
      [endpointSlice('x-1', 'default', 'x', [{ ip: '10.0.0.9', ...cond }], [{ name: 'http', port: 80 }])],
    );
    expect(svc!.workloads.length).toBe(included ? 1 : 0);
  });

  it('endpoints without a Pod targetRef, or whose Pod is unknown, get no labels', () => {
    const [svc] = map(
      [service('x', 'default', [{ name: 'http', port: 80 }], { clusterIP: '10.96.0.2' })],
      [endpointSlice('x-1', 'default', 'x', [{ ip: '10.0.0.1' }, { ip: '10.0.0.2', pod: 'gone' }], [{ name: 'http', port: 80 }])],
      [pod('gone', 'other-ns', '10.0.0.2', { app: 'wrong-namespace' })],
    );
    expect(svc!.workloads.map((w) => w.labels)).toEqual([{}, {}]);
    // ... and no known identity (outbound mTLS to them is refused unless subjectAltNames name one).
    expect(svc!.workloads.map((w) => w.identity)).toEqual([undefined, undefined]);
  });

  it('slices of other Services or namespaces are ignored; duplicates across slices are merged', () => {
    const [svc] = map(
      [service('x', 'a', [{ name: 'http', port: 80 }], { clusterIP: '10.96.0.2' })],
      [
        endpointSlice('x-1', 'a', 'x', [{ ip: '10.0.0.1' }], [{ name: 'http', port: 80 }]),
        endpointSlice('x-2', 'a', 'x', [{ ip: '10.0.0.1' }], [{ name: 'http', port: 80 }]),
        endpointSlice('x-3', 'b', 'x', [{ ip: '10.0.0.5' }], [{ name: 'http', port: 80 }]),
        endpointSlice('y-1', 'a', 'y', [{ ip: '10.0.0.6' }], [{ name: 'http', port: 80 }]),
      ],
    );
    expect(svc!.workloads.map((w) => w.address)).toEqual(['10.0.0.1']);
  });

  it('dual-stack: prefers the IPv4 slices, keeps both ClusterIPs', () => {
    const [svc] = map(
      [service('x', 'default', [{ name: 'http', port: 80 }], { clusterIP: '10.96.0.2', clusterIPs: ['10.96.0.2', 'fd00::2'] })],
      [
        endpointSlice('x-6', 'default', 'x', [{ ip: 'fd00::10' }], [{ name: 'http', port: 80 }], 'IPv6'),
        endpointSlice('x-4', 'default', 'x', [{ ip: '10.0.0.10' }], [{ name: 'http', port: 80 }], 'IPv4'),
      ],
    );
    expect(svc!.addresses).toEqual(['10.96.0.2', 'fd00::2']);
    expect(svc!.workloads.map((w) => w.address)).toEqual(['10.0.0.10']);
    const [v6only] = map(
      [service('x', 'default', [{ name: 'http', port: 80 }], { clusterIP: 'fd00::2' })],
      [endpointSlice('x-6', 'default', 'x', [{ ip: 'fd00::10' }], [{ name: 'http', port: 80 }], 'IPv6')],
    );
    expect(v6only!.workloads.map((w) => w.address)).toEqual(['fd00::10']);
  });

  it('headless: no VIP, the host balances over pods, plus a per-pod host for each endpoint with a hostname', () => {
    const out = map(
      [service('db', 'data', [{ name: 'tcp-pg', port: 5432 }], { clusterIP: 'None' })],
      [
        endpointSlice(
          'db-1',
          'data',
          'db',
          [
            { ip: '10.0.1.1', pod: 'db-0', hostname: 'db-0' },
            { ip: '10.0.1.2', pod: 'db-1', hostname: 'db-1' },
            { ip: '10.0.1.3', pod: 'db-2', hostname: 'db-2', ready: false },
          ],
          [{ name: 'tcp-pg', port: 5432 }],
        ),
      ],
      [pod('db-0', 'data', '10.0.1.1', { app: 'db', role: 'primary' }), pod('db-1', 'data', '10.0.1.2', { app: 'db', role: 'replica' })],
    );
    expect(out.map((s) => [s.hostname, s.addresses, s.workloads.map((w) => w.address)])).toEqual([
      ['db-0.db.data.svc.cluster.local', [], ['10.0.1.1']],
      ['db-1.db.data.svc.cluster.local', [], ['10.0.1.2']],
      ['db.data.svc.cluster.local', [], ['10.0.1.1', '10.0.1.2']],
    ]);
    expect(out[0]!.workloads[0]!.labels).toEqual({ app: 'db', role: 'primary' });
    expect(out.every((s) => s.origin === 'Service/data/db' && s.ports[0]!.protocol === 'tcp')).toBe(true);
  });

  it('ExternalName → DNS resolution to the external name, mesh-external, ports unchanged', () => {
    const [svc] = map([service('ext', 'default', [{ name: 'https', port: 443, targetPort: 8443 }], { type: 'ExternalName', externalName: 'api.example.com.' })]);
    expect(svc).toEqual({
      hostname: 'ext.default.svc.cluster.local',
      namespace: 'default',
      ports: [{ number: 443, name: 'https', protocol: 'https', targetPort: 443 }],
      resolution: 'DNS',
      workloads: [{ address: 'api.example.com', ports: {}, labels: {}, weight: 1 }],
      addresses: [],
      location: 'MESH_EXTERNAL',
      origin: 'Service/default/ext',
    });
  });

  it('NodePort and LoadBalancer behave as ClusterIP for in-mesh calls', () => {
    const out = map(
      [
        service('np', 'default', [{ name: 'http', port: 80, targetPort: 8080 }], { type: 'NodePort', clusterIP: '10.96.0.3' }),
        service('lb', 'default', [{ name: 'http', port: 80, targetPort: 8080 }], { type: 'LoadBalancer', clusterIP: '10.96.0.4' }),
      ],
      [endpointSlice('np-1', 'default', 'np', [{ ip: '10.0.0.1' }], [{ name: 'http', port: 8080 }])],
    );
    expect(out.map((s) => [s.hostname, s.addresses, s.resolution, s.workloads.length])).toEqual([
      ['lb.default.svc.cluster.local', ['10.96.0.4'], 'STATIC', 0],
      ['np.default.svc.cluster.local', ['10.96.0.3'], 'STATIC', 1],
    ]);
  });

  it('selectorless Service with a manually managed EndpointSlice', () => {
    const slice = endpointSlice('legacy-manual', 'default', 'legacy', [{ ip: '192.168.5.5' }], [{ name: 'http', port: 8000 }]);
    slice.metadata.labels['endpointslice.kubernetes.io/managed-by'] = 'staff';
    const [svc] = map([service('legacy', 'default', [{ name: 'http', port: 80, targetPort: 8000 }], { clusterIP: '10.96.0.9' })], [slice]);
    expect(svc!.workloads.map((w) => [w.address, w.ports.http])).toEqual([['192.168.5.5', 8000]]);
  });
});

describe('protocolOf (Istio protocol selection)', () => {
  it.each([
    [{ name: 'http' }, 'http'],
    [{ name: 'http-web' }, 'http'],
    [{ name: 'HTTP2-x' }, 'http2'],
    [{ name: 'grpc-api' }, 'grpc'],
    [{ name: 'grpc-web' }, 'grpc-web'],
    [{ name: 'grpc-web-x' }, 'grpc-web'],
    [{ name: 'tcp-db' }, 'tcp'],
    [{ name: 'tls-x' }, 'tls'],
    [{ name: 'https-admin' }, 'https'],
    [{ name: 'mongo-1' }, 'mongo'],
    [{ name: 'redis' }, 'redis'],
    [{ name: 'http2foo' }, ''],
    [{ name: 'web' }, ''],
    [{}, ''],
    [{ name: 'tcp-x', appProtocol: 'http' }, 'http'],
    [{ name: 'http', appProtocol: 'kubernetes.io/h2c' }, 'http2'],
    [{ appProtocol: 'kubernetes.io/ws' }, 'http'],
    [{ appProtocol: 'kubernetes.io/wss' }, 'https'],
    [{ appProtocol: 'grpc' }, 'grpc'],
    [{ appProtocol: 'example.com/custom' }, ''],
    [{ name: 'http', protocol: 'UDP' }, 'udp'],
  ])('%j → %s', (port, expected) => {
    expect(protocolOf(port)).toBe(expected);
  });
});
