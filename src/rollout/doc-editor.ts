/**
 * What the rollout's two editors share (vs-edit.ts for a VirtualService, route-edit.ts for an HTTPRoute or
 * GRPCRoute): a resource as a `yaml` Document, so that a file keeps its comments and layout, its name, namespace and
 * annotations (where a rollout keeps its state), and reading a scalar node. Pure: no I/O.
 */
import { isMap, isScalar, type Document, type YAMLMap } from '../util/yaml.js';

export type AnyMap = YAMLMap<unknown, unknown>;

/** A scalar node (or a plain string) as a string; undefined for null, absent or a collection. */
export function str(n: unknown): string | undefined {
  if (isScalar(n)) return n.value === null || n.value === undefined ? undefined : String(n.value);
  return typeof n === 'string' ? n : undefined;
}

export class DocEditor {
  constructor(readonly doc: Document) {}

  toObject(): Record<string, unknown> {
    return this.doc.toJS() as Record<string, unknown>;
  }

  get name(): string {
    return str(this.doc.getIn(['metadata', 'name'])) ?? '';
  }

  get namespace(): string | undefined {
    return str(this.doc.getIn(['metadata', 'namespace']));
  }

  annotation(key: string): string | undefined {
    const a = this.doc.getIn(['metadata', 'annotations']);
    return isMap(a) ? str(a.get(key, true)) : undefined;
  }

  /** Set an annotation, or remove it with `undefined` (and the annotations map once it is empty). */
  setAnnotation(key: string, value: string | undefined): void {
    const a = this.doc.getIn(['metadata', 'annotations']);
    if (value === undefined) {
      if (!isMap(a)) return;
      a.delete(key);
      if (a.items.length === 0) (this.doc.getIn(['metadata']) as AnyMap).delete('annotations');
      return;
    }
    if (isMap(a)) a.set(key, value);
    else this.doc.setIn(['metadata', 'annotations'], this.doc.createNode({ [key]: value }));
  }
}
