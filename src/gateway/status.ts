/**
 * Route `status.parents[]` as a Gateway API controller writes it, pure: per Service parentRef the conditions
 * Accepted, ResolvedRefs and (for routes with dropped rules) PartiallyInvalid, with the spec's reasons and the
 * route's generation. The same function serves the status writer and `remora validate`; it depends on the whole
 * cluster (every Service), never on the sidecar that computes it.
 */
import type { ConfigError, Resource } from '../config/resource.js';
import type { ServiceDef } from '../model.js';
import { bindRoutes, type ParentResult } from './binding.js';
import { isServiceKind, resolveBackend } from './refs.js';
import { CONTROLLER_NAME, GATEWAY_GROUP, type BackendObjectReference, type GatewayRouteKind, type ParentReference } from './types.js';

export interface Condition {
  type: 'Accepted' | 'ResolvedRefs' | 'PartiallyInvalid';
  status: 'True' | 'False';
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime?: string;
}

export interface RouteParentStatus {
  parentRef: ParentReference;
  controllerName: string;
  conditions: Condition[];
}

export interface StatusInput {
  /** Every Gateway API route, valid or not (as read). */
  routes: readonly Resource[];
  /** Validation errors of those routes (warnings ignored). */
  errors: readonly ConfigError[];
  /** Rules dropped from routes that were otherwise valid (GEP-1364 "Drop Rule(s)"), by `Kind/ns/name`. */
  dropped?: ReadonlyMap<string, readonly number[]>;
  byHost: ReadonlyMap<string, ServiceDef>;
  clusterDomain: string;
}

/** The parentRef as the API server stores it (defaults filled in), which is how status must echo it. */
export function canonicalParentRef(ref: ParentReference): ParentReference {
  const out: ParentReference = { group: ref.group ?? GATEWAY_GROUP, kind: ref.kind ?? 'Gateway', name: ref.name };
  if (ref.namespace !== undefined) out.namespace = ref.namespace;
  if (ref.sectionName !== undefined) out.sectionName = ref.sectionName;
  if (ref.port !== undefined) out.port = ref.port;
  return out;
}

function generationOf(r: Resource): number | undefined {
  const g = (r.raw.metadata as { generation?: unknown } | undefined)?.generation;
  return typeof g === 'number' ? g : undefined;
}

/** Backends of every rule and filter (rule backendRefs, RequestMirror backends). */
function backendRefs(r: Resource): BackendObjectReference[] {
  const out: BackendObjectReference[] = [];
  for (const rule of (r.spec as { rules?: Array<{ backendRefs?: BackendObjectReference[]; filters?: Array<{ requestMirror?: { backendRef?: BackendObjectReference } }> }> }).rules ?? []) {
    for (const b of rule.backendRefs ?? []) out.push(b);
    for (const f of rule.filters ?? []) if (f.requestMirror?.backendRef) out.push(f.requestMirror.backendRef);
  }
  return out;
}

const L7 = new Set(['http', 'http2', 'grpc', 'grpc-web', '']);
const GRPC_OK = new Set(['http2', 'grpc', '']);

function resolvedRefs(r: Resource, kind: GatewayRouteKind, input: StatusInput): Omit<Condition, 'type'> {
  const problems: Array<{ reason: string; message: string }> = [];
  for (const b of backendRefs(r)) {
    const res = resolveBackend(b, r.metadata.namespace, input.byHost, input.clusterDomain);
    if (!res.ok) { problems.push(res); continue; }
    const proto = res.service.ports.find((p) => p.number === res.port)?.protocol ?? '';
    const ok = kind === 'GRPCRoute' ? GRPC_OK.has(proto) : kind === 'HTTPRoute' ? L7.has(proto) : true;
    if (!ok) problems.push({ reason: 'UnsupportedProtocol', message: `${kind} cannot send to port ${res.port} of ${res.host} (protocol ${proto})` });
  }
  if (problems.length === 0) return { status: 'True', reason: 'ResolvedRefs', message: 'All references resolved' };
  return { status: 'False', reason: problems[0]!.reason, message: problems.map((p) => p.message).join('; ') };
}

function accepted(pr: ParentResult, r: Resource, errors: readonly ConfigError[] | undefined): Omit<Condition, 'type'> {
  if (errors !== undefined && errors.length > 0) {
    const first = errors[0]!;
    return { status: 'False', reason: 'UnsupportedValue', message: `${first.field ? `${first.field}: ` : ''}${first.message}${errors.length > 1 ? ` (and ${errors.length - 1} more)` : ''}` };
  }
  const res = pr.resolution;
  if (!res.ok) return { status: 'False', reason: 'NoMatchingParent', message: res.message };
  if (pr.conflicted) {
    return { status: 'False', reason: 'Conflicted', message: `every port it names is taken by a route kind that comes first (GEP-1294): ${pr.conflicts.map((c) => `port ${c.port} by ${c.winner}`).join(', ')}` };
  }
  const t = res.target;
  const role = r.metadata.namespace === res.service.namespace ? 'producer route: applies to every client' : `consumer route: applies to clients in namespace ${r.metadata.namespace}`;
  const partial = pr.conflicts.length > 0 ? `; not on ${pr.conflicts.map((c) => `port ${c.port} (taken by ${c.winner})`).join(', ')}` : '';
  return { status: 'True', reason: 'Accepted', message: `Bound to Service ${t.namespace}/${t.name}${t.port !== undefined ? ` port ${t.port}` : ''} (${role})${partial}` };
}

/**
 * The parents this controller reports on for every route: its Service parentRefs (a Gateway parent belongs to a
 * gateway controller). Keyed by the route resource.
 */
export function routeStatuses(input: StatusInput): Map<Resource, RouteParentStatus[]> {
  const out = new Map<Resource, RouteParentStatus[]>();
  const errorsOf = new Map<string, ConfigError[]>();
  for (const e of input.errors) {
    if (e.severity === 'warning') continue;
    const l = errorsOf.get(e.object);
    if (l === undefined) errorsOf.set(e.object, [e]); else l.push(e);
  }
  const objectName = (r: Resource): string => `${r.kind}/${r.metadata.namespace}/${r.metadata.name}`;
  const valid = input.routes.filter((r) => !errorsOf.has(objectName(r)));
  const bound = bindRoutes(valid, input.byHost, input.clusterDomain, undefined);
  for (const r of input.routes) {
    const name = objectName(r);
    const errs = errorsOf.get(name);
    const gen = generationOf(r);
    const parents = bound.parents.get(r) ?? ((r.spec as { parentRefs?: ParentReference[] }).parentRefs ?? []).map((ref, index): ParentResult => ({
      index, ref, resolution: { ok: false, reason: 'NoMatchingParent', message: '' }, conflicts: [], conflicted: false,
    }));
    const refs = resolvedRefs(r, r.kind as GatewayRouteKind, input);
    const dropped = input.dropped?.get(name);
    const list: RouteParentStatus[] = [];
    for (const pr of parents) {
      if (!isServiceKind(pr.ref.group ?? GATEWAY_GROUP, pr.ref.kind ?? 'Gateway')) continue;
      const cond = (type: Condition['type'], c: Omit<Condition, 'type'>): Condition => ({ type, ...c, ...(gen !== undefined ? { observedGeneration: gen } : {}) });
      const conditions = [cond('Accepted', accepted(pr, r, errs)), cond('ResolvedRefs', refs)];
      if (dropped !== undefined && dropped.length > 0 && errs === undefined) {
        conditions.push(cond('PartiallyInvalid', { status: 'True', reason: 'UnsupportedValue', message: `Dropped Rule(s) ${dropped.map((i) => `rules[${i}]`).join(', ')}: invalid (see the object's validation errors in the sidecars' logs)` }));
      }
      list.push({ parentRef: canonicalParentRef(pr.ref), controllerName: CONTROLLER_NAME, conditions });
    }
    out.set(r, list);
  }
  return out;
}

/** One line per parent, for `remora validate`: `HTTPRoute/ns/name parentRefs[0] Service ns/echo: Accepted=True (Accepted: …) …`. */
export function formatRouteStatus(r: Resource, parents: readonly RouteParentStatus[]): string[] {
  return parents.map((p) => {
    const ref = p.parentRef;
    const target = `Service ${ref.namespace ?? r.metadata.namespace}/${ref.name}${ref.port !== undefined ? `:${ref.port}` : ''}${ref.sectionName ? ` (${ref.sectionName})` : ''}`;
    const conds = p.conditions.map((c) => `${c.type}=${c.status} (${c.reason}: ${c.message})`).join('; ');
    return `${r.kind}/${r.metadata.namespace}/${r.metadata.name} → ${target}: ${conds}`;
  });
}
