/**
 * YAML/JSON text → Resources with source positions. Multi-document files (`---`) and Kubernetes
 * `List` objects are flattened. Syntax errors become ConfigErrors with file and line; nothing throws.
 */
import { LineCounter, parseAllDocuments, isMap, isSeq, isScalar, type Node, type Document } from 'yaml';
import type { ConfigError, FieldPath, Resource } from './resource.js';

export interface ParseResult {
  resources: Resource[];
  errors: ConfigError[];
}

export function parseDocuments(text: string, file: string, defaultNamespace = 'default'): ParseResult {
  const resources: Resource[] = [];
  const errors: ConfigError[] = [];
  const lc = new LineCounter();
  let docs: Document.Parsed[];
  try {
    docs = parseAllDocuments(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true }) as Document.Parsed[];
  } catch (err) {
    errors.push({ file, line: 1, object: '', field: '', message: `cannot parse: ${(err as Error).message}` });
    return { resources, errors };
  }
  if (!Array.isArray(docs)) docs = [docs as unknown as Document.Parsed];
  for (const doc of docs) {
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        const line = e.linePos?.[0]?.line ?? lc.linePos(e.pos[0]).line;
        errors.push({ file, line, object: '', field: '', message: `YAML syntax: ${e.message.split('\n')[0]}` });
      }
      continue;
    }
    const contents = doc.contents;
    if (contents === null || (isScalar(contents) && (contents.value === null || contents.value === ''))) continue; // empty document
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    const lineOfNode = (node: Node | null | undefined): number | undefined =>
      node && node.range ? lc.linePos(node.range[0]).line : undefined;
    const docLine = lineOfNode(contents as Node) ?? 1;
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
