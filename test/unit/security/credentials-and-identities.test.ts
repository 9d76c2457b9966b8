// DestinationRule credentialName is a Secret's name, never a path: validation names the field, and the connector
// refuses it again at runtime. `remora validate` warns about ServiceEntry endpoints mTLS would be refused to (no known
// identity). Pure apart from the connector, which fails before opening anything.
import { describe, expect, it } from 'vitest';
import { parseDocuments } from '../../../src/config/parse.js';
import { validateResources } from '../../../src/config/validate.js';
import { credentialDir, isSecretName } from '../../../src/security/credential-name.js';
import { ClusterManager } from '../../../src/upstream/cluster-manager.js';
import { compileClusterPolicy } from '../../../src/upstream/policy.js';
import type { ClusterDef } from '../../../src/model.js';

const dr = (name: string, cred: string): string => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ${name}, namespace: default}
spec:
  host: ${name}.example.com
  trafficPolicy: {tls: {mode: MUTUAL, credentialName: "${cred}"}}
`;

function problems(yaml: string): string[] {
  const { resources, errors } = parseDocuments(yaml, 'x.yaml');
  expect(errors).toEqual([]);
  return validateResources(resources).map((e) => `${e.line} ${e.object} ${e.field} ${e.severity ?? 'error'}: ${e.message}`);
}

describe('credentialName', () => {
  it('a Secret name is accepted; a path, "..", "/" or uppercase is not', () => {
    for (const ok of ['app-cred', 'a.b-c', 'x'.repeat(253)]) expect(isSecretName(ok)).toBe(true);
    for (const bad of ['../etc', 'a/b', '/etc/ssl', 'a..b', '..', '.', 'App', '', 'x'.repeat(254), 'a\u0000b']) expect(isSecretName(bad)).toBe(false);
    expect(credentialDir('/etc/remora/credentials', 'app-cred')).toBe('/etc/remora/credentials/app-cred');
    expect(() => credentialDir('/etc/remora/credentials', '../../root/.ssh')).toThrow(/not a Secret name/);
  });

  it('validation: the field path and the reason', () => {
    expect(problems([dr('a', '../../etc/ssl'), dr('b', 'ns/name'), dr('c', 'good-name')].join('---\n'))).toEqual([
      '6 DestinationRule/default/a spec.trafficPolicy.tls.credentialName error: "../../etc/ssl" is not a Secret name (lowercase letters, digits, "-" and "."; no "/" and no "..")',
      '13 DestinationRule/default/b spec.trafficPolicy.tls.credentialName error: "ns/name" is not a Secret name (lowercase letters, digits, "-" and "."; no "/" and no "..")',
    ]);
  });

  it('runtime: a connector for such a name fails before opening anything (a config that skipped validation)', () => {
    const clusters = new ClusterManager(Math.random, () => 0, { keepAliveMs: 1000, headersTimeoutMs: 0 });
    const policy = compileClusterPolicy({ dr: { tls: { mode: 'MUTUAL', credentialName: '../../root' } } }, 443);
    const ep = { key: '127.0.0.1:1', address: '127.0.0.1', port: 1, labels: {}, weight: 1 };
    const def: ClusterDef = { name: 'outbound|443||x', host: 'x.example.com', port: 443, subset: '', policy, endpoints: [ep], resolution: 'STATIC', protocol: 'tcp' };
    const connect = clusters.tcpConnector(def, ep)!;
    expect(() => connect('127.0.0.1', 1)).toThrow(/TLS files of outbound\|443\|\|x: credentialName "..\/..\/root" is not a Secret name/);
  });
});

describe('remora validate: mTLS endpoints with no known identity', () => {
  const se = (extra: string, endpoints: string): string => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cart, namespace: shop}
spec:
  hosts: [cart.shop.svc.cluster.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC${extra}
  endpoints: ${endpoints}
`;
  const warnings = (yaml: string): string[] => problems(yaml).filter((p) => p.includes(' warning: '));

  it('auto mTLS (tlsMode=istio) without serviceAccount: warned at the endpoint; with one, or subjectAltNames, not', () => {
    expect(warnings(se('', '[{address: 10.0.0.1, labels: {security.istio.io/tlsMode: istio}}, {address: 10.0.0.2}, {address: 10.0.0.3, serviceAccount: cart, labels: {security.istio.io/tlsMode: istio}}]'))).toEqual([
      '8 ServiceEntry/shop/cart spec.endpoints[0] warning: no identity is known for the server of this endpoint (auto mTLS: the endpoint is labelled security.istio.io/tlsMode=istio): mTLS connections to it are refused (503 UF); set its serviceAccount, or subjectAltNames on the ServiceEntry or the DestinationRule',
    ]);
    expect(warnings(se('\n  subjectAltNames: ["spiffe://cluster.local/ns/shop/sa/cart"]', '[{address: 10.0.0.1, labels: {security.istio.io/tlsMode: istio}}]'))).toEqual([]);
  });

  it('a DestinationRule ISTIO_MUTUAL without subjectAltNames: every endpoint without an account; with subjectAltNames: none', () => {
    const rule = (tls: string): string => `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cart, namespace: web}
spec: {host: cart.shop.svc.cluster.local, trafficPolicy: {tls: ${tls}}}
`;
    expect(warnings(se('', '[{address: 10.0.0.2}]') + rule('{mode: ISTIO_MUTUAL}'))).toEqual([
      '8 ServiceEntry/shop/cart spec.endpoints[0] warning: no identity is known for the server of this endpoint (DestinationRule web/cart sets ISTIO_MUTUAL): mTLS connections to it are refused (503 UF); set its serviceAccount, or subjectAltNames on the ServiceEntry or the DestinationRule',
    ]);
    expect(warnings(se('', '[{address: 10.0.0.2}]') + rule('{mode: ISTIO_MUTUAL, subjectAltNames: ["spiffe://cluster.local/ns/shop/sa/cart"]}'))).toEqual([]);
    expect(warnings(se('', '[{address: 10.0.0.2, labels: {security.istio.io/tlsMode: istio}}]') + rule('{mode: DISABLE}'))).toEqual([]);
  });
});
