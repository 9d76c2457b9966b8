/** Istio AuthorizationPolicy semantics: applicability, CUSTOM/DENY/ALLOW order, rule fields, when conditions, and the TCP (L4) semantics. */
import { describe, expect, it } from 'vitest';
import { compileAuthorizationPolicies, stringMatch, type AuthorizationPolicyLike, type AuthzConnection, type AuthzRequest } from '../../../src/authz/authorization-policy.js';

const ap = (name: string, spec: Record<string, unknown>, namespace = 'shop'): AuthorizationPolicyLike => ({ metadata: { name, namespace }, spec });
const WORKLOAD = { namespace: 'shop', labels: { app: 'reviews', version: 'v1' } };
const req = (over: Partial<AuthzRequest> = {}): AuthzRequest => ({
  sourceIp: '10.0.0.5',
  sourceNamespace: 'web',
  method: 'GET',
  path: '/api/items?x=1',
  host: 'reviews.shop.svc.cluster.local:9080',
  port: 9080,
  headers: { 'x-user': 'alice' },
  ...over,
});

const JWT = { principal: 'https://issuer.example/alice', audiences: ['cart', 'web'], presenter: 'web-app', claims: { sub: 'alice', groups: ['users', 'admins'], realm: { role: 'owner' } } };

interface Case {
  name: string;
  policies: AuthorizationPolicyLike[];
  request?: Partial<AuthzRequest>;
  allowed: boolean;
  details?: string;
}

const allowGet = ap('allow-get', { action: 'ALLOW', rules: [{ to: [{ operation: { methods: ['GET'] } }] }] });
const denyAdmin = ap('deny-admin', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] });

const cases: Case[] = [
  { name: 'no policy: allowed', policies: [], allowed: true },
  { name: 'ALLOW matching', policies: [allowGet], allowed: true },
  { name: 'ALLOW present, not matching: denied with [none]', policies: [allowGet], request: { method: 'POST' }, allowed: false, details: 'rbac_access_denied_matched_policy[none]' },
  { name: 'allow-nothing (empty spec) denies all', policies: [ap('allow-nothing', {})], allowed: false },
  { name: 'allow-all (one empty rule)', policies: [ap('allow-all', { rules: [{}] })], request: { method: 'DELETE' }, allowed: true },
  { name: 'DENY with no rules never matches', policies: [ap('deny-none', { action: 'DENY' })], allowed: true },
  { name: 'DENY matching', policies: [denyAdmin], request: { path: '/admin/users' }, allowed: false, details: 'rbac_access_denied_matched_policy[ns[shop]-policy[deny-admin]-rule[0]]' },
  { name: 'DENY beats ALLOW', policies: [allowGet, denyAdmin], request: { path: '/admin' }, allowed: false },
  { name: 'DENY not matching, ALLOW matching', policies: [allowGet, denyAdmin], allowed: true },
  { name: 'AUDIT ignored', policies: [ap('audit', { action: 'AUDIT', rules: [{}] })], allowed: true },
  { name: 'CUSTOM unsupported: matching request denied (fail closed)', policies: [ap('ext', { action: 'CUSTOM', provider: { name: 'opa' }, rules: [{ to: [{ operation: { paths: ['/api/*'] } }] }] })], allowed: false },
  { name: 'CUSTOM unsupported: non-matching request passes', policies: [ap('ext', { action: 'CUSTOM', provider: { name: 'opa' }, rules: [{ to: [{ operation: { paths: ['/private/*'] } }] }] })], allowed: true },
  // Applicability
  { name: 'policy in another namespace does not apply', policies: [ap('allow-nothing', {}, 'web')], allowed: true },
  { name: 'root namespace policy applies mesh-wide', policies: [ap('allow-nothing', {}, 'istio-system')], allowed: false },
  { name: 'selector matching this workload', policies: [ap('sel', { selector: { matchLabels: { app: 'reviews' } }, action: 'DENY', rules: [{}] })], allowed: false },
  { name: 'selector not matching this workload', policies: [ap('sel', { selector: { matchLabels: { app: 'ratings' } }, action: 'DENY', rules: [{}] })], allowed: true },
  { name: 'targetRef policies are for gateways/waypoints', policies: [ap('tr', { targetRef: { kind: 'Gateway', name: 'gw' }, action: 'DENY', rules: [{}] })], allowed: true },
  // from.source
  { name: 'namespaces match', policies: [ap('a', { rules: [{ from: [{ source: { namespaces: ['web'] } }] }] })], allowed: true },
  { name: 'namespaces mismatch', policies: [ap('a', { rules: [{ from: [{ source: { namespaces: ['admin'] } }] }] })], allowed: false },
  { name: 'namespaces unknown peer never matches', policies: [ap('a', { rules: [{ from: [{ source: { namespaces: ['web'] } }] }] })], request: { sourceNamespace: undefined }, allowed: false },
  { name: 'notNamespaces', policies: [ap('d', { action: 'DENY', rules: [{ from: [{ source: { notNamespaces: ['shop'] } }] }] })], allowed: false },
  { name: 'ipBlocks match', policies: [ap('a', { rules: [{ from: [{ source: { ipBlocks: ['10.0.0.0/24'] } }] }] })], allowed: true },
  { name: 'ipBlocks bare IP mismatch', policies: [ap('a', { rules: [{ from: [{ source: { ipBlocks: ['10.0.0.6'] } }] }] })], allowed: false },
  { name: 'notIpBlocks', policies: [ap('a', { rules: [{ from: [{ source: { ipBlocks: ['10.0.0.0/16'], notIpBlocks: ['10.0.0.5'] } }] }] })], allowed: false },
  { name: 'remoteIpBlocks uses remoteIp', policies: [ap('a', { rules: [{ from: [{ source: { remoteIpBlocks: ['198.51.100.0/24'] } }] }] })], request: { remoteIp: '198.51.100.9' }, allowed: true },
  { name: 'principals never match without mTLS', policies: [ap('a', { rules: [{ from: [{ source: { principals: ['*'] } }] }] })], allowed: false },
  { name: 'principals match with a peer identity', policies: [ap('a', { rules: [{ from: [{ source: { principals: ['cluster.local/ns/web/sa/*'] } }] }] })], request: { sourcePrincipal: 'cluster.local/ns/web/sa/frontend' }, allowed: true },
  { name: 'notPrincipals on plaintext matches (as in Envoy)', policies: [ap('d', { action: 'DENY', rules: [{ from: [{ source: { notPrincipals: ['cluster.local/ns/web/sa/frontend'] } }] }] })], allowed: false },
  { name: 'requestPrincipals never match without a verified JWT', policies: [ap('a', { rules: [{ from: [{ source: { requestPrincipals: ['*'] } }] }] })], allowed: false },
  { name: 'requestPrincipals match the verified iss/sub', policies: [ap('a', { rules: [{ from: [{ source: { requestPrincipals: ['https://issuer.example/*'] } }] }] })], request: { requestAuth: JWT }, allowed: true },
  { name: 'requestPrincipals of another issuer', policies: [ap('a', { rules: [{ from: [{ source: { requestPrincipals: ['https://other/*'] } }] }] })], request: { requestAuth: JWT }, allowed: false },
  { name: 'DENY notRequestPrincipals ["*"] (require a JWT): a request without one is denied', policies: [ap('d', { action: 'DENY', rules: [{ from: [{ source: { notRequestPrincipals: ['*'] } }] }] })], allowed: false },
  { name: 'DENY notRequestPrincipals ["*"]: a request with a JWT passes', policies: [ap('d', { action: 'DENY', rules: [{ from: [{ source: { notRequestPrincipals: ['*'] } }] }] })], request: { requestAuth: JWT }, allowed: true },
  { name: 'when request.auth.claims[groups] (a list claim: any element)', policies: [ap('a', { rules: [{ when: [{ key: 'request.auth.claims[groups]', values: ['admins'] }] }] })], request: { requestAuth: JWT }, allowed: true },
  { name: 'when request.auth.claims[realm][role] (nested)', policies: [ap('a', { rules: [{ when: [{ key: 'request.auth.claims[realm][role]', values: ['owner'] }] }] })], request: { requestAuth: JWT }, allowed: true },
  { name: 'when request.auth.claims[groups] notValues', policies: [ap('d', { action: 'DENY', rules: [{ when: [{ key: 'request.auth.claims[groups]', notValues: ['admins'] }] }] })], request: { requestAuth: JWT }, allowed: true },
  { name: 'when request.auth.audiences', policies: [ap('a', { rules: [{ when: [{ key: 'request.auth.audiences', values: ['cart'] }] }] })], request: { requestAuth: JWT }, allowed: true },
  { name: 'when request.auth.presenter mismatch', policies: [ap('a', { rules: [{ when: [{ key: 'request.auth.presenter', values: ['cli'] }] }] })], request: { requestAuth: JWT }, allowed: false },
  { name: 'when request.auth.principal without a JWT', policies: [ap('a', { rules: [{ when: [{ key: 'request.auth.principal', values: ['*'] }] }] })], allowed: false },
  { name: 'from: fields AND', policies: [ap('a', { rules: [{ from: [{ source: { namespaces: ['web'], ipBlocks: ['192.168.0.0/16'] } }] }] })], allowed: false },
  { name: 'from: entries OR', policies: [ap('a', { rules: [{ from: [{ source: { namespaces: ['x'] } }, { source: { ipBlocks: ['10.0.0.5'] } }] }] })], allowed: true },
  // to.operation
  { name: 'paths exact (query ignored)', policies: [ap('a', { rules: [{ to: [{ operation: { paths: ['/api/items'] } }] }] })], allowed: true },
  { name: 'paths prefix*', policies: [ap('a', { rules: [{ to: [{ operation: { paths: ['/api/*'] } }] }] })], allowed: true },
  { name: 'paths *suffix', policies: [ap('a', { rules: [{ to: [{ operation: { paths: ['*/items'] } }] }] })], allowed: true },
  { name: 'paths mismatch', policies: [ap('a', { rules: [{ to: [{ operation: { paths: ['/api'] } }] }] })], allowed: false },
  { name: 'notPaths', policies: [ap('a', { rules: [{ to: [{ operation: { notPaths: ['/api/*'] } }] }] })], allowed: false },
  { name: 'methods are exact', policies: [ap('a', { rules: [{ to: [{ operation: { methods: ['get'] } }] }] })], allowed: false },
  { name: 'notMethods', policies: [ap('a', { rules: [{ to: [{ operation: { notMethods: ['DELETE'] } }] }] })], allowed: true },
  { name: 'ports (strings)', policies: [ap('a', { rules: [{ to: [{ operation: { ports: ['9080'] } }] }] })], allowed: true },
  { name: 'notPorts', policies: [ap('a', { rules: [{ to: [{ operation: { notPorts: ['9080'] } }] }] })], allowed: false },
  { name: 'hosts match without port, case-insensitive', policies: [ap('a', { rules: [{ to: [{ operation: { hosts: ['Reviews.shop.svc.cluster.local'] } }] }] })], allowed: true },
  { name: 'hosts suffix pattern', policies: [ap('a', { rules: [{ to: [{ operation: { hosts: ['*.svc.cluster.local'] } }] }] })], allowed: true },
  { name: 'notHosts', policies: [ap('a', { rules: [{ to: [{ operation: { notHosts: ['reviews*'] } }] }] })], allowed: false },
  { name: 'from AND to', policies: [ap('a', { rules: [{ from: [{ source: { namespaces: ['web'] } }], to: [{ operation: { methods: ['POST'] } }] }] })], allowed: false },
  { name: 'rules OR', policies: [ap('a', { rules: [{ to: [{ operation: { methods: ['POST'] } }] }, { to: [{ operation: { methods: ['GET'] } }] }] })], allowed: true },
  // when
  { name: 'when header values', policies: [ap('a', { rules: [{ when: [{ key: 'request.headers[X-User]', values: ['alice', 'bob'] }] }] })], allowed: true },
  { name: 'when header absent', policies: [ap('a', { rules: [{ when: [{ key: 'request.headers[x-missing]', values: ['*'] }] }] })], allowed: false },
  { name: 'when header notValues', policies: [ap('d', { action: 'DENY', rules: [{ when: [{ key: 'request.headers[x-user]', notValues: ['admin'] }] }] })], allowed: false },
  { name: 'when source.ip', policies: [ap('a', { rules: [{ when: [{ key: 'source.ip', values: ['10.0.0.0/8'] }] }] })], allowed: true },
  { name: 'when source.namespace', policies: [ap('a', { rules: [{ when: [{ key: 'source.namespace', values: ['shop'] }] }] })], allowed: false },
  { name: 'when destination.port', policies: [ap('a', { rules: [{ when: [{ key: 'destination.port', values: ['9080'] }] }] })], allowed: true },
  { name: 'when conditions AND', policies: [ap('a', { rules: [{ when: [{ key: 'destination.port', values: ['9080'] }, { key: 'source.namespace', values: ['shop'] }] }] })], allowed: false },
  { name: 'unsupported when key in ALLOW: rule never matches', policies: [ap('a', { rules: [{ when: [{ key: 'connection.sni', values: ['*'] }] }] })], allowed: false },
  { name: 'unsupported when key in DENY: dropped, rule matches more', policies: [ap('d', { action: 'DENY', rules: [{ when: [{ key: 'connection.sni', values: ['x'] }] }] })], allowed: false },
];

describe('compileAuthorizationPolicies', () => {
  it.each(cases)('$name', (c) => {
    const evaluate = compileAuthorizationPolicies(c.policies, WORKLOAD);
    const d = evaluate(req(c.request));
    expect(d.allowed).toBe(c.allowed);
    if (c.details !== undefined) expect(d.details).toBe(c.details);
    if (!d.allowed) expect(d.details).toMatch(/^rbac_access_denied_matched_policy\[.+\]$/);
  });

  it('reports the deciding policy, warnings for unsupported features, and whether anything applies', () => {
    const e = compileAuthorizationPolicies(
      [allowGet, ap('ext', { action: 'CUSTOM', rules: [{ to: [{ operation: { paths: ['/never'] } }], when: [{ key: 'experimental.envoy.filters.x', values: ['1'] }] }] })],
      WORKLOAD,
    );
    expect(e(req()).policy).toBe('shop/allow-get');
    expect(e.active).toBe(true);
    expect(e.warnings.join('\n')).toMatch(/shop\/ext: CUSTOM .* not supported/);
    expect(e.warnings.join('\n')).toMatch(/when key experimental\.envoy\.filters\.x is not supported/);
    expect(compileAuthorizationPolicies([ap('x', {}, 'other')], WORKLOAD).active).toBe(false);
  });

  it('a custom root namespace', () => {
    const e = compileAuthorizationPolicies([ap('allow-nothing', {}, 'mesh-root')], { ...WORKLOAD, rootNamespace: 'mesh-root' });
    expect(e(req()).allowed).toBe(false);
  });
});

/**
 * Istio's TCP semantics (istiod's RBAC builder for the TCP filter chain: model.Generate(forTCP) drops an HTTP-only
 * field from a DENY/CUSTOM rule, and errors out of an ALLOW rule, which is then skipped). The connection is from a
 * peer of namespace web, principal cluster.local/ns/web/sa/front, on port 9080.
 */
const conn = (over: Partial<AuthzConnection> = {}): AuthzConnection => ({
  sourceIp: '10.0.0.5', sourceNamespace: 'web', sourcePrincipal: 'cluster.local/ns/web/sa/front', port: 9080, ...over,
});

interface TcpCase { name: string; policies: AuthorizationPolicyLike[]; conn?: Partial<AuthzConnection>; allowed: boolean; details?: string }

const tcpCases: TcpCase[] = [
  { name: 'no policy: allowed', policies: [], allowed: true },
  { name: 'DENY with methods only: the field dropped, the rule denies every connection', policies: [ap('d', { action: 'DENY', rules: [{ to: [{ operation: { methods: ['DELETE'] } }] }] })], allowed: false, details: 'rbac_access_denied_matched_policy[ns[shop]-policy[d]-rule[0]]' },
  { name: 'DENY with paths and ports: ports still apply (other port allowed)', policies: [ap('d', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin'], ports: ['9090'] } }] }] })], allowed: true },
  { name: 'DENY with paths and ports: ports still apply (that port denied)', policies: [ap('d', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin'], ports: ['9080'] } }] }] })], allowed: false },
  { name: 'DENY with hosts from web: denied for web', policies: [ap('d', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['web'] } }], to: [{ operation: { hosts: ['admin.example'] } }] }] })], allowed: false },
  { name: 'DENY with hosts from web: other namespace allowed', policies: [ap('d', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['web'] } }], to: [{ operation: { hosts: ['admin.example'] } }] }] })], conn: { sourceNamespace: 'other', sourcePrincipal: 'cluster.local/ns/other/sa/x' }, allowed: true },
  { name: 'DENY with requestPrincipals: dropped, matches all', policies: [ap('d', { action: 'DENY', rules: [{ from: [{ source: { requestPrincipals: ['*'] } }] }] })], allowed: false },
  { name: 'DENY with a request.headers condition: dropped', policies: [ap('d', { action: 'DENY', rules: [{ when: [{ key: 'request.headers[x-user]', values: ['mallory'] }] }] })], allowed: false },
  { name: 'DENY with a request.auth.claims condition and ports: only ports', policies: [ap('d', { action: 'DENY', rules: [{ to: [{ operation: { ports: ['9080'] } }], when: [{ key: 'request.auth.claims[groups]', values: ['x'] }] }] })], allowed: false },
  { name: 'CUSTOM (fail closed) with paths: dropped, denies', policies: [ap('c', { action: 'CUSTOM', rules: [{ to: [{ operation: { paths: ['/x'] } }] }] })], allowed: false },
  { name: 'ALLOW with methods: skipped, nothing allowed', policies: [ap('a', { rules: [{ to: [{ operation: { methods: ['GET'] } }] }] })], allowed: false, details: 'rbac_access_denied_matched_policy[none]' },
  { name: 'ALLOW with paths in one of two from/to entries: the whole rule skipped', policies: [ap('a', { rules: [{ to: [{ operation: { ports: ['9080'] } }, { operation: { paths: ['/x'] } }] }] })], allowed: false },
  { name: 'ALLOW with a skipped rule and an L4 rule: the L4 rule allows', policies: [ap('a', { rules: [{ to: [{ operation: { methods: ['GET'] } }] }, { from: [{ source: { principals: ['cluster.local/ns/web/sa/front'] } }] }] })], allowed: true },
  { name: 'ALLOW on ports only', policies: [ap('a', { rules: [{ to: [{ operation: { ports: ['9080'] } }] }] })], allowed: true },
  { name: 'ALLOW on namespaces: a plaintext connection (no certificate) is not in any namespace', policies: [ap('a', { rules: [{ from: [{ source: { namespaces: ['web'] } }] }] })], conn: { sourceNamespace: undefined, sourcePrincipal: undefined }, allowed: false },
  { name: 'ALLOW on ipBlocks', policies: [ap('a', { rules: [{ from: [{ source: { ipBlocks: ['10.0.0.0/24'] } }] }] })], allowed: true },
  { name: 'ALLOW with request.auth.principal condition: skipped', policies: [ap('a', { rules: [{ when: [{ key: 'request.auth.principal', values: ['*'] }] }] })], allowed: false },
];

describe('compileAuthorizationPolicies: L4 connections (Istio TCP semantics)', () => {
  it.each(tcpCases)('$name', (c) => {
    const e = compileAuthorizationPolicies(c.policies, WORKLOAD);
    const cx = conn(c.conn);
    if (c.conn !== undefined && 'sourceNamespace' in c.conn && c.conn.sourceNamespace === undefined) delete cx.sourceNamespace;
    if (c.conn !== undefined && 'sourcePrincipal' in c.conn && c.conn.sourcePrincipal === undefined) delete cx.sourcePrincipal;
    const d = e.tcp(cx);
    expect(d.allowed).toBe(c.allowed);
    if (c.details !== undefined) expect(d.details).toBe(c.details);
  });

  it('one evaluator: the same policy decides HTTP with its HTTP fields and TCP without them', () => {
    const e = compileAuthorizationPolicies([ap('d', { action: 'DENY', rules: [{ to: [{ operation: { methods: ['DELETE'] } }] }] })], WORKLOAD);
    expect(e(req()).allowed).toBe(true);
    expect(e(req({ method: 'DELETE' })).allowed).toBe(false);
    expect(e.tcp(conn()).allowed).toBe(false);
    // Warned once (the HTTP compile), not twice.
    const w = compileAuthorizationPolicies([ap('a', { rules: [{ when: [{ key: 'connection.sni', values: ['x'] }] }] })], WORKLOAD).warnings;
    expect(w).toHaveLength(1);
  });
});

describe('stringMatch', () => {
  it.each([
    ['/a', '/a', true],
    ['/a', '/ab', false],
    ['/a*', '/abc', true],
    ['*.html', '/x/index.html', true],
    ['*', '', false],
    ['*', 'x', true],
  ])('%s vs %s → %s', (p, v, expected) => {
    expect(stringMatch(p, v)).toBe(expected);
  });
});
