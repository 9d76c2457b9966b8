/**
 * A resource as read from a source (file or Kubernetes), with where it came from, so that every
 * error can name `file:line: Kind/namespace/name: spec.field.path: reason`.
 */

/** Path into a resource, e.g. ['spec', 'http', 2, 'route', 0, 'weight']. */
export type FieldPath = ReadonlyArray<string | number>;

export interface SourceLocation {
  /** File path (as given by the user) or a pseudo-source such as `kubernetes`. */
  file: string;
  /** 1-based line of the document start in that file. */
  line: number;
}

export interface Resource {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; labels?: Record<string, string>; annotations?: Record<string, string>; resourceVersion?: string };
  /** The spec as parsed (untrusted until validated). */
  spec: Record<string, unknown>;
  /** Everything else at the top level (status, data …), untouched. */
  raw: Record<string, unknown>;
  source: SourceLocation;
  /** Line (1-based) of the node at `path` (relative to the document root), or the closest ancestor's. */
  lineOf(path: FieldPath): number;
}

export interface ConfigError {
  file: string;
  line: number;
  /** `Kind/namespace/name`, or '' when the document could not be identified. */
  object: string;
  /** Dotted field path such as `spec.http[2].route[0].weight`, or '' for whole-document problems. */
  field: string;
  message: string;
  /** Warnings are printed but do not reject a config. */
  severity?: 'error' | 'warning';
}

export function formatPath(path: FieldPath): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? p : `.${p}`;
  }
  return out;
}

export function objectName(r: Pick<Resource, 'kind' | 'metadata'>): string {
  // One flat string (a template literal would be a tree of concatenations; snapshots keep one per service as origin).
  return [r.kind, r.metadata.namespace, r.metadata.name].join('/');
}

/** `file:line: Kind/ns/name: field: reason` — the one error line format of `remora validate`. */
export function formatError(e: ConfigError): string {
  const parts = [`${e.file}:${e.line}`];
  if (e.object) parts.push(e.object);
  if (e.field) parts.push(e.field);
  parts.push(e.severity === 'warning' ? `warning: ${e.message}` : e.message);
  return parts.join(': ');
}

export function errorAt(r: Resource, path: FieldPath, message: string, severity?: 'warning'): ConfigError {
  const e: ConfigError = { file: r.source.file, line: r.lineOf(path), object: objectName(r), field: formatPath(path), message };
  if (severity) e.severity = severity;
  return e;
}
