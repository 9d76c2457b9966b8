/** InboundAuthorizer: which policies apply, peer IP → pod mapping (NetworkPolicy only), NetworkPolicy then AuthorizationPolicy (HTTP and L4), counters, log rate limit. */
import { describe, expect, it } from 'vitest';
import { InboundAuthorizer, normalizeIp, type PodLike } from '../../../src/proxy/inbound-authz.js';
import { parseDocuments } from '../../../src/config/parse.js';
import type { Resource } from '../../../src/config/resource.js';

const res = (apiVersion: string, kind: string, name: string, namespace: string, spec: Record<string, unknown>): Resource => {
  const { resources, errors } = parseDocuments(JSON.stringify({ apiVersion, kind, metadata: { name, namespace }, spec }), 'test.yaml');
  expect(errors).toEqual([]);
  return resources[0]!;
};
const np = (name: string, spec: Record<string, unknown>, ns = 'default') => res('networking.k8s.io/v1', 'NetworkPolicy', name, ns, spec);
const ap = (name: string, spec: Record<string, unknown>, ns = 'default') => res('security.istio.io/v1', 'AuthorizationPolicy', name, ns, spec);

const pod = (name: string, ns: string, ip: string, labels: Record<string, string>, phase = 'Running', ports: Array<{ name: string; containerPort: number }> = []): PodLike => ({
  metadata: { name, namespace: ns, labels },
  spec: { containers: [{ ports }] },
  status: { phase, podIP: ip, podIPs: [{ ip }] },
});

const PODS = [
  pod('productpage-1', 'default', '10.0.0.2', { app: 'productpage' }),
  pod('other-1', 'default', '10.0.0.3', { app: 'other' }),
  pod('web-1', 'web', '10.0.0.4', { app: 'productpage' }),
  pod('done-1', 'default', '10.0.0.5', { app: 'productpage' }, 'Succeeded'),
  pod('reviews-1', 'default', '10.0.0.9', { app: 'reviews' }, 'Running', [{ name: 'http', containerPort: 9080 }]),
];
const NS = new Map<string, Record<string, string>>([['default', { 'kubernetes.io/metadata.name': 'default' }], ['web', { 'kubernetes.io/metadata.name': 'web', team: 'web' }]]);
const REQ = { method: 'GET', path: '/', host: 'reviews:9080', headers: {} };

const onlyProductpage = np('allow-productpage', {
  podSelector: { matchLabels: { app: 'reviews' } },
  ingress: [{ from: [{ podSelector: { matchLabels: { app: 'productpage' } } }] }],
});

function make(over: Partial<ConstructorParameters<typeof InboundAuthorizer>[0]> = {}) {
  const logs: Array<{ level: string; msg: string; fields?: Record<string, unknown> }> = [];
  let t = 0;
  const a = new InboundAuthorizer({
    namespace: 'default',
    labels: { app: 'reviews' },
    podName: 'reviews-1',
    log: (level, msg, fields) => logs.push({ level, msg, ...(fields ? { fields } : {}) }),
    now: () => t,
    ...over,
  });
  return { a, logs, advance: (ms: number) => { t += ms; } };
}

describe('InboundAuthorizer', () => {
  it('is off, allows everything and counts nothing when no policy selects this workload', () => {
    const { a } = make();
    a.update({ resources: [np('for-ratings', { podSelector: { matchLabels: { app: 'ratings' } } }), np('other-ns', { podSelector: {} }, 'web'), ap('other-ns', {}, 'web')], pods: PODS, namespaceLabels: NS });
    expect(a.enabled).toBe(false);
    expect(a.check({ ip: '10.0.0.3', port: 9080 }, REQ)).toEqual({ allowed: true });
    expect(a.allowed()).toBe(0);
    expect(a.denied()).toBe(0);
  });

  it('NetworkPolicy: the selected pod is allowed, another pod and an unknown IP are denied with Envoy RBAC details', () => {
    const { a } = make();
    a.update({ resources: [onlyProductpage], pods: PODS, namespaceLabels: NS });
    expect(a.enabled).toBe(true);
    expect(a.policies).toEqual(['NetworkPolicy/default/allow-productpage']);
    expect(a.check({ ip: '10.0.0.2', port: 9080 }, REQ)).toEqual({ allowed: true });
    expect(a.check({ ip: '::ffff:10.0.0.2', port: 9080 }, REQ)).toEqual({ allowed: true });
    const denied = { allowed: false, status: 403, body: 'RBAC: access denied', details: 'rbac_access_denied_matched_policy[none]', policy: 'default/allow-productpage' };
    expect(a.check({ ip: '10.0.0.3', port: 9080 }, REQ)).toEqual(denied);
    expect(a.check({ ip: '192.168.1.1', port: 9080 }, REQ)).toEqual(denied);
    // Same labels in another namespace: a bare podSelector only matches the policy's namespace.
    expect(a.check({ ip: '10.0.0.4', port: 9080 }, REQ)).toEqual(denied);
    // A Succeeded pod's IP is not mapped to it (it may be reused by a new pod).
    expect(a.check({ ip: '10.0.0.5', port: 9080 }, REQ)).toEqual(denied);
    expect(a.allowed()).toBe(2);
    expect(a.denied()).toBe(4);
  });

  it('pods and namespace labels can be updated without resources (the Kubernetes change event)', () => {
    const { a } = make();
    a.update({ resources: [np('from-team-web', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'web' } } }] }] })], pods: [], namespaceLabels: new Map() });
    expect(a.check({ ip: '10.0.0.4', port: 9080 }, REQ).allowed).toBe(false);
    a.update({ pods: PODS });
    expect(a.check({ ip: '10.0.0.4', port: 9080 }, REQ).allowed).toBe(false); // namespace `web` has no team label yet
    a.update({ namespaceLabels: NS });
    expect(a.check({ ip: '10.0.0.4', port: 9080 }, REQ).allowed).toBe(true);
  });

  it('samePolicies (a snapshot that changed only routing kinds) keeps the compiled policies; a later pod event recompiles from the new list', () => {
    const { a } = make();
    const vs = res('networking.istio.io/v1', 'VirtualService', 'r', 'default', { hosts: ['r'], http: [{ route: [{ destination: { host: 'r' } }] }] });
    a.update({ resources: [onlyProductpage, vs], pods: PODS, namespaceLabels: NS });
    expect(a.policies).toEqual(['NetworkPolicy/default/allow-productpage']);
    const policies = a.policies;
    const vs2 = res('networking.istio.io/v1', 'VirtualService', 'r', 'default', { hosts: ['r'], http: [{ route: [{ destination: { host: 'r2' } }] }] });
    a.update({ resources: [onlyProductpage, vs2], samePolicies: true });
    expect(a.policies).toBe(policies); // not compiled again
    expect(a.check({ ip: '10.0.0.3', port: 9080 }, REQ).allowed).toBe(false);
    expect(a.check({ ip: '10.0.0.2', port: 9080 }, REQ).allowed).toBe(true);
    // The list given with samePolicies is the one a later recompile reads.
    a.update({ resources: [vs2], samePolicies: true });
    expect(a.enabled).toBe(true);
    a.update({ pods: PODS });
    expect(a.enabled).toBe(false);
    expect(a.check({ ip: '10.0.0.3', port: 9080 }, REQ).allowed).toBe(true);
  });

  it('named NetworkPolicy ports resolve through this pod\'s container ports (found by pod name)', () => {
    const policy = np('http-only', { podSelector: {}, ingress: [{ ports: [{ port: 'http' }] }] });
    const { a } = make();
    a.update({ resources: [policy], pods: PODS, namespaceLabels: NS });
    expect(a.check({ ip: '10.0.0.3', port: 9080 }, REQ).allowed).toBe(true);
    expect(a.check({ ip: '10.0.0.3', port: 8080 }, REQ).allowed).toBe(false);
    const anonymous = make({ podName: undefined }).a;
    anonymous.update({ resources: [policy], pods: PODS, namespaceLabels: NS });
    expect(anonymous.check({ ip: '10.0.0.3', port: 9080 }, REQ).allowed).toBe(false);
  });

  it('an IP shared by pods of different identities maps to no pod', () => {
    const { a } = make();
    a.update({ resources: [onlyProductpage], pods: [...PODS, pod('node-agent', 'kube-system', '10.0.0.2', { app: 'agent' })], namespaceLabels: NS });
    expect(a.check({ ip: '10.0.0.2', port: 9080 }, REQ).allowed).toBe(false);
  });

  it('AuthorizationPolicy DENY on paths denies only those paths, with the rule in the details; namespaces come from the peer certificate only', () => {
    const { a } = make();
    a.update({
      resources: [
        ap('deny-admin', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] }),
        ap('mesh-deny-web', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['web'] } }], to: [{ operation: { methods: ['DELETE'] } }] }] }, 'istio-system'),
      ],
      pods: PODS,
      namespaceLabels: NS,
    });
    expect(a.check({ ip: '10.0.0.3', port: 9080 }, { ...REQ, path: '/admin/users?x=1' })).toEqual({
      allowed: false, status: 403, body: 'RBAC: access denied', details: 'rbac_access_denied_matched_policy[ns[default]-policy[deny-admin]-rule[0]]', policy: 'default/deny-admin',
    });
    expect(a.check({ ip: '10.0.0.3', port: 9080 }, { ...REQ, path: '/products' })).toEqual({ allowed: true });
    // The verified peer of namespace web is denied DELETE; the same namespace claimed by nothing but a plaintext
    // caller's IP (10.0.0.4 is web-1 in the pod watch) is not an identity: source.namespace is the certificate's.
    expect(a.check({ ip: '10.0.0.4', port: 9080, principal: 'cluster.local/ns/web/sa/default', namespace: 'web' }, { ...REQ, method: 'DELETE' }).allowed).toBe(false);
    expect(a.check({ ip: '10.0.0.4', port: 9080 }, { ...REQ, method: 'DELETE' }).allowed).toBe(true);
    expect(a.check({ ip: '10.0.0.3', port: 9080 }, { ...REQ, method: 'DELETE' }).allowed).toBe(true);
  });

  it('an ALLOW on namespaces is not met by a plaintext caller whose IP is a pod of that namespace (it was before)', () => {
    const { a } = make();
    a.update({ resources: [ap('allow-web', { rules: [{ from: [{ source: { namespaces: ['web'] } }] }] })], pods: PODS, namespaceLabels: NS });
    expect(a.check({ ip: '10.0.0.4', port: 9080 }, REQ)).toMatchObject({ allowed: false, details: 'rbac_access_denied_matched_policy[none]' });
    expect(a.check({ ip: '10.0.0.4', port: 9080, principal: 'cluster.local/ns/web/sa/default', namespace: 'web' }, REQ).allowed).toBe(true);
    // The same for L4 connections.
    expect(a.checkConnection({ ip: '10.0.0.4', port: 9080 }).allowed).toBe(false);
    expect(a.checkConnection({ ip: '10.0.0.4', port: 9080, principal: 'cluster.local/ns/web/sa/default', namespace: 'web' }).allowed).toBe(true);
  });

  it('L4 connections: Istio TCP semantics — a DENY with HTTP-only fields applies without them, an ALLOW with them never matches', () => {
    const { a } = make();
    a.update({ resources: [ap('deny-delete-from-web', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['web'] } }], to: [{ operation: { methods: ['DELETE'] } }] }] })] });
    const web = { ip: '10.0.0.4', port: 9080, principal: 'cluster.local/ns/web/sa/default', namespace: 'web' };
    // HTTP: only DELETE is denied. TCP: the methods field is dropped, every connection from web is denied.
    expect(a.check(web, REQ).allowed).toBe(true);
    expect(a.checkConnection(web)).toMatchObject({ allowed: false, details: 'rbac_access_denied_matched_policy[ns[default]-policy[deny-delete-from-web]-rule[0]]' });
    expect(a.checkConnection({ ...web, principal: 'cluster.local/ns/other/sa/x', namespace: 'other' }).allowed).toBe(true);
    a.update({ resources: [ap('allow-get', { rules: [{ to: [{ operation: { methods: ['GET'], ports: ['9080'] } }] }] })] });
    // HTTP GET is allowed; on TCP the ALLOW rule is skipped, so nothing is allowed.
    expect(a.check(web, REQ).allowed).toBe(true);
    expect(a.checkConnection(web)).toMatchObject({ allowed: false, details: 'rbac_access_denied_matched_policy[none]' });
  });

  it('ALLOW policies: a request matching none is denied with [none]; NetworkPolicy is evaluated first', () => {
    const { a } = make();
    a.update({ resources: [onlyProductpage, ap('allow-get', { rules: [{ to: [{ operation: { methods: ['GET'] } }] }] })], pods: PODS, namespaceLabels: NS });
    expect(a.check({ ip: '10.0.0.2', port: 9080 }, REQ).allowed).toBe(true);
    expect(a.check({ ip: '10.0.0.2', port: 9080 }, { ...REQ, method: 'POST' })).toMatchObject({ allowed: false, details: 'rbac_access_denied_matched_policy[none]' });
    expect(a.check({ ip: '10.0.0.3', port: 9080 }, REQ)).toMatchObject({ allowed: false, policy: 'default/allow-productpage' });
  });

  it('an AuthorizationPolicy whose selector does not pick this workload leaves it off', () => {
    const { a } = make();
    a.update({ resources: [ap('for-ratings', { selector: { matchLabels: { app: 'ratings' } } })], pods: PODS });
    expect(a.enabled).toBe(false);
  });

  it('turns off again when the policies go away; logs the transitions', () => {
    const { a, logs } = make();
    a.update({ resources: [onlyProductpage], pods: PODS, namespaceLabels: NS });
    a.update({ resources: [] });
    expect(a.enabled).toBe(false);
    expect(a.check({ ip: '10.0.0.3', port: 9080 }, REQ).allowed).toBe(true);
    expect(logs.map((l) => l.msg)).toEqual([
      'inbound authorization on',
      'inbound authorization off: no NetworkPolicy or AuthorizationPolicy selects this workload',
    ]);
  });

  it('logs a denial once per (policy, peer) per interval', () => {
    const { a, logs, advance } = make({ logIntervalMs: 60_000 });
    a.update({ resources: [onlyProductpage, ap('deny-admin', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin'] } }] }] })], pods: PODS, namespaceLabels: NS });
    logs.length = 0;
    for (let i = 0; i < 5; i++) a.check({ ip: '10.0.0.3', port: 9080 }, REQ);
    a.check({ ip: '10.0.0.6', port: 9080 }, REQ);
    a.check({ ip: '10.0.0.2', port: 9080 }, { ...REQ, path: '/admin' });
    advance(59_999);
    a.check({ ip: '10.0.0.3', port: 9080 }, REQ);
    advance(1);
    a.check({ ip: '10.0.0.3', port: 9080 }, REQ);
    expect(logs).toEqual([
      { level: 'warn', msg: 'inbound request denied by NetworkPolicy default/allow-productpage', fields: { peer: '10.0.0.3', details: 'rbac_access_denied_matched_policy[none]' } },
      { level: 'warn', msg: 'inbound request denied by NetworkPolicy default/allow-productpage', fields: { peer: '10.0.0.6', details: 'rbac_access_denied_matched_policy[none]' } },
      { level: 'warn', msg: 'inbound request denied by AuthorizationPolicy default/deny-admin', fields: { peer: '10.0.0.2', details: 'rbac_access_denied_matched_policy[ns[default]-policy[deny-admin]-rule[0]]' } },
      { level: 'warn', msg: 'inbound request denied by NetworkPolicy default/allow-productpage', fields: { peer: '10.0.0.3', details: 'rbac_access_denied_matched_policy[none]' } },
    ]);
    expect(a.denied()).toBe(9);
  });

  it('logs evaluator warnings once per distinct set', () => {
    const { a, logs } = make();
    const custom = ap('ext', { action: 'CUSTOM', provider: { name: 'opa' }, rules: [{}] });
    a.update({ resources: [custom], pods: PODS });
    a.update({ pods: PODS });
    expect(logs.filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual([
      'AuthorizationPolicy default/ext: CUSTOM (ext-authz) is not supported: requests matching its rules are denied (fail closed)',
    ]);
  });

  it('normalizeIp unwraps IPv4-mapped IPv6 only', () => {
    expect(normalizeIp('::ffff:127.0.0.2')).toBe('127.0.0.2');
    expect(normalizeIp('::FFFF:10.1.2.3')).toBe('10.1.2.3');
    expect(normalizeIp('fd00::1')).toBe('fd00::1');
  });
});
