/**
 * x-request-id values: RFC 9562 version-4 UUIDs like crypto.randomUUID(), written from the pooled random buffer into
 * one reused byte buffer, so each id costs one 36-character string (randomUUID builds it from pieces: ~590 B per
 * request in the allocation profile of the proxy under load).
 */
import { RandomPool, writeHex } from './random-pool.js';

const pool = new RandomPool();
const out = Buffer.from('00000000-0000-0000-0000-000000000000', 'latin1');
/** The UUID's five groups, flat: first byte, byte count, offset in the 36-character form. */
const GROUPS = [0, 4, 0, 4, 2, 9, 6, 2, 14, 8, 2, 19, 10, 6, 24];

export function requestId(): string {
  const o = pool.take(16);
  const b = pool.bytes;
  b[o + 6] = (b[o + 6]! & 0x0f) | 0x40; // version 4
  b[o + 8] = (b[o + 8]! & 0x3f) | 0x80; // variant 10xx
  for (let g = 0; g < GROUPS.length; g += 3) writeHex(out, GROUPS[g + 2]!, b, o + GROUPS[g]!, GROUPS[g + 1]!);
  return out.toString('latin1', 0, 36);
}
