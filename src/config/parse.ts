/**
 * YAML/JSON text → Resources with source positions. Multi-document files (`---`) and Kubernetes
 * `List` objects are flattened. Syntax errors become ConfigErrors with file and line; nothing throws.
 *
 * Three readers, each for what it does best (measured on 20,000 documents: `yaml` ≈ 6.4 s, js-yaml ≈ 0.8 s,
 * fast-yaml.ts ≈ 0.1 s): fast-yaml.ts reads the plain YAML subset Istio config is written in, js-yaml the
 * documents it leaves alone; the `yaml` package, whose nodes carry source ranges, is used lazily — only
 * when an error needs the line of a field, and only for that one document — and for syntax errors.
 */
import { loadYaml as fastLoad, loadAllYaml as fastLoadAll, yamlDocuments as yaml, type Node, type Document } from '../util/yaml.js';
import { BAIL, fastYamlDocument, NEEDS_FULL_PARSER } from './fast-yaml.js';
import type { ConfigError, FieldPath, Resource, SourceLocation } from './resource.js';

export interface ParseResult {
  resources: Resource[];
  errors: ConfigError[];
  /**
   * Per document with content, in order, two int32s: two 32-bit hashes of its text (DOC_HASH).
   * Set only when every document was read on its own (the subset reader or js-yaml per document), so that a document of
   * the same text reads the same wherever it stands; a later parse of the file (ParseOptions.previous) reuses the
   * resources of such documents. The text itself is not kept.
   */
  docHashes?: Int32Array;
  /** The default namespace the resources were read with (set with docHashes): reuse needs the same. */
  namespace?: string;
  /** Resources taken over from ParseOptions.previous (the same objects, relocated to their documents' new lines). */
  reused?: number;
  /** Puts the resources taken over back where the previous parse had them (when this parse's result is not adopted). */
  undo?: () => void;
}

/** Int32s per document in ParseResult.docHashes. */
const DOC_HASH = 2;

/**
 * Two independent 32-bit hashes (FNV-1a and a multiply-xorshift) of a document's text: 64 bits that must agree, among
 * the documents of one file, for a document to count as unchanged (a silent mismatch needs a 64-bit collision between
 * an edited document and one of its file's old ones). 8 bytes per document kept, not its text. Pure JS: ~1–2 ms per
 * 750 KB file, about what node:crypto's per-call cost would be for 1,500 documents.
 */
function hashDocument(text: string, out: Int32Array, at: number): void {
  let a = 0x811c9dc5 | 0;
  let b = 0x9747b28c | 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 16777619);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 13;
  }
  out[at] = a;
  out[at + 1] = b;
}

/** The previous parse's resources by their document's first hash word; `take` checks the second. */
type Reusable = Map<number, ParsedResource[]>;

/** The first (in document order) of the previous resources whose document hashes as document `i` of `h`, taken out. */
function take(reuse: Reusable, prev: Int32Array, h: Int32Array, i: number): ParsedResource | undefined {
  const l = reuse.get(h[i * DOC_HASH]!);
  if (l === undefined) return undefined;
  for (let k = 0; k < l.length; k++) {
    const j = l[k]!.index * DOC_HASH;
    if (prev[j + 1] === h[i * DOC_HASH + 1]) return l.splice(k, 1)[0];
  }
  return undefined;
}

/** A document's text and the 1-based line where it starts in the file. */
interface Chunk { text: string; startLine: number }

/** Split at `---` document markers in column 0 (a marker can never appear there inside a document). */
function splitDocuments(text: string): Chunk[] {
  const chunks: Chunk[] = [];
  let start = 0;
  let startLine = 1;
  let line = 1;
  let pos = 0;
  while (pos <= text.length) {
    const nl = text.indexOf('\n', pos);
    const end = nl < 0 ? text.length : nl;
    if (text.charCodeAt(pos) === 45 && text.startsWith('---', pos) && (end - pos === 3 || text.charCodeAt(pos + 3) === 32 || text.charCodeAt(pos + 3) === 9 || text.charCodeAt(pos + 3) === 13)) {
      if (pos > start) chunks.push({ text: text.slice(start, pos), startLine });
      start = pos;
      startLine = line;
    }
    if (nl < 0) break;
    pos = nl + 1;
    line++;
  }
  if (start < text.length) chunks.push({ text: text.slice(start), startLine });
  return chunks;
}

export interface ParseOptions {
  /**
   * The file's text as it is now on disk, or undefined when it changed since it was parsed (or cannot be read).
   * When given, a resource does not keep its document's text for the line numbers of later errors (at 50,000
   * services the YAML held that way was ~1.4 KB per service); it asks for the text again, and falls back to the
   * document's first line when the file has changed meanwhile.
   */
  reread?: () => string | undefined;
  /**
   * The same file's previous parse (its resources and docHashes): a document whose text hashes as one of the old
   * documents' is not read again, and gives that document's Resource object, its line moved to where the document
   * now starts. Documents of equal text pair in order.
   */
  previous?: { resources: readonly Resource[]; docHashes?: Int32Array; namespace?: string };
}

export function parseDocuments(text: string, file: string, defaultNamespace = 'default', opts: ParseOptions = {}): ParseResult {
  // Directives (%YAML, %TAG) apply across documents: leave such files to the full parser.
  if (/^%/m.test(text)) return parseDocumentsSlow(text, file, defaultNamespace, 0);
  const resources: Resource[] = [];
  const errors: ConfigError[] = [];
  const chunks = splitDocuments(text).filter((c) => hasContent(c.text));
  let docHashes: Int32Array | undefined;
  let values: unknown[] | undefined;
  if (!NEEDS_FULL_PARSER.test(text)) {
    docHashes = new Int32Array(chunks.length * DOC_HASH);
    for (let i = 0; i < chunks.length; i++) hashDocument(chunks[i]!.text, docHashes, i * DOC_HASH);
    const reuse = reusable(opts.previous, defaultNamespace);
    values = subsetValues(chunks, reuse === undefined ? undefined : (i) => take(reuse, opts.previous!.docHashes!, docHashes!, i));
    if (values === undefined) docHashes = undefined;
  }
  let reused = 0;
  let undo: Array<() => void> | undefined;
  if (values === undefined) {
    try {
      // One call for the whole file: js-yaml's per-call setup dominates when called per document.
      values = fastLoadAll(text) as unknown[];
    } catch {
      values = [];
    }
    // A trailing `---` opens an empty document.
    while (values.length > chunks.length && (values[values.length - 1] === null || values[values.length - 1] === undefined)) values.pop();
    if (values.length !== chunks.length) {
      // A syntax error, or a layout the splitter reads differently: the precise parser decides.
      return parseDocumentsSlow(text, file, defaultNamespace, 0);
    }
  }
  const strings = new Map<string, string>();
  for (let i = 0; i < chunks.length; i++) {
    const chunk = chunks[i]!;
    const value = values[i];
    if (value instanceof ParsedResource) {
      (undo ??= []).push(value.relocate(chunk.startLine + leadingLines(chunk.text), i, opts.reread ?? chunk));
      resources.push(value);
      reused++;
      continue;
    }
    internStrings(value, strings);
    if (value === null || value === undefined) continue;
    if (typeof value !== 'object' || Array.isArray(value)) {
      errors.push({ file, line: chunk.startLine, object: '', field: '', message: 'a document must be a mapping with apiVersion, kind, metadata and spec' });
      continue;
    }
    const obj = value as Record<string, unknown>;
    if (obj.kind === 'List' && Array.isArray(obj.items)) {
      // Lists are rare: the slow path gives every item its own positions.
      const r = parseDocumentsSlow(chunk.text, file, defaultNamespace, chunk.startLine - 1);
      resources.push(...r.resources);
      errors.push(...r.errors);
      continue;
    }
    const doc: Chunk | (() => string | undefined) = opts.reread ?? chunk;
    resources.push(toResource(obj, file, chunk.startLine + leadingLines(chunk.text), defaultNamespace, doc, i));
  }
  const out: ParseResult = { resources, errors };
  if (docHashes !== undefined) {
    out.docHashes = docHashes;
    out.namespace = defaultNamespace;
  }
  if (reused > 0) out.reused = reused;
  if (undo !== undefined) {
    const steps = undo;
    out.undo = () => { for (const u of steps) u(); };
  }
  return out;
}

/** The previous parse's resources by their document's hash, each list in document order; undefined when there are none. */
function reusable(previous: ParseOptions['previous'], defaultNamespace: string): Reusable | undefined {
  const h = previous?.docHashes;
  if (h === undefined || previous!.namespace !== defaultNamespace) return undefined;
  const m: Reusable = new Map();
  for (const r of previous!.resources) {
    // Only a document's single resource (a List's items are plain objects).
    if (!(r instanceof ParsedResource) || (r.index + 1) * DOC_HASH > h.length) continue;
    const k = h[r.index * DOC_HASH]!;
    const l = m.get(k);
    if (l === undefined) m.set(k, [r]); else l.push(r);
  }
  return m.size === 0 ? undefined : m;
}

/**
 * Where a ParsedResource's field lines come from: before they are first asked for, the document's text (kept when
 * parseDocuments was given no ParseOptions.reread) or the file read again; after, the document parsed with positions
 * (the `yaml` package's), or null when the file changed meanwhile (the document's first line answers).
 */
type Lines = Chunk | (() => string | undefined) | Pick<Resource, 'lineOf'> | null;

/**
 * A resource of the fast path. Its lines are found on first use and then kept; one class rather than an object and a
 * closure per resource (three resources per service of a large mesh), and no `source` object of its own (a getter):
 * nine fields in all.
 */
class ParsedResource implements Resource {
  constructor(
    readonly apiVersion: string,
    readonly kind: string,
    readonly metadata: Resource['metadata'],
    readonly spec: Record<string, unknown>,
    readonly raw: Record<string, unknown>,
    readonly file: string,
    /** 1-based line of the document's first content line in the file (source.line). */
    public line: number,
    /** The document's place among the file's documents with content. */
    public index: number,
    private lines: Lines,
  ) {}

  get source(): SourceLocation {
    return { file: this.file, line: this.line };
  }

  /**
   * Taken over by a later parse of its file, whose document at `index` with its first content line at `line` has the
   * same text: the resource now says where that document is. Its field lines are found again (from `doc`) unless it
   * found them already and the document did not move. Returns what puts it back.
   */
  relocate(line: number, index: number, doc: Chunk | (() => string | undefined)): () => void {
    const was = { line: this.line, index: this.index, lines: this.lines };
    this.index = index;
    const l = this.lines;
    if (line !== this.line || typeof l === 'function' || (l !== null && 'text' in l)) {
      this.line = line;
      this.lines = doc;
    }
    return () => {
      this.line = was.line;
      this.index = was.index;
      this.lines = was.lines;
    };
  }

  lineOf(path: FieldPath): number {
    let l = this.lines;
    if (l !== null && (typeof l === 'function' || 'text' in l)) {
      let chunk: Chunk | undefined;
      if (typeof l === 'function') {
        // The index-th document with content of the file as it is now; a file that changed since (reread() gives
        // undefined, or the document is no longer where it was) answers the document's first line.
        const text = l();
        chunk = text === undefined ? undefined : splitDocuments(text).filter((c) => hasContent(c.text))[this.index];
        if (chunk !== undefined && chunk.startLine + leadingLines(chunk.text) !== this.line) chunk = undefined;
      } else chunk = l;
      // The default namespace does not change lines: the slow parse's metadata is not used.
      l = (chunk === undefined ? undefined : parseDocumentsSlow(chunk.text, this.file, 'default', chunk.startLine - 1).resources[0]) ?? null;
      this.lines = l;
    }
    return l === null ? this.line : l.lineOf(path);
  }
}

/**
 * Replaces every string value of a parsed document by the file's one copy of it. A host is written five times in a
 * service's ServiceEntry, DestinationRule and VirtualService, and every document repeats its apiVersion, protocols and
 * labels; JSON.parse (and js-yaml) give each occurrence its own string, kept for the life of the config.
 */
function internStrings(v: unknown, strings: Map<string, string>): void {
  if (typeof v !== 'object' || v === null) return;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const x = v[i];
      if (typeof x === 'string') {
        const y = strings.get(x);
        if (y === undefined) strings.set(x, x); else v[i] = y;
      } else internStrings(x, strings);
    }
    return;
  }
  const o = v as Record<string, unknown>;
  for (const k in o) {
    const x = o[k];
    if (typeof x === 'string') {
      const y = strings.get(x);
      if (y === undefined) strings.set(x, x); else o[k] = y;
    } else internStrings(x, strings);
  }
}

/**
 * Each chunk's value from the subset reader (fast-yaml.ts), a chunk it leaves alone from js-yaml, or the resource of
 * the previous parse's document of the same text (`reuse`, by hash; each taken once); undefined when
 * js-yaml rejects a chunk, so that the whole file takes the usual path and its errors are reported as before.
 */
function subsetValues(chunks: readonly Chunk[], reuse?: (i: number) => ParsedResource | undefined): unknown[] | undefined {
  const values: unknown[] = new Array(chunks.length);
  for (let i = 0; i < chunks.length; i++) {
    const text = chunks[i]!.text;
    const r = reuse?.(i);
    if (r !== undefined) {
      values[i] = r;
      continue;
    }
    let v = fastYamlDocument(text);
    if (v === BAIL) {
      try {
        v = fastLoad(text);
      } catch {
        return undefined;
      }
    }
    values[i] = v;
  }
  return values;
}

function hasContent(text: string): boolean {
  let pos = 0;
  while (pos < text.length) {
    const nl = text.indexOf('\n', pos);
    const end = nl < 0 ? text.length : nl;
    const t = text.slice(pos, end).trim();
    if (t !== '' && !t.startsWith('#') && t !== '---' && t !== '...') return true;
    if (nl < 0) break;
    pos = nl + 1;
  }
  return false;
}

/** Lines before the first content line of a chunk (marker, comments, blank lines). */
function leadingLines(text: string): number {
  let n = 0;
  let pos = 0;
  while (pos < text.length) {
    const nl = text.indexOf('\n', pos);
    const l = text.slice(pos, nl < 0 ? text.length : nl).trim();
    if (l !== '' && !l.startsWith('#') && l !== '---') {
      // `--- {a: 1}`: content on the marker line itself
      return n;
    }
    if (nl < 0) break;
    pos = nl + 1;
    n++;
  }
  return 0;
}

/** Interned apiVersion and kind values: one string each for every resource of a kind, not one per document. */
const NAMES = new Map<string, string>();
function internName(v: string): string {
  const k = NAMES.get(v);
  if (k !== undefined) return k;
  if (NAMES.size < 1024) NAMES.set(v, v);
  return v;
}

const METADATA_KEYS = new Set(['name', 'namespace', 'labels', 'annotations', 'resourceVersion']);

function toResource(o: Record<string, unknown>, file: string, line: number, defaultNamespace: string, doc: Chunk | (() => string | undefined), index: number): Resource {
  const md = (o.metadata && typeof o.metadata === 'object' ? o.metadata : {}) as Record<string, unknown>;
  if (typeof o.apiVersion === 'string') o.apiVersion = internName(o.apiVersion);
  if (typeof o.kind === 'string') o.kind = internName(o.kind);
  let metadata: Resource['metadata'];
  // The document's own metadata object when it already is what the resource's would be (a name, a namespace, and
  // labels/annotations/resourceVersion of the right types): no copy per resource.
  if (typeof md.name === 'string' && typeof md.namespace === 'string' && md.namespace !== '' && (md.labels === undefined || (md.labels !== null && typeof md.labels === 'object')) &&
    (md.annotations === undefined || (md.annotations !== null && typeof md.annotations === 'object')) && (md.resourceVersion === undefined || typeof md.resourceVersion === 'string') &&
    Object.keys(md).every((k) => METADATA_KEYS.has(k))) {
    metadata = md as Resource['metadata'];
  } else {
    metadata = {
      name: typeof md.name === 'string' ? md.name : '',
      namespace: typeof md.namespace === 'string' && md.namespace !== '' ? md.namespace : defaultNamespace,
    };
    if (md.labels && typeof md.labels === 'object') metadata.labels = md.labels as Record<string, string>;
    if (md.annotations && typeof md.annotations === 'object') metadata.annotations = md.annotations as Record<string, string>;
    if (typeof md.resourceVersion === 'string') metadata.resourceVersion = md.resourceVersion;
  }
  return new ParsedResource(
    typeof o.apiVersion === 'string' ? o.apiVersion : '',
    typeof o.kind === 'string' ? o.kind : '',
    metadata,
    o.spec && typeof o.spec === 'object' && !Array.isArray(o.spec) ? (o.spec as Record<string, unknown>) : {},
    o,
    file,
    line,
    index,
    doc,
  );
}

/** The `yaml` package's parser: exact positions for every node; `lineOffset` shifts lines of a chunk. */
function parseDocumentsSlow(text: string, file: string, defaultNamespace: string, lineOffset: number): ParseResult {
  const resources: Resource[] = [];
  const errors: ConfigError[] = [];
  const { LineCounter, parseAllDocuments, isMap, isSeq, isScalar } = yaml();
  const lc = new LineCounter();
  let docs: Document.Parsed[];
  try {
    docs = parseAllDocuments(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true }) as Document.Parsed[];
  } catch (err) {
    errors.push({ file, line: 1 + lineOffset, object: '', field: '', message: `cannot parse: ${(err as Error).message}` });
    return { resources, errors };
  }
  if (!Array.isArray(docs)) docs = [docs as unknown as Document.Parsed];
  for (const doc of docs) {
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        const line = (e.linePos?.[0]?.line ?? lc.linePos(e.pos[0]).line) + lineOffset;
        errors.push({ file, line, object: '', field: '', message: `YAML syntax: ${e.message.split('\n')[0]}` });
      }
      continue;
    }
    const contents = doc.contents;
    if (contents === null || (isScalar(contents) && (contents.value === null || contents.value === ''))) continue; // empty document
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    const lineOfNode = (node: Node | null | undefined): number | undefined =>
      node && node.range ? lc.linePos(node.range[0]).line + lineOffset : undefined;
    const docLine = lineOfNode(contents as Node) ?? 1 + lineOffset;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      errors.push({ file, line: docLine, object: '', field: '', message: 'a document must be a mapping with apiVersion, kind, metadata and spec' });
      continue;
    }
    const obj = value as Record<string, unknown>;
    if (obj.kind === 'List' && Array.isArray(obj.items)) {
      obj.items.forEach((item, i) => {
        pushResource(item, ['items', i]);
      });
      continue;
    }
    pushResource(obj, []);

    function pushResource(item: unknown, prefix: FieldPath): void {
      const line = lineOfNode(doc.getIn(prefix, true) as Node) ?? docLine;
      if (item === null || typeof item !== 'object' || Array.isArray(item)) {
        errors.push({ file, line, object: '', field: '', message: 'a list item must be a mapping' });
        return;
      }
      const o = item as Record<string, unknown>;
      const md = (o.metadata && typeof o.metadata === 'object' ? o.metadata : {}) as Record<string, unknown>;
      const kind = typeof o.kind === 'string' ? o.kind : '';
      const name = typeof md.name === 'string' ? md.name : '';
      const namespace = typeof md.namespace === 'string' && md.namespace !== '' ? md.namespace : defaultNamespace;
      const spec = o.spec && typeof o.spec === 'object' && !Array.isArray(o.spec) ? (o.spec as Record<string, unknown>) : {};
      const metadata: Resource['metadata'] = { name, namespace };
      if (md.labels && typeof md.labels === 'object') metadata.labels = md.labels as Record<string, string>;
      if (md.annotations && typeof md.annotations === 'object') metadata.annotations = md.annotations as Record<string, string>;
      if (typeof md.resourceVersion === 'string') metadata.resourceVersion = md.resourceVersion;
      resources.push({
        apiVersion: typeof o.apiVersion === 'string' ? o.apiVersion : '',
        kind,
        metadata,
        spec,
        raw: o,
        source: { file, line },
        lineOf(path: FieldPath): number {
          // Walk down to the deepest existing node on the path: errors on a missing field point at its parent.
          for (let n = path.length; n >= 0; n--) {
            const node = doc.getIn([...prefix, ...path.slice(0, n)], true) as Node | undefined;
            const l = lineOfNode(node);
            if (l !== undefined) {
              // A map/seq's range starts at its first child; for pairs prefer the key's line when available.
              if (n > 0 && (isMap(node) || isSeq(node))) {
                const parent = doc.getIn([...prefix, ...path.slice(0, n - 1)], true) as Node | undefined;
                if (isMap(parent)) {
                  const pair = parent.items.find((p) => isScalar(p.key) && p.key.value === path[n - 1]);
                  const kl = lineOfNode(pair?.key as Node | undefined);
                  if (kl !== undefined) return kl;
                }
              }
              return l;
            }
          }
          return line;
        },
      });
    }
  }
  return { resources, errors };
}
