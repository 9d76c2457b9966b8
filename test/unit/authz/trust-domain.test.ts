// Istio's trust domain aliases in AuthorizationPolicy: principals of the local trust domain, an alias, or
// cluster.local match in every one of them; wildcards and foreign trust domains are kept as written.
import { describe, expect, it } from 'vitest';
import { expandPrincipals, ruleWithTrustDomains } from '../../../src/authz/trust-domain.js';
import { compileAuthorizationPolicies } from '../../../src/authz/authorization-policy.js';

const TDS = ['new.td', 'old.td'];

describe('expandPrincipals', () => {
  it.each([
    ['new.td/ns/a/sa/b', ['new.td/ns/a/sa/b', 'old.td/ns/a/sa/b']],
    ['old.td/ns/a/sa/b', ['new.td/ns/a/sa/b', 'old.td/ns/a/sa/b']],
    ['cluster.local/ns/a/sa/b', ['new.td/ns/a/sa/b', 'old.td/ns/a/sa/b']],
    ['new.td/ns/a/*', ['new.td/ns/a/*', 'old.td/ns/a/*']],
    ['*', ['*']],
    ['*/ns/a/sa/b', ['*/ns/a/sa/b']],
    ['other.td/ns/a/sa/b', ['other.td/ns/a/sa/b']],
    ['noslash', ['noslash']],
  ])('%s → %j', (p, want) => {
    expect(expandPrincipals([p], TDS)).toEqual(want);
  });

  it('no trust domain known (no workload certificate): principals as written, duplicates collapsed otherwise', () => {
    expect(expandPrincipals(['cluster.local/ns/a/sa/b'], [])).toEqual(['cluster.local/ns/a/sa/b']);
    expect(expandPrincipals(['new.td/ns/a/sa/b', 'old.td/ns/a/sa/b'], TDS)).toEqual(['new.td/ns/a/sa/b', 'old.td/ns/a/sa/b']);
  });

  it('rules: from.source principals/notPrincipals and when source.principal are expanded, the rest untouched', () => {
    const rule = { from: [{ source: { principals: ['old.td/ns/a/sa/b'], notPrincipals: ['cluster.local/ns/x/sa/y'], namespaces: ['a'] } }], when: [{ key: 'source.principal', values: ['new.td/ns/a/sa/b'] }, { key: 'request.headers[x]', values: ['old.td/v'] }] };
    expect(ruleWithTrustDomains(rule, TDS)).toEqual({
      from: [{ source: { principals: ['new.td/ns/a/sa/b', 'old.td/ns/a/sa/b'], notPrincipals: ['new.td/ns/x/sa/y', 'old.td/ns/x/sa/y'], namespaces: ['a'] } }],
      when: [{ key: 'source.principal', values: ['new.td/ns/a/sa/b', 'old.td/ns/a/sa/b'] }, { key: 'request.headers[x]', values: ['old.td/v'] }],
    });
  });
});

describe('the evaluator with trust domains', () => {
  const policy = { metadata: { name: 'p', namespace: 'ns' }, spec: { rules: [{ from: [{ source: { principals: ['cluster.local/ns/a/sa/b'] } }] }] } };
  const req = (principal: string) => ({ sourceIp: '10.0.0.1', sourcePrincipal: principal, method: 'GET', path: '/', host: 'h', port: 80, headers: {} });

  it('a policy for cluster.local allows the identity in the local trust domain and its alias, not a foreign one', () => {
    const ev = compileAuthorizationPolicies([policy], { namespace: 'ns', labels: {}, trustDomains: TDS });
    expect(ev(req('new.td/ns/a/sa/b')).allowed).toBe(true);
    expect(ev(req('old.td/ns/a/sa/b')).allowed).toBe(true);
    expect(ev(req('evil.td/ns/a/sa/b')).allowed).toBe(false);
    expect(ev(req('new.td/ns/a/sa/c')).allowed).toBe(false);
  });

  it('without trust domains the principal matches as written', () => {
    const ev = compileAuthorizationPolicies([policy], { namespace: 'ns', labels: {} });
    expect(ev(req('cluster.local/ns/a/sa/b')).allowed).toBe(true);
    expect(ev(req('new.td/ns/a/sa/b')).allowed).toBe(false);
  });
});
