import { describe, expect, it } from 'vitest';
import { connectFailure, connectTarget } from '../../../src/proxy/connect.js';

describe('connectTarget: the authority-form target of CONNECT', () => {
  it('takes host:port, [IPv6]:port and IPv4:port; host names are lowercased', () => {
    expect(connectTarget('DB.Example.com:5432')).toEqual({ host: 'db.example.com', port: 5432 });
    expect(connectTarget('10.0.0.1:443')).toEqual({ host: '10.0.0.1', port: 443 });
    expect(connectTarget('[::1]:8080')).toEqual({ host: '::1', port: 8080 });
    expect(connectTarget('[fd00::2]:1')).toEqual({ host: 'fd00::2', port: 1 });
  });

  it('refuses a missing or bad port, an origin-form or absolute URI, and odd host characters', () => {
    for (const bad of ['example.com', 'example.com:', ':443', 'example.com:0', 'example.com:65536', 'example.com:44x', '/path', 'http://example.com:80/', 'a b:80', 'a@b:80', '[::1]', '[::1]80', '[zz]:80', '[1.2.3.4]:80']) {
      expect({ bad, t: connectTarget(bad) }).toEqual({ bad, t: null });
    }
  });
});

describe('connectFailure: the answer when no upstream can be had', () => {
  it('503 with the flag and details, 502 for the REGISTRY_ONLY black hole; a whole response that closes', () => {
    const a = connectFailure('UF', 'upstream_connect_error{ECONNREFUSED}').toString('latin1');
    expect(a).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n/);
    const body = a.slice(a.indexOf('\r\n\r\n') + 4);
    expect(body).toBe('upstream connect error (UF: upstream_connect_error{ECONNREFUSED})');
    expect(a).toContain(`content-length: ${body.length}\r\n`);
    expect(a).toContain('connection: close\r\n');
    expect(connectFailure('UH', 'blackhole_cluster').toString('latin1')).toMatch(/^HTTP\/1\.1 502 Bad Gateway\r\n[\s\S]*\r\n\r\nregistry_only_blackhole$/);
  });
});
