/**
 * HPACK (RFC 7541), src/http2/hpack.ts: the Appendix C examples decoded byte for byte, the static table (Appendix A)
 * and the Huffman code (Appendix B) against the RFC's own tables, seeded random round trips over one
 * encoder/decoder pair (the two dynamic tables must stay in step), the encoder's indexing policy, every malformed
 * block the decoder must refuse, and the header list size limit (which must not desync the dynamic table).
 */
import { describe, it, expect } from 'vitest';
import { HpackDecoder, HpackEncoder, HpackError, HpackListTooLarge } from '../../../src/http2/hpack.js';
import { mulberry32 } from '../../../src/bench/schedule.js';

// ---------------------------------------------------------------------------------------------------------------
// Helpers

/** Bytes from hex, whitespace ignored (vectors are typed as the RFC prints them). */
function hex(s: string): Buffer {
  const h = s.replace(/\s+/g, '');
  if (h.length % 2 !== 0 || !/^[0-9a-f]*$/i.test(h)) throw new Error(`bad hex: ${s}`);
  return Buffer.from(h, 'hex');
}

/** Concatenate bytes, arrays of bytes and (latin1) strings into one block. */
function bytes(...parts: (number | readonly number[] | string | Buffer)[]): Buffer {
  const out: Buffer[] = [];
  for (const p of parts) {
    if (typeof p === 'number') out.push(Buffer.from([p]));
    else if (typeof p === 'string') out.push(Buffer.from(p, 'latin1'));
    else out.push(Buffer.from(p));
  }
  return Buffer.concat(out);
}

/** An integer (§5.1) with an N-bit prefix under the pattern bits `first`: a test-side encoder, independent of src. */
function int(v: number, prefixBits: number, first = 0): number[] {
  const max = 2 ** prefixBits - 1;
  if (v < max) return [first | v];
  const out = [first | max];
  v -= max;
  while (v >= 128) {
    out.push((v % 128) + 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

/** A raw string literal (§5.2, H = 0). */
function rawStr(s: string): Buffer {
  return bytes(int(s.length, 7), s);
}

/** A Huffman-coded string literal (§5.2, H = 1) from already-coded bytes. */
function huffStr(coded: Buffer): Buffer {
  return bytes(int(coded.length, 7, 0x80), coded);
}

/** Literal header field without indexing, new name (§6.2.2): 0x00, name, value. */
function literalNew(name: Buffer, value: Buffer): Buffer {
  return bytes(0x00, name, value);
}

/** Flat [n0, v0, n1, v1, …] from pairs, for readable expectations. */
function flat(pairs: readonly (readonly [string, string])[]): string[] {
  return pairs.flatMap(([n, v]) => [n, v]);
}

/** The error `fn` throws (fails the test when it throws nothing). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected an exception');
}

// ---------------------------------------------------------------------------------------------------------------
// RFC 7541 Appendix A (static table) and Appendix B (Huffman code), typed from the RFC.

const RFC_STATIC_TABLE: readonly (readonly [string, string])[] = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''],
  ['etag', ''], ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''],
  ['if-modified-since', ''], ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''],
  ['last-modified', ''], ['link', ''], ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''],
  ['proxy-authorization', ''], ['range', ''], ['referer', ''], ['refresh', ''], ['retry-after', ''],
  ['server', ''], ['set-cookie', ''], ['strict-transport-security', ''], ['transfer-encoding', ''],
  ['user-agent', ''], ['vary', ''], ['via', ''], ['www-authenticate', ''],
];

/** Appendix B: the code of each symbol (0-255, 256 = EOS) as printed in hex, … */
const RFC_HUFFMAN_CODES: readonly number[] = [
  0x1ff8, 0x7fffd8, 0xfffffe2, 0xfffffe3, 0xfffffe4, 0xfffffe5, 0xfffffe6, 0xfffffe7, // 0
  0xfffffe8, 0xffffea, 0x3ffffffc, 0xfffffe9, 0xfffffea, 0x3ffffffd, 0xfffffeb, 0xfffffec, // 8
  0xfffffed, 0xfffffee, 0xfffffef, 0xffffff0, 0xffffff1, 0xffffff2, 0x3ffffffe, 0xffffff3, // 16
  0xffffff4, 0xffffff5, 0xffffff6, 0xffffff7, 0xffffff8, 0xffffff9, 0xffffffa, 0xffffffb, // 24
  0x14, 0x3f8, 0x3f9, 0xffa, 0x1ff9, 0x15, 0xf8, 0x7fa, // 32 ' '
  0x3fa, 0x3fb, 0xf9, 0x7fb, 0xfa, 0x16, 0x17, 0x18, // 40 '('
  0x0, 0x1, 0x2, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, // 48 '0'
  0x1e, 0x1f, 0x5c, 0xfb, 0x7ffc, 0x20, 0xffb, 0x3fc, // 56 '8'
  0x1ffa, 0x21, 0x5d, 0x5e, 0x5f, 0x60, 0x61, 0x62, // 64 '@'
  0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, // 72 'H'
  0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72, // 80 'P'
  0xfc, 0x73, 0xfd, 0x1ffb, 0x7fff0, 0x1ffc, 0x3ffc, 0x22, // 88 'X'
  0x7ffd, 0x3, 0x23, 0x4, 0x24, 0x5, 0x25, 0x26, // 96 '`'
  0x27, 0x6, 0x74, 0x75, 0x28, 0x29, 0x2a, 0x7, // 104 'h'
  0x2b, 0x76, 0x2c, 0x8, 0x9, 0x2d, 0x77, 0x78, // 112 'p'
  0x79, 0x7a, 0x7b, 0x7ffe, 0x7fc, 0x3ffd, 0x1ffd, 0xffffffc, // 120 'x'
  0xfffe6, 0x3fffd2, 0xfffe7, 0xfffe8, 0x3fffd3, 0x3fffd4, 0x3fffd5, 0x7fffd9, // 128
  0x3fffd6, 0x7fffda, 0x7fffdb, 0x7fffdc, 0x7fffdd, 0x7fffde, 0xffffeb, 0x7fffdf, // 136
  0xffffec, 0xffffed, 0x3fffd7, 0x7fffe0, 0xffffee, 0x7fffe1, 0x7fffe2, 0x7fffe3, // 144
  0x7fffe4, 0x1fffdc, 0x3fffd8, 0x7fffe5, 0x3fffd9, 0x7fffe6, 0x7fffe7, 0xffffef, // 152
  0x3fffda, 0x1fffdd, 0xfffe9, 0x3fffdb, 0x3fffdc, 0x7fffe8, 0x7fffe9, 0x1fffde, // 160
  0x7fffea, 0x3fffdd, 0x3fffde, 0xfffff0, 0x1fffdf, 0x3fffdf, 0x7fffeb, 0x7fffec, // 168
  0x1fffe0, 0x1fffe1, 0x3fffe0, 0x1fffe2, 0x7fffed, 0x3fffe1, 0x7fffee, 0x7fffef, // 176
  0xfffea, 0x3fffe2, 0x3fffe3, 0x3fffe4, 0x7ffff0, 0x3fffe5, 0x3fffe6, 0x7ffff1, // 184
  0x3ffffe0, 0x3ffffe1, 0xfffeb, 0x7fff1, 0x3fffe7, 0x7ffff2, 0x3fffe8, 0x1ffffec, // 192
  0x3ffffe2, 0x3ffffe3, 0x3ffffe4, 0x7ffffde, 0x7ffffdf, 0x3ffffe5, 0xfffff1, 0x1ffffed, // 200
  0x7fff2, 0x1fffe3, 0x3ffffe6, 0x7ffffe0, 0x7ffffe1, 0x3ffffe7, 0x7ffffe2, 0xfffff2, // 208
  0x1fffe4, 0x1fffe5, 0x3ffffe8, 0x3ffffe9, 0xffffffd, 0x7ffffe3, 0x7ffffe4, 0x7ffffe5, // 216
  0xfffec, 0xfffff3, 0xfffed, 0x1fffe6, 0x3fffe9, 0x1fffe7, 0x1fffe8, 0x7ffff3, // 224
  0x3fffea, 0x3fffeb, 0x1ffffee, 0x1ffffef, 0xfffff4, 0xfffff5, 0x3ffffea, 0x7ffff4, // 232
  0x3ffffeb, 0x7ffffe6, 0x3ffffec, 0x3ffffed, 0x7ffffe7, 0x7ffffe8, 0x7ffffe9, 0x7ffffea, // 240
  0x7ffffeb, 0xffffffe, 0x7ffffec, 0x7ffffed, 0x7ffffee, 0x7ffffef, 0x7fffff0, 0x3ffffee, // 248
  0x3fffffff, // 256 EOS
];

/** … and its length in bits. */
const RFC_HUFFMAN_LENGTHS: readonly number[] = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, // 0
  28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, // 16
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, // 32
  5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, // 48
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, // 64
  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, // 80
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, // 96
  6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, // 112
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 128
  24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 144
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 160
  21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 176
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 192
  19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 208
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 224
  26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 240
  30, // 256
];
const EOS = 256;

/**
 * Huffman-code a sequence of symbols with the RFC's table (test side, independent of src). The last byte is padded
 * with `padBits` (default: ones, the EOS prefix, as §5.2 requires); `padBits` may be given to build invalid padding.
 */
function huffmanSymbols(symbols: readonly number[], padBits?: string): Buffer {
  let bits = '';
  for (const s of symbols) bits += RFC_HUFFMAN_CODES[s]!.toString(2).padStart(RFC_HUFFMAN_LENGTHS[s]!, '0');
  bits += padBits ?? '1'.repeat((8 - (bits.length % 8)) % 8);
  if (bits.length % 8 !== 0) throw new Error('padding must complete the last byte');
  const out = Buffer.alloc(bits.length / 8);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(bits.slice(8 * i, 8 * i + 8), 2);
  return out;
}

/** Huffman-code a latin1 string. */
function huffman(s: string): Buffer {
  return huffmanSymbols([...Buffer.from(s, 'latin1')]);
}

// ---------------------------------------------------------------------------------------------------------------

describe('the test-side tables (sanity of what was typed in)', () => {
  it('the Huffman table typed from Appendix B is a canonical prefix code of 257 symbols', () => {
    expect(RFC_HUFFMAN_CODES).toHaveLength(257);
    expect(RFC_HUFFMAN_LENGTHS).toHaveLength(257);
    // Canonical: sorted by (length, symbol), each code is the previous one plus one, shifted to its length.
    const order = RFC_HUFFMAN_LENGTHS.map((_, s) => s).sort(
      (a, b) => RFC_HUFFMAN_LENGTHS[a]! - RFC_HUFFMAN_LENGTHS[b]! || a - b,
    );
    let code = 0;
    let len = RFC_HUFFMAN_LENGTHS[order[0]!]!;
    for (let k = 0; k < order.length; k++) {
      const s = order[k]!;
      const l = RFC_HUFFMAN_LENGTHS[s]!;
      if (k > 0) code = (code + 1) * 2 ** (l - len);
      len = l;
      expect(RFC_HUFFMAN_CODES[s], `symbol ${s}`).toBe(code);
    }
    expect(RFC_HUFFMAN_CODES[EOS]).toBe(2 ** 30 - 1); // EOS: 30 ones
  });

  it('the test-side Huffman coder reproduces strings coded in Appendix C', () => {
    expect(huffman('www.example.com')).toEqual(hex('f1e3 c2e5 f23a 6ba0 ab90 f4ff'));
    expect(huffman('no-cache')).toEqual(hex('a8eb 1064 9cbf'));
    expect(huffman('custom-key')).toEqual(hex('25a8 49e9 5ba9 7d7f'));
    expect(huffman('custom-value')).toEqual(hex('25a8 49e9 5bb8 e8b4 bf'));
    expect(huffman('302')).toEqual(hex('6402'));
    expect(huffman('private')).toEqual(hex('aec3 771a 4b'));
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('RFC 7541 Appendix C examples', () => {
  describe('C.1 integer representation (via the encoder\'s dynamic table size update, 5-bit prefix)', () => {
    it('C.1.1: 10 fits in the prefix', () => {
      const enc = new HpackEncoder();
      enc.setMaxTableSize(10);
      expect(enc.encode([])).toEqual(hex('2a')); // 001 01010
    });

    it('C.1.2: 1337 = 31 + 1306 → 1f 9a 0a', () => {
      const enc = new HpackEncoder();
      enc.setMaxTableSize(1337);
      expect(enc.encode([])).toEqual(hex('3f 9a 0a'));
      const dec = new HpackDecoder();
      expect(dec.decode(hex('3f 9a 0a'))).toEqual([]);
    });
  });

  describe('C.2 header field representations', () => {
    it('C.2.1 literal with indexing', () => {
      const dec = new HpackDecoder();
      const block = hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572');
      expect(dec.decode(block)).toEqual(['custom-key', 'custom-header']);
      expect(dec.tableSize).toBe(55);
      expect(dec.decode(hex('be'))).toEqual(['custom-key', 'custom-header']);
    });

    it('C.2.1 is also exactly what our encoder produces', () => {
      const enc = new HpackEncoder();
      expect(enc.encode(['custom-key', 'custom-header'])).toEqual(
        hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572'),
      );
      expect(enc.tableSize).toBe(55);
    });

    it('C.2.2 literal without indexing', () => {
      const dec = new HpackDecoder();
      expect(dec.decode(hex('040c 2f73 616d 706c 652f 7061 7468'))).toEqual([':path', '/sample/path']);
      expect(dec.tableSize).toBe(0);
      expect(() => dec.decode(hex('be'))).toThrow(HpackError);
    });

    it('C.2.3 literal never indexed', () => {
      const dec = new HpackDecoder();
      expect(dec.decode(hex('1008 7061 7373 776f 7264 0673 6563 7265 74'))).toEqual(['password', 'secret']);
      expect(dec.tableSize).toBe(0);
    });

    it('C.2.4 indexed', () => {
      const dec = new HpackDecoder();
      expect(dec.decode(hex('82'))).toEqual([':method', 'GET']);
      expect(dec.tableSize).toBe(0);
    });
  });

  const REQ1 = flat([[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']]);
  const REQ2 = [...REQ1, 'cache-control', 'no-cache'];
  const REQ3 = flat([
    [':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'],
    ['custom-key', 'custom-value'],
  ]);
  /** The dynamic table after the third request, newest first (index 62, 63, 64). */
  const REQ_TABLE = flat([['custom-key', 'custom-value'], ['cache-control', 'no-cache'], [':authority', 'www.example.com']]);

  const C3 = [
    hex('8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d'),
    hex('8286 84be 5808 6e6f 2d63 6163 6865'),
    hex('8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65'),
  ];
  const C4 = [
    hex('8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff'),
    hex('8286 84be 5886 a8eb 1064 9cbf'),
    hex('8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf'),
  ];

  for (const [section, blocks] of [['C.3 requests without Huffman', C3], ['C.4 requests with Huffman', C4]] as const) {
    it(`${section}: three blocks on one decoder, the dynamic table carried over`, () => {
      const dec = new HpackDecoder();
      expect(dec.decode(blocks[0]!)).toEqual(REQ1);
      expect(dec.tableSize).toBe(57);
      expect(dec.decode(blocks[1]!)).toEqual(REQ2);
      expect(dec.tableSize).toBe(110);
      expect(dec.decode(blocks[2]!)).toEqual(REQ3);
      expect(dec.tableSize).toBe(164);
      expect(dec.decode(hex('bebfc0'))).toEqual(REQ_TABLE);
      expect(() => dec.decode(hex('c1'))).toThrow(HpackError);
    });
  }

  it('C.3 is byte for byte what our encoder produces for the same three requests', () => {
    const enc = new HpackEncoder();
    expect(enc.encode(REQ1)).toEqual(C3[0]);
    expect(enc.tableSize).toBe(57);
    expect(enc.encode(REQ2)).toEqual(C3[1]);
    expect(enc.tableSize).toBe(110);
    expect(enc.encode(REQ3)).toEqual(C3[2]);
    expect(enc.tableSize).toBe(164);
  });

  const DATE1 = 'Mon, 21 Oct 2013 20:13:21 GMT';
  const DATE2 = 'Mon, 21 Oct 2013 20:13:22 GMT';
  const LOC = 'https://www.example.com';
  const COOKIE = 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1';
  const RESP1 = flat([[':status', '302'], ['cache-control', 'private'], ['date', DATE1], ['location', LOC]]);
  const RESP2 = flat([[':status', '307'], ['cache-control', 'private'], ['date', DATE1], ['location', LOC]]);
  const RESP3 = flat([
    [':status', '200'], ['cache-control', 'private'], ['date', DATE2], ['location', LOC],
    ['content-encoding', 'gzip'], ['set-cookie', COOKIE],
  ]);
  const RESP_TABLE = flat([['set-cookie', COOKIE], ['content-encoding', 'gzip'], ['date', DATE2]]);

  const C5 = [
    hex(`4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
         2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
         6c65 2e63 6f6d`),
    hex('4803 3330 37c1 c0bf'),
    hex(`88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
         54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
         5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
         3d31`),
  ];
  const C6 = [
    hex(`4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
         2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3`),
    hex('4883 640e ffc1 c0bf'),
    hex(`88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
         77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
         9587 3160 65c0 03ed 4ee5 b106 3d50 07`),
  ];

  for (const [section, blocks] of [['C.5 responses without Huffman', C5], ['C.6 responses with Huffman', C6]] as const) {
    it(`${section}: 256-byte table, entries evicted`, () => {
      const dec = new HpackDecoder(256);
      expect(dec.decode(blocks[0]!)).toEqual(RESP1);
      expect(dec.tableSize).toBe(222);
      // :status 307 evicts the oldest entry, :status 302.
      expect(dec.decode(blocks[1]!)).toEqual(RESP2);
      expect(dec.tableSize).toBe(222);
      // date, content-encoding and set-cookie evict everything but each other.
      expect(dec.decode(blocks[2]!)).toEqual(RESP3);
      expect(dec.tableSize).toBe(215);
      expect(dec.decode(hex('bebfc0'))).toEqual(RESP_TABLE);
      expect(() => dec.decode(hex('c1'))).toThrow(HpackError);
    });
  }

  it('C.5 responses re-encoded by a 256-byte encoder decode on a 256-byte decoder (size update first)', () => {
    const enc = new HpackEncoder(256);
    const dec = new HpackDecoder(256);
    const first = enc.encode(RESP1);
    expect([...first.subarray(0, 3)]).toEqual([0x3f, 0xe1, 0x01]); // size update to 256
    expect(dec.decode(first)).toEqual(RESP1);
    for (const list of [RESP2, RESP3]) {
      const block = enc.encode(list);
      expect(block[0]! & 0xe0).not.toBe(0x20); // no further size update
      expect(dec.decode(block)).toEqual(list);
      expect(dec.tableSize).toBe(enc.tableSize);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('static table (Appendix A) and Huffman code (Appendix B) in the decoder', () => {
  it('indexes 1-61 decode to the RFC static table', () => {
    const dec = new HpackDecoder();
    const block = Buffer.from(RFC_STATIC_TABLE.map((_, i) => 0x80 | (i + 1)));
    expect(dec.decode(block)).toEqual(flat(RFC_STATIC_TABLE));
    expect(dec.tableSize).toBe(0);
  });

  it('static names are used by literals (name index 1-61, 4- and 6-bit prefixes)', () => {
    const dec = new HpackDecoder();
    for (let i = 1; i <= 61; i++) {
      const name = RFC_STATIC_TABLE[i - 1]![0];
      expect(dec.decode(bytes(int(i, 4, 0x00), rawStr('v')))).toEqual([name, 'v']);
      expect(dec.decode(bytes(int(i, 4, 0x10), rawStr('w')))).toEqual([name, 'w']);
    }
    expect(dec.tableSize).toBe(0);
    expect(dec.decode(bytes(int(61, 6, 0x40), rawStr('x')))).toEqual(['www-authenticate', 'x']);
    expect(dec.decode(hex('be'))).toEqual(['www-authenticate', 'x']);
  });

  it('every symbol 0-255 decodes from its RFC code (with and without neighbours)', () => {
    const dec = new HpackDecoder();
    for (let s = 0; s < 256; s++) {
      const coded = huffmanSymbols([s]);
      expect(dec.decode(literalNew(rawStr('x'), huffStr(coded))), `symbol ${s}`).toEqual(['x', String.fromCharCode(s)]);
      const triple = huffmanSymbols([0x61, s, s]); // 'a', s, s: codes at every bit offset
      expect(dec.decode(literalNew(rawStr('x'), huffStr(triple))), `symbols a,${s},${s}`).toEqual([
        'x', `a${String.fromCharCode(s)}${String.fromCharCode(s)}`,
      ]);
    }
    const all = Array.from({ length: 256 }, (_, s) => s);
    const allStr = Buffer.from(all).toString('latin1');
    expect(dec.decode(literalNew(huffStr(huffmanSymbols(all)), huffStr(huffmanSymbols(all.reverse()))))).toEqual([
      allStr, [...allStr].reverse().join(''),
    ]);
  });

  it('seeded random latin1 strings Huffman-coded by the RFC table decode exactly', () => {
    const rnd = mulberry32(7541);
    const dec = new HpackDecoder();
    for (let i = 0; i < 500; i++) {
      const len = Math.floor(rnd() * (i % 50 === 0 ? 3000 : 40));
      let s = '';
      for (let k = 0; k < len; k++) {
        s += String.fromCharCode(rnd() < 0.8 ? 0x20 + Math.floor(rnd() * 95) : Math.floor(rnd() * 256));
      }
      expect(dec.decode(bytes(0x40, huffStr(huffman(`n${i}`)), huffStr(huffman(s))))).toEqual([`n${i}`, s]);
    }
  });

  it('Huffman edge cases: empty string, no padding, 1-7 padding bits, strings beyond the decoder\'s scratch', () => {
    const dec = new HpackDecoder();
    expect(dec.decode(literalNew(rawStr('x'), hex('80')))).toEqual(['x', '']);
    expect(dec.decode(literalNew(rawStr('x'), huffStr(hex('f8'))))).toEqual(['x', '&']); // 8-bit code, no padding
    // '0' is 00000: 5 bits + 3 padding ones; '00' is 10 bits + 6 padding; ' ' then '0': 11 bits + 5 padding.
    expect(dec.decode(literalNew(rawStr('x'), huffStr(huffman('0'))))).toEqual(['x', '0']);
    expect(dec.decode(literalNew(rawStr('x'), huffStr(huffman('00'))))).toEqual(['x', '00']);
    expect(dec.decode(literalNew(rawStr('x'), huffStr(huffman(' 0'))))).toEqual(['x', ' 0']);
    const seven = huffmanSymbols([1, 0x30, 0x30]); // 23 + 5 + 5 = 33 bits → 7 padding bits, the most allowed
    expect(seven.length).toBe(5);
    expect(dec.decode(literalNew(rawStr('x'), huffStr(seven)))).toEqual(['x', '\u000100']);
    for (const n of [5000, 70_000, 10]) {
      const s = 'abcdefghij'.repeat(n / 10);
      expect(dec.decode(literalNew(rawStr('x'), huffStr(huffman(s))))).toEqual(['x', s]);
    }
  });

  it('raw literals are latin1 byte for byte, and names keep their case', () => {
    const dec = new HpackDecoder();
    const value = Buffer.from([0x00, 0x7f, 0x80, 0xe9, 0xff]);
    expect(dec.decode(literalNew(rawStr('X-Mixed-Case'), bytes(int(value.length, 7), value)))).toEqual([
      'X-Mixed-Case', '\u0000\u007f\u0080\u00e9\u00ff',
    ]);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('decoder: dynamic table', () => {
  it('holds more entries than its initial ring (growth), indexed newest first, multi-byte indexes', () => {
    const dec = new HpackDecoder();
    for (let i = 0; i < 100; i++) dec.decode(bytes(0x40, rawStr(`n${i}`), rawStr(`v${i}`)));
    // Entry i has size 32 + name + value lengths.
    let size = 0;
    for (let i = 0; i < 100; i++) size += 32 + 2 * String(i).length + 2;
    expect(dec.tableSize).toBe(size);
    for (let i = 0; i < 100; i++) {
      const index = 62 + (99 - i);
      expect(dec.decode(bytes(int(index, 7, 0x80))), `index ${index}`).toEqual([`n${i}`, `v${i}`]);
    }
    expect(() => dec.decode(bytes(int(162, 7, 0x80)))).toThrow(HpackError);
    // A literal naming a dynamic entry (index 161 = the oldest, 'n0'), with a 6-bit prefix.
    expect(dec.decode(bytes(int(161, 6, 0x40), rawStr('new')))).toEqual(['n0', 'new']);
    expect(dec.decode(hex('be'))).toEqual(['n0', 'new']);
  });

  it('evicts oldest entries first to make room (§4.4)', () => {
    const dec = new HpackDecoder(100); // room for two entries of 40-50 bytes
    dec.decode(bytes(0x40, rawStr('aaaa'), rawStr('1111'))); // 40
    dec.decode(bytes(0x40, rawStr('bbbb'), rawStr('2222'))); // 40 → 80
    expect(dec.decode(hex('be bf'))).toEqual(['bbbb', '2222', 'aaaa', '1111']);
    dec.decode(bytes(0x40, rawStr('cccc'), rawStr('3333'))); // evicts aaaa
    expect(dec.tableSize).toBe(80);
    expect(dec.decode(hex('be bf'))).toEqual(['cccc', '3333', 'bbbb', '2222']);
    expect(() => dec.decode(hex('c0'))).toThrow(HpackError);
  });

  it('an entry can be added whose name refers to the entry it evicts', () => {
    const dec = new HpackDecoder(80);
    dec.decode(bytes(0x40, rawStr('name'), rawStr('value-one'))); // 45
    expect(dec.decode(bytes(0x7e, rawStr('value-two')))).toEqual(['name', 'value-two']); // evicts 62 first
    expect(dec.tableSize).toBe(45);
    expect(dec.decode(hex('be'))).toEqual(['name', 'value-two']);
    expect(() => dec.decode(hex('bf'))).toThrow(HpackError);
  });

  it('an entry larger than the whole table empties it and is not added, but is still returned (§4.4)', () => {
    const dec = new HpackDecoder(256);
    dec.decode(bytes(0x40, rawStr('a'), rawStr('b')));
    const big = 'x'.repeat(300);
    expect(dec.decode(bytes(0x40, rawStr('big'), rawStr(big)))).toEqual(['big', big]);
    expect(dec.tableSize).toBe(0);
    expect(() => dec.decode(hex('be'))).toThrow(HpackError);
  });

  it('size updates at the start of a block: to 0 empties the table, back up to the limit works again', () => {
    const dec = new HpackDecoder();
    dec.decode(bytes(0x40, rawStr('a'), rawStr('b')));
    expect(dec.tableSize).toBe(34);
    expect(dec.decode(hex('20 82'))).toEqual([':method', 'GET']);
    expect(dec.tableSize).toBe(0);
    expect(() => dec.decode(hex('be'))).toThrow(HpackError);
    // Two updates in a row (lowered then raised, §4.2), then a field.
    expect(dec.decode(bytes(0x20, int(4096, 5, 0x20), 0x40, rawStr('c'), rawStr('d')))).toEqual(['c', 'd']);
    expect(dec.decode(hex('be'))).toEqual(['c', 'd']);
  });

  it('a size update shrinks the table by evicting the oldest entries', () => {
    const dec = new HpackDecoder();
    dec.decode(bytes(0x40, rawStr('aaaa'), rawStr('1111'))); // 40
    dec.decode(bytes(0x40, rawStr('bbbb'), rawStr('2222'))); // 40
    dec.decode(bytes(int(40, 5, 0x20)));
    expect(dec.tableSize).toBe(40);
    expect(dec.decode(hex('be'))).toEqual(['bbbb', '2222']);
    expect(() => dec.decode(hex('bf'))).toThrow(HpackError);
  });

  it('accepts a Uint8Array view with an offset, and an empty block', () => {
    const dec = new HpackDecoder();
    const backing = new Uint8Array([0xff, 0xff, 0x82, 0x84, 0xff]);
    expect(dec.decode(backing.subarray(2, 4))).toEqual([':method', 'GET', ':path', '/']);
    expect(dec.decode(Buffer.alloc(0))).toEqual([]);
  });

  it('accepts integers with the maximum 5 continuation bytes (redundant zero groups)', () => {
    const dec = new HpackDecoder();
    // Size update: 31 + 0 with four 0x80 groups and a final 0x00.
    expect(dec.decode(hex('3f 80 80 80 80 00 82'))).toEqual([':method', 'GET']);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('decoder errors: malformed blocks throw HpackError', () => {
  const cases: readonly (readonly [string, Buffer])[] = [
    ['indexed field with index 0', hex('80')],
    ['index 0 after a valid field', hex('82 80')],
    ['indexed field past the static table (empty dynamic table)', hex('be')],
    ['indexed field far past the table (multi-byte index)', hex('ff 80 01')],
    ['literal with indexing naming an index past the table', bytes(0x7e, rawStr('v'))],
    ['literal without indexing naming an index past the table', bytes(0x0f, 0x2f, rawStr('v'))],
    ['never-indexed literal naming an index past the table', bytes(0x1f, 0x2f, rawStr('v'))],
    ['truncated integer: prefix full, no continuation byte', hex('ff')],
    ['truncated integer: continuation bit set on the last byte', hex('ff 80')],
    ['truncated integer in a string length', bytes(0x00, 0x7f)],
    ['truncated integer in a size update', hex('3f ff')],
    ['literal with indexing, name string missing', hex('40')],
    ['literal with a static name, value string missing', hex('41')],
    ['literal without indexing, value missing', hex('0f 01')],
    ['name string shorter than its length', bytes(0x40, 0x05, 'ab')],
    ['value string shorter than its length', bytes(0x40, rawStr('name'), 0x0a, 'abc')],
    ['Huffman value shorter than its length', bytes(0x41, 0x85, 0xf1, 0xe3)],
    ['integer overflow in an index (> 2^31 - 1)', hex('ff ff ff ff ff 0f')],
    ['integer overflow in a string length', hex('00 7f ff ff ff ff 0f')],
    ['integer encoding longer than 5 continuation bytes', hex('ff ff ff ff ff ff ff ff ff ff 01')],
    ['6 continuation bytes even of a small value', hex('3f 80 80 80 80 80 00')],
    ['Huffman padding of 8 bits or more (a whole byte of ones)', literalNew(rawStr('x'), huffStr(hex('ff')))],
    ['Huffman padding of 11 bits', literalNew(rawStr('x'), huffStr(huffmanSymbols([0x61], '11111111111')))],
    ['Huffman padding not all ones (110)', literalNew(rawStr('x'), huffStr(huffmanSymbols([0x61], '110')))],
    ['Huffman padding not all ones (000)', literalNew(rawStr('x'), huffStr(huffmanSymbols([0x61], '000')))],
    ['Huffman padding of a single 0 bit', literalNew(rawStr('x'), huffStr(huffmanSymbols([0x30, 0x30, 0x30], '0')))],
    ['Huffman-coded EOS symbol alone', literalNew(rawStr('x'), huffStr(huffmanSymbols([EOS])))],
    ['Huffman-coded EOS inside a string (valid padding)', literalNew(rawStr('x'), huffStr(huffmanSymbols([0x61, EOS, 0x61])))],
    ['Huffman-coded EOS in a name', literalNew(huffStr(huffmanSymbols([EOS, 0x61])), rawStr('v'))],
    ['size update above the advertised 4096', bytes(int(4097, 5, 0x20))],
    ['size update after a field', hex('82 20')],
    ['size update after a field, then a field', hex('82 3f e1 1f 82')],
  ];

  it.each(cases)('%s', (_what, block) => {
    expect(() => new HpackDecoder().decode(block)).toThrow(HpackError);
  });

  it('the EOS cases are rejected as EOS, not as bad padding (the padding is valid)', () => {
    const block = literalNew(rawStr('x'), huffStr(huffmanSymbols([0x61, EOS, 0x61])));
    expect(() => new HpackDecoder().decode(block)).toThrow(/EOS/);
  });

  it('the same blocks with the defect repaired decode (the cases above fail for the stated reason)', () => {
    const ok: readonly (readonly [Buffer, string[]])[] = [
      [literalNew(rawStr('x'), huffStr(huffmanSymbols([0x61], '111'))), ['x', 'a']],
      [literalNew(rawStr('x'), huffStr(huffmanSymbols([0x30, 0x30, 0x30], '1'))), ['x', '000']],
      [bytes(0x40, rawStr('name'), 0x03, 'abc'), ['name', 'abc']],
      [bytes(int(4096, 5, 0x20), 0x82), [':method', 'GET']],
      [bytes(0x41, 0x8c, hex('f1e3 c2e5 f23a 6ba0 ab90 f4ff')), [':authority', 'www.example.com']],
    ];
    for (const [block, expected] of ok) expect(new HpackDecoder().decode(block)).toEqual(expected);
  });

  it('a size update above a smaller advertised limit (256)', () => {
    const dec = new HpackDecoder(256);
    expect(() => dec.decode(bytes(int(257, 5, 0x20)))).toThrow(HpackError);
    expect(new HpackDecoder(256).decode(bytes(int(256, 5, 0x20), 0x82))).toEqual([':method', 'GET']);
  });

  it('a dynamic index one past the newest entries', () => {
    const dec = new HpackDecoder();
    dec.decode(bytes(0x40, rawStr('a'), rawStr('b')));
    expect(dec.decode(hex('be'))).toEqual(['a', 'b']);
    expect(() => dec.decode(hex('bf'))).toThrow(HpackError);
  });

  it('HpackError is an Error named HpackError', () => {
    const err = thrown(() => new HpackDecoder().decode(hex('80')));
    expect(err).toBeInstanceOf(HpackError);
    expect(err).toBeInstanceOf(Error);
    expect((err as HpackError).name).toBe('HpackError');
    expect((err as HpackError).message).not.toBe('');
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('header list size limit: HpackListTooLarge', () => {
  const LIST = flat([[':method', 'GET'], ['x-big', 'v'.repeat(100)], [':path', '/p']]);
  // (7 + 3 + 32) + (5 + 100 + 32) + (5 + 2 + 32)
  const LIST_SIZE = 42 + 137 + 39;

  it('throws with the list size, the limit and the decoded headers, after decoding the whole block', () => {
    const enc = new HpackEncoder();
    const dec = new HpackDecoder();
    const err = thrown(() => dec.decode(enc.encode(LIST), 100));
    expect(err).toBeInstanceOf(HpackListTooLarge);
    const e = err as HpackListTooLarge;
    expect(e.name).toBe('HpackListTooLarge');
    expect(e.size).toBe(LIST_SIZE);
    expect(e.limit).toBe(100);
    expect(e.headers).toEqual(LIST);
    expect(e.message).toContain(String(LIST_SIZE));
    // A stream error, not a malformed block: distinguishable from HpackError.
    expect(err).not.toBeInstanceOf(HpackError);
  });

  it('keeps the dynamic table in sync: the next block refers to entries the oversize block added', () => {
    const enc = new HpackEncoder();
    const dec = new HpackDecoder();
    expect(() => dec.decode(enc.encode(LIST), 100)).toThrow(HpackListTooLarge);
    expect(dec.tableSize).toBe(enc.tableSize);
    const again = enc.encode(LIST);
    expect(again).toEqual(hex('82 bf be')); // x-big (62 → 63 after :path) and :path /p, both dynamic now
    expect(dec.decode(again)).toEqual(LIST);
    // And a hand-made block: the oversize block's entries, referred to directly.
    const dec2 = new HpackDecoder();
    const block = bytes(0x82, 0x40, rawStr('x-a'), rawStr('1'.repeat(200)), 0x40, rawStr('x-b'), rawStr('2'));
    expect(() => dec2.decode(block, 64)).toThrow(HpackListTooLarge);
    expect(dec2.decode(hex('bf be'))).toEqual(['x-a', '1'.repeat(200), 'x-b', '2']);
  });

  it('a list exactly at the limit passes; one byte over does not', () => {
    const block = new HpackEncoder().encode(LIST);
    expect(new HpackDecoder().decode(block, LIST_SIZE)).toEqual(LIST);
    const err = thrown(() => new HpackDecoder().decode(block, LIST_SIZE - 1)) as HpackListTooLarge;
    expect(err).toBeInstanceOf(HpackListTooLarge);
    expect(err.size).toBe(LIST_SIZE);
    expect(err.limit).toBe(LIST_SIZE - 1);
  });

  it('the default limit is unlimited', () => {
    const big = ['x-huge', 'h'.repeat(200_000)];
    expect(new HpackDecoder().decode(new HpackEncoder().encode(big))).toEqual(big);
  });

  it('a malformed block is an HpackError even when its fields are already over the limit', () => {
    const block = bytes(0x40, rawStr('x-a'), rawStr('1'.repeat(200)), 0x80);
    expect(() => new HpackDecoder().decode(block, 10)).toThrow(HpackError);
  });

  it('the constructor defaults headers to an empty list', () => {
    const e = new HpackListTooLarge(200, 100);
    expect(e.headers).toEqual([]);
    expect(e).toBeInstanceOf(Error);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('encoder: compactness and indexing policy', () => {
  const GRPC_REQUEST = flat([
    [':method', 'POST'], [':scheme', 'https'], [':path', '/pkg.Service/Method'],
    [':authority', 'backend.default.svc.cluster.local:8080'], ['content-type', 'application/grpc'], ['te', 'trailers'],
    ['user-agent', 'grpc-node-js/1.10.0'], ['grpc-accept-encoding', 'identity,deflate,gzip'],
  ]);

  it('a list repeated on the same encoder becomes one byte per field', () => {
    const enc = new HpackEncoder();
    const dec = new HpackDecoder();
    const first = enc.encode(GRPC_REQUEST);
    const second = enc.encode(GRPC_REQUEST);
    expect(first.length).toBeGreaterThan(100);
    expect(second.length).toBe(GRPC_REQUEST.length / 2);
    expect([...second].every((b) => b >= 0x80)).toBe(true);
    expect(dec.decode(first)).toEqual(GRPC_REQUEST);
    expect(dec.decode(second)).toEqual(GRPC_REQUEST);
  });

  it('whole-field static matches are one indexed byte; static names are reused by literals', () => {
    const enc = new HpackEncoder();
    expect(enc.encode([':method', 'GET', ':path', '/', ':status', '500', 'accept-encoding', 'gzip, deflate'])).toEqual(
      hex('82 84 8e 90'),
    );
    expect(enc.tableSize).toBe(0);
    expect(enc.encode(['content-type', 'text/plain'])).toEqual(bytes(0x5f, rawStr('text/plain'))); // 0x40 | 31
  });

  it(':path is indexed (one byte the second time), unlike nghttp2', () => {
    const enc = new HpackEncoder();
    expect(enc.encode([':path', '/a/b'])).toEqual(bytes(0x44, rawStr('/a/b')));
    expect(enc.encode([':path', '/a/b'])).toEqual(hex('be'));
  });

  it('a new value of a name in the dynamic table reuses its index for the name', () => {
    const enc = new HpackEncoder();
    const dec = new HpackDecoder();
    expect(dec.decode(enc.encode(['x-custom', 'a']))).toEqual(['x-custom', 'a']);
    const block = enc.encode(['x-custom', 'b']);
    expect(block).toEqual(bytes(0x7e, rawStr('b'))); // 0x40 | 62
    expect(dec.decode(block)).toEqual(['x-custom', 'b']);
    expect(dec.decode(enc.encode(['x-custom', 'a', 'x-custom', 'b']))).toEqual(['x-custom', 'a', 'x-custom', 'b']);
  });

  const NEVER_INDEXED: readonly (readonly [string, number, string])[] = [
    ['authorization', 23, 'Bearer abc.def.ghi'],
    ['proxy-authorization', 49, 'Basic dXNlcjpwYXNz'],
    ['set-cookie', 55, 'session=abc; Path=/; HttpOnly; Secure'],
    ['cookie', 32, 'sid=1234567890'],
  ];

  it.each(NEVER_INDEXED)('%s is encoded never-indexed (0001xxxx), byte for byte, every time', (name, index, value) => {
    const enc = new HpackEncoder();
    const dec = new HpackDecoder();
    const expected = bytes(int(index, 4, 0x10), rawStr(value));
    for (let i = 0; i < 3; i++) {
      const block = enc.encode([name, value]);
      expect(block).toEqual(expected);
      expect(block[0]! & 0xf0).toBe(0x10);
      expect(dec.decode(block)).toEqual([name, value]);
    }
    expect(enc.tableSize).toBe(0);
    expect(dec.tableSize).toBe(0);
  });

  it('a cookie of 20 bytes or more is indexed (one byte the second time)', () => {
    const enc = new HpackEncoder();
    const value = 'sid=0123456789abcdef'; // 20 bytes
    expect(value.length).toBe(20);
    expect(enc.encode(['cookie', value])).toEqual(bytes(0x60, rawStr(value))); // 0x40 | 32
    expect(enc.encode(['cookie', value])).toEqual(hex('be'));
    expect(enc.encode(['cookie', 'sid=0123456789abcde'])[0]! & 0xf0).toBe(0x10); // 19 bytes: never indexed
  });

  it.each([
    ['content-length', bytes(0x0f, 0x0d, rawStr('1234'))], // static name 28
    ['x-request-id', bytes(0x00, rawStr('x-request-id'), rawStr('1234'))],
    ['grpc-timeout', bytes(0x00, rawStr('grpc-timeout'), rawStr('1234'))],
    ['traceparent', bytes(0x00, rawStr('traceparent'), rawStr('1234'))],
  ] as const)('%s is a literal without indexing (0000xxxx)', (name, expected) => {
    const enc = new HpackEncoder();
    expect(enc.encode([name, '1234'])).toEqual(expected);
    expect(enc.encode([name, '1234'])).toEqual(expected);
    expect(enc.tableSize).toBe(0);
    expect(new HpackDecoder().decode(expected)).toEqual([name, '1234']);
  });

  it('a value over 3/4 of the table is not indexed; one just under is', () => {
    const enc = new HpackEncoder();
    const under = 'u'.repeat(3072 - 32 - 'x-under'.length); // an entry of exactly 3/4 of 4096
    const over = 'o'.repeat(3073 - 32 - 'x-over'.length); // one byte more
    expect(enc.encode(['x-under', under])[0]).toBe(0x40);
    expect(enc.tableSize).toBe(3072);
    expect(enc.encode(['x-over', over])[0]).toBe(0x00);
    expect(enc.tableSize).toBe(3072);
    expect(enc.encode(['x-under', under])).toEqual(hex('be'));
  });

  it('after a size change the 3/4 rule applies to the new size', () => {
    const enc = new HpackEncoder();
    const dec = new HpackDecoder();
    enc.setMaxTableSize(1000); // entries above 750 bytes are not indexed
    const at = ['x-at', 'a'.repeat(750 - 32 - 'x-at'.length)];
    const over = ['x-over', 'o'.repeat(751 - 32 - 'x-over'.length)];
    const first = enc.encode(over);
    // The size update, then a literal without indexing (0x00) with a new name.
    expect(first).toEqual(bytes(int(1000, 5, 0x20), 0x00, rawStr('x-over'), rawStr(over[1]!)));
    expect(dec.decode(first)).toEqual(over);
    expect(enc.tableSize).toBe(0);
    expect(dec.decode(enc.encode(at))).toEqual(at);
    expect(enc.tableSize).toBe(750);
    expect(enc.encode(at)).toEqual(hex('be'));
    expect(dec.tableSize).toBe(750);
  });

  it('setMaxTableSize(0): the next block starts with a size update to 0 and still decodes; nothing is indexed', () => {
    const enc = new HpackEncoder();
    const dec = new HpackDecoder();
    expect(dec.decode(enc.encode(GRPC_REQUEST))).toEqual(GRPC_REQUEST);
    expect(enc.tableSize).toBeGreaterThan(0);
    enc.setMaxTableSize(0);
    const first = enc.encode(GRPC_REQUEST);
    expect(first[0]).toBe(0x20);
    expect(first.length).toBeGreaterThan(100); // the earlier entries are gone
    expect(dec.decode(first)).toEqual(GRPC_REQUEST);
    expect(enc.tableSize).toBe(0);
    expect(dec.tableSize).toBe(0);
    const second = enc.encode(GRPC_REQUEST);
    expect(second).toEqual(first.subarray(1)); // same literals, no second size update
    expect(dec.decode(second)).toEqual(GRPC_REQUEST);
  });

  it('a size that is not a number counts as 0 (the encoder can still send later updates)', () => {
    const enc = new HpackEncoder();
    const dec = new HpackDecoder();
    enc.setMaxTableSize(Number.NaN);
    const first = enc.encode(['x-a', '1']);
    expect(first[0]).toBe(0x20);
    expect(dec.decode(first)).toEqual(['x-a', '1']);
    expect(enc.tableSize).toBe(0);
    enc.setMaxTableSize(4096);
    const second = enc.encode(['x-a', '1']);
    expect([...second.subarray(0, 3)]).toEqual([0x3f, 0xe1, 0x1f]);
    expect(dec.decode(second)).toEqual(['x-a', '1']);
  });

  it('lowered then raised between two blocks: the minimum, then the final size (§4.2)', () => {
    const enc = new HpackEncoder();
    const dec = new HpackDecoder();
    expect(dec.decode(enc.encode(['x-a', '1']))).toEqual(['x-a', '1']);
    enc.setMaxTableSize(0);
    enc.setMaxTableSize(100);
    enc.setMaxTableSize(4096);
    const block = enc.encode(['x-a', '1']);
    expect([...block.subarray(0, 4)]).toEqual([0x20, 0x3f, 0xe1, 0x1f]); // 0, then 4096
    expect(block[4]).toBe(0x40); // the entry was flushed: a literal again
    expect(dec.decode(block)).toEqual(['x-a', '1']);
    expect(enc.encode(['x-a', '1'])).toEqual(hex('be'));
  });

  it('lowered twice: only the smallest size is signalled', () => {
    const enc = new HpackEncoder();
    enc.setMaxTableSize(1000);
    enc.setMaxTableSize(50);
    expect(enc.encode([':method', 'GET'])).toEqual(bytes(int(50, 5, 0x20), 0x82));
  });

  it('no size update when the size does not change, and sizes above 4096 are capped at 4096', () => {
    const enc = new HpackEncoder();
    enc.setMaxTableSize(4096);
    expect(enc.encode([':method', 'GET'])).toEqual(hex('82'));
    enc.setMaxTableSize(65536);
    expect(enc.encode([':method', 'GET'])).toEqual(hex('82'));
    const big = new HpackEncoder(1 << 20);
    expect(big.encode([':method', 'GET'])).toEqual(hex('82'));
  });

  it('the reserve is zeroed even when the scratch buffer held an earlier block', () => {
    const enc = new HpackEncoder();
    const dec = new HpackDecoder();
    expect(dec.decode(enc.encode(['x-fill', '\u00ff'.repeat(100)]))).toEqual(['x-fill', '\u00ff'.repeat(100)]);
    const block = enc.encode(['x-fill', '\u00fe'.repeat(100)], 9);
    expect([...block.subarray(0, 9)]).toEqual(new Array(9).fill(0));
    expect(dec.decode(block.subarray(9))).toEqual(['x-fill', '\u00fe'.repeat(100)]);
  });

  it('blocks larger than the encoder\'s 16 KiB scratch, with and without reserve', () => {
    const enc = new HpackEncoder();
    const dec = new HpackDecoder();
    const list = ['x-large', 'L'.repeat(20_000), 'x-latin1', '\u00e9'.repeat(17_000)];
    const plain = enc.encode(list);
    expect(dec.decode(plain)).toEqual(list);
    const reserved = enc.encode(list, 9);
    expect(reserved.length).toBe(plain.length + 9);
    expect([...reserved.subarray(0, 9)]).toEqual(new Array(9).fill(0));
    expect(dec.decode(reserved.subarray(9))).toEqual(list);
  });

  it('returned blocks do not share memory with the next block', () => {
    const enc = new HpackEncoder();
    const a = enc.encode(['x-one', 'aaaaaaaaaaaaaaaaaaaaaaaa'], 9);
    const copy = Buffer.from(a);
    enc.encode(['x-two', 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb'], 9);
    expect(a).toEqual(copy);
  });

  it('rejects an odd-length list', () => {
    expect(() => new HpackEncoder().encode([':method'])).toThrow(TypeError);
  });

  it('an empty list is an empty block (or just the reserve)', () => {
    const enc = new HpackEncoder();
    expect(enc.encode([])).toEqual(Buffer.alloc(0));
    expect(enc.encode([], 9)).toEqual(Buffer.alloc(9));
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('round trips: seeded random header lists over one encoder/decoder pair', () => {
  const STATIC_NAMES = [...new Set(RFC_STATIC_TABLE.map(([n]) => n))];
  const POLICY_NAMES = ['authorization', 'proxy-authorization', 'set-cookie', 'cookie', 'content-length', 'x-request-id', 'grpc-timeout', 'etag'];

  function generator(seed: number): () => string[] {
    const rnd = mulberry32(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    const pool: (readonly [string, string])[] = [];
    const lowerName = (): string => {
      const len = 1 + Math.floor(rnd() * 20);
      let s = '';
      for (let i = 0; i < len; i++) s += String.fromCharCode(0x61 + Math.floor(rnd() * 26));
      return rnd() < 0.3 ? `x-${s}` : s;
    };
    const value = (): string => {
      const r = rnd();
      const len = r < 0.02 ? 4097 + Math.floor(rnd() * 2000) // longer than the whole table
        : r < 0.04 ? 1000 + Math.floor(rnd() * 2500) // around 3/4 of the table
          : r < 0.1 ? 0
            : Math.floor(rnd() * 40);
      const latin1 = rnd() < 0.15;
      const codes = new Array<number>(len);
      for (let i = 0; i < len; i++) {
        codes[i] = latin1 && rnd() < 0.4 ? 0x80 + Math.floor(rnd() * 128) : 0x20 + Math.floor(rnd() * 95);
      }
      return Buffer.from(codes).toString('latin1');
    };
    return () => {
      const n = Math.floor(rnd() * 16);
      const out: string[] = [];
      for (let f = 0; f < n; f++) {
        const r = rnd();
        let field: readonly [string, string];
        if (r < 0.3 && pool.length > 0) field = pick(pool); // repeated: exercises the dynamic table
        else if (r < 0.45) field = pick(RFC_STATIC_TABLE);
        else if (r < 0.6) field = [pick(STATIC_NAMES), value()];
        else if (r < 0.7) field = [pick(POLICY_NAMES), value()];
        else field = [lowerName(), value()];
        if (pool.length < 60) pool.push(field);
        else if (rnd() < 0.2) pool[Math.floor(rnd() * pool.length)] = field;
        out.push(field[0], field[1]);
      }
      return out;
    };
  }

  it('2,000 lists: decode(encode(x)) equals x, the tables stay the same size, reserve = 9 leaves 9 zero bytes', () => {
    const next = generator(0x5eed);
    const rnd = mulberry32(42);
    const enc = new HpackEncoder();
    const dec = new HpackDecoder();
    let indexedBytes = 0;
    let sizeUpdates = 0;
    for (let i = 0; i < 2000; i++) {
      if (i % 250 === 249) {
        // The peer changes SETTINGS_HEADER_TABLE_SIZE now and then (sometimes twice before the next block).
        enc.setMaxTableSize(Math.floor(rnd() * 4097));
        if (rnd() < 0.5) enc.setMaxTableSize(rnd() < 0.5 ? 4096 : Math.floor(rnd() * 4097));
      }
      const list = next();
      const reserve = i % 3 === 0 ? 9 : 0;
      const block = enc.encode(list, reserve);
      if (reserve > 0) expect(block.subarray(0, 9).every((b) => b === 0), `list ${i}: reserve`).toBe(true);
      const body = block.subarray(reserve);
      if (body.length > 0 && (body[0]! & 0xe0) === 0x20) sizeUpdates++;
      for (const b of body) if (b >= 0xbe) indexedBytes++; // rough: dynamic-indexed fields happen
      expect(dec.decode(body), `list ${i}`).toEqual(list);
      expect(dec.tableSize, `list ${i}: table size`).toBe(enc.tableSize);
    }
    expect(indexedBytes).toBeGreaterThan(0);
    expect(sizeUpdates).toBeGreaterThan(0);
  });

  it('the same lists through an encoder and decoder of 256 bytes (constant eviction)', () => {
    const next = generator(1234);
    const enc = new HpackEncoder(256);
    const dec = new HpackDecoder(256);
    for (let i = 0; i < 500; i++) {
      const list = next();
      expect(dec.decode(enc.encode(list)), `list ${i}`).toEqual(list);
      expect(dec.tableSize).toBe(enc.tableSize);
      expect(dec.tableSize).toBeLessThanOrEqual(256);
    }
  });
});
