// PeerAuthentication resolution as istiod does it for one sidecar: levels, inheritance, oldest-wins, port overrides.
import { describe, expect, it } from 'vitest';
import { mtlsModeForPort, resolvePeerAuthentication, validatePeerAuthenticationSpec, type PeerAuthenticationLike } from '../../../src/security/peer-authentication.js';

const W = { namespace: 'foo', labels: { app: 'finance' }, rootNamespace: 'istio-system' };
const pa = (name: string, namespace: string, spec: Record<string, unknown>, creationTimestamp?: string): PeerAuthenticationLike => ({ metadata: { name, namespace, ...(creationTimestamp ? { creationTimestamp } : {}) }, spec });

describe('resolvePeerAuthentication', () => {
  it('no policy: PERMISSIVE', () => {
    expect(resolvePeerAuthentication([], W)).toEqual({ mode: 'PERMISSIVE', ports: new Map(), policies: [] });
  });

  it('mesh STRICT, namespace inherits (UNSET), workload PERMISSIVE wins', () => {
    const eff = resolvePeerAuthentication([pa('default', 'istio-system', { mtls: { mode: 'STRICT' } }), pa('default', 'foo', { mtls: { mode: 'UNSET' } })], W);
    expect(eff.mode).toBe('STRICT');
    const eff2 = resolvePeerAuthentication([pa('default', 'istio-system', { mtls: { mode: 'STRICT' } }), pa('fin', 'foo', { selector: { matchLabels: { app: 'finance' } }, mtls: { mode: 'PERMISSIVE' } })], W);
    expect(eff2.mode).toBe('PERMISSIVE');
    expect(eff2.policies).toEqual(['istio-system/default', 'foo/fin']);
  });

  it('namespace PERMISSIVE, the finance workload STRICT with port 8080 DISABLE (Istio docs example)', () => {
    const eff = resolvePeerAuthentication([
      pa('default', 'foo', { mtls: { mode: 'PERMISSIVE' } }),
      pa('finance', 'foo', { selector: { matchLabels: { app: 'finance' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { 8080: { mode: 'DISABLE' }, 9090: { mode: 'UNSET' } } }),
    ], W);
    expect(mtlsModeForPort(eff, 8080)).toBe('DISABLE');
    expect(mtlsModeForPort(eff, 9090)).toBe('STRICT');
    expect(mtlsModeForPort(eff, 80)).toBe('STRICT');
  });

  it('a workload policy with mode UNSET and a port override inherits the namespace mode elsewhere', () => {
    const eff = resolvePeerAuthentication([
      pa('default', 'foo', { mtls: { mode: 'STRICT' } }),
      pa('finance', 'foo', { selector: { matchLabels: { app: 'finance' } }, mtls: { mode: 'UNSET' }, portLevelMtls: { 8080: { mode: 'DISABLE' } } }),
    ], W);
    expect(eff.mode).toBe('STRICT');
    expect(mtlsModeForPort(eff, 8080)).toBe('DISABLE');
  });

  it('ignored: other namespaces, non-matching selectors, selectors in the root namespace', () => {
    const eff = resolvePeerAuthentication([
      pa('a', 'bar', { mtls: { mode: 'DISABLE' } }),
      pa('b', 'foo', { selector: { matchLabels: { app: 'web' } }, mtls: { mode: 'DISABLE' } }),
      pa('c', 'istio-system', { selector: { matchLabels: { app: 'finance' } }, mtls: { mode: 'DISABLE' } }),
    ], W);
    expect(eff).toEqual({ mode: 'PERMISSIVE', ports: new Map(), policies: [] });
  });

  it('two namespace-wide policies: the oldest wins (then the name)', () => {
    const eff = resolvePeerAuthentication([
      pa('newer', 'foo', { mtls: { mode: 'DISABLE' } }, '2026-02-01T00:00:00Z'),
      pa('older', 'foo', { mtls: { mode: 'STRICT' } }, '2026-01-01T00:00:00Z'),
    ], W);
    expect(eff.mode).toBe('STRICT');
    expect(resolvePeerAuthentication([pa('b', 'foo', { mtls: { mode: 'DISABLE' } }), pa('a', 'foo', { mtls: { mode: 'STRICT' } })], W).mode).toBe('STRICT');
  });
});

describe('validatePeerAuthenticationSpec', () => {
  it('accepts Istio examples and reports bad modes, ports and a portLevelMtls without a selector', () => {
    expect(validatePeerAuthenticationSpec({ selector: { matchLabels: { app: 'x' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { 8080: { mode: 'DISABLE' } } })).toEqual([]);
    expect(validatePeerAuthenticationSpec({ mtls: { mode: 'strict' }, portLevelMtls: { http: { mode: 'OFF' } } })).toEqual([
      [['spec', 'mtls', 'mode'], '"strict" is not UNSET, DISABLE, PERMISSIVE or STRICT'],
      [['spec', 'portLevelMtls'], 'portLevelMtls requires a workload selector'],
      [['spec', 'portLevelMtls', 'http'], '"http" is not a port number'],
      [['spec', 'portLevelMtls', 'http', 'mode'], '"OFF" is not UNSET, DISABLE, PERMISSIVE or STRICT'],
    ]);
  });
});
