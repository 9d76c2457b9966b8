/**
 * Validated resources (+ registry entries from Kubernetes/env) → an immutable Snapshot.
 * Pure and deterministic: the same inputs give the same snapshot (apart from version and time).
 * This module is the compilation itself; its parts are ./compile-registry.ts (ServiceEntries → services),
 * ./compile-clusters.ts (endpoints, DestinationRule lookup), ./compile-routes.ts (matches, header ops, lazy virtual
 * hosts) and ./host-lookup.ts (host aliases and lookup).
 */
import type { DestinationRuleSpec, Destination, HTTPRoute, Headers, VirtualServiceSpec } from './types.js';
import type { Resource } from './resource.js';
import { objectName } from './resource.js';
import type { Snapshot, HostEntry } from './snapshot.js';
import type { ClusterDef, ServiceDef } from '../model.js';
import { durationMs } from './duration.js';
import { expandHost } from './hosts.js';
import { compileStringMatch, fullMatchRegex } from '../routing/string-match.js';
import type { CompiledDestination, CompiledMatch, CompiledRoute, CorsPolicy, Fault, Mirror, RouteAction, Rewrite, VirtualHost } from '../routing/route.js';
import { compileRetryPolicy } from '../proxy/retry-policy.js';
import { ClusterPolicyCache, compileClusterPolicy } from '../upstream/policy.js';
import { compileMesh, servicesFromFiles, type MeshHost } from '../gateway/mesh.js';
import { meshConflict } from '../gateway/conflict.js';
import { serviceEntryDefs, WorkloadEntryIndex } from './compile-registry.js';
import { clusterName, findDestinationRule, type ClusterEnv, type DrIndex } from './compile-clusters.js';
import { ClusterSeed, ClusterTable } from './cluster-table.js';
import { compileHeaderOps, compileMatch, CompiledVirtualHost, foreignHosts, GRPC_STATUS, percentOf, RouteCell, usesHashLb } from './compile-routes.js';
import { hostAliases } from './host-lookup.js';

export { labelsMatch, protocolOf, WorkloadEntryIndex } from './compile-registry.js';
export { clusterName } from './compile-clusters.js';
export { hostAliases, lookupHost } from './host-lookup.js';

export interface CompileOptions {
  namespace: string;
  clusterDomain: string;
  /** This workload's labels, for match.sourceLabels. */
  labels: Readonly<Record<string, string>>;
  outboundTrafficPolicy: 'ALLOW_ANY' | 'REGISTRY_ONLY';
  /** Registry entries that do not come from ServiceEntries (Kubernetes Services, environment). */
  extraServices?: readonly ServiceDef[];
  /** The pod resolver's search path, for names the registry does not know as written. */
  search?: { domains: readonly string[]; ndots: number };
  /** Resolved addresses of DNS names (resolution: DNS), from the DNS refresher. */
  dns?: ReadonlyMap<string, readonly string[]>;
  version?: number;
  hash?: string;
  now?: number;
}

export function compile(resources: readonly Resource[], input: CompileOptions): Snapshot {
  // Lazily built routes keep this function's scope alive, `opts` in it, and so does the compile context (handed on to
  // every snapshot a delta derives): it must not hold the registry entries of other sources, or the first array of
  // them would outlive every later one, and with it every ServiceDef the API watch replaced since (~6 MB at 10,000
  // Services after 6,000 endpoint events: docs/scale.md, "RSS after the churn"). `input` is read here only.
  const { extraServices, ...opts } = input;
  const warnings: string[] = [];
  const { namespace: proxyNs, clusterDomain } = opts;
  const vss = resources.filter((r) => r.kind === 'VirtualService');
  const drs = resources.filter((r) => r.kind === 'DestinationRule');
  const ses = resources.filter((r) => r.kind === 'ServiceEntry');
  const wes = new WorkloadEntryIndex(resources.filter((r) => r.kind === 'WorkloadEntry'));

  // Registry: ServiceEntries first, then Kubernetes/env services (a ServiceEntry for the same host wins).
  const services: ServiceDef[] = [];
  const byHost = new Map<string, ServiceDef>();
  for (const se of ses) for (const d of serviceEntryDefs(se, wes)) {
    if (byHost.has(d.hostname)) { warnings.push(`${d.origin}: host ${d.hostname} is already defined by ${byHost.get(d.hostname)!.origin}; ignored`); continue; }
    byHost.set(d.hostname, d); services.push(d);
  }
  // Kubernetes Services (and their EndpointSlices) written in files, then those of the API watch and the environment.
  const fileServices = servicesFromFiles(resources, clusterDomain) ?? [];
  for (const d of [...fileServices, ...(extraServices ?? [])]) {
    if (byHost.has(d.hostname)) continue;
    byHost.set(d.hostname, d); services.push(d);
  }

  // DestinationRules by (expanded) host.
  const drIdx: DrIndex = { exact: new Map(), wildcard: [] };
  for (const dr of drs) {
    const host = expandHost((dr.spec as DestinationRuleSpec).host ?? '', dr.metadata.namespace, clusterDomain);
    if (host.startsWith('*')) drIdx.wildcard.push({ suffix: host.slice(1), r: dr });
    else {
      const prev = drIdx.exact.get(host);
      drIdx.exact.set(host, prev === undefined ? dr : Array.isArray(prev) ? [...prev, dr] : [prev, dr]);
    }
  }
  drIdx.wildcard.sort((a, b) => b.suffix.length - a.suffix.length);

  // Clusters: every (service, port) plus every subset its DestinationRule defines.
  // Clusters without a DestinationRule all get the same default policy for a port: one shared (read-only) object
  // per port instead of one per cluster, which at 10,000 services is most of the snapshot's memory.
  const defaultPolicies = new Map<number, ClusterDef['policy']>();
  // Clusters with a DestinationRule share one policy object per distinct merged traffic policy (most DRs of a large
  // mesh set subsets and nothing else).
  const env: ClusterEnv = {
    dns: opts.dns,
    defaultPolicyFor: (port) => {
      let p = defaultPolicies.get(port);
      if (p === undefined) { p = compileClusterPolicy({}, port); defaultPolicies.set(port, p); }
      return p;
    },
    policies: new ClusterPolicyCache(),
    recent: { lists: [] },
  };
  // Settled now, built on first use (./cluster-table.ts): one seed per service, by host.
  const seeds = new Map<string, ClusterSeed>();
  for (const svc of services) seeds.set(svc.hostname, new ClusterSeed(svc, findDestinationRule(drIdx, svc.hostname, proxyNs, svc.namespace)));
  const clusters = ClusterTable.of(seeds, env);

  // What lazily built routes read: the registry (byHost, updated in place by compile-delta.ts) and the clusters
  // (replaced by compile-delta.ts). The clusters of one (host, subset) are the same for every destination naming it:
  // looked up once per world, shared read-only.
  const world: RouteWorld = { clusters, portClusters: new Map() };
  const clustersOf = (host: string, subset: string, svc: ServiceDef | undefined): PortClusters => {
    let bySubset = world.portClusters.get(host);
    let pc = bySubset?.get(subset);
    if (pc !== undefined) return pc;
    const byPort = new Map<number, ClusterDef>();
    let missingSubset = false;
    if (svc) {
      // Every cluster of a registry host was built above: a subset its rule lacks has none.
      for (const p of svc.ports) {
        const c = world.clusters.get(clusterName(p.number, subset, svc.hostname));
        if (c) byPort.set(p.number, c); else missingSubset = true;
      }
    }
    pc = { byPort, missingSubset };
    if (bySubset === undefined) { bySubset = new Map(); world.portClusters.set(host, bySubset); }
    bySubset.set(subset, pc);
    return pc;
  };

  const compileDestination = (d: Destination, weight: number, headers: Headers | undefined, ns: string, literalHost = false): CompiledDestination => {
    const host = literalHost ? d.host.toLowerCase() : expandHost(d.host, ns, clusterDomain);
    const svc = byHost.get(host);
    const subset = d.subset ?? '';
    const { byPort, missingSubset } = clustersOf(host, subset, svc);
    return {
      host,
      subset,
      port: d.port?.number ?? 0,
      weight,
      requestHeaders: compileHeaderOps(headers?.request),
      responseHeaders: compileHeaderOps(headers?.response),
      clusters: byPort,
      defaultPort: svc && svc.ports.length === 1 ? svc.ports[0]!.number : 0,
      missingSubset,
      known: svc !== undefined,
      followsRequestPort: false,
    };
  };

  const compileRoute = (vs: Resource, origin: string, r: HTTPRoute, index: number): CompiledRoute | undefined => {
    const ns = vs.metadata.namespace;
    let matches: CompiledMatch[] = [];
    if (r.match && r.match.length > 0) {
      for (const m of r.match) { const cm = compileMatch(m, opts, ns); if (cm) matches.push(cm); }
      // Every block selects other workloads or gateways: the route does not exist for this sidecar.
      if (matches.length === 0) return undefined;
    } else matches = [];
    let action: RouteAction;
    let hashBased = false;
    if (r.redirect) {
      const rd = r.redirect;
      action = { kind: 'redirect', uri: rd.uri, authority: rd.authority, port: rd.port, derivePort: rd.derivePort, scheme: rd.scheme, code: rd.redirectCode ?? 301 };
    } else if (r.directResponse) {
      const b = r.directResponse.body;
      const body = b?.string !== undefined ? Buffer.from(b.string) : b?.bytes !== undefined ? Buffer.from(b.bytes, 'base64') : Buffer.alloc(0);
      action = { kind: 'direct', status: r.directResponse.status, body };
    } else {
      const list = r.route ?? [];
      const dests = list.map((rd) => compileDestination(rd.destination, list.length === 1 && rd.weight === undefined ? 100 : rd.weight ?? 0, rd.headers, ns));
      const cumulative: number[] = [];
      let total = 0;
      for (const d of dests) { total += d.weight; cumulative.push(total); }
      action = { kind: 'route', destinations: dests, cumulative, total };
      hashBased = dests.some(usesHashLb);
    }
    let rewrite: Rewrite | undefined;
    if (r.rewrite && (r.rewrite.uri !== undefined || r.rewrite.authority !== undefined || r.rewrite.uriRegexRewrite)) {
      const rr = r.rewrite.uriRegexRewrite;
      rewrite = {
        uri: r.rewrite.uri,
        authority: r.rewrite.authority,
        regex: rr?.match !== undefined ? new RegExp(rr.match, 'g') : undefined,
        // RE2 substitutions use \1; JavaScript uses $1.
        regexReplacement: (rr?.rewrite ?? '').replace(/\$/g, '$$$$').replace(/\\(\d)/g, '$$$1'),
      };
    }
    const timeoutMs = durationMs(r.timeout, 0);
    let fault: Fault | undefined;
    if (r.fault && (r.fault.delay || r.fault.abort)) {
      const dl = r.fault.delay;
      const ab = r.fault.abort;
      fault = {
        delayMs: dl ? durationMs(dl.fixedDelay, 0) : 0,
        delayPercent: dl ? percentOf(dl.percentage, dl.percent) : 0,
        abortStatus: ab ? (ab.httpStatus ?? (ab.grpcStatus !== undefined ? 200 : 0)) : 0,
        abortGrpcStatus: ab?.grpcStatus !== undefined ? GRPC_STATUS[ab.grpcStatus.toUpperCase()] ?? 2 : undefined,
        abortPercent: ab ? percentOf(ab.percentage) : 0,
      };
    }
    const mirrors: Mirror[] = [];
    if (r.mirror) mirrors.push({ destination: compileDestination(r.mirror, 100, undefined, ns), percent: percentOf(r.mirrorPercentage, r.mirrorPercent ?? r.mirror_percent) });
    for (const m of r.mirrors ?? []) mirrors.push({ destination: compileDestination(m.destination, 100, undefined, ns), percent: percentOf(m.percentage) });
    let cors: CorsPolicy | undefined;
    if (r.corsPolicy) {
      const c = r.corsPolicy;
      const origins = c.allowOrigins ? c.allowOrigins.map((o) => compileStringMatch(o)) : (c.allowOrigin ?? []).map((o) => compileStringMatch(o === '*' ? { regex: '.*' } : { exact: o }));
      cors = {
        allowOrigins: origins,
        allowMethods: (c.allowMethods ?? []).join(','),
        allowHeaders: (c.allowHeaders ?? []).join(','),
        exposeHeaders: (c.exposeHeaders ?? []).join(','),
        maxAge: c.maxAge ? String(Math.floor(durationMs(c.maxAge, 0) / 1000)) : '',
        allowCredentials: c.allowCredentials === true,
      };
    }
    const retry = compileRetryPolicy(r.retries, timeoutMs);
    return {
      name: r.name ?? `${vs.metadata.name}.${index}`,
      origin,
      index,
      matches,
      action,
      rewrite,
      requestHeaders: compileHeaderOps(r.headers?.request),
      responseHeaders: compileHeaderOps(r.headers?.response),
      timeoutMs,
      retry: hashBased && retry.retryIgnorePreviousHosts ? { ...retry, retryIgnorePreviousHosts: false } : retry,
      fault,
      mirrors,
      cors,
      hashBased,
    };
  };

  // Virtual hosts: the first VirtualService for a host wins (Istio merges only for gateways). Which VirtualService
  // routes which host is settled here; its routes are compiled when a request (or explain, or the dashboard) first
  // needs them (RouteCell): with 10,000 services most are never called by a given workload.
  const vhosts = new Map<string, VirtualHost>();
  const sortedVs = [...vss].sort((a, b) => (a.metadata.namespace === proxyNs ? 0 : 1) - (b.metadata.namespace === proxyNs ? 0 : 1));
  const vsRoutes = (vs: Resource): CompiledRoute[] => {
    const origin = objectName(vs);
    const routes: CompiledRoute[] = [];
    ((vs.spec as VirtualServiceSpec).http ?? []).forEach((r, i) => { const cr = compileRoute(vs, origin, r, i); if (cr) routes.push(cr); });
    return routes;
  };
  // Every mesh VirtualService claiming a host, in the order the first one wins (kept for compile-delta.ts).
  const claims = new Map<string, Resource[]>();
  // Mesh VirtualServices by the hosts they route or mirror to without claiming them (kept for compile-delta.ts).
  const foreign = new Map<string, Resource[]>();
  for (const vs of sortedVs) {
    const spec = vs.spec as VirtualServiceSpec;
    if (spec.gateways && spec.gateways.length > 0 && !spec.gateways.includes('mesh')) continue;
    const origin = objectName(vs);
    const cell = new RouteCell(vsRoutes, vs);
    for (const h of foreignHosts(vs, clusterDomain)) { const l = foreign.get(h); if (l === undefined) foreign.set(h, [vs]); else l.push(vs); }
    for (const h of spec.hosts ?? []) {
      const host = expandHost(h, vs.metadata.namespace, clusterDomain);
      const cl = claims.get(host);
      if (cl === undefined) claims.set(host, [vs]); else cl.push(vs);
      if (vhosts.has(host)) { warnings.push(`${origin}: host ${host} is already routed by ${vhosts.get(host)!.origin}; ignored for this host`); continue; }
      vhosts.set(host, new CompiledVirtualHost(host, vs, cell));
    }
  }

  // Gateway API routes bound to Services (the mesh profile, src/gateway/): translated into the same compiled routes,
  // built on first use like a VirtualService's. A VirtualService on the same host: the older object wins (conflict.ts).
  const mesh = compileMesh(resources, proxyNs, {
    clusterDomain,
    byHost,
    destination: (host, port, weight, headers) => compileDestination({ host, port: { number: port } }, weight, headers, '', true),
    defaultRoutes: (svc) => defaultRoute(svc),
  });
  // Per routed host, its plain default route (calls to an endpoint never get a route), made on first use.
  const meshServices = new Map<string, ServiceDef>();
  const meshPlainBuilt = new Map<string, HostEntry>();
  const meshPlain = {
    has: (host: string): boolean => meshServices.has(host),
    get: (host: string): HostEntry | undefined => {
      let e = meshPlainBuilt.get(host);
      const svc = meshServices.get(host);
      if (e === undefined && svc !== undefined) {
        e = { host, vhost: new CompiledVirtualHost(host, svc.origin, new RouteCell(defaultRoute, svc)), service: svc };
        meshPlainBuilt.set(host, e);
      }
      return e;
    },
  };
  const buildMesh = (m: MeshHost): readonly CompiledRoute[] => m.build();
  if (mesh !== undefined) {
    for (const [host, m] of mesh.hosts) {
      const vh = vhosts.get(host);
      if (vh !== undefined) {
        const c = meshConflict(vss.find((v) => objectName(v) === vh.origin), m);
        warnings.push(c.warning);
        if (!c.routesWin) continue;
      }
      vhosts.set(host, new CompiledVirtualHost(host, m.origin, new RouteCell(buildMesh, m)));
      meshServices.set(host, m.service);
    }
  }

  // A registry host without a VirtualService gets Istio's default route: all traffic to the service, default retries.
  // Most services of a large mesh have no VirtualService, and a workload calls few of them: built on first use too.
  const defaultRetry = compileRetryPolicy(undefined, 0);
  const defaultRoute = (svc: ServiceDef): CompiledRoute[] => {
    // Registry host names are already canonical (a ServiceEntry host `localhost` stays `localhost`).
    const dest = { ...compileDestination({ host: svc.hostname }, 100, undefined, svc.namespace, true), followsRequestPort: true };
    const hashBased = usesHashLb(dest);
    return [{
      name: 'default', origin: svc.origin, index: 0, matches: [],
      action: { kind: 'route', destinations: [dest], cumulative: [100], total: 100 },
      rewrite: undefined, requestHeaders: undefined, responseHeaders: undefined, timeoutMs: 0,
      retry: hashBased ? { ...defaultRetry, retryIgnorePreviousHosts: false } : defaultRetry,
      fault: undefined, mirrors: [], cors: undefined, hashBased,
    }];
  };
  for (const svc of services) {
    if (vhosts.has(svc.hostname)) continue;
    vhosts.set(svc.hostname, new CompiledVirtualHost(svc.hostname, svc.origin, new RouteCell(defaultRoute, svc)));
  }

  // Host index: aliases first, exact names last so that they win.
  const entries = new Map<string, HostEntry>();
  const entryFor = (host: string): HostEntry => {
    let e = entries.get(host);
    if (!e) { e = { host, vhost: vhosts.get(host), service: byHost.get(host) }; entries.set(host, e); }
    return e;
  };
  for (const h of byHost.keys()) entryFor(h);
  for (const h of vhosts.keys()) entryFor(h);
  const hosts = new Map<string, HostEntry>();
  const wildcards: Array<{ suffix: string; entry: HostEntry }> = [];
  for (const [h, e] of entries) for (const a of hostAliases(h, proxyNs, clusterDomain)) if (!hosts.has(a)) hosts.set(a, e);
  for (const [h, e] of entries) {
    if (h.startsWith('*')) wildcards.push({ suffix: h.slice(1), entry: e });
    else hosts.set(h, e);
  }
  wildcards.sort((a, b) => b.suffix.length - a.suffix.length);
  const addresses = new Map<string, HostEntry>();
  for (const svc of services) for (const a of svc.addresses) if (!a.includes('/')) addresses.set(a, entryFor(svc.hostname));

  // Lazily built routes keep this function's scope alive; what only the eager part needed is let go now.
  entries.clear();
  vhosts.clear();
  const snapshot: Snapshot = {
    version: opts.version ?? 0,
    hash: opts.hash ?? '',
    loadedAt: opts.now ?? 0,
    resources,
    hosts,
    wildcards,
    addresses,
    clusters,
    services,
    namespace: proxyNs,
    clusterDomain,
    outboundTrafficPolicy: opts.outboundTrafficPolicy,
    search: opts.search && opts.search.domains.length > 0 ? opts.search : undefined,
    warnings,
    ...(mesh !== undefined ? { mesh: { plain: meshPlain, l4: mesh.l4 } } : {}),
  };
  CONTEXTS.set(snapshot, {
    claims, byHost, opts, drIdx, env, world, fileServices, wes, foreign,
    vsHost: (host, vs, cell) => new CompiledVirtualHost(host, vs, cell as RouteCell),
    vsCell: (vs) => new RouteCell(vsRoutes, vs),
    defaultHost: (svc) => new CompiledVirtualHost(svc.hostname, svc.origin, new RouteCell(defaultRoute, svc)),
  });
  return snapshot;
}

/**
 * What a compilation knows beyond its snapshot, for compile-delta.ts to build a changed host's virtual host in the same
 * context (registry, clusters, options) as the others. `claims` is handed on to the snapshot built from it.
 */
export interface CompileContext {
  readonly claims: Map<string, Resource[]>;
  /** The registry by host; compile-delta.ts replaces changed hosts' services in place when it commits. */
  readonly byHost: Map<string, ServiceDef>;
  readonly opts: CompileOptions;
  /** DestinationRules by host; compile-delta.ts updates the changed hosts' entries when it commits. */
  readonly drIdx: DrIndex;
  readonly env: ClusterEnv;
  readonly world: RouteWorld;
  /** The WorkloadEntries a ServiceEntry's workloadSelector looks in (a WorkloadEntry change compiles everything). */
  readonly wes: WorkloadEntryIndex;
  /** The registry entries of Kubernetes objects in files (servicesFromFiles), in order. */
  fileServices: readonly ServiceDef[];
  /** Mesh VirtualServices by the hosts they route or mirror to that they do not claim themselves; kept up to date by every delta. */
  readonly foreign: Map<string, Resource[]>;
  vsCell(vs: Resource): unknown;
  vsHost(host: string, vs: Resource, cell: unknown): VirtualHost;
  defaultHost(svc: ServiceDef): VirtualHost;
}

/** What lazily built routes read besides the registry: the clusters by name, and their per-(host, subset) lookup. */
export interface RouteWorld {
  clusters: ReadonlyMap<string, ClusterDef>;
  readonly portClusters: Map<string, Map<string, PortClusters>>;
}

export interface PortClusters { byPort: ReadonlyMap<number, ClusterDef>; missingSubset: boolean }

const CONTEXTS = new WeakMap<Snapshot, CompileContext>();
/** Per snapshot compiled from the previous one: the clusters it added, changed or removed, against which map. */
const CHANGED = new WeakMap<Snapshot, { from: ReadonlyMap<string, ClusterDef>; names: ReadonlySet<string> }>();

/**
 * The clusters `snap` changed from `prev` (added, changed or removed names), when it was compiled from `prev`
 * (compile-delta.ts); undefined when every cluster may have changed.
 */
export function changedClusters(snap: Snapshot, prev: Snapshot): ReadonlySet<string> | undefined {
  const c = CHANGED.get(snap);
  return c !== undefined && c.from === prev.clusters ? c.names : undefined;
}

export function recordChangedClusters(snap: Snapshot, from: ReadonlyMap<string, ClusterDef>, names: ReadonlySet<string>): void {
  CHANGED.set(snap, { from, names });
}

export function compileContext(s: Snapshot): CompileContext | undefined {
  return CONTEXTS.get(s);
}

/** Hand a context on to a snapshot derived from the one it was made for (compile-delta.ts). */
export function adoptContext(from: Snapshot, to: Snapshot): void {
  const c = CONTEXTS.get(from);
  if (c !== undefined) CONTEXTS.set(to, c);
}


export { fullMatchRegex, expandHost };
