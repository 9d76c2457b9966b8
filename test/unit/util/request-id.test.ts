import { describe, it, expect } from 'vitest';
import { requestId } from '../../../src/util/request-id.js';

const V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('requestId', () => {
  it('makes RFC 9562 version-4 UUIDs, distinct across refills of the random pool', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const id = requestId();
      expect(id).toMatch(V4);
      seen.add(id);
    }
    expect(seen.size).toBe(2000);
  });

  it('returns an independent string each time (the byte buffer is reused, the strings are not)', () => {
    const a = requestId();
    const copy = `${a}`;
    requestId();
    expect(a).toBe(copy);
  });

  it('uses every hex digit in the random positions (no stuck nibbles)', () => {
    const digits = new Set<string>();
    for (let i = 0; i < 200; i++) for (const c of requestId().replace(/-/g, '')) digits.add(c);
    expect(digits.size).toBe(16);
  });
});
