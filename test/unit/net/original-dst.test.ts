// Reading the original destination: the conntrack-table lookup (pure, on lines as the kernel prints them) and the
// reader choice (native addon, conntrack fallback, none) with the reason each gives.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compressIPv6, conntrackLookup, createOriginalDstReader, expandIPv6, findAddon, unmapIpv4 } from '../../../src/net/original-dst.js';

// Lines of /proc/net/nf_conntrack from the namespace test: the app (198.18.77.2) dialled a VIP, iptables redirected it
// to 127.0.0.1:15001; an inbound call redirected to 15006; an unrelated UDP flow; an IPv6 flow.
const TABLE = [
  'ipv4     2 udp      17 29 src=198.18.77.2 dst=198.18.77.1 sport=5353 dport=53 src=198.18.77.1 dst=198.18.77.2 sport=53 dport=5353 mark=0 zone=0 use=2',
  'ipv4     2 tcp      6 431999 ESTABLISHED src=198.18.77.2 dst=198.18.200.10 sport=41234 dport=80 src=127.0.0.1 dst=198.18.77.2 sport=15001 dport=41234 [ASSURED] mark=0 zone=0 use=2',
  'ipv4     2 tcp      6 431999 ESTABLISHED src=198.18.77.1 dst=198.18.77.2 sport=50000 dport=8080 src=198.18.77.2 dst=198.18.77.1 sport=15006 dport=50000 [ASSURED] mark=0 zone=0 use=2',
  // IPv6 as the kernel prints it (%pI6: every group in full; captured in a namespace with ip6tables REDIRECT).
  'ipv6     10 tcp      6 431999 ESTABLISHED src=fd00:0000:0000:0000:0000:0000:0000:0002 dst=fd00:0200:0000:0000:0000:0000:0000:0010 sport=40000 dport=443 src=0000:0000:0000:0000:0000:0000:0000:0001 dst=fd00:0000:0000:0000:0000:0000:0000:0002 sport=15001 dport=40000 [ASSURED] mark=0 zone=0 use=2',
  '',
].join('\n');

describe('conntrackLookup', () => {
  it('finds the original destination from the reply tuple (listener → client)', () => {
    expect(conntrackLookup(TABLE, { address: '127.0.0.1', port: 15001 }, { address: '198.18.77.2', port: 41234 })).toEqual({ address: '198.18.200.10', port: 80 });
    expect(conntrackLookup(TABLE, { address: '198.18.77.2', port: 15006 }, { address: '198.18.77.1', port: 50000 })).toEqual({ address: '198.18.77.2', port: 8080 });
    expect(conntrackLookup(TABLE, { address: '::1', port: 15001 }, { address: 'fd00::2', port: 40000 })).toEqual({ address: 'fd00:200::10', port: 443 });
  });

  it('finds nothing for a connection it has no record of, or a tuple that only matches as the original direction', () => {
    expect(conntrackLookup(TABLE, { address: '127.0.0.1', port: 15001 }, { address: '198.18.77.2', port: 4123 })).toBeUndefined();
    // The first tuple of the UDP line, read as a reply tuple, must not match (and UDP is not ours anyway).
    expect(conntrackLookup(TABLE, { address: '198.18.77.1', port: 53 }, { address: '198.18.77.2', port: 5353 })).toBeUndefined();
    expect(conntrackLookup('', { address: '127.0.0.1', port: 15001 }, { address: '1.2.3.4', port: 1 })).toBeUndefined();
  });

  it('IPv6 addresses: expanded as the kernel prints them, compressed as Node writes them', () => {
    expect(expandIPv6('::1')).toBe('0000:0000:0000:0000:0000:0000:0000:0001');
    expect(expandIPv6('fd00:77::2')).toBe('fd00:0077:0000:0000:0000:0000:0000:0002');
    expect(expandIPv6('fe80::')).toBe('fe80:0000:0000:0000:0000:0000:0000:0000');
    expect(expandIPv6('1:2:3:4:5:6:7:8')).toBe('0001:0002:0003:0004:0005:0006:0007:0008');
    expect(compressIPv6('fd00:0077:0000:0000:0000:0000:0000:0001')).toBe('fd00:77::1');
    expect(compressIPv6('0000:0000:0000:0000:0000:0000:0000:0001')).toBe('::1');
  });

  it('unmaps IPv4-mapped IPv6 addresses only', () => {
    expect(unmapIpv4('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(unmapIpv4('::ffff:abcd')).toBe('::ffff:abcd');
    expect(unmapIpv4('fd00::1')).toBe('fd00::1');
  });
});

describe('createOriginalDstReader', () => {
  const dir = mkdtempSync(join(tmpdir(), 'remora-odst-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('uses the native addon when it is built (npm install builds it here)', () => {
    const addon = findAddon();
    expect(addon, 'native/build/Release/remora_net.node: run npm install').toBeDefined();
    const r = createOriginalDstReader({ force: '' });
    expect(r.kind).toBe('native');
    expect(r.description).toContain('SO_ORIGINAL_DST');
  });

  it('falls back to a readable conntrack table, and says why', () => {
    const table = join(dir, 'nf_conntrack');
    writeFileSync(table, TABLE);
    const r = createOriginalDstReader({ force: 'conntrack', conntrackPath: table });
    expect(r.kind).toBe('conntrack');
    expect(r.description).toContain('REMORA_ORIGINAL_DST=conntrack');
    const missing = createOriginalDstReader({ addonPath: join(dir, 'no-such.node'), conntrackPath: table });
    expect(missing.kind).toBe('conntrack');
    expect(missing.description).toMatch(/failed to load/);
  });

  it('says plainly what is lost when neither is available', () => {
    const r = createOriginalDstReader({ force: 'none' });
    expect(r.kind).toBe('none');
    expect(r.description).toMatch(/routed by Host.*non-HTTP connections cannot be passed on/);
    const r2 = createOriginalDstReader({ addonPath: join(dir, 'no-such.node'), conntrackPath: join(dir, 'absent') });
    expect(r2.kind).toBe('none');
    expect(r2.description).toMatch(/ENOENT/);
  });
});
