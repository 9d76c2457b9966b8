/**
 * `headersObject` must read exactly like node:http's `IncomingMessage.headers` for the same raw headers
 * (the access log, tracing and routing read it): compared against a real IncomingMessage, on fixed cases
 * and on seeded random header lists.
 */
import { describe, it, expect } from 'vitest';
import { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import fc from 'fast-check';
import { headersObject } from '../../../src/http1/server.js';

/**
 * node:http's own view: the raw list handed to an IncomingMessage the way node:http's parser does
 * (`_addHeaderLines(headers, n)` from parserOnHeadersComplete), then its `headers`.
 */
function nodeHeaders(raw: string[]): Record<string, unknown> {
  const m = new IncomingMessage(new Socket()) as IncomingMessage & { _addHeaderLines(h: string[], n: number): void };
  m._addHeaderLines(raw, raw.length);
  return { ...m.headers };
}

function ours(raw: string[]): Record<string, unknown> {
  return { ...headersObject(raw) };
}

describe('headersObject', () => {
  it('lowercases names and keeps single values', () => {
    const raw = ['Host', 'a.example', 'X-Request-ID', 'r1', 'ACCEPT', 'text/html'];
    expect(ours(raw)).toEqual({ host: 'a.example', 'x-request-id': 'r1', accept: 'text/html' });
    expect(ours(raw)).toEqual(nodeHeaders(raw));
  });

  it('set-cookie is always an array; cookie joins with "; "; other repeats join with ", "', () => {
    const raw = ['Set-Cookie', 'a=1', 'cookie', 'x=1', 'Cookie', 'y=2', 'set-cookie', 'b=2', 'Accept', 'a', 'accept', 'b', 'X-Single-Cookie', 'c'];
    expect(ours(raw)).toEqual({ 'set-cookie': ['a=1', 'b=2'], cookie: 'x=1; y=2', accept: 'a, b', 'x-single-cookie': 'c' });
    expect(ours(raw)).toEqual(nodeHeaders(raw));
    expect(ours(['Set-Cookie', 'only'])).toEqual({ 'set-cookie': ['only'] });
  });

  it('first value wins for the fields node:http does not join (content-type, host, authorization, …)', () => {
    const single = ['content-type', 'content-length', 'user-agent', 'referer', 'host', 'authorization', 'proxy-authorization',
      'if-modified-since', 'if-unmodified-since', 'from', 'location', 'max-forwards', 'retry-after', 'etag',
      'last-modified', 'server', 'age', 'expires'];
    for (const name of single) {
      const raw = [name.toUpperCase(), 'first', name, 'second'];
      expect(ours(raw), name).toEqual({ [name]: 'first' });
      expect(ours(raw), name).toEqual(nodeHeaders(raw));
    }
  });

  it('empty values and empty lists', () => {
    expect(ours([])).toEqual(nodeHeaders([]));
    const raw = ['X-Empty', '', 'x-empty', 'v', 'Cookie', '', 'cookie', 'z=1'];
    expect(ours(raw)).toEqual(nodeHeaders(raw));
  });

  it('matches IncomingMessage.headers on random header lists (seeded)', () => {
    const names = ['Host', 'host', 'Cookie', 'COOKIE', 'Set-Cookie', 'set-cookie', 'Content-Type', 'content-length', 'Accept',
      'X-Forwarded-For', 'x-forwarded-for', 'Authorization', 'Via', 'ETag', 'Age', 'X-B3-TraceId', 'traceparent', 'Max-Forwards',
      'Transfer-Encoding', 'Connection', 'Expect', 'From', 'Location', 'Server', 'Expires', 'Retry-After', 'Referer', 'Proxy-Authorization'];
    const value = fc.stringMatching(/^[ -~]{0,12}$/).map((v) => v.trim());
    const entry = fc.tuple(fc.constantFrom(...names), value);
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 24 }), (pairs) => {
        const raw = pairs.flat();
        expect(ours(raw)).toEqual(nodeHeaders(raw));
      }),
      { seed: 20240611, numRuns: 500 },
    );
  });

  it('inherits nothing: a header named like an Object method or __proto__ is an ordinary key', () => {
    const o = headersObject(['constructor', 'c', 'toString', 't', '__proto__', 'p', 'hasOwnProperty', 'h']);
    expect(o.constructor).toBe('c');
    expect(o.tostring).toBe('t');
    expect(o.hasownproperty).toBe('h');
    expect(Object.prototype.hasOwnProperty.call(o, '__proto__')).toBe(true);
    expect(o['__proto__']).toBe('p');
    // Its prototype has no properties and no prototype of its own (not null itself: that would be a dictionary object).
    expect(Object.getOwnPropertyNames(Object.getPrototypeOf(o))).toEqual([]);
    expect(Object.getPrototypeOf(Object.getPrototypeOf(o))).toBe(null);
    expect(headersObject(['valueOf', 'v']).valueof).toBe('v');
    expect('toString' in headersObject([])).toBe(false);
  });
});
