/**
 * `remora validate` semantics: every problem in a set of resources, each at its field and line. A structural
 * pass (schema.ts: what the Kubernetes API server would reject), then the rules of Istio's own validation
 * (istio/istio pkg/config/validation; one module per kind under validate/), then cross-resource references
 * (subsets, delegates, duplicates, identities: validate/state.ts, which also keeps them up to date incrementally).
 */
import type { ConfigError, Resource } from './resource.js';
import { DEFAULT_CLUSTER_DOMAIN } from './hosts.js';
import { ValidationState } from './validate/state.js';

export { checkRegex } from './validate/common.js';
export { ValidationState } from './validate/state.js';
export type { Order } from './validate/ordered-index.js';

export interface ValidateOptions {
  /** Kubernetes cluster domain used to expand short host names (`--cluster-domain`); default `cluster.local`. */
  clusterDomain?: string;
}

/**
 * Validate a whole configuration: every resource on its own, then the references between them. Returns all
 * errors and warnings (warnings have `severity: 'warning'` and do not reject a config), ordered by file and line
 * (problems of one line in input order).
 */
export function validateResources(resources: readonly Resource[], opts: ValidateOptions = {}): ConfigError[] {
  const index = new Map<Resource, number>();
  resources.forEach((r, i) => { if (!index.has(r)) index.set(r, i); });
  const state = new ValidationState({ clusterDomain: opts.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN, order: (a, b) => index.get(a)! - index.get(b)! });
  state.update([], resources);
  return state.problems();
}
