/**
 * Validated resources (+ registry entries from Kubernetes/env) → an immutable Snapshot.
 * Pure and deterministic: the same inputs give the same snapshot (apart from version and time).
 * This module is the compilation itself; its parts are ./compile-registry.ts (ServiceEntries → services),
 * ./compile-clusters.ts (endpoints, DestinationRule lookup), ./compile-routes.ts (matches, header ops, lazy virtual
 * hosts) and ./host-lookup.ts (host aliases and lookup).
 */
import type { DestinationRuleSpec, Destination, HTTPRoute, Headers, VirtualServiceSpec, TrafficPolicy } from './types.js';
import type { Resource } from './resource.js';
import { objectName } from './resource.js';
import type { Snapshot, HostEntry } from './snapshot.js';
import type { ClusterDef, ServiceDef, ServicePortDef } from '../model.js';
import { durationMs } from './duration.js';
import { expandHost } from './hosts.js';
import { compileStringMatch, fullMatchRegex } from '../routing/string-match.js';
import type { CompiledDestination, CompiledMatch, CompiledRoute, CorsPolicy, Fault, Mirror, RouteAction, Rewrite, VirtualHost } from '../routing/route.js';
import { compileRetryPolicy } from '../proxy/retry-policy.js';
import { ClusterPolicyCache, compileClusterPolicy } from '../upstream/policy.js';
import { compileMesh, servicesFromFiles, type MeshHost } from '../gateway/mesh.js';
import { meshConflict } from '../gateway/conflict.js';
import { serviceEntryDefs, WorkloadEntryIndex } from './compile-registry.js';
import { clusterName, endpointsFor, findDestinationRule, type DrIndex, type PortEndpoints } from './compile-clusters.js';
import { compileHeaderOps, compileMatch, CompiledVirtualHost, GRPC_STATUS, percentOf, RouteCell, usesHashLb } from './compile-routes.js';
import { hostAliases } from './host-lookup.js';

export { labelsMatch, protocolOf, WorkloadEntryIndex } from './compile-registry.js';
export { clusterName } from './compile-clusters.js';
export { hostAliases, lookupHost } from './host-lookup.js';

const PEAK_EWMA = Object.freeze({ peakEwma: true });

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

export function compile(resources: readonly Resource[], opts: CompileOptions): Snapshot {
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
  for (const d of [...(servicesFromFiles(resources, clusterDomain) ?? []), ...(opts.extraServices ?? [])]) {
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
  const clusters = new Map<string, ClusterDef>();
  // Clusters without a DestinationRule all get the same default policy for a port: one shared (read-only) object
  // per port instead of one per cluster, which at 10,000 services is most of the snapshot's memory.
  const defaultPolicies = new Map<number, ClusterDef['policy']>();
  const defaultPolicyFor = (port: number): ClusterDef['policy'] => {
    let p = defaultPolicies.get(port);
    if (p === undefined) { p = compileClusterPolicy({}, port); defaultPolicies.set(port, p); }
    return p;
  };
  // Clusters with a DestinationRule share one policy object per distinct merged traffic policy (most DRs of a large
  // mesh set subsets and nothing else).
  const policies = new ClusterPolicyCache();
  const recentEndpoints: PortEndpoints = { lists: [] };
  const makeCluster = (svc: ServiceDef, port: ServicePortDef, subset: string, dr: Resource | undefined): ClusterDef | undefined => {
    const name = clusterName(port.number, subset, svc.hostname);
    const existing = clusters.get(name);
    if (existing) return existing;
    const drSpec = dr?.spec as DestinationRuleSpec | undefined;
    const sub = subset ? drSpec?.subsets?.find((s) => s.name === subset) : undefined;
    if (subset && !sub) return undefined;
    const tp: { dr?: TrafficPolicy; subset?: TrafficPolicy } = {};
    if (drSpec?.trafficPolicy) tp.dr = drSpec.trafficPolicy;
    if (sub?.trafficPolicy) tp.subset = sub.trafficPolicy;
    const def: ClusterDef = {
      name,
      host: svc.hostname,
      port: port.number,
      subset,
      // Remora opt-in (not an Istio field): `remora.io/lb-algorithm: peak-ewma` on the DestinationRule makes
      // LEAST_REQUEST use Linkerd's peak-EWMA latency cost (docs/resilience.md).
      policy: dr === undefined ? defaultPolicyFor(port.number) : policies.get(tp, port.number, dr.metadata.annotations?.['remora.io/lb-algorithm'] === 'peak-ewma' ? PEAK_EWMA : undefined),
      endpoints: svc.resolution === 'NONE' ? [] : endpointsFor(svc, port, sub?.labels, opts.dns, recentEndpoints),
      resolution: svc.resolution,
      protocol: port.protocol,
      ...(svc.subjectAltNames !== undefined ? { serviceSubjectAltNames: svc.subjectAltNames } : {}),
    };
    clusters.set(name, def);
    return def;
  };
  for (const svc of services) {
    const dr = findDestinationRule(drIdx, svc.hostname, proxyNs, svc.namespace);
    const subsets = (dr?.spec as DestinationRuleSpec | undefined)?.subsets;
    // A repeated subset name yields its cluster once (makeCluster returns the existing one).
    for (const port of svc.ports) {
      makeCluster(svc, port, '', dr);
      if (subsets !== undefined) for (const s of subsets) makeCluster(svc, port, s.name, dr);
    }
  }

  // The clusters of one (host, subset) are the same for every destination naming it: built once, shared read-only.
  const portClusters = new Map<string, { byPort: ReadonlyMap<number, ClusterDef>; missingSubset: boolean }>();
  const clustersOf = (host: string, subset: string, svc: ServiceDef | undefined): { byPort: ReadonlyMap<number, ClusterDef>; missingSubset: boolean } => {
    const key = `${subset}|${host}`;
    let pc = portClusters.get(key);
    if (pc !== undefined) return pc;
    const byPort = new Map<number, ClusterDef>();
    let missingSubset = false;
    if (svc) {
      const dr = findDestinationRule(drIdx, host, proxyNs, svc.namespace);
      for (const p of svc.ports) {
        const c = makeCluster(svc, p, subset, dr);
        if (c) byPort.set(p.number, c); else missingSubset = true;
      }
    }
    pc = { byPort, missingSubset };
    portClusters.set(key, pc);
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
  for (const vs of sortedVs) {
    const spec = vs.spec as VirtualServiceSpec;
    if (spec.gateways && spec.gateways.length > 0 && !spec.gateways.includes('mesh')) continue;
    const origin = objectName(vs);
    const cell = new RouteCell(vsRoutes, vs);
    for (const h of spec.hosts ?? []) {
      const host = expandHost(h, vs.metadata.namespace, clusterDomain);
      const cl = claims.get(host);
      if (cl === undefined) claims.set(host, [vs]); else cl.push(vs);
      if (vhosts.has(host)) { warnings.push(`${origin}: host ${host} is already routed by ${vhosts.get(host)!.origin}; ignored for this host`); continue; }
      vhosts.set(host, new CompiledVirtualHost(host, origin, cell));
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
    claims, byHost, opts,
    vsHost: (host, vs, cell) => new CompiledVirtualHost(host, objectName(vs), cell as RouteCell),
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
  readonly byHost: ReadonlyMap<string, ServiceDef>;
  readonly opts: CompileOptions;
  vsCell(vs: Resource): unknown;
  vsHost(host: string, vs: Resource, cell: unknown): VirtualHost;
  defaultHost(svc: ServiceDef): VirtualHost;
}

const CONTEXTS = new WeakMap<Snapshot, CompileContext>();

export function compileContext(s: Snapshot): CompileContext | undefined {
  return CONTEXTS.get(s);
}

/** Hand a context on to a snapshot derived from the one it was made for (compile-delta.ts). */
export function adoptContext(from: Snapshot, to: Snapshot): void {
  const c = CONTEXTS.get(from);
  if (c !== undefined) CONTEXTS.set(to, c);
}


export { fullMatchRegex, expandHost };
