/** Host helpers: Istio short-name expansion, DNS-1123 checks, IP/CIDR checks, wildcard overlap. */
import { describe, it, expect } from 'vitest';
import {
  expandHost, hostCovers, hostsOverlap, isK8sName, isK8sNamespace, validateFqdn, validateIpOrCidr, validateWildcardDomain,
} from '../../../src/config/hosts.js';

describe('expandHost', () => {
  it('expands a short name against the resource namespace and cluster domain', () => {
    expect(expandHost('reviews', 'default')).toBe('reviews.default.svc.cluster.local');
    expect(expandHost('reviews', 'prod', 'corp.example')).toBe('reviews.prod.svc.corp.example');
  });
  it('keeps names with a dot and wildcards as written (Istio does not expand reviews.default), lowercased', () => {
    expect(expandHost('reviews.default', 'x')).toBe('reviews.default');
    expect(expandHost('Reviews.Default.svc.cluster.local', 'x')).toBe('reviews.default.svc.cluster.local');
    expect(expandHost('*.example.com', 'x')).toBe('*.example.com');
    expect(expandHost('*', 'x')).toBe('*');
  });
});

describe('DNS checks', () => {
  it('accepts FQDNs, short names, a trailing dot; rejects bad labels and numeric TLDs', () => {
    expect(validateFqdn('reviews')).toBeUndefined();
    expect(validateFqdn('istio.io.')).toBeUndefined();
    expect(validateFqdn('a_b.com')).toBe('domain name "a_b.com" invalid (label "a_b" invalid)');
    expect(validateFqdn('1.2.3.4')).toContain('cannot be all-numeric');
    expect(validateFqdn('')).toBe('empty domain name not allowed');
    expect(validateFqdn(`${'a'.repeat(64)}.com`)).toContain('invalid');
  });
  it('allows a wildcard only in the first label', () => {
    expect(validateWildcardDomain('*')).toBeUndefined();
    expect(validateWildcardDomain('*.example.com')).toBeUndefined();
    expect(validateWildcardDomain('*x')).toBeUndefined();
    expect(validateWildcardDomain('foo.*.com')).toBe('domain name "foo.*.com" invalid (label "*" invalid)');
    expect(validateWildcardDomain('**.com')).toContain('invalid');
  });
  it('checks Kubernetes names and namespaces (lowercase)', () => {
    expect(isK8sName('reviews-v1.canary')).toBe(true);
    expect(isK8sName('Reviews')).toBe(false);
    expect(isK8sNamespace('default')).toBe(true);
    expect(isK8sNamespace('my.ns')).toBe(false);
  });
});

describe('IP and CIDR', () => {
  it('accepts IPv4, IPv6 and CIDR blocks within range', () => {
    expect(validateIpOrCidr('10.0.0.1')).toBeUndefined();
    expect(validateIpOrCidr('2001:db8::1')).toBeUndefined();
    expect(validateIpOrCidr('10.0.0.0/8')).toBeUndefined();
    expect(validateIpOrCidr('2001:db8::/128')).toBeUndefined();
    expect(validateIpOrCidr('10.0.0.0/33')).toBe('10.0.0.0/33 is not a valid CIDR block');
    expect(validateIpOrCidr('example.com')).toBe('example.com is not a valid IP');
  });
});

describe('wildcard overlap', () => {
  it('matches Istio host.Name.Matches', () => {
    expect(hostsOverlap('a.foo.com', 'a.foo.com')).toBe(true);
    expect(hostsOverlap('*.foo.com', 'a.foo.com')).toBe(true);
    expect(hostsOverlap('*.com', '*.foo.com')).toBe(true);
    expect(hostsOverlap('*.foo.com', 'foo.com')).toBe(false);
    expect(hostsOverlap('a.foo.com', 'b.foo.com')).toBe(false);
  });
  it('covers concrete hosts', () => {
    expect(hostCovers('*.example.com', 'api.example.com')).toBe(true);
    expect(hostCovers('*.example.com', 'example.com')).toBe(false);
    expect(hostCovers('*', 'anything')).toBe(true);
  });
});
