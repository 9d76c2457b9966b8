/**
 * RFC 6902 JSON Patch: a structural diff (before → after) producing add/remove/replace operations,
 * and an applier. Used by the admission webhook (patch out) and by `remora inject` (edits in place).
 */

export type JsonPatchOp =
  | { op: 'add'; path: string; value: unknown }
  | { op: 'replace'; path: string; value: unknown }
  | { op: 'remove'; path: string };

/** RFC 6901: `~` → `~0`, `/` → `~1` (annotation keys such as `remora.io/status` need it). */
export function escapePointerSegment(segment: string | number): string {
  return String(segment).replace(/~/g, '~0').replace(/\//g, '~1');
}

export function unescapePointerSegment(segment: string): string {
  return segment.replace(/~1/g, '/').replace(/~0/g, '~');
}

export function toPointer(path: ReadonlyArray<string | number>): string {
  return path.map((s) => '/' + escapePointerSegment(s)).join('');
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  }
  if (isPlainObject(a) && isPlainObject(b)) {
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

/** Identity of an array element for matching: its `name` (containers, volumes) or its whole value. */
function sameElement(a: unknown, b: unknown): boolean {
  if (isPlainObject(a) && isPlainObject(b) && typeof a.name === 'string') return a.name === b.name;
  return deepEqual(a, b);
}

/**
 * Operations that turn `before` into `after`. Arrays that only gained elements at the front or the
 * end get `add`s at those indices (then a diff of the shifted elements); other array changes of
 * length replace the array whole. Operations are meant to be applied in order.
 */
export function diff(before: unknown, after: unknown, path: ReadonlyArray<string | number> = []): JsonPatchOp[] {
  if (deepEqual(before, after)) return [];
  if (isPlainObject(before) && isPlainObject(after)) {
    const ops: JsonPatchOp[] = [];
    for (const k of Object.keys(before)) {
      if (!Object.hasOwn(after, k)) ops.push({ op: 'remove', path: toPointer([...path, k]) });
    }
    for (const [k, v] of Object.entries(after)) {
      if (!Object.hasOwn(before, k)) ops.push({ op: 'add', path: toPointer([...path, k]), value: v });
      else ops.push(...diff(before[k], v, [...path, k]));
    }
    return ops;
  }
  if (Array.isArray(before) && Array.isArray(after)) {
    const extra = after.length - before.length;
    if (extra === 0) return before.flatMap((b, i) => diff(b, after[i], [...path, i]));
    if (extra > 0 && before.every((b, i) => sameElement(b, after[i + extra]))) {
      const ops: JsonPatchOp[] = after.slice(0, extra).map((v, i) => ({ op: 'add' as const, path: toPointer([...path, i]), value: v }));
      before.forEach((b, i) => ops.push(...diff(b, after[i + extra], [...path, i + extra])));
      return ops;
    }
    if (extra > 0 && before.every((b, i) => sameElement(b, after[i]))) {
      const ops = before.flatMap((b, i) => diff(b, after[i], [...path, i]));
      after.slice(before.length).forEach((v, i) => ops.push({ op: 'add', path: toPointer([...path, before.length + i]), value: v }));
      return ops;
    }
  }
  return [{ op: 'replace', path: toPointer(path), value: after }];
}

/** Parse a JSON pointer into segments (array indices stay strings; the caller interprets them). */
export function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw new Error(`invalid JSON pointer "${pointer}"`);
  return pointer.slice(1).split('/').map(unescapePointerSegment);
}

/** Apply operations to a deep copy of `doc` (RFC 6902 add/replace/remove), returning the copy. */
export function applyPatch(doc: unknown, ops: readonly JsonPatchOp[]): unknown {
  let root: unknown = structuredClone(doc);
  for (const op of ops) {
    const segs = parsePointer(op.path);
    if (segs.length === 0) {
      if (op.op === 'remove') throw new Error('cannot remove the document root');
      root = structuredClone(op.value);
      continue;
    }
    let parent: unknown = root;
    for (const s of segs.slice(0, -1)) {
      parent = Array.isArray(parent) ? parent[Number(s)] : isPlainObject(parent) ? parent[s] : undefined;
      if (parent === undefined) throw new Error(`path ${op.path} does not exist`);
    }
    const last = segs[segs.length - 1]!;
    if (Array.isArray(parent)) {
      const i = last === '-' ? parent.length : Number(last);
      if (!Number.isInteger(i) || i < 0 || i > parent.length) throw new Error(`bad array index in ${op.path}`);
      if (op.op === 'add') parent.splice(i, 0, structuredClone(op.value));
      else if (op.op === 'replace') parent[i] = structuredClone(op.value);
      else parent.splice(i, 1);
    } else if (isPlainObject(parent)) {
      if (op.op === 'remove') delete parent[last];
      else {
        if (op.op === 'replace' && !Object.hasOwn(parent, last)) throw new Error(`path ${op.path} does not exist`);
        parent[last] = structuredClone(op.value);
      }
    } else {
      throw new Error(`path ${op.path} does not exist`);
    }
  }
  return root;
}
