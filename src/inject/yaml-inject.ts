/**
 * Multi-document YAML text → the same text with every pod template injected. Untouched documents are
 * copied byte for byte; changed ones are edited in place in yaml's Document, keeping comments and key order.
 */
import { isMap, isSeq, yamlDocuments, type Document } from '../util/yaml.js';
import { injectObject, type InjectOptions } from './inject.js';
import { diff, parsePointer, type JsonPatchOp } from './json-patch.js';

export interface YamlInjectResult {
  /** The output text; meaningful only when `errors` is empty. */
  output: string;
  /** YAML syntax errors (1-based line) and injection errors. */
  errors: Array<{ line: number; message: string }>;
  /** Number of documents that were changed. */
  injected: number;
  /** For each document not changed: `Kind/name: reason`. */
  skipped: string[];
}

/** A key line followed by a `- ` item at the same indentation: the source does not indent sequences. */
const FLUSH_SEQ_RE = /^( *)[^\s#-][^\n]*:[ \t]*(?:#[^\n]*)?\n\1- /m;

export function injectYaml(text: string, opts: InjectOptions = {}): YamlInjectResult {
  const { Composer, CST, LineCounter, Parser } = yamlDocuments();
  const lc = new LineCounter();
  const tokens = Array.from(new Parser(lc.addNewLine).parse(text));
  const errors: YamlInjectResult['errors'] = [];
  const skipped: string[] = [];
  const parts: string[] = [];
  let injected = 0;
  for (const token of tokens) {
    const source = CST.stringify(token);
    if (token.type !== 'document') {
      if (token.type === 'error') errors.push({ line: lc.linePos(token.offset).line, message: `YAML syntax: ${token.message}` });
      parts.push(source);
      continue;
    }
    const docs = Array.from(new Composer().compose([token], true)) as Document.Parsed[];
    const doc = docs[0];
    if (doc === undefined) {
      parts.push(source);
      continue;
    }
    if (doc.errors.length > 0) {
      for (const e of doc.errors) errors.push({ line: lc.linePos(e.pos[0]).line, message: `YAML syntax: ${e.message.split('\n')[0]}` });
      parts.push(source);
      continue;
    }
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    let result;
    try {
      result = injectObject(value, opts);
    } catch (err) {
      const line = doc.contents?.range ? lc.linePos(doc.contents.range[0]).line : 1;
      errors.push({ line, message: (err as Error).message });
      parts.push(source);
      continue;
    }
    if (!result.changed) {
      if (value !== null && typeof value === 'object' && result.skipped !== undefined) skipped.push(`${describe(value)}: ${result.skipped}`);
      parts.push(source);
      continue;
    }
    applyToDocument(doc, diff(value, result.object));
    // Keep the source's sequence style: Kubernetes manifests usually write `- ` flush with the key.
    let out = doc.toString({ indentSeq: !FLUSH_SEQ_RE.test(source) });
    // A document followed by `...` or `---` in the source must still end in a newline.
    if (!out.endsWith('\n')) out += '\n';
    parts.push(out);
    injected++;
  }
  return { output: parts.join(''), errors, injected, skipped };
}

function describe(value: object): string {
  const o = value as { kind?: unknown; metadata?: { name?: unknown } };
  return `${typeof o.kind === 'string' ? o.kind : '?'}/${typeof o.metadata?.name === 'string' ? o.metadata.name : '?'}`;
}

/** Apply JSON-patch operations to a yaml Document node tree, so that unchanged nodes keep their comments. */
function applyToDocument(doc: Document, ops: readonly JsonPatchOp[]): void {
  for (const op of ops) {
    const segs: Array<string | number> = parsePointer(op.path);
    const last = segs.pop();
    if (last === undefined) {
      if (op.op !== 'remove') doc.contents = doc.createNode(op.value) as typeof doc.contents;
      continue;
    }
    const parent = segs.length === 0 ? doc.contents : doc.getIn(indexify(doc, segs), true);
    unflow(doc, segs);
    if (isSeq(parent)) {
      const i = Number(last);
      if (op.op === 'add') parent.items.splice(i, 0, doc.createNode(op.value));
      else if (op.op === 'replace') parent.items[i] = doc.createNode(op.value);
      else parent.items.splice(i, 1);
    } else if (isMap(parent)) {
      if (op.op === 'remove') parent.delete(last);
      else parent.set(last, doc.createNode(op.value));
    } else {
      // Parent is not a collection (e.g. `annotations:` with a null value): set the whole path.
      if (op.op !== 'remove') doc.setIn(indexify(doc, [...segs, last]), doc.createNode(op.value));
    }
  }
}

/**
 * A flow collection (`{a: 1}`) along an edited path is switched to block style, with its ancestors:
 * the added containers would otherwise print as one long flow mapping, and block may not nest in flow.
 */
function unflow(doc: Document, segs: ReadonlyArray<string | number>): void {
  let node: unknown = doc.contents;
  for (let i = 0; ; i++) {
    if (!isSeq(node) && !isMap(node)) return;
    node.flow = false;
    if (i >= segs.length) return;
    const s = segs[i]!;
    node = node.get(isSeq(node) ? Number(s) : s, true);
  }
}

/** Pointer segments are strings; sequence indices must be numbers for yaml's getIn/setIn. */
function indexify(doc: Document, segs: ReadonlyArray<string | number>): Array<string | number> {
  const out: Array<string | number> = [];
  let node: unknown = doc.contents;
  for (const s of segs) {
    const key = isSeq(node) ? Number(s) : s;
    out.push(key);
    node = isSeq(node) || isMap(node) ? node.get(key, true) : undefined;
  }
  return out;
}
