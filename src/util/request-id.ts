/**
 * x-request-id values: RFC 9562 version-4 UUIDs like crypto.randomUUID(), written from a pooled random buffer into
 * one reused byte buffer, so each id costs one 36-character string (randomUUID builds it from pieces: ~590 B per
 * request in the allocation profile of the proxy under load).
 */
import { randomFillSync } from 'node:crypto';

const POOL_IDS = 256;
const pool = Buffer.allocUnsafe(16 * POOL_IDS);
let next = POOL_IDS; // empty: filled on first use
const out = Buffer.allocUnsafe(36);
const HEX = Buffer.from('0123456789abcdef', 'latin1');
/** Positions of the 16 bytes' first hex digit in the 36-character form (dashes at 8, 13, 18, 23). */
const AT = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
out[8] = out[13] = out[18] = out[23] = 0x2d;

export function requestId(): string {
  if (next === POOL_IDS) {
    randomFillSync(pool);
    next = 0;
  }
  const o = next++ * 16;
  for (let i = 0; i < 16; i++) {
    let b = pool[o + i]!;
    if (i === 6) b = (b & 0x0f) | 0x40; // version 4
    else if (i === 8) b = (b & 0x3f) | 0x80; // variant 10xx
    const p = AT[i]!;
    out[p] = HEX[b >> 4]!;
    out[p + 1] = HEX[b & 15]!;
  }
  return out.toString('latin1', 0, 36);
}
