/**
 * Route building blocks for ./compile.ts: header operations and matches, fault percentages and gRPC status names,
 * and the lazily built virtual host (RouteCell, CompiledVirtualHost). Pure.
 */
import type { HTTPMatchRequest, HeaderOperations, StringMatch, VirtualServiceSpec } from './types.js';
import type { Resource } from './resource.js';
import { objectName } from './resource.js';
import { expandHost } from './hosts.js';
import { compileStringMatch } from '../routing/string-match.js';
import type { CompiledDestination, CompiledMatch, CompiledRoute, HeaderMatch, HeaderOps, VirtualHost } from '../routing/route.js';
import { labelsMatch } from './compile-registry.js';

export function usesHashLb(d: CompiledDestination): boolean {
  for (const c of d.clusters.values()) if (c.policy.lb.kind === 'RING_HASH' || c.policy.lb.kind === 'MAGLEV') return true;
  return false;
}

export function compileHeaderOps(ops: HeaderOperations | undefined): HeaderOps | undefined {
  if (!ops || (!ops.set && !ops.add && !ops.remove)) return undefined;
  return {
    remove: (ops.remove ?? []).map((h) => h.toLowerCase()),
    set: Object.entries(ops.set ?? {}).map(([k, v]) => [k, String(v)] as const),
    add: Object.entries(ops.add ?? {}).map(([k, v]) => [k, String(v)] as const),
  };
}

/** Shared by every match without header/query conditions (read-only: the matcher only iterates it). */
const NO_HEADER_MATCHES: readonly HeaderMatch[] = [];

function compileHeaderMatches(h: Record<string, StringMatch> | undefined): readonly HeaderMatch[] {
  if (!h) return NO_HEADER_MATCHES;
  const out: HeaderMatch[] = [];
  for (const [name, m] of Object.entries(h)) {
    const lname = name.toLowerCase();
    // Istio ignores pseudo-header keys here (they have their own fields).
    if (lname === 'uri' || lname === 'scheme' || lname === 'method' || lname === 'authority') continue;
    out.push({ name: lname, match: compileStringMatch(m) });
  }
  return out;
}

export function compileMatch(m: HTTPMatchRequest, opts: { readonly namespace: string; readonly labels: Readonly<Record<string, string>> }, resourceNs: string): CompiledMatch | undefined {
  // sourceLabels / sourceNamespace / gateways select workloads: evaluated once, here, against this sidecar.
  if (m.sourceLabels && !labelsMatch(m.sourceLabels, opts.labels)) return undefined;
  if (m.sourceNamespace && m.sourceNamespace !== opts.namespace) return undefined;
  if (m.gateways && m.gateways.length > 0 && !m.gateways.includes('mesh')) return undefined;
  void resourceNs;
  const ic = m.ignoreUriCase === true;
  return {
    name: m.name ?? '',
    uri: m.uri ? compileStringMatch(m.uri, ic) : undefined,
    scheme: m.scheme ? compileStringMatch(m.scheme) : undefined,
    method: m.method ? compileStringMatch(m.method) : undefined,
    authority: m.authority ? compileStringMatch(m.authority) : undefined,
    headers: compileHeaderMatches(m.headers),
    withoutHeaders: compileHeaderMatches(m.withoutHeaders),
    queryParams: compileHeaderMatches(m.queryParams),
    port: m.port ?? 0,
  };
}

export function percentOf(p: { value?: number } | undefined, legacy?: number, dflt = 100): number {
  if (p && typeof p.value === 'number') return p.value;
  if (typeof legacy === 'number') return legacy;
  return dflt;
}

export const GRPC_STATUS: Record<string, number> = {
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9, ABORTED: 10, OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, DATA_LOSS: 15, UNAUTHENTICATED: 16,
};

/**
 * A virtual host's compiled routes, built on first use and then kept: every host a VirtualService names shares its
 * one cell; a service without a VirtualService has a cell for its default route. Building is pure and total on
 * validated input (validate.ts checks every regex, duration and field it reads), so a lazy build cannot fail where
 * an eager one would have succeeded.
 */
export class RouteCell<T = unknown> {
  private routes: readonly CompiledRoute[] | undefined;
  // One builder per compilation and its argument (the VirtualService, or the service of a default route), rather than
  // a closure and a scope object per cell: at 50,000 services that was ~100 bytes per service.
  private build: ((arg: T) => readonly CompiledRoute[]) | undefined;
  private arg: T | undefined;

  constructor(build: (arg: T) => readonly CompiledRoute[], arg: T) {
    this.build = build;
    this.arg = arg;
  }

  get(): readonly CompiledRoute[] {
    if (this.routes === undefined) {
      this.routes = this.build!(this.arg!);
      this.build = undefined;
      this.arg = undefined;
    }
    return this.routes;
  }

  get built(): boolean {
    return this.routes !== undefined;
  }
}

/** Every virtual host has this one shape (a VirtualService's and default routes alike), so `vh.routes` stays monomorphic. */
export class CompiledVirtualHost implements VirtualHost {
  /**
   * `origin` as given: a string, or the VirtualService whose name it is, made into `Kind/namespace/name` on first
   * read (rarely: explain, the dashboard, L4 decisions). One such string per VirtualService was ~80 B per service.
   */
  constructor(readonly host: string, private from: string | Resource, private readonly cell: { get(): readonly CompiledRoute[]; readonly built: boolean }) {}

  get origin(): string {
    const f = this.from;
    if (typeof f === 'string') return f;
    const o = objectName(f);
    this.from = o;
    return o;
  }

  get routes(): readonly CompiledRoute[] {
    return this.cell.get();
  }

  /** Whether the routes have been compiled yet (the dashboard leaves idle default routes unbuilt). */
  get compiled(): boolean {
    return this.cell.built;
  }
}

/** The hosts a VirtualService's HTTP routes send or mirror to, expanded as compile() expands them. */
export function destinationHosts(vs: Resource, clusterDomain: string): Set<string> {
  const out = new Set<string>();
  const ns = vs.metadata.namespace;
  const add = (h: string | undefined): void => { if (h !== undefined) out.add(expandHost(h, ns, clusterDomain)); };
  for (const r of (vs.spec as VirtualServiceSpec).http ?? []) {
    for (const d of r.route ?? []) add(d.destination?.host);
    add(r.mirror?.host);
    for (const m of r.mirrors ?? []) add(m.destination?.host);
  }
  return out;
}

/** The hosts a mesh VirtualService sends to and does not claim, for the context's `foreign` index. */
export function foreignHosts(vs: Resource, clusterDomain: string): string[] {
  const own = new Set(((vs.spec as VirtualServiceSpec).hosts ?? []).map((h) => expandHost(h, vs.metadata.namespace, clusterDomain)));
  return [...destinationHosts(vs, clusterDomain)].filter((h) => !own.has(h));
}
