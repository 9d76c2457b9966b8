/**
 * parseTarget: origin-form and absolute-form targets, ports, host normalization and dot-segment removal, plus a
 * differential property test against the straightforward implementation the hot-path version replaced.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { parseTarget, removeDotSegments, type RequestTarget } from '../../../src/routing/request-target.js';

/** The reference: slices and Number() for the port, toLowerCase and a regex for every host (the pre-fast-path code). */
function referenceParseTarget(url: string, hostHeader: string | undefined): RequestTarget | undefined {
  let authority: string | undefined = hostHeader;
  let scheme = 'http';
  let rest = url;
  if (url.charCodeAt(0) !== 47) {
    const lower = url.slice(0, 8).toLowerCase();
    let skip = 0;
    if (lower.startsWith('http://')) skip = 7;
    else if (lower.startsWith('https://')) { skip = 8; scheme = 'https'; }
    else if (url === '*') return hostHeader ? referenceSplit(hostHeader, scheme, '*', '') : undefined;
    else return undefined;
    let end = skip;
    while (end < url.length) {
      const c = url.charCodeAt(end);
      if (c === 47 || c === 63 || c === 35) break;
      end++;
    }
    authority = url.slice(skip, end);
    const at = authority.lastIndexOf('@');
    if (at >= 0) authority = authority.slice(at + 1);
    rest = url.slice(end);
    if (rest === '' || rest.charCodeAt(0) !== 47) rest = `/${rest}`;
  }
  if (!authority) return undefined;
  let path = rest;
  const hash = path.indexOf('#');
  if (hash >= 0) path = path.slice(0, hash);
  let query = '';
  const q = path.indexOf('?');
  if (q >= 0) {
    query = path.slice(q + 1);
    path = path.slice(0, q);
  }
  if (path.includes('/.') || path.includes('%2e') || path.includes('%2E')) path = removeDotSegments(path);
  return referenceSplit(authority, scheme, path, query);
}

function referenceSplit(authority: string, scheme: string, path: string, query: string): RequestTarget | undefined {
  let host = authority;
  let explicitPort = 0;
  if (authority.charCodeAt(0) === 91) {
    const close = authority.indexOf(']');
    if (close < 0) return undefined;
    host = authority.slice(1, close);
    const rest = authority.slice(close + 1);
    if (rest.startsWith(':')) explicitPort = Number(rest.slice(1));
  } else {
    const colon = authority.lastIndexOf(':');
    if (colon >= 0) {
      host = authority.slice(0, colon);
      explicitPort = Number(authority.slice(colon + 1));
    }
  }
  if (!Number.isInteger(explicitPort) || explicitPort < 0 || explicitPort > 65535) return undefined;
  host = host.toLowerCase();
  if (host.endsWith('.')) host = host.slice(0, -1);
  if (host === '' || /[\s/\\@]/.test(host)) return undefined;
  return { authority, host, explicitPort, scheme, path, query };
}

describe('parseTarget', () => {
  it('splits an origin-form target and the Host header', () => {
    expect(parseTarget('/reviews/1?page=2#frag', 'Reviews.Default:9080')).toEqual({
      authority: 'Reviews.Default:9080', host: 'reviews.default', explicitPort: 9080, scheme: 'http', path: '/reviews/1', query: 'page=2',
    });
    expect(parseTarget('/', 'reviews')).toEqual({ authority: 'reviews', host: 'reviews', explicitPort: 0, scheme: 'http', path: '/', query: '' });
  });

  it('takes the authority of an absolute-form target over Host, without userinfo', () => {
    expect(parseTarget('HTTPS://user:pw@api.example.com:8443/v1?x', 'ignored')).toMatchObject({
      authority: 'api.example.com:8443', host: 'api.example.com', explicitPort: 8443, scheme: 'https', path: '/v1', query: 'x',
    });
    expect(parseTarget('http://example.com', undefined)).toMatchObject({ host: 'example.com', path: '/' });
  });

  it('reads ports as Number() does, and rejects what is not a port', () => {
    expect(parseTarget('/', 'a:')?.explicitPort).toBe(0);
    expect(parseTarget('/', 'a:0080')?.explicitPort).toBe(80);
    expect(parseTarget('/', 'a:65535')?.explicitPort).toBe(65535);
    expect(parseTarget('/', 'a:65536')).toBeUndefined();
    expect(parseTarget('/', 'a:000000080')?.explicitPort).toBe(80);
    expect(parseTarget('/', 'a:8x')).toBeUndefined();
    expect(parseTarget('/', 'a:-1')).toBeUndefined();
    expect(parseTarget('/', '[::1]:9080')).toMatchObject({ host: '::1', explicitPort: 9080 });
    expect(parseTarget('/', '[::1')).toBeUndefined();
  });

  it('normalizes the host: lowercase, one trailing dot dropped; rejects empty hosts and forbidden characters', () => {
    expect(parseTarget('/', 'reviews.default.svc.cluster.local.')?.host).toBe('reviews.default.svc.cluster.local');
    expect(parseTarget('/', 'ÄPI.example')?.host).toBe('äpi.example');
    expect(parseTarget('/', '.')).toBeUndefined();
    expect(parseTarget('/', ':80')).toBeUndefined();
    expect(parseTarget('/', 'a b')).toBeUndefined();
    expect(parseTarget('/', 'a\u00a0b')).toBeUndefined();
    expect(parseTarget('/', 'a@b')).toBeUndefined();
    expect(parseTarget('/', 'a\\b')).toBeUndefined();
    expect(parseTarget('/', '')).toBeUndefined();
  });

  it('removes dot segments, plain and percent-encoded, before routing', () => {
    expect(parseTarget('/a/../admin', 'h')?.path).toBe('/admin');
    expect(parseTarget('/a/%2E%2e/admin?q=/..', 'h')).toMatchObject({ path: '/admin', query: 'q=/..' });
    expect(parseTarget('/static/app.js', 'h')?.path).toBe('/static/app.js');
    expect(parseTarget('/a%20b/./c', 'h')?.path).toBe('/a%20b/c');
  });

  it('answers exactly as the reference implementation for arbitrary targets and Host headers', () => {
    const chars = fc.constantFrom(...'aZ09.-:/[]@?#%2eE \t\\\u00a0\u00c4'.split(''), 'http://', 'https://', '/..', '%2e', ':80', ':65536', '0x1');
    const text = fc.array(chars, { maxLength: 14 }).map((xs) => xs.join(''));
    fc.assert(
      fc.property(text, fc.option(text, { nil: undefined }), fc.boolean(), (rawUrl, host, originForm) => {
        const url = originForm ? `/${rawUrl}` : rawUrl;
        expect(parseTarget(url, host)).toEqual(referenceParseTarget(url, host));
      }),
      { numRuns: 5000, seed: 42 },
    );
  });
});
