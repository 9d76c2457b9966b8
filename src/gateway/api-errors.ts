/**
 * Invalid rules of Gateway API routes read from the API server, pure: a route whose only problems lie in some of its
 * rules keeps the others (GEP-1364 "Drop Rule(s)": Accepted stays True, PartiallyInvalid says which were dropped);
 * a route with a problem outside its rules, or in all of them, is skipped whole by the config store (Accepted=False).
 * Files never take this path: an invalid file is rejected whole.
 */
import type { ConfigError, Resource } from '../config/resource.js';
import { objectName } from '../config/resource.js';
import { isGatewayRoute } from './types.js';
import { problemsByRule } from './validate.js';

/** Rule indices of the original object, for a pruned copy (compiled route names and status keep the user's numbering). */
const originalIndices = new WeakMap<Resource, readonly number[]>();

export function originalRuleIndex(r: Resource, i: number): number {
  return originalIndices.get(r)?.[i] ?? i;
}

export interface Pruned {
  resources: Resource[];
  /** `Kind/ns/name` → the rule indices dropped. */
  dropped: Map<string, number[]>;
}

/** The resources with invalid rules of API routes dropped; undefined when no route qualifies (nothing changes). */
export function dropInvalidRules(resources: readonly Resource[], problems: readonly ConfigError[]): Pruned | undefined {
  const errorsOf = new Map<string, ConfigError[]>();
  for (const p of problems) {
    if (p.severity === 'warning' || p.file !== 'kubernetes') continue;
    const l = errorsOf.get(p.object);
    if (l === undefined) errorsOf.set(p.object, [p]); else l.push(p);
  }
  if (errorsOf.size === 0) return undefined;
  const dropped = new Map<string, number[]>();
  const out = resources.map((r) => {
    if (r.source.file !== 'kubernetes' || !isGatewayRoute(r.apiVersion, r.kind)) return r;
    const errs = errorsOf.get(objectName(r));
    if (errs === undefined) return r;
    const byRule = problemsByRule(errs);
    const rules = Array.isArray(r.spec.rules) ? (r.spec.rules as unknown[]) : [];
    if (byRule.has(-1) || byRule.size >= rules.length) return r;
    const keep: number[] = [];
    for (let i = 0; i < rules.length; i++) if (!byRule.has(i)) keep.push(i);
    dropped.set(objectName(r), [...byRule.keys()].sort((a, b) => a - b));
    const spec = { ...r.spec, rules: keep.map((i) => rules[i]) };
    // Field by field, not a spread: a parsed resource finds its lines through a method of its class.
    const copy: Resource = { apiVersion: r.apiVersion, kind: r.kind, metadata: r.metadata, spec, raw: { ...r.raw, spec }, source: r.source, lineOf: (p) => r.lineOf(p) };
    originalIndices.set(copy, keep);
    return copy;
  });
  return dropped.size === 0 ? undefined : { resources: out, dropped };
}
