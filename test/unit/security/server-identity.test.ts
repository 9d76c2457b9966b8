// The identities outbound mTLS expects from a destination's servers, from the registry: a ServiceEntry endpoint's
// serviceAccount (an account of the entry's namespace), a selected WorkloadEntry's (of its own namespace), the
// entry's subjectAltNames, and DestinationRule subjectAltNames over all of them. Pure: compile, then serverIdentities.
import { describe, expect, it } from 'vitest';
import { parseDocuments } from '../../../src/config/parse.js';
import { compile } from '../../../src/config/compile.js';
import { serverIdentities } from '../../../src/security/spiffe.js';
import { explainRequest, formatExplanation } from '../../../src/routing/explain.js';

const YAML = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cart, namespace: shop}
spec:
  hosts: [cart.shop.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 10.0.0.1, serviceAccount: cart, labels: {security.istio.io/tlsMode: istio}}
  - {address: 10.0.0.2, labels: {security.istio.io/tlsMode: istio}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: legacy, namespace: shop}
spec:
  hosts: [legacy.shop.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  subjectAltNames: ["spiffe://cluster.local/ns/shop/sa/legacy"]
  workloadSelector: {labels: {app: legacy}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-1, namespace: shop}
spec: {address: 10.0.1.1, labels: {app: legacy}, serviceAccount: legacy-vm}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: pinned, namespace: shop}
spec:
  hosts: [pinned.shop.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.2.1, serviceAccount: pinned}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: pinned, namespace: shop}
spec:
  host: pinned.shop.svc.cluster.local
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL, subjectAltNames: ["spiffe://cluster.local/ns/shop/sa/only-this"]}}
`;

describe('expected server identities from the registry', () => {
  const { resources, errors } = parseDocuments(YAML, 'ids.yaml');
  const snap = compile(resources, { namespace: 'web', clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY' });
  const td = new Set(['cluster.local']);
  const expected = (cluster: string): string[][] => {
    const def = snap.clusters.get(cluster)!;
    return def.endpoints.map((ep) => serverIdentities(def.policy.subjectAltNames, def.serviceSubjectAltNames, ep.identity, 'cluster.local', td));
  };

  it('an inline endpoint: its serviceAccount in the entry\'s namespace; without one, nothing (refused)', () => {
    expect(errors).toEqual([]);
    expect(expected('outbound|80||cart.shop.svc.cluster.local')).toEqual([['spiffe://cluster.local/ns/shop/sa/cart'], []]);
  });

  it('a selected WorkloadEntry: its own account, beside the entry\'s subjectAltNames', () => {
    expect(expected('outbound|80||legacy.shop.svc.cluster.local')).toEqual([['spiffe://cluster.local/ns/shop/sa/legacy', 'spiffe://cluster.local/ns/shop/sa/legacy-vm']]);
  });

  it('DestinationRule subjectAltNames replace everything the registry knows', () => {
    expect(expected('outbound|80||pinned.shop.svc.cluster.local')).toEqual([['spiffe://cluster.local/ns/shop/sa/only-this']]);
  });

  it('remora explain says which identity each endpoint must present, or that it is refused', () => {
    const text = formatExplanation(explainRequest(snap, { method: 'GET', url: 'http://cart.shop.svc.cluster.local/', headers: {} }));
    expect(text).toContain('mTLS 10.0.0.1:80: auto mTLS, the server must present spiffe://<td>/ns/shop/sa/cart\n');
    expect(text).toContain("mTLS 10.0.0.2:80: auto mTLS, no identity is known for it: refused (503 UF); set subjectAltNames or the endpoint's serviceAccount\n");
    const pinned = formatExplanation(explainRequest(snap, { method: 'GET', url: 'http://pinned.shop.svc.cluster.local/', headers: {} }));
    expect(pinned).toContain('mTLS 10.0.2.1:80: ISTIO_MUTUAL, the server must present spiffe://cluster.local/ns/shop/sa/only-this\n');
  });
});
