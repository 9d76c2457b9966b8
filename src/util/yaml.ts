/**
 * The one YAML adapter: every module that reads, writes or edits YAML does it through here, and no other module
 * imports `js-yaml` or `yaml` (scripts/check-imports.mjs checks it). Plain values come from js-yaml (fast, CORE
 * schema; config/fast-yaml.ts reads Istio's plain subset in front of it with js-yaml's own scalar rules); documents
 * with source ranges, comments and in-place edits come from the `yaml` package, loaded on first use only: a sidecar
 * reads it only to put a line on an error, `remora rollout` and `remora inject` to edit files keeping their comments.
 */
import { createRequire } from 'node:module';
import { CORE_SCHEMA, load, loadAll, NOT_RESOLVED, type ScalarTagDefinition } from 'js-yaml';
import type { Document, Node, Scalar, YAMLMap, YAMLSeq } from 'yaml';

export type { Document, Node, Scalar, YAMLMap, YAMLSeq };
/** js-yaml's CORE schema and its "not this tag" marker, for config/fast-yaml.ts, which resolves scalars by them. */
export { CORE_SCHEMA, NOT_RESOLVED, type ScalarTagDefinition };

/** One YAML document's value (js-yaml, CORE schema). Throws a YAMLException on invalid YAML. */
export function loadYaml(text: string): unknown {
  return load(text);
}

/** Every document of a YAML stream (js-yaml, CORE schema). Throws a YAMLException on invalid YAML. */
export function loadAllYaml(text: string): unknown[] {
  return loadAll(text);
}

type YamlModule = typeof import('yaml');
let yamlModule: YamlModule | undefined;

/**
 * The `yaml` package (documents whose nodes carry source ranges and comments, the CST, line counters), loaded on the
 * first call, not at start-up.
 */
export function yamlDocuments(): YamlModule {
  return (yamlModule ??= createRequire(import.meta.url)('yaml') as YamlModule);
}

/** A new document holding `value` (yaml's `new Document(value)`), to edit and serialise. */
export function newDocument(value: unknown): Document {
  return new (yamlDocuments().Document)(value);
}

/** Every document of `text` with its nodes, ranges, comments and errors (yaml's `parseAllDocuments`). */
export function parseAllDocuments(text: string): Document[] {
  return yamlDocuments().parseAllDocuments(text) as Document[];
}

/** yaml's node tests (a mapping, a sequence, a scalar node). */
export function isMap(n: unknown): n is YAMLMap<unknown, unknown> {
  return yamlDocuments().isMap(n);
}
export function isSeq(n: unknown): n is YAMLSeq<unknown> {
  return yamlDocuments().isSeq(n);
}
export function isScalar(n: unknown): n is Scalar<unknown> {
  return yamlDocuments().isScalar(n);
}
