import { describe, it, expect } from 'vitest';
import { cookieValue, hashKeyFor, queryParam } from '../../../src/upstream/hash-key.js';
import { seededRandom } from '../../../src/util/random.js';

const req = (headers: Record<string, string | string[] | undefined>, query = '', sourceIp = '10.1.2.3') => ({ headers, query, sourceIp });

describe('hashKeyFor', () => {
  it('header value (multi-valued headers joined)', () => {
    expect(hashKeyFor({ httpHeaderName: 'x-user' }, req({ 'x-user': 'alice' }), seededRandom(1))).toEqual({ key: 'alice' });
    expect(hashKeyFor({ httpHeaderName: 'x-user' }, req({ 'x-user': ['a', 'b'] }), seededRandom(1))).toEqual({ key: 'a,b' });
    expect(hashKeyFor({ httpHeaderName: 'x-user' }, req({}), seededRandom(1))).toEqual({});
  });

  it('cookie value when present', () => {
    const h = { httpCookie: { name: 'sess', ttlMs: 60_000 } };
    expect(hashKeyFor(h, req({ cookie: 'a=1; sess=xyz; b=2' }), seededRandom(1))).toEqual({ key: 'xyz' });
  });

  it('missing cookie without ttl: no key, no cookie', () => {
    expect(hashKeyFor({ httpCookie: { name: 'sess' } }, req({}), seededRandom(1))).toEqual({});
  });

  it('missing cookie with ttl: generates a value, uses it as the key and returns Set-Cookie', () => {
    const r = hashKeyFor({ httpCookie: { name: 'sess', path: '/api', ttlMs: 3_600_000 } }, req({ cookie: 'other=1' }), seededRandom(5));
    expect(r.key).toMatch(/^[0-9a-f]{16}$/);
    expect(r.setCookie).toBe(`sess=${r.key}; Path=/api; Max-Age=3600; HttpOnly`);
    // Deterministic for a seed, different across seeds.
    const again = hashKeyFor({ httpCookie: { name: 'sess', path: '/api', ttlMs: 3_600_000 } }, req({}), seededRandom(5));
    expect(again.key).toBe(r.key);
    const other = hashKeyFor({ httpCookie: { name: 'sess', ttlMs: 3_600_000 } }, req({}), seededRandom(6));
    expect(other.key).not.toBe(r.key);
    // The generated cookie, sent back, yields the same key.
    expect(hashKeyFor({ httpCookie: { name: 'sess', ttlMs: 1000 } }, req({ cookie: `sess=${r.key}` }), seededRandom(9)).key).toBe(r.key);
  });

  it('ttl 0 generates a session cookie (no Max-Age), no Path unless configured', () => {
    const r = hashKeyFor({ httpCookie: { name: 's', ttlMs: 0 } }, req({}), seededRandom(2));
    expect(r.setCookie).toBe(`s=${r.key}; HttpOnly`);
  });

  it('source IP', () => {
    expect(hashKeyFor({ useSourceIp: true }, req({}, '', '192.168.0.9'), seededRandom(1))).toEqual({ key: '192.168.0.9' });
  });

  it('query parameter (with or without leading ?, decoded)', () => {
    const h = { httpQueryParameterName: 'user' };
    expect(hashKeyFor(h, req({}, 'a=1&user=bob%20x&user=z'), seededRandom(1))).toEqual({ key: 'bob x' });
    expect(hashKeyFor(h, req({}, '?user=carol'), seededRandom(1))).toEqual({ key: 'carol' });
    expect(hashKeyFor(h, req({}, 'users=1'), seededRandom(1))).toEqual({});
  });

  it('helpers', () => {
    expect(cookieValue(['a=1', 'b="q"'], 'b')).toBe('q');
    expect(cookieValue('a=1', 'c')).toBeUndefined();
    expect(queryParam('flag&x=1', 'flag')).toBe('');
    expect(queryParam('', 'x')).toBeUndefined();
  });
});
