/**
 * HPACK (RFC 7541), the header compression of HTTP/2: one `HpackDecoder` and one `HpackEncoder` per connection, each
 * owning its half of the connection's state (the dynamic table of the peer's encoder, resp. of ours). Pure: no I/O,
 * no dependencies; the frame layer (./session.ts) feeds it complete header blocks and sends what it returns. One
 * cohesive codec (the static table, the Huffman code and the two halves that share them), hence one file past 500 lines.
 *
 * Choices:
 * - Strings are bytes: literals decode and encode as 'latin1' (byte-transparent, like node:http's HTTP/1 parser);
 *   validating names and values is the frame layer's job (RFC 9113 §8.2.1), not HPACK's.
 * - Decoder (on the hot path of every gRPC call): Huffman strings go through an 8-bits-at-a-time state machine built
 *   once at module load (256 states × 256 input bytes, one table read per input byte, at most two symbols out);
 *   indexed fields return the table's stored strings without allocating; the dynamic table is a ring of names and
 *   values with O(1) indexing and eviction by size (entry = name + value + 32 bytes, §4.1).
 * - Encoder: whole field in the static or dynamic table → one indexed byte (or two); otherwise a literal that reuses a
 *   static or dynamic name index when there is one. Most literals are added to the dynamic table (§6.2.1) so a
 *   field repeated on the connection becomes one byte; the exceptions are listed at `LITERAL_POLICY`. It never
 *   Huffman-encodes: on a sidecar's local links bytes are cheap and CPU is not, and the peer must decode raw
 *   literals anyway (Huffman is the sender's choice, §5.2). Its own table is capped at 4096 bytes (memory per
 *   connection), whatever larger size the peer allows.
 */

/** A malformed header block (→ HTTP/2 COMPRESSION_ERROR, a connection error). */
export class HpackError extends Error {
  override readonly name = 'HpackError';
}

/**
 * The block decoded fine (the dynamic table is in sync) but its header list is larger than the limit given: a
 * stream-level problem (431 / RST_STREAM), not a connection error. `headers` is what was decoded.
 */
export class HpackListTooLarge extends Error {
  override readonly name = 'HpackListTooLarge';
  constructor(readonly size: number, readonly limit: number, readonly headers: string[] = []) {
    super(`header list size ${size} exceeds the limit of ${limit}`);
  }
}

/** The protocol's initial SETTINGS_HEADER_TABLE_SIZE, and the cap of our encoder's table. */
const DEFAULT_TABLE_SIZE = 4096;
/** Per-entry overhead in the table size accounting (§4.1) and in the header list size (RFC 9113 §6.5.2). */
const ENTRY_OVERHEAD = 32;
/** Largest integer accepted (and, at most 5 continuation bytes, the longest encoding). */
const MAX_INT = 0x7fffffff;

// ---------------------------------------------------------------------------------------------------------------
// Static table (Appendix A); index 0 is unused.

const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''], ['etag', ''],
  ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''], ['if-modified-since', ''],
  ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''], ['last-modified', ''], ['link', ''],
  ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''], ['proxy-authorization', ''], ['range', ''],
  ['referer', ''], ['refresh', ''], ['retry-after', ''], ['server', ''], ['set-cookie', ''],
  ['strict-transport-security', ''], ['transfer-encoding', ''], ['user-agent', ''], ['vary', ''], ['via', ''],
  ['www-authenticate', ''],
];
const STATIC_COUNT = STATIC_TABLE.length; // 61
const STATIC_NAMES: string[] = [''];
const STATIC_VALUES: string[] = [''];
/** name → its first static index and its static values (for whole-field matches). */
const STATIC_BY_NAME = new Map<string, { first: number; values: Map<string, number> }>();
for (let i = 0; i < STATIC_COUNT; i++) {
  const [name, value] = STATIC_TABLE[i]!;
  STATIC_NAMES.push(name);
  STATIC_VALUES.push(value);
  let e = STATIC_BY_NAME.get(name);
  if (e === undefined) STATIC_BY_NAME.set(name, e = { first: i + 1, values: new Map() });
  e.values.set(value, i + 1);
}

// ---------------------------------------------------------------------------------------------------------------
// Huffman code (Appendix B). The code is canonical (codes of one length are consecutive, in symbol order, and
// shorter codes come first), so the bit lengths of the 257 symbols (256 = EOS) determine it; the codes are derived
// below, and the tests check them against codes printed in the RFC.

const HUFFMAN_LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, //   0-15
  28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, //  16-31
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, //         32-47  ' ' … '/'
  5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, //              48-63  '0' … '?'
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, //                64-79  '@' … 'O'
  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, //             80-95  'P' … '_'
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, //                96-111 '`' … 'o'
  6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, //           112-127 'p' … DEL
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 128-143
  24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 144-159
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 160-175
  21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 176-191
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 192-207
  19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 208-223
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 224-239
  26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 240-255
  30, //                                                              256 EOS
];
const EOS = 256;

/** The canonical code of each symbol (as a number; at most 30 bits). */
const HUFFMAN_CODES: readonly number[] = (() => {
  const order = HUFFMAN_LENGTHS.map((_, s) => s).sort((a, b) => HUFFMAN_LENGTHS[a]! - HUFFMAN_LENGTHS[b]! || a - b);
  const codes = new Array<number>(order.length).fill(0);
  let code = 0;
  let len = HUFFMAN_LENGTHS[order[0]!]!;
  for (let k = 0; k < order.length; k++) {
    const s = order[k]!;
    const l = HUFFMAN_LENGTHS[s]!;
    if (k > 0) code = (code + 1) * 2 ** (l - len);
    len = l;
    codes[s] = code;
  }
  return codes;
})();

/*
 * The decoding state machine. A state is an internal node of the code tree (256 of them, root = 0), i.e. the bits
 * of a symbol read so far. DECODE[state << 8 | byte] packs what reading 8 more bits does:
 *   bits 0-7 the next state, bits 8-9 how many symbols were completed (0-2: codes are ≥ 5 bits), bit 10 EOS was
 *   read (an error, §5.2), bits 16-23 the first symbol, bits 24-31 the second.
 * ACCEPT[state] marks the states a string may end in: the root, or 1 to 7 bits into the all-ones EOS code (padding
 * must be the most significant bits of EOS and shorter than 8 bits, §5.2).
 */
const DECODE = new Uint32Array(256 * 256);
const ACCEPT = new Uint8Array(256);
const HUF_EOS = 1 << 10;
{
  // The tree: child[2 * node + bit] is an internal node (> 0), or ~symbol (< 0) for a leaf.
  const child = new Int32Array(2 * 256);
  let nodes = 1;
  for (let s = 0; s <= EOS; s++) {
    const len = HUFFMAN_LENGTHS[s]!;
    const code = HUFFMAN_CODES[s]!;
    let node = 0;
    for (let i = len - 1; i > 0; i--) {
      const slot = 2 * node + (Math.floor(code / 2 ** i) & 1);
      if (child[slot] === 0) child[slot] = nodes++;
      node = child[slot]!;
    }
    child[2 * node + (code & 1)] = ~s;
  }
  // First 4 bits at a time (at most one symbol per nibble), then each byte as two nibbles: a few ms less at load
  // than walking 8 bits for each of the 65536 entries.
  const nibble = new Uint32Array(256 * 16); // same packing as DECODE, one symbol at most
  for (let state = 0; state < 256; state++) {
    for (let x = 0; x < 16; x++) {
      let node = state;
      let entry = 0;
      for (let bit = 3; bit >= 0; bit--) {
        const next = child[2 * node + ((x >> bit) & 1)]!;
        if (next >= 0) { node = next; continue; }
        if (~next === EOS) { entry = HUF_EOS; break; }
        entry = (~next << 16) | (1 << 8);
        node = 0;
      }
      nibble[(state << 4) | x] = entry | node;
    }
  }
  for (let state = 0; state < 256; state++) {
    for (let byte = 0; byte < 256; byte++) {
      const hi = nibble[(state << 4) | (byte >> 4)]!;
      const lo = nibble[((hi & 0xff) << 4) | (byte & 15)]!;
      let entry: number;
      if (((hi | lo) & HUF_EOS) !== 0) entry = HUF_EOS;
      else if ((hi & 0x100) === 0) entry = lo; // no symbol from the high nibble
      else if ((lo & 0x100) === 0) entry = (hi & 0xffff00) | (lo & 0xff);
      else entry = (hi & 0xff0000) | ((lo & 0xff0000) << 8) | (2 << 8) | (lo & 0xff);
      DECODE[(state << 8) | byte] = entry >>> 0;
    }
  }
  for (let node = 0, depth = 0; depth < 8; depth++, node = child[2 * node + 1]!) ACCEPT[node] = 1;
}

/** Output of huffmanDecode; reused (decoding is synchronous), with room for the two-symbol write past the end. */
let huffScratch = Buffer.allocUnsafe(4096);
const HUFF_SCRATCH_MAX = 64 * 1024;

function huffmanDecode(buf: Buffer, start: number, end: number): string {
  // Every code is at least 5 bits: n bytes hold at most 8n/5 symbols.
  const need = (((end - start) * 8) / 5 | 0) + 2;
  let out = huffScratch;
  if (need > out.length) {
    out = Buffer.allocUnsafe(need);
    if (need <= HUFF_SCRATCH_MAX) huffScratch = out; // an outsized string does not pin a big buffer for good
  }
  let state = 0;
  let n = 0;
  for (let i = start; i < end; i++) {
    const e = DECODE[(state << 8) | buf[i]!]!;
    if ((e & HUF_EOS) !== 0) throw new HpackError('EOS symbol inside a Huffman-coded string');
    // Branch-free: both symbol slots are written, n advances by the count.
    out[n] = e >>> 16;
    out[n + 1] = e >>> 24;
    n += (e >>> 8) & 3;
    state = e & 0xff;
  }
  if (ACCEPT[state] === 0) throw new HpackError('invalid Huffman padding (not EOS bits, or 8 bits or more)');
  return latin1(out, 0, n);
}

/** bytes → string; short strings in JS (cheaper than a call into C++ below ~8 bytes; one byte hits V8's cache). */
function latin1(buf: Buffer, start: number, end: number): string {
  const n = end - start;
  if (n === 1) return String.fromCharCode(buf[start]!);
  if (n < 8) {
    let s = '';
    for (let i = start; i < end; i++) s += String.fromCharCode(buf[i]!);
    return s;
  }
  return buf.toString('latin1', start, end);
}

// ---------------------------------------------------------------------------------------------------------------
// Decoder

/** Where readInt / readString stopped (decoding is synchronous, so one module-level cursor is safe). */
let cursor = 0;

/** The integer (§5.1) whose first byte is buf[pos], with an N-bit prefix given as its mask (2^N - 1). */
function readInt(buf: Buffer, pos: number, end: number, mask: number): number {
  let v = buf[pos++]! & mask;
  if (v < mask) {
    cursor = pos;
    return v;
  }
  for (let m = 1; ; m *= 128) {
    if (m > 2 ** 28) throw new HpackError('integer encoding too long');
    if (pos >= end) throw new HpackError('truncated integer');
    const b = buf[pos++]!;
    v += (b & 0x7f) * m;
    if (v > MAX_INT) throw new HpackError('integer overflow');
    if (b < 0x80) break;
  }
  cursor = pos;
  return v;
}

/** The string literal (§5.2) at buf[pos]. */
function readString(buf: Buffer, pos: number, end: number): string {
  if (pos >= end) throw new HpackError('truncated block: string literal expected');
  const huffman = buf[pos]! >= 0x80;
  const len = readInt(buf, pos, end, 0x7f);
  const start = cursor;
  if (len > end - start) throw new HpackError('string length past the end of the block');
  cursor = start + len;
  return huffman ? huffmanDecode(buf, start, start + len) : latin1(buf, start, start + len);
}

export class HpackDecoder {
  /** The SETTINGS_HEADER_TABLE_SIZE we advertise: the ceiling for size updates. */
  private readonly limit: number;
  /** The table's current maximum size, as set by the peer's size updates (initially `limit`). */
  private maxSize: number;
  private size = 0;
  // A ring, newest entry at `head`; entry d (0 = newest) is at (head - d) & mask.
  private names: string[] = new Array<string>(16).fill('');
  private values: string[] = new Array<string>(16).fill('');
  private mask = 15;
  private head = 0;
  private count = 0;

  /** maxTableSize: the SETTINGS_HEADER_TABLE_SIZE we advertise (default 4096); a dynamic table size update in a block above it is an HpackError. */
  constructor(maxTableSize = DEFAULT_TABLE_SIZE) {
    this.limit = maxTableSize;
    this.maxSize = maxTableSize;
  }

  /** The dynamic table's size in bytes (§4.1). */
  get tableSize(): number {
    return this.size;
  }

  /**
   * Decode one complete header block (the HEADERS payload plus all its CONTINUATIONs, already concatenated, padding and priority removed).
   * Returns the headers flat and in order: [name0, value0, name1, value1, ...] (names as sent: HTTP/2 names are lowercase; do not change case).
   * maxListSize: RFC 9113 header list size limit (sum of name.length + value.length + 32 per field); default Infinity. When exceeded, keep decoding to the end of the block (so the dynamic table stays in sync with the peer's encoder), then throw HpackListTooLarge.
   * Throws HpackError on malformed input (see the tests for each case).
   */
  decode(block: Buffer | Uint8Array, maxListSize = Infinity): string[] {
    const buf = Buffer.isBuffer(block) ? block : Buffer.from(block.buffer, block.byteOffset, block.byteLength);
    const end = buf.length;
    const out: string[] = [];
    let listSize = 0;
    let pos = 0;
    let fieldSeen = false;
    while (pos < end) {
      const b = buf[pos]!;
      let name: string;
      let value: string;
      if (b >= 0x80) {
        // Indexed field (§6.1).
        const index = readInt(buf, pos, end, 0x7f);
        pos = cursor;
        if (index <= STATIC_COUNT) {
          if (index === 0) throw new HpackError('indexed field with index 0');
          name = STATIC_NAMES[index]!;
          value = STATIC_VALUES[index]!;
        } else {
          const d = index - STATIC_COUNT - 1;
          if (d >= this.count) throw new HpackError(`index ${index} out of range`);
          const j = (this.head - d) & this.mask;
          name = this.names[j]!;
          value = this.values[j]!;
        }
      } else if (b >= 0x40) {
        // Literal with incremental indexing (§6.2.1).
        const index = readInt(buf, pos, end, 0x3f);
        name = index === 0 ? readString(buf, cursor, end) : this.nameAt(index);
        value = readString(buf, cursor, end);
        pos = cursor;
        this.insert(name, value);
      } else if (b >= 0x20) {
        // Dynamic table size update (§6.3): only before the first field (§4.2; RFC 9113 §4.3.1).
        if (fieldSeen) throw new HpackError('dynamic table size update after a header field');
        const size = readInt(buf, pos, end, 0x1f);
        pos = cursor;
        if (size > this.limit) throw new HpackError(`dynamic table size update to ${size} exceeds the ${this.limit} advertised`);
        this.maxSize = size;
        while (this.size > size) this.evictOldest();
        continue;
      } else {
        // Literal without indexing (0000xxxx, §6.2.2) or never indexed (0001xxxx, §6.2.3): same decoding.
        const index = readInt(buf, pos, end, 0x0f);
        name = index === 0 ? readString(buf, cursor, end) : this.nameAt(index);
        value = readString(buf, cursor, end);
        pos = cursor;
      }
      fieldSeen = true;
      out.push(name, value);
      listSize += name.length + value.length + ENTRY_OVERHEAD;
    }
    if (listSize > maxListSize) throw new HpackListTooLarge(listSize, maxListSize, out);
    return out;
  }

  private nameAt(index: number): string {
    if (index <= STATIC_COUNT) return STATIC_NAMES[index]!;
    const d = index - STATIC_COUNT - 1;
    if (d >= this.count) throw new HpackError(`index ${index} out of range`);
    return this.names[(this.head - d) & this.mask]!;
  }

  /** §4.4: evict until the entry fits; one larger than the whole table empties it and is not added. */
  private insert(name: string, value: string): void {
    const entrySize = name.length + value.length + ENTRY_OVERHEAD;
    if (entrySize > this.maxSize) {
      while (this.count > 0) this.evictOldest();
      return;
    }
    while (this.size + entrySize > this.maxSize) this.evictOldest();
    if (this.count > this.mask) this.grow();
    this.head = (this.head + 1) & this.mask;
    this.names[this.head] = name;
    this.values[this.head] = value;
    this.count++;
    this.size += entrySize;
  }

  private evictOldest(): void {
    const j = (this.head - this.count + 1) & this.mask;
    this.size -= this.names[j]!.length + this.values[j]!.length + ENTRY_OVERHEAD;
    this.names[j] = '';
    this.values[j] = '';
    this.count--;
  }

  /** Double the ring, oldest entry first at 0. */
  private grow(): void {
    const cap = (this.mask + 1) * 2;
    const names = new Array<string>(cap).fill('');
    const values = new Array<string>(cap).fill('');
    for (let d = this.count - 1, k = 0; d >= 0; d--, k++) {
      const j = (this.head - d) & this.mask;
      names[k] = this.names[j]!;
      values[k] = this.values[j]!;
    }
    this.names = names;
    this.values = values;
    this.mask = cap - 1;
    this.head = this.count - 1;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Encoder

const WITH_INDEXING = 0;
const WITHOUT_INDEXING = 1;
const NEVER_INDEXED = 2;
/** Never indexed when the value is shorter than 20 bytes (a short cookie is likely a guessable token), else indexed. */
const NEVER_INDEXED_IF_SHORT = 3;

/**
 * How a literal is sent, by name (names not listed: added to the dynamic table).
 * - Never indexed (§7.1.3: the peer and any intermediary must not index it either, which keeps secrets out of
 *   compression-ratio attacks): credentials, as nghttp2 does (authorization; cookie values under 20 bytes), plus
 *   proxy-authorization and set-cookie.
 * - Without indexing: values that are (nearly) unique per message, which would only push the fields that do repeat
 *   (:authority, content-type, user-agent, te, …) out of the table, making them cost a literal again every few
 *   requests: nghttp2's list (minus :path, see below) plus the per-request tracing ids Istio proxies propagate and
 *   grpc-timeout (the deadline left, different on every call).
 * :path is indexed, unlike nghttp2: on a gRPC connection it is one of a handful of method paths, which then cost one
 * byte. Values over 3/4 of the table are not indexed (nghttp2's rule): adding one would flush nearly everything else.
 */
const LITERAL_POLICY = new Map<string, number>([
  ['authorization', NEVER_INDEXED], ['proxy-authorization', NEVER_INDEXED], ['set-cookie', NEVER_INDEXED],
  ['cookie', NEVER_INDEXED_IF_SHORT],
  ['content-length', WITHOUT_INDEXING], ['age', WITHOUT_INDEXING], ['etag', WITHOUT_INDEXING],
  ['if-modified-since', WITHOUT_INDEXING], ['if-none-match', WITHOUT_INDEXING], ['location', WITHOUT_INDEXING],
  ['x-request-id', WITHOUT_INDEXING], ['traceparent', WITHOUT_INDEXING], ['b3', WITHOUT_INDEXING],
  ['x-b3-traceid', WITHOUT_INDEXING], ['x-b3-spanid', WITHOUT_INDEXING], ['x-b3-parentspanid', WITHOUT_INDEXING],
  ['grpc-trace-bin', WITHOUT_INDEXING], ['grpc-timeout', WITHOUT_INDEXING],
]);

/** Our encoder's table holds at most 4096 / 32 entries. */
const ENC_RING = DEFAULT_TABLE_SIZE / ENTRY_OVERHEAD;

/** Blocks up to this size are built here and copied out at their exact size; larger ones get their own buffer. */
const encScratch = Buffer.allocUnsafe(16 * 1024);

/** Write the integer v (§5.1) with an N-bit prefix (mask 2^N - 1) under the pattern bits `first`. */
function writeInt(out: Buffer, pos: number, first: number, mask: number, v: number): number {
  if (v < mask) {
    out[pos++] = first | v;
    return pos;
  }
  out[pos++] = first | mask;
  v -= mask;
  while (v >= 0x80) {
    out[pos++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  out[pos++] = v;
  return pos;
}

/** A raw (not Huffman-coded) string literal (§5.2). */
function writeString(out: Buffer, pos: number, s: string): number {
  const len = s.length;
  pos = writeInt(out, pos, 0, 0x7f, len);
  if (len < 16) {
    for (let k = 0; k < len; k++) out[pos + k] = s.charCodeAt(k); // cheaper than a call into C++ for short strings
  } else {
    out.write(s, pos, len, 'latin1');
  }
  return pos + len;
}

export class HpackEncoder {
  /** The table's maximum size as last signalled to the peer (the protocol starts at 4096). */
  private cap = DEFAULT_TABLE_SIZE;
  /** Entries above this size are not indexed (3/4 of cap). */
  private indexLimit = (DEFAULT_TABLE_SIZE * 3) >> 2;
  private size = 0;
  /** Smallest and last maximum sizes set since the last block; pendingMin < 0 when nothing is to be signalled. */
  private pendingMin = -1;
  private pendingFinal = 0;
  // Entries by insertion number (seq): live ones are evicted..inserted-1, at seq % ENC_RING; index 62 is the newest.
  private inserted = 0;
  private evicted = 0;
  private readonly names: string[] = new Array<string>(ENC_RING).fill('');
  private readonly values: string[] = new Array<string>(ENC_RING).fill('');
  /** name → the seq of its newest entry and value → seq of each entry: O(1) lookups with no key to build. */
  private readonly byName = new Map<string, { latest: number; values: Map<string, number> }>();

  /** maxTableSize: the peer's SETTINGS_HEADER_TABLE_SIZE (default 4096). */
  constructor(maxTableSize = DEFAULT_TABLE_SIZE) {
    this.setMaxTableSize(maxTableSize);
  }

  /** The dynamic table's size in bytes (§4.1). */
  get tableSize(): number {
    return this.size;
  }

  /**
   * The peer's SETTINGS_HEADER_TABLE_SIZE changed: the encoder uses min(n, its own cap of 4096) from now on and emits
   * a dynamic table size update at the start of the next block (§4.2, §6.3; lowered then raised between two blocks:
   * the minimum first, then the final size).
   */
  setMaxTableSize(n: number): void {
    // Not a number (never from a SETTINGS frame's uint32) counts as 0: the update logic below must see a size.
    const size = Number.isFinite(n) ? Math.min(Math.max(0, Math.floor(n)), DEFAULT_TABLE_SIZE) : 0;
    if (this.pendingMin < 0) {
      if (size === this.cap) return;
      this.pendingMin = size;
    } else if (size < this.pendingMin) {
      this.pendingMin = size;
    }
    this.pendingFinal = size;
  }

  /**
   * Encode a flat list [name0, value0, ...] (names already lowercase; pseudo-headers first, as given) into one header block.
   * reserve: leave this many zero bytes at the front of the returned Buffer (the caller writes the 9-byte HTTP/2 frame header there, saving a copy); default 0.
   * Returns a Buffer of exactly reserve + block length bytes.
   */
  encode(headers: readonly string[], reserve = 0): Buffer {
    const n = headers.length;
    if ((n & 1) !== 0) throw new TypeError('headers must be a flat list of name/value pairs');
    // Worst case per string: a 6-byte length (or index) and a pattern byte; plus two size updates.
    let bound = reserve + 12;
    for (let i = 0; i < n; i++) bound += headers[i]!.length + 8;
    const out = bound <= encScratch.length ? encScratch : Buffer.allocUnsafe(bound);

    let pos = reserve;
    if (this.pendingMin >= 0) {
      if (this.pendingMin < this.pendingFinal) {
        pos = writeInt(out, pos, 0x20, 0x1f, this.pendingMin);
        this.resize(this.pendingMin);
      }
      pos = writeInt(out, pos, 0x20, 0x1f, this.pendingFinal);
      this.resize(this.pendingFinal);
      this.pendingMin = -1;
    }

    for (let i = 0; i < n; i += 2) {
      const name = headers[i]!;
      const value = headers[i + 1]!;
      const st = STATIC_BY_NAME.get(name);
      if (st !== undefined) {
        const index = st.values.get(value);
        if (index !== undefined) {
          pos = writeInt(out, pos, 0x80, 0x7f, index);
          continue;
        }
      }
      const dyn = this.byName.get(name);
      if (dyn !== undefined) {
        const seq = dyn.values.get(value);
        if (seq !== undefined) {
          pos = writeInt(out, pos, 0x80, 0x7f, this.inserted - seq + STATIC_COUNT);
          continue;
        }
      }
      // A literal; the static name index is preferred (stable, and small enough for the one-byte prefix).
      const nameIndex = st !== undefined ? st.first : dyn !== undefined ? this.inserted - dyn.latest + STATIC_COUNT : 0;
      const entrySize = name.length + value.length + ENTRY_OVERHEAD;
      let policy = LITERAL_POLICY.get(name) ?? WITH_INDEXING;
      if (policy === NEVER_INDEXED_IF_SHORT) policy = value.length < 20 ? NEVER_INDEXED : WITH_INDEXING;
      if (policy === WITH_INDEXING && entrySize > this.indexLimit) policy = WITHOUT_INDEXING;
      if (policy === WITH_INDEXING) pos = writeInt(out, pos, 0x40, 0x3f, nameIndex);
      else pos = writeInt(out, pos, policy === NEVER_INDEXED ? 0x10 : 0x00, 0x0f, nameIndex);
      if (nameIndex === 0) pos = writeString(out, pos, name);
      pos = writeString(out, pos, value);
      if (policy === WITH_INDEXING) this.insert(name, value, entrySize);
    }

    out.fill(0, 0, reserve);
    if (out !== encScratch) return out.subarray(0, pos);
    const block = Buffer.allocUnsafe(pos);
    encScratch.copy(block, 0, 0, pos);
    return block;
  }

  private resize(size: number): void {
    this.cap = size;
    this.indexLimit = (size * 3) >> 2;
    while (this.size > size) this.evictOldest();
  }

  /** Only called for entries within indexLimit (so never larger than the table, §4.4). */
  private insert(name: string, value: string, entrySize: number): void {
    while (this.size + entrySize > this.cap) this.evictOldest();
    const seq = this.inserted++;
    const j = seq % ENC_RING;
    this.names[j] = name;
    this.values[j] = value;
    this.size += entrySize;
    const dyn = this.byName.get(name);
    if (dyn === undefined) this.byName.set(name, { latest: seq, values: new Map([[value, seq]]) });
    else {
      dyn.latest = seq;
      dyn.values.set(value, seq);
    }
  }

  private evictOldest(): void {
    const seq = this.evicted++;
    const j = seq % ENC_RING;
    const name = this.names[j]!;
    const value = this.values[j]!;
    this.size -= name.length + value.length + ENTRY_OVERHEAD;
    this.names[j] = '';
    this.values[j] = '';
    const dyn = this.byName.get(name)!;
    if (dyn.values.get(value) === seq) dyn.values.delete(value);
    // Entries go oldest first: no entry of this name is left when its newest one goes.
    if (dyn.latest === seq) this.byName.delete(name);
  }
}
