/**
 * Random bytes for ids on the request path, drawn from one pooled CSPRNG buffer (one randomFillSync per 4 KiB), and
 * hex-encoded into a caller's reused byte buffer: an id then costs one flat string (x-request-id, traceparent).
 */
import { randomFillSync } from 'node:crypto';

/** ASCII codes of the lowercase hex digits. */
const HEX = Buffer.from('0123456789abcdef', 'latin1');

export class RandomPool {
  /** The pool; `take` returns offsets into it, valid until the next `take`. */
  readonly bytes: Buffer;
  private pos: number;

  constructor(size = 4096) {
    this.bytes = Buffer.allocUnsafe(size);
    this.pos = size; // empty: filled on first use
  }

  /** Offset of `n` fresh random bytes; with `nonZero`, an all-zero draw is skipped (invalid as a W3C/B3 id). */
  take(n: number, nonZero = false): number {
    for (;;) {
      if (this.pos + n > this.bytes.length) {
        randomFillSync(this.bytes);
        this.pos = 0;
      }
      const start = this.pos;
      this.pos += n;
      if (!nonZero) return start;
      let any = 0;
      for (let i = start; i < start + n; i++) any |= this.bytes[i]!;
      if (any !== 0) return start;
    }
  }
}

/** Write `n` bytes of `src` from `start` as 2n lowercase hex digits into `out` at `at`. */
export function writeHex(out: Buffer, at: number, src: Buffer, start: number, n: number): void {
  for (let i = 0; i < n; i++) {
    const v = src[start + i]!;
    out[at + 2 * i] = HEX[v >> 4]!;
    out[at + 2 * i + 1] = HEX[v & 15]!;
  }
}
