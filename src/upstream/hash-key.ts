/**
 * The consistent-hash key of a request for DestinationRule consistentHash (header, cookie, source IP or query
 * parameter), and the Set-Cookie to send when a `ttl` cookie is missing. Pure: randomness is injected.
 */

import type { HashPolicy } from '../model.js';

export interface HashKeyRequest {
  /** Lowercase header names, as node:http gives them. */
  headers: Record<string, string | string[] | undefined>;
  /** Query string, with or without the leading '?'. */
  query: string;
  sourceIp: string;
}

export interface HashKey {
  /** undefined: no key (the balancer then picks at random, as Envoy does). */
  key?: string;
  /** A complete Set-Cookie header value to add to the response. */
  setCookie?: string;
}

const NONE: HashKey = Object.freeze({});

/** Value of cookie `name` in the Cookie header(s), or undefined. */
export function cookieValue(header: string | string[] | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  const list = Array.isArray(header) ? header : [header];
  for (const h of list) {
    let start = 0;
    while (start < h.length) {
      let end = h.indexOf(';', start);
      if (end === -1) end = h.length;
      const eq = h.indexOf('=', start);
      if (eq !== -1 && eq < end && h.slice(start, eq).trim() === name) {
        let v = h.slice(eq + 1, end).trim();
        if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
        return v;
      }
      start = end + 1;
    }
  }
  return undefined;
}

/** Value of query parameter `name` (first occurrence, percent-decoded), or undefined. */
export function queryParam(query: string, name: string): string | undefined {
  const q = query.startsWith('?') ? query.slice(1) : query;
  let start = 0;
  while (start <= q.length && q.length > 0) {
    let end = q.indexOf('&', start);
    if (end === -1) end = q.length;
    const eq = q.indexOf('=', start);
    const hasValue = eq !== -1 && eq < end;
    const k = q.slice(start, hasValue ? eq : end);
    if (safeDecode(k) === name) return hasValue ? safeDecode(q.slice(eq + 1, end)) : '';
    start = end + 1;
  }
  return undefined;
}

function safeDecode(s: string): string {
  if (s.indexOf('%') === -1 && s.indexOf('+') === -1) return s;
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

/** 16 hex digits from the injected random source (two 32-bit halves). */
function randomToken(rand: () => number): string {
  const hi = Math.floor(rand() * 4294967296).toString(16).padStart(8, '0');
  const lo = Math.floor(rand() * 4294967296).toString(16).padStart(8, '0');
  return hi + lo;
}

/**
 * Istio allows exactly one key source per consistentHash; if several are set, the first in the order header,
 * cookie, source IP, query parameter wins. A missing cookie with `ttlMs` set is generated (Envoy): the new
 * value is the key and `setCookie` carries `name=value[; Path=p][; Max-Age=s]; HttpOnly` (ttl 0 = session
 * cookie, no Max-Age; no Path attribute unless `path` is configured, as Envoy).
 */
export function hashKeyFor(hash: HashPolicy, req: HashKeyRequest, rand: () => number): HashKey {
  if (hash.httpHeaderName !== undefined) {
    const v = req.headers[hash.httpHeaderName];
    if (v === undefined) return NONE;
    return { key: Array.isArray(v) ? v.join(',') : v };
  }
  const c = hash.httpCookie;
  if (c !== undefined) {
    const v = cookieValue(req.headers.cookie, c.name);
    if (v !== undefined) return { key: v };
    if (c.ttlMs === undefined) return NONE;
    const value = randomToken(rand);
    let sc = `${c.name}=${value}`;
    if (c.path !== undefined && c.path !== '') sc += `; Path=${c.path}`;
    if (c.ttlMs > 0) sc += `; Max-Age=${Math.max(1, Math.floor(c.ttlMs / 1000))}`;
    sc += '; HttpOnly';
    return { key: value, setCookie: sc };
  }
  if (hash.useSourceIp === true) return req.sourceIp === '' ? NONE : { key: req.sourceIp };
  if (hash.httpQueryParameterName !== undefined) {
    const v = queryParam(req.query, hash.httpQueryParameterName);
    return v === undefined ? NONE : { key: v };
  }
  return NONE;
}
