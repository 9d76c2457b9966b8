/**
 * A reader for the plain subset of YAML that Istio config is written in (block mappings and sequences, one-line
 * flow collections, one-line plain and quoted scalars). It returns BAIL for anything else, and the caller then
 * asks js-yaml, so every value it does return is exactly what js-yaml (CORE schema, its default) would give.
 */
import { CORE_SCHEMA, NOT_RESOLVED, type ScalarTagDefinition } from '../util/yaml.js';

/** Returned when the text uses YAML this reader leaves to js-yaml (or is invalid: js-yaml reports it). */
export const BAIL: unique symbol = Symbol('bail');

// Plain scalars are resolved by js-yaml's own CORE-schema tags (null, bool, int, float), in schema order and
// dispatched on the first character as js-yaml does, so `8080`, `0x1F`, `.inf`, `~` and `True` come out the same.
const IMPLICIT = CORE_SCHEMA.tags.filter((t): t is ScalarTagDefinition => t.nodeKind === 'scalar' && t.implicit);
const BY_FIRST = new Map<string, ScalarTagDefinition[]>();
for (const t of IMPLICIT) for (const c of t.implicitFirstChars ?? []) BY_FIRST.set(c, IMPLICIT.filter((u) => u.implicitFirstChars === null || u.implicitFirstChars.includes(c)));
const ANY_FIRST = IMPLICIT.filter((t) => t.implicitFirstChars === null);

function resolvePlain(s: string): unknown {
  const cands = BY_FIRST.get(s.charAt(0)) ?? ANY_FIRST;
  for (let i = 0; i < cands.length; i++) {
    const t = cands[i]!;
    const v = t.resolve(s, false, t.tagName);
    if (v !== NOT_RESOLVED) return v;
  }
  return s;
}

class Bail extends Error {}
const bail = new Bail();

const SP = 32;
const HASH = 35;
const COLON = 58;
const DASH = 45;
const SQ = 39;
const DQ = 34;

/** Characters that cannot start a plain scalar (YAML c-indicator); `-` is handled apart. */
function isIndicator(c: number): boolean {
  // ? : , [ ] { } # & * ! | > ' " % @ `
  return c === 63 || c === 58 || c === 44 || c === 91 || c === 93 || c === 123 || c === 125 || c === 35 || c === 38 ||
    c === 42 || c === 33 || c === 124 || c === 62 || c === 39 || c === 34 || c === 37 || c === 64 || c === 96;
}

/**
 * One document's text (it may begin with its `---` marker line). Returns the value js-yaml would load, or BAIL.
 * The text must contain no tab, CR, BOM or non-printable character (the caller checks the whole file once).
 */
export function fastYamlDocument(text: string): unknown {
  const r = reader;
  r.reset(text);
  try {
    r.document();
  } catch (e) {
    if (e === bail) return BAIL;
    throw e;
  }
  // The document is rewritten as JSON and built by JSON.parse: its objects and arrays come out exactly sized with
  // internalized keys, half the memory (and far less GC at start-up) of objects grown one property at a time.
  const json = r.json();
  // One huge document must not pin its buffer for the life of the process.
  if (out.length > 1 << 20) out = Buffer.allocUnsafe(1 << 16);
  try {
    return JSON.parse(json);
  } catch {
    return BAIL; // never expected; should the writer have a bug, js-yaml still gets the last word
  }
}

/**
 * The JSON is written as UTF-8 into one reused buffer and decoded once per document: appending to a JS string
 * would allocate a cons string per token (≈ 80 MB of garbage for 10,000 services).
 */
let out = Buffer.allocUnsafe(1 << 16);

/** Plain scalars starting with these characters may resolve to null, a boolean or a number; others are strings. */
const MAY_RESOLVE = new Set(BY_FIRST.keys());
const ANY_MAY_RESOLVE = ANY_FIRST.length > 0;

class Reader {
  /** Content lines only (blank and comment-only lines are skipped): start offset, end offset, indent. */
  private starts: number[] = [];
  private ends: number[] = [];
  private indents: number[] = [];
  /** The next unread content line. */
  private li = 0;
  /** The read position inside a line (quoted scalars and flow collections). */
  private p = 0;
  /** Bytes of JSON written to `out`; whether they are all ASCII (then latin1 decoding is exact and fastest). */
  private n = 0;
  private ascii = true;
  /** Keys of the mappings being read, innermost last (duplicate keys are js-yaml's error). */
  private keys: string[] = [];

  private t = '';

  /** One reader serves every document (no per-document arrays to allocate and collect). */
  reset(text: string): void {
    this.t = text;
    this.starts.length = 0;
    this.ends.length = 0;
    this.indents.length = 0;
    this.keys.length = 0;
    this.li = 0;
    this.p = 0;
    this.n = 0;
    this.ascii = true;
  }

  json(): string {
    return out.toString(this.ascii ? 'latin1' : 'utf8', 0, this.n);
  }

  private byte(c: number): void {
    if (this.n === out.length) {
      const bigger = Buffer.allocUnsafe(out.length * 2);
      out.copy(bigger, 0, 0, this.n);
      out = bigger;
    }
    out[this.n++] = c;
  }

  private raw(s: string): void {
    for (let i = 0; i < s.length; i++) this.byte(s.charCodeAt(i));
  }

  /** Characters [from, to) of `s` as the inside of a JSON string. */
  private chars(s: string, from: number, to: number): void {
    for (let i = from; i < to; i++) {
      const c = s.charCodeAt(i);
      if (c === DQ || c === 92) { this.byte(92); this.byte(c); }
      else if (c < 0x80) this.byte(c);
      else {
        // No surrogates get here (NEEDS_FULL_PARSER), so every character is one UTF-8 sequence of 2 or 3 bytes.
        this.ascii = false;
        if (c < 0x800) { this.byte(0xc0 | (c >> 6)); this.byte(0x80 | (c & 63)); }
        else { this.byte(0xe0 | (c >> 12)); this.byte(0x80 | ((c >> 6) & 63)); this.byte(0x80 | (c & 63)); }
      }
    }
  }

  private str(s: string): void {
    this.byte(DQ);
    this.chars(s, 0, s.length);
    this.byte(DQ);
  }

  /** A resolved plain scalar; BAIL for values JSON cannot carry (±Infinity, NaN, -0). */
  private scalar(v: unknown): void {
    if (typeof v === 'string') this.str(v);
    else if (typeof v === 'number') {
      if (!Number.isFinite(v) || Object.is(v, -0)) throw bail;
      this.raw(String(v));
    } else if (v === null) this.raw('null');
    else if (v === true) this.raw('true');
    else if (v === false) this.raw('false');
    else throw bail;
  }

  /** The plain scalar at [from, to) of the text. */
  private plain(from: number, to: number): void {
    if (ANY_MAY_RESOLVE || MAY_RESOLVE.has(this.t.charAt(from))) this.scalar(resolvePlain(this.t.slice(from, to)));
    else { this.byte(DQ); this.chars(this.t, from, to); this.byte(DQ); }
  }

  document(): void {
    const t = this.t;
    let pos = 0;
    let first = true;
    while (pos <= t.length) {
      let nl = t.indexOf('\n', pos);
      if (nl < 0) nl = t.length;
      let i = pos;
      while (i < nl && t.charCodeAt(i) === SP) i++;
      if (first && i === pos && t.startsWith('---', pos)) {
        // The marker line may carry only a comment: `--- {a: 1}` and `--- |` are js-yaml's.
        let j = pos + 3;
        while (j < nl && t.charCodeAt(j) === SP) j++;
        if (j < nl && !(t.charCodeAt(j) === HASH && j > pos + 3)) throw bail;
      } else if (i < nl && t.charCodeAt(i) !== HASH) {
        // Markers (js-yaml also honours indented ones) and directives.
        if (t.startsWith('...', i) || t.startsWith('---', i) || (i === pos && t.charCodeAt(pos) === 37)) throw bail;
        this.starts.push(i);
        this.ends.push(nl);
        this.indents.push(i - pos);
      }
      first = false;
      pos = nl + 1;
    }
    if (this.starts.length === 0) throw bail;
    this.node(this.starts[0]!, this.indents[0]!);
    if (this.li !== this.starts.length) throw bail;
  }

  /** The end of a line's content: before a ` #` comment and trailing spaces. */
  private contentEnd(from: number, end: number): number {
    const t = this.t;
    let e = end;
    for (let i = from + 1; i < end; i++) if (t.charCodeAt(i) === HASH && t.charCodeAt(i - 1) === SP) { e = i; break; }
    while (e > from && t.charCodeAt(e - 1) === SP) e--;
    return e;
  }

  /** A node starting at offset `p` of the current line, in column `col`. */
  private node(p: number, col: number): void {
    const t = this.t;
    const c = t.charCodeAt(p);
    const end = this.ends[this.li]!;
    if (c === DASH && (p + 1 === end || t.charCodeAt(p + 1) === SP)) return this.seq(p, col);
    if (this.keyEnd(p, end) >= 0) return this.map(p, col);
    this.inlineValue(p, end);
    this.li++;
  }

  /** A scalar or flow collection filling the rest of the line from `p`. */
  private inlineValue(p: number, end: number): void {
    const t = this.t;
    const c = t.charCodeAt(p);
    if (c === 91 || c === 123) {
      this.p = p;
      this.flow(end);
      this.restIsComment(this.p, end);
      return;
    }
    if (c === SQ || c === DQ) {
      this.p = p;
      this.str(this.quoted(end));
      this.restIsComment(this.p, end);
      return;
    }
    if (isIndicator(c) || (c === DASH && (p + 1 >= end || t.charCodeAt(p + 1) === SP))) throw bail;
    const e = this.contentEnd(p, end);
    // `a: b: c` is an error and `a: b:` ambiguous; `http://x` is a plain scalar.
    if (t.charCodeAt(e - 1) === COLON) throw bail;
    for (let i = p; i < e - 1; i++) if (t.charCodeAt(i) === COLON && t.charCodeAt(i + 1) === SP) throw bail;
    this.plain(p, e);
  }

  private restIsComment(p: number, end: number): void {
    const t = this.t;
    let i = p;
    while (i < end && t.charCodeAt(i) === SP) i++;
    if (i < end && !(t.charCodeAt(i) === HASH && i > p)) throw bail;
  }

  /**
   * If a mapping key starts at `p`, the offset just past its `:`; otherwise -1. Keys are one-line plain or quoted
   * scalars followed by `:` and a space or the end of the line.
   */
  private keyEnd(p: number, end: number): number {
    const t = this.t;
    const c = t.charCodeAt(p);
    if (c === SQ || c === DQ) {
      this.p = p;
      this.quoted(end);
      let i = this.p;
      while (i < end && t.charCodeAt(i) === SP) i++;
      if (i < end && t.charCodeAt(i) === COLON && (i + 1 === end || t.charCodeAt(i + 1) === SP)) return i + 1;
      return -1;
    }
    if (c === 91 || c === 123) return -1;
    for (let i = p; i < end; i++) {
      const d = t.charCodeAt(i);
      if (d === COLON && (i + 1 === end || t.charCodeAt(i + 1) === SP)) return i + 1;
      if (d === HASH && i > p && t.charCodeAt(i - 1) === SP) return -1;
    }
    return -1;
  }

  /** Writes `"key":` for a key at `p` (its `:` ends at `colon`), unless the mapping already has that key. */
  private key(p: number, colon: number, mark: number, first: boolean): void {
    const t = this.t;
    const c = t.charCodeAt(p);
    let k: string;
    if (c === SQ || c === DQ) { this.p = p; k = this.quoted(colon); }
    else {
      if (isIndicator(c) || c === DASH && t.charCodeAt(p + 1) === SP) throw bail;
      let e = colon - 1;
      while (e > p && t.charCodeAt(e - 1) === SP) e--;
      // js-yaml turns a plain key into its resolved value's String(): `1.0:` is "1", `~:` is "null".
      k = String(resolvePlain(t.slice(p, e)));
    }
    this.addKey(k, mark, first);
  }

  private addKey(k: string, mark: number, first: boolean): void {
    // YAML limits implicit keys to 1024 characters; `__proto__` and `<<` get special treatment in js-yaml.
    if (k.length > 1000 || k === '__proto__' || k === '<<') throw bail;
    const keys = this.keys;
    for (let i = mark; i < keys.length; i++) if (keys[i] === k) throw bail; // duplicate key: js-yaml's error
    keys.push(k);
    if (!first) this.byte(44);
    this.str(k);
    this.byte(COLON);
  }

  private map(p: number, col: number): void {
    const t = this.t;
    const mark = this.keys.length;
    this.byte(123);
    let first = true;
    for (;;) {
      const end = this.ends[this.li]!;
      const kEnd = this.keyEnd(p, end);
      if (kEnd < 0) throw bail;
      this.key(p, kEnd, mark, first);
      first = false;
      let v = kEnd;
      while (v < end && t.charCodeAt(v) === SP) v++;
      if (v === end || (t.charCodeAt(v) === HASH && v > kEnd)) {
        // Nothing on the line: a nested block (deeper, or a `- ` sequence at this indent), else null.
        this.li++;
        const n = this.li;
        if (n < this.starts.length && (this.indents[n]! > col || (this.indents[n] === col && this.isDash(n)))) {
          this.node(this.starts[n]!, this.indents[n]!);
        } else this.raw('null');
      } else {
        const c = t.charCodeAt(v);
        if (c === DASH && (v + 1 === end || t.charCodeAt(v + 1) === SP)) throw bail; // `a: - b`
        if (c !== 91 && c !== 123 && c !== SQ && c !== DQ && this.keyEnd(v, end) >= 0) throw bail; // `a: b: c`
        this.inlineValue(v, end);
        this.li++;
      }
      const n = this.li;
      if (n >= this.starts.length || this.indents[n]! < col) break;
      if (this.indents[n]! > col) throw bail; // a continuation line or bad indentation
      p = this.starts[n]!;
      if (this.isDash(n)) throw bail;
    }
    this.keys.length = mark;
    this.byte(125);
  }

  private isDash(n: number): boolean {
    const s = this.starts[n]!;
    return this.t.charCodeAt(s) === DASH && (s + 1 === this.ends[n] || this.t.charCodeAt(s + 1) === SP);
  }

  private seq(p: number, col: number): void {
    const t = this.t;
    this.byte(91);
    let first = true;
    for (;;) {
      if (!first) this.byte(44);
      first = false;
      const end = this.ends[this.li]!;
      let v = p + 1;
      while (v < end && t.charCodeAt(v) === SP) v++;
      if (v === end || (t.charCodeAt(v) === HASH && v > p + 1)) {
        this.li++;
        const n = this.li;
        if (n < this.starts.length && this.indents[n]! > col) this.node(this.starts[n]!, this.indents[n]!);
        else this.raw('null');
      } else {
        // `- a: 1` opens a mapping in the column of `a`; `- - x` a nested sequence.
        this.node(v, col + (v - p));
      }
      const n = this.li;
      if (n >= this.starts.length || this.indents[n]! < col || !this.isDash(n)) {
        if (n < this.starts.length && this.indents[n]! > col) throw bail;
        break;
      }
      if (this.indents[n]! > col) throw bail;
      p = this.starts[n]!;
    }
    this.byte(93);
  }

  /** A single- or double-quoted scalar on one line; `this.p` moves past the closing quote. */
  private quoted(end: number): string {
    const t = this.t;
    const q = t.charCodeAt(this.p);
    let i = this.p + 1;
    let out = '';
    let from = i;
    for (;;) {
      if (i >= end) throw bail; // multi-line quoted scalars fold lines: js-yaml's
      const c = t.charCodeAt(i);
      if (q === DQ && c === 92) throw bail; // escapes
      if (c === q) {
        if (q === SQ && t.charCodeAt(i + 1) === SQ) { out += t.slice(from, i + 1); i += 2; from = i; continue; }
        out += t.slice(from, i);
        this.p = i + 1;
        return out;
      }
      i++;
    }
  }

  /** A flow collection or scalar inside one; all on one line. */
  private flow(end: number): void {
    const t = this.t;
    const c = t.charCodeAt(this.p);
    if (c === 91) {
      this.byte(91);
      this.p++;
      this.flowSpace(end);
      if (t.charCodeAt(this.p) === 93) { this.p++; this.byte(93); return; }
      for (;;) {
        this.flow(end);
        this.flowSpace(end);
        const d = t.charCodeAt(this.p);
        if (d === 44) {
          this.p++;
          this.flowSpace(end);
          if (t.charCodeAt(this.p) === 93) break;
          this.byte(44);
        } else if (d === 93) break; else throw bail; // `[a: b]` and the rest
      }
      this.p++;
      this.byte(93);
      return;
    }
    if (c === 123) {
      const mark = this.keys.length;
      this.byte(123);
      this.p++;
      this.flowSpace(end);
      if (t.charCodeAt(this.p) === 125) { this.p++; this.byte(125); return; }
      let first = true;
      for (;;) {
        const kc = t.charCodeAt(this.p);
        this.addKey(kc === SQ || kc === DQ ? this.quoted(end) : String(resolvePlain(this.flowPlain(end, true))), mark, first);
        first = false;
        if (t.charCodeAt(this.p) !== COLON || t.charCodeAt(this.p + 1) !== SP) throw bail; // `{a}`, `{a:b}`, `{"a":b}`
        this.p += 2;
        this.flowSpace(end);
        const vc = t.charCodeAt(this.p);
        if (vc === 44 || vc === 125) throw bail; // `{a: }`
        this.flow(end);
        this.flowSpace(end);
        const d = t.charCodeAt(this.p);
        if (d === 44) {
          this.p++;
          this.flowSpace(end);
          if (t.charCodeAt(this.p) === 125) break;
        } else if (d === 125) break; else throw bail;
      }
      this.p++;
      this.keys.length = mark;
      this.byte(125);
      return;
    }
    if (c === SQ || c === DQ) { this.str(this.quoted(end)); return; }
    const from = this.p;
    this.flowPlainEnd(end, false);
    this.plain(from, this.flowEnd);
  }

  private flowSpace(end: number): void {
    const t = this.t;
    while (this.p < end && t.charCodeAt(this.p) === SP) this.p++;
    if (this.p >= end || t.charCodeAt(this.p) === HASH) throw bail; // the collection goes on past this line
  }

  private flowPlain(end: number, isKey: boolean): string {
    const from = this.p;
    this.flowPlainEnd(end, isKey);
    return this.t.slice(from, this.flowEnd);
  }

  /** End of the last flow plain scalar (before trailing spaces). */
  private flowEnd = 0;

  /**
   * A plain scalar in a flow collection: up to `,` `[` `]` `{` `}` or (for a key) `: `; no `:` or `#` inside.
   * Sets `flowEnd` to its end and moves `this.p` to the delimiter.
   */
  private flowPlainEnd(end: number, isKey: boolean): void {
    const t = this.t;
    const c = t.charCodeAt(this.p);
    if (isIndicator(c) || (c === DASH && (this.p + 1 >= end || t.charCodeAt(this.p + 1) === SP))) throw bail;
    let i = this.p;
    for (; i < end; i++) {
      const d = t.charCodeAt(i);
      if (d === 44 || d === 91 || d === 93 || d === 123 || d === 125) break;
      if (d === COLON) {
        if (isKey && t.charCodeAt(i + 1) === SP) break;
        throw bail;
      }
      if (d === HASH || d === 63) throw bail;
    }
    let e = i;
    while (e > this.p && t.charCodeAt(e - 1) === SP) e--;
    if (e === this.p) throw bail;
    this.flowEnd = e;
    this.p = i;
  }
}

const reader = new Reader();

/** Characters that make a whole file go to js-yaml: tabs, CR, BOM, non-printables and any surrogate. */
export const NEEDS_FULL_PARSER = /[\x00-\x08\x09\x0B-\x1F\x7F-\x9F\uD800-\uDFFF\uFEFF\uFFFE\uFFFF]/;
