/**
 * isLoopbackHost / inetAton: every spelling of this machine's loopback or unspecified address that a connect would
 * reach (getaddrinfo's inet_aton forms, IPv6 compression, IPv4-mapped), so the proxy's own ports cannot be a
 * passthrough destination by writing the address differently.
 */
import { describe, it, expect } from 'vitest';
import { inetAton, isLoopbackHost } from '../../../src/routing/request-target.js';

describe('inetAton', () => {
  it('reads the forms getaddrinfo accepts', () => {
    expect(inetAton('127.0.0.1')).toBe(0x7f000001);
    expect(inetAton('127.1')).toBe(0x7f000001);
    expect(inetAton('127.0.1')).toBe(0x7f000001);
    expect(inetAton('2130706433')).toBe(0x7f000001);
    expect(inetAton('0x7f.0.0.1')).toBe(0x7f000001);
    expect(inetAton('0177.0.0.1')).toBe(0x7f000001);
    expect(inetAton('0')).toBe(0);
    expect(inetAton('255.255.255.255')).toBe(0xffffffff);
  });
  it('refuses what is not an IPv4 address', () => {
    for (const s of ['256.0.0.1', '1.2.3.4.5', '08', 'a.b', '', '1..2', '127.0.0.256', '4294967296', 'reviews']) expect(inetAton(s)).toBe(-1);
  });
});

describe('isLoopbackHost', () => {
  it('is true for every spelling of loopback and unspecified addresses', () => {
    for (const h of ['localhost', 'LOCALHOST.', 'a.localhost', '127.0.0.1', '127.9.9.9', '127.1', '2130706433', '0x7f.0.0.1', '0177.0.0.1', '0', '0.0.0.0',
      '::1', '[::1]', '0:0:0:0:0:0:0:1', '::', '[::]', '::ffff:127.0.0.1', '::ffff:7f00:1', '[::ffff:0.0.0.0]']) {
      expect([h, isLoopbackHost(h)]).toEqual([h, true]);
    }
  });
  it('is false for other hosts', () => {
    for (const h of ['10.0.0.1', '1.2.3.4', 'example.com', 'reviews', 'localhost.example.com', '::2', '1::', 'fe80::1', '::ffff:10.0.0.1', '08', '128.0.0.1']) {
      expect([h, isLoopbackHost(h)]).toEqual([h, false]);
    }
  });
});
