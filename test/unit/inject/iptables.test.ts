// Unit tests of the pure iptables-restore rule generation.
import { describe, expect, it } from 'vitest';
import { iptablesRules, IptablesConfigError } from '../../../src/inject/iptables.js';

describe('iptablesRules', () => {
  it('captures every inbound port but the sidecar’s own by default (Istio’s "*"), and all TCP outbound except the proxy and loopback', () => {
    const rules = iptablesRules({ appPorts: [8080, 9090] });
    expect(rules[0]).toBe('*nat');
    expect(rules[rules.length - 1]).toBe('COMMIT');
    expect(rules).toContain('-A REMORA_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006');
    expect(rules).toContain('-A REMORA_REDIRECT -p tcp -j REDIRECT --to-ports 15001');
    // Was: only 8080 and 9090, so a listener on another port (one bound to loopback: reached at the pod's address
    // it is not) was reached around the sidecar.
    expect(rules.filter((r) => r.startsWith('-A REMORA_INBOUND'))).toEqual([
      '-A REMORA_INBOUND -p tcp --dport 15021 -j RETURN',
      '-A REMORA_INBOUND -p tcp --dport 15090 -j RETURN',
      '-A REMORA_INBOUND -p tcp --dport 15006 -j RETURN',
      '-A REMORA_INBOUND -p tcp -j REMORA_IN_REDIRECT',
    ]);
    expect(iptablesRules({ appPorts: [] })).toEqual(rules);
    const out = rules.filter((r) => r.startsWith('-A REMORA_OUTPUT'));
    expect(out).toEqual([
      '-A REMORA_OUTPUT -m owner --uid-owner 1337 -j RETURN',
      '-A REMORA_OUTPUT -m owner --gid-owner 1337 -j RETURN',
      '-A REMORA_OUTPUT -o lo -j RETURN',
      '-A REMORA_OUTPUT -d 127.0.0.1/32 -j RETURN',
      '-A REMORA_OUTPUT -j REMORA_REDIRECT',
    ]);
  });

  it('honours the exclude/include annotations, exclusions before the catch-all', () => {
    const rules = iptablesRules(
      { appPorts: [8080, 9090] },
      {
        'traffic.sidecar.istio.io/includeInboundPorts': '8080,9090',
        'traffic.sidecar.istio.io/excludeInboundPorts': '9090',
        'traffic.sidecar.istio.io/excludeOutboundPorts': '5432, 6379',
        'traffic.sidecar.istio.io/excludeOutboundIPRanges': '169.254.169.254',
        'traffic.sidecar.istio.io/includeOutboundIPRanges': '10.0.0.0/8,172.16.0.0/12',
        'traffic.sidecar.istio.io/includeOutboundPorts': '8443',
      },
    );
    expect(rules.filter((r) => r.startsWith('-A REMORA_INBOUND'))).toEqual(['-A REMORA_INBOUND -p tcp --dport 8080 -j REMORA_IN_REDIRECT']);
    expect(rules.filter((r) => r.startsWith('-A REMORA_OUTPUT')).slice(4)).toEqual([
      '-A REMORA_OUTPUT -p tcp --dport 5432 -j RETURN',
      '-A REMORA_OUTPUT -p tcp --dport 6379 -j RETURN',
      '-A REMORA_OUTPUT -d 169.254.169.254/32 -j RETURN',
      '-A REMORA_OUTPUT -p tcp --dport 8443 -j REMORA_REDIRECT',
      '-A REMORA_OUTPUT -d 10.0.0.0/8 -j REMORA_REDIRECT',
      '-A REMORA_OUTPUT -d 172.16.0.0/12 -j REMORA_REDIRECT',
    ]);
    expect(rules).not.toContain('-A REMORA_OUTPUT -j REMORA_REDIRECT');
  });

  it('includeInboundPorts "*" captures every port but the sidecar’s own and the excluded', () => {
    const rules = iptablesRules({ appPorts: [] }, { 'traffic.sidecar.istio.io/includeInboundPorts': '*', 'traffic.sidecar.istio.io/excludeInboundPorts': '22' });
    expect(rules.filter((r) => r.startsWith('-A REMORA_INBOUND'))).toEqual([
      '-A REMORA_INBOUND -p tcp --dport 15021 -j RETURN',
      '-A REMORA_INBOUND -p tcp --dport 15090 -j RETURN',
      '-A REMORA_INBOUND -p tcp --dport 15006 -j RETURN',
      '-A REMORA_INBOUND -p tcp --dport 22 -j RETURN',
      '-A REMORA_INBOUND -p tcp -j REMORA_IN_REDIRECT',
    ]);
  });

  it('has no inbound capture for an empty includeInboundPorts, and no outbound capture for an empty include range', () => {
    const rules = iptablesRules({ appPorts: [8080] }, { 'traffic.sidecar.istio.io/includeInboundPorts': '', 'traffic.sidecar.istio.io/includeOutboundIPRanges': '' });
    expect(rules).not.toContain('-A PREROUTING -p tcp -j REMORA_INBOUND');
    expect(rules.some((r) => r.includes('-j REMORA_REDIRECT'))).toBe(false);
  });

  it('rejects malformed ports and CIDRs, naming the annotation', () => {
    expect(() => iptablesRules({ appPorts: [] }, { 'traffic.sidecar.istio.io/excludeOutboundPorts': '70000' })).toThrow(IptablesConfigError);
    expect(() => iptablesRules({ appPorts: [] }, { 'traffic.sidecar.istio.io/excludeOutboundIPRanges': '10.0.0.0/33' })).toThrow(
      /excludeOutboundIPRanges: "10.0.0.0\/33" is not an IPv4 or IPv6 CIDR/,
    );
    expect(() => iptablesRules({ appPorts: [] }, { 'traffic.sidecar.istio.io/includeOutboundIPRanges': '300.1.1.1/8' })).toThrow(/not an IPv4 or IPv6 CIDR/);
  });

  it('uses the given proxy UID and ports', () => {
    const rules = iptablesRules({ appPorts: [80], proxyUid: 2000, proxyGid: 2001, outboundPort: 16001, inboundPort: 16006 });
    expect(rules).toContain('-A REMORA_OUTPUT -m owner --uid-owner 2000 -j RETURN');
    expect(rules).toContain('-A REMORA_OUTPUT -m owner --gid-owner 2001 -j RETURN');
    expect(rules).toContain('-A REMORA_REDIRECT -p tcp -j REDIRECT --to-ports 16001');
    expect(rules).toContain('-A REMORA_IN_REDIRECT -p tcp -j REDIRECT --to-ports 16006');
  });

  it('IPv6 (ip6tables-restore input): the same chains with IPv6 loopback, and the IPv6 members of the IP ranges', () => {
    const ann = {
      'traffic.sidecar.istio.io/excludeOutboundIPRanges': '169.254.169.254,fd00:ec2::254',
      'traffic.sidecar.istio.io/excludeOutboundPorts': '5432',
    };
    const v6 = iptablesRules({ appPorts: [8080] }, ann, 6);
    expect(v6[0]).toBe('*nat');
    expect(v6.at(-1)).toBe('COMMIT');
    expect(v6).toContain('-A REMORA_INBOUND -p tcp -j REMORA_IN_REDIRECT');
    expect(v6.filter((r) => r.startsWith('-A REMORA_OUTPUT'))).toEqual([
      '-A REMORA_OUTPUT -m owner --uid-owner 1337 -j RETURN',
      '-A REMORA_OUTPUT -m owner --gid-owner 1337 -j RETURN',
      '-A REMORA_OUTPUT -o lo -j RETURN',
      '-A REMORA_OUTPUT -d ::1/128 -j RETURN',
      '-A REMORA_OUTPUT -p tcp --dport 5432 -j RETURN',
      '-A REMORA_OUTPUT -d fd00:ec2::254/128 -j RETURN',
      '-A REMORA_OUTPUT -j REMORA_REDIRECT',
    ]);
    // The IPv4 rules take the IPv4 members only.
    const v4 = iptablesRules({ appPorts: [8080] }, ann);
    expect(v4).toContain('-A REMORA_OUTPUT -d 169.254.169.254/32 -j RETURN');
    expect(v4.some((r) => r.includes('fd00'))).toBe(false);
  });

  it('IPv6: an include range list without IPv6 members captures no IPv6 outbound; with some, only those', () => {
    const only4 = iptablesRules({ appPorts: [] }, { 'traffic.sidecar.istio.io/includeOutboundIPRanges': '10.0.0.0/8' }, 6);
    expect(only4.some((r) => r.includes('-j REMORA_REDIRECT'))).toBe(false);
    const both = iptablesRules({ appPorts: [] }, { 'traffic.sidecar.istio.io/includeOutboundIPRanges': '10.0.0.0/8, fd00:10::/64' }, 6);
    expect(both).toContain('-A REMORA_OUTPUT -d fd00:10::/64 -j REMORA_REDIRECT');
    expect(both.some((r) => r.includes('10.0.0.0/8'))).toBe(false);
  });

  it('rejects malformed IPv6 ranges, naming the annotation', () => {
    for (const bad of ['fd00::/129', 'fd00:::1', 'fd00::g', 'fd00::/x']) {
      expect(() => iptablesRules({ appPorts: [] }, { 'traffic.sidecar.istio.io/excludeOutboundIPRanges': bad }, 6)).toThrow(/excludeOutboundIPRanges: .* is not an IPv4 or IPv6 CIDR/);
    }
  });
});
