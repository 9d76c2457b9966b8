/**
 * parseTarget: origin-form and absolute-form targets, ports, host normalization and dot-segment removal, plus a
 * differential property test against the straightforward implementation the hot-path version replaced.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { normalizePath, parseTarget, type PathNormalization, type RequestTarget } from '../../../src/routing/request-target.js';

/**
 * The reference normalization, written the slow and obvious way (regex decode, array of segments), to check the
 * one-scan fast path of normalizePath against.
 */
function referenceNormalize(path: string, mode: PathNormalization): string {
  if (mode === 'none') return path;
  let p = path.replace(/%([0-9a-fA-F]{2})/g, (m: string, hex: string) => {
    const c = String.fromCharCode(parseInt(hex, 16));
    if (/[A-Za-z0-9\-._~]/.test(c)) return c;
    if (mode === 'decode-and-merge-slashes' && (c === '/' || c === '\\')) return c;
    return m;
  });
  p = p.split('\\').join('/');
  const segs = p.split('/');
  const out: string[] = [];
  segs.forEach((seg, i) => {
    const last = i === segs.length - 1;
    if (seg === '.' || seg === '..') {
      if (seg === '..' && out.length > 1) out.pop();
      if (last) out.push('');
      return;
    }
    out.push(seg);
  });
  p = out.join('/');
  if (!p.startsWith('/')) p = `/${p}`;
  if (mode !== 'base') while (p.includes('//')) p = p.replace('//', '/');
  return p;
}

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
  if (path.includes('%00')) return undefined;
  path = referenceNormalize(path, 'base');
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

  it('refuses an encoded NUL in the path (400, as Envoy) unless normalization is none; a NUL in the query is the app\'s', () => {
    expect(parseTarget('/admin%00', 'h')).toBeUndefined();
    expect(parseTarget('/a%00b/c', 'h', 'merge-slashes')).toBeUndefined();
    expect(parseTarget('/admin%00', 'h', 'none')?.path).toBe('/admin%00');
    expect(parseTarget('/x?q=%00', 'h')).toMatchObject({ path: '/x', query: 'q=%00' });
  });

  it('normalizes the path as Envoy does for each of Istio\'s pathNormalization modes (Istio\'s own test table)', () => {
    // pilot/pkg/networking/core path normalization test: input → [BASE, MERGE_SLASHES, DECODE_AND_MERGE_SLASHES].
    const table: Array<[string, string, string, string]> = [
      ['/', '/', '/', '/'],
      ['/app/', '/app/', '/app/', '/app/'],
      ['/app/../admin', '/admin', '/admin', '/admin'],
      ['/app', '/app', '/app', '/app'],
      ['/app//', '/app//', '/app/', '/app/'],
      ['/app/%2f', '/app/%2f', '/app/%2f', '/app/'],
      ['/app%2f/', '/app%2f/', '/app%2f/', '/app/'],
      ['/xyz%30..//abc', '/xyz0..//abc', '/xyz0../abc', '/xyz0../abc'],
      ['/app/%2E./admin', '/admin', '/admin', '/admin'],
      ['/app\\admin', '/app/admin', '/app/admin', '/app/admin'],
      ['/app/\\/\\/\\admin', '/app//////admin', '/app/admin', '/app/admin'],
      ['/%2Fapp%5cadmin%5Cabc', '/%2Fapp%5cadmin%5Cabc', '/%2Fapp%5cadmin%5Cabc', '/app/admin/abc'],
      ['/%5Capp%2f%5c%2F%2e%2e%2fadmin%5c\\abc', '/%5Capp%2f%5c%2F..%2fadmin%5c/abc', '/%5Capp%2f%5c%2F..%2fadmin%5c/abc', '/app/admin/abc'],
      ['/app//../admin', '/app/admin', '/app/admin', '/app/admin'],
      ['/app//../../admin', '/admin', '/admin', '/admin'],
      // Remora's own rows: unreserved characters decoded, anything else kept as sent and never decoded twice.
      ['/%61dmin', '/admin', '/admin', '/admin'],
      ['/%2e%2e/admin', '/admin', '/admin', '/admin'],
      ['/./admin', '/admin', '/admin', '/admin'],
      ['//admin', '//admin', '/admin', '/admin'],
      ['/a%252e%252e/b', '/a%252e%252e/b', '/a%252e%252e/b', '/a%252e%252e/b'],
      ['/a%20b/%7Euser/%zz/%4', '/a%20b/~user/%zz/%4', '/a%20b/~user/%zz/%4', '/a%20b/~user/%zz/%4'],
    ];
    for (const [input, base, merge, decode] of table) {
      expect([input, normalizePath(input, 'base'), normalizePath(input, 'merge-slashes'), normalizePath(input, 'decode-and-merge-slashes')]).toEqual([input, base, merge, decode]);
      expect(normalizePath(input, 'none')).toBe(input);
    }
  });

  it('returns an already-normal path itself (the common case costs one scan, no copy)', () => {
    for (const p of ['/', '/api/v1/reviews/1', '/static/app.min.js', '/a-b_c~d.e']) {
      for (const m of ['base', 'merge-slashes', 'decode-and-merge-slashes'] as const) expect(normalizePath(p, m)).toBe(p);
    }
  });

  it('normalizePath agrees with the slow reference on arbitrary paths, in every mode', () => {
    const chars = fc.constantFrom(...'aZ09.-_~/\\%'.split(''), '%2e', '%2E', '%2f', '%2F', '%5c', '%5C', '%61', '%41', '%7e', '%25', '%20', '%00', '..', '/..', '/./', '//', '%g1');
    const paths = fc.array(chars, { maxLength: 16 }).map((xs) => `/${xs.join('')}`);
    fc.assert(
      fc.property(paths, fc.constantFrom<PathNormalization>('none', 'base', 'merge-slashes', 'decode-and-merge-slashes'), (p, mode) => {
        const n = normalizePath(p, mode);
        expect(n).toBe(referenceNormalize(p, mode));
        // Idempotent: the path the route matched is the path sent, and normalizing it again changes nothing.
        expect(normalizePath(n, mode)).toBe(n);
      }),
      { numRuns: 5000, seed: 7 },
    );
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
