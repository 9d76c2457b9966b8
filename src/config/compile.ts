/**
 * Validated resources (+ registry entries from Kubernetes/env) → an immutable Snapshot.
 * Pure and deterministic: the same inputs give the same snapshot (apart from version and time).
 */
import { isIP } from 'node:net';
import type {
  DestinationRuleSpec, Destination, HTTPRoute, HTTPMatchRequest, Headers, HeaderOperations, ServiceEntrySpec,
  VirtualServiceSpec, WorkloadEntrySpec, TrafficPolicy, StringMatch,
} from './types.js';
import type { Resource } from './resource.js';
import { objectName } from './resource.js';
import type { Snapshot, HostEntry } from './snapshot.js';
import type { ClusterDef, Endpoint, ServiceDef, ServicePortDef, WorkloadDef } from '../model.js';
import { durationMs } from './duration.js';
import { expandHost } from './hosts.js';
import { compileStringMatch, fullMatchRegex } from '../routing/string-match.js';
import type {
  CompiledDestination, CompiledMatch, CompiledRoute, CorsPolicy, Fault, HeaderMatch, HeaderOps, Mirror, RouteAction, Rewrite, VirtualHost,
} from '../routing/route.js';
import { compileRetryPolicy } from '../proxy/retry-policy.js';
import { ClusterPolicyCache, compileClusterPolicy } from '../upstream/policy.js';
import { compileMesh, servicesFromFiles, type MeshHost } from '../gateway/mesh.js';
import { meshConflict } from '../gateway/conflict.js';

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

/** The names a request may use for a Kubernetes-style FQDN, as Envoy virtual host domains do. */
export function hostAliases(fqdn: string, proxyNamespace: string, clusterDomain: string): string[] {
  const suffix = `.svc.${clusterDomain}`;
  if (!fqdn.endsWith(suffix)) return [];
  const base = fqdn.slice(0, -suffix.length); // name.ns
  const dot = base.indexOf('.');
  if (dot < 0) return [];
  const name = base.slice(0, dot);
  const ns = base.slice(dot + 1);
  const out = [`${base}.svc`, base];
  if (ns === proxyNamespace) out.push(name);
  return out;
}

const PROTOCOL_BY_NAME_PREFIX = ['http2', 'https', 'http', 'grpc-web', 'grpc', 'tcp', 'tls', 'mongo', 'redis', 'mysql', 'udp'];

export function protocolOf(port: { protocol?: string; name?: string }): string {
  if (port.protocol) return port.protocol.toLowerCase();
  const n = (port.name ?? '').toLowerCase();
  for (const p of PROTOCOL_BY_NAME_PREFIX) if (n === p || n.startsWith(`${p}-`)) return p;
  return '';
}

// === registry ===

/**
 * WorkloadEntries by namespace and by (namespace, label, value), in input order: a ServiceEntry's
 * workloadSelector looks at the entries carrying its first label instead of every entry (10,000 ServiceEntries
 * over 10,000 WorkloadEntries would otherwise be 10^8 label checks).
 */
export class WorkloadEntryIndex {
  private readonly byNs = new Map<string, Resource[]>();
  private readonly byLabel = new Map<string, Resource[]>();

  constructor(entries: readonly Resource[]) {
    const push = (m: Map<string, Resource[]>, k: string, r: Resource): void => {
      const l = m.get(k);
      if (l === undefined) m.set(k, [r]); else l.push(r);
    };
    for (const we of entries) {
      const ns = we.metadata.namespace;
      push(this.byNs, ns, we);
      const labels = (we.spec as WorkloadEntrySpec).labels ?? {};
      for (const k in labels) push(this.byLabel, `${ns}\0${k}\0${String(labels[k])}`, we);
    }
  }

  /** The entries of `namespace` whose labels include every `selector` label, in input order. */
  select(namespace: string, selector: Readonly<Record<string, string>>): Resource[] {
    let candidates: Resource[] | undefined;
    for (const k in selector) { candidates = this.byLabel.get(`${namespace}\0${k}\0${String(selector[k])}`); break; }
    if (candidates === undefined) candidates = Object.keys(selector).length === 0 ? this.byNs.get(namespace) : undefined;
    return (candidates ?? []).filter((we) => labelsMatch(selector, (we.spec as WorkloadEntrySpec).labels ?? {}));
  }
}

function serviceEntryDefs(r: Resource, workloadEntries: WorkloadEntryIndex): ServiceDef[] {
  const spec = r.spec as ServiceEntrySpec;
  const ports: ServicePortDef[] = (spec.ports ?? []).map((p) => {
    const d: ServicePortDef = { number: p.number, name: p.name ?? String(p.number), protocol: protocolOf(p) };
    if (p.targetPort) d.targetPort = p.targetPort;
    return d;
  });
  const toWorkload = (w: WorkloadEntrySpec, namespace: string, name?: string): WorkloadDef => {
    const wd: WorkloadDef = { address: w.address ?? '', ports: w.ports ?? {}, labels: w.labels ?? {}, weight: w.weight && w.weight > 0 ? w.weight : 1 };
    if (w.locality) wd.locality = w.locality;
    if (name) wd.name = name;
    // Istio: a WorkloadEntry's serviceAccount is an account of its own namespace (an inline endpoint: the entry's).
    if (w.serviceAccount) wd.identity = { namespace, serviceAccount: w.serviceAccount };
    return wd;
  };
  let workloads: WorkloadDef[] = (spec.endpoints ?? []).map((e) => toWorkload(e, r.metadata.namespace));
  const sel = spec.workloadSelector?.labels;
  if (sel) {
    workloads = workloadEntries.select(r.metadata.namespace, sel).map((we) => toWorkload(we.spec as WorkloadEntrySpec, we.metadata.namespace, we.metadata.name));
  }
  const sans = (spec.subjectAltNames ?? []).filter((s) => typeof s === 'string' && s !== '');
  const resolution = spec.resolution ?? 'NONE';
  return (spec.hosts ?? []).map((h) => {
    const host = h.toLowerCase();
    // DNS resolution without endpoints resolves the host name itself (Istio).
    const ws = workloads.length === 0 && (resolution === 'DNS' || resolution === 'DNS_ROUND_ROBIN') && !host.startsWith('*')
      ? [{ address: host, ports: {}, labels: {}, weight: 1 }]
      : workloads;
    return {
      hostname: host,
      namespace: r.metadata.namespace,
      ports,
      resolution,
      workloads: ws,
      addresses: spec.addresses ?? [],
      location: spec.location ?? 'MESH_EXTERNAL',
      origin: objectName(r),
      ...(sans.length > 0 ? { subjectAltNames: sans } : {}),
    };
  });
}

export function labelsMatch(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  for (const k in selector) if (labels[k] !== selector[k]) return false;
  return true;
}

// === clusters ===

export function clusterName(port: number, subset: string, host: string): string {
  // join() builds one flat string; a template literal leaves a tree of concatenations (three more heap objects per
  // cluster, kept for the snapshot's life).
  return ['outbound', port, subset, host].join('|');
}

/** The endpoints of one workload on one service port: one per resolved address. */
function workloadEndpoints(svc: ServiceDef, w: WorkloadDef, port: ServicePortDef, dns: ReadonlyMap<string, readonly string[]> | undefined): readonly Endpoint[] {
  const epPort = w.ports[port.name] ?? port.targetPort ?? port.number;
  let addrs: readonly string[] = [w.address];
  if (svc.resolution === 'DNS' && !isIP(w.address) && !w.address.startsWith('unix://')) {
    const resolved = dns?.get(w.address);
    if (resolved && resolved.length > 0) addrs = resolved;
  }
  const out: Endpoint[] = [];
  for (const a of addrs) {
    const ep: { -readonly [K in keyof Endpoint]: Endpoint[K] } = { key: [a, epPort].join(':'), address: a, port: epPort, labels: w.labels, weight: w.weight };
    if (w.locality) ep.locality = w.locality;
    if (a !== w.address) ep.hostname = w.address;
    if (w.identity !== undefined) ep.identity = w.identity;
    out.push(ep);
  }
  return out;
}

/**
 * The per-workload endpoints of the (service, port) whose clusters are being built: the default cluster and each
 * subset's are built one after the other and hold the same Endpoint objects instead of a copy each.
 */
interface PortEndpoints { svc?: ServiceDef; port?: ServicePortDef; lists: ReadonlyArray<readonly Endpoint[]> }

function endpointsFor(svc: ServiceDef, port: ServicePortDef, subsetLabels: Readonly<Record<string, string>> | undefined, dns: ReadonlyMap<string, readonly string[]> | undefined, recent: PortEndpoints): Endpoint[] {
  if (recent.svc !== svc || recent.port !== port) {
    recent.svc = svc;
    recent.port = port;
    recent.lists = svc.workloads.map((w) => workloadEndpoints(svc, w, port, dns));
  }
  const out: Endpoint[] = [];
  const seen = new Set<string>();
  svc.workloads.forEach((w, i) => {
    if (subsetLabels && !labelsMatch(subsetLabels, w.labels)) return;
    for (const ep of recent.lists[i]!) {
      if (seen.has(ep.key)) continue;
      seen.add(ep.key);
      out.push(ep);
    }
  });
  return out;
}

/** DestinationRules by host: one rule as itself (nearly every host), several in an array. */
interface DrIndex { exact: Map<string, Resource | Resource[]>; wildcard: Array<{ suffix: string; r: Resource }> }

function findDestinationRule(idx: DrIndex, host: string, proxyNs: string, svcNs: string): Resource | undefined {
  const found = idx.exact.get(host);
  if (found !== undefined && !Array.isArray(found)) return found;
  const cands = found;
  if (cands !== undefined && cands.length > 0) {
    // Istio's lookup order: the client's namespace, then the service's namespace, then any (root).
    return cands.find((c) => c.metadata.namespace === proxyNs) ?? cands.find((c) => c.metadata.namespace === svcNs) ?? cands[0];
  }
  for (const w of idx.wildcard) if (host.endsWith(w.suffix)) return w.r;
  return undefined;
}

// === routes ===

function usesHashLb(d: CompiledDestination): boolean {
  for (const c of d.clusters.values()) if (c.policy.lb.kind === 'RING_HASH' || c.policy.lb.kind === 'MAGLEV') return true;
  return false;
}

function compileHeaderOps(ops: HeaderOperations | undefined): HeaderOps | undefined {
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

function compileMatch(m: HTTPMatchRequest, opts: CompileOptions, resourceNs: string): CompiledMatch | undefined {
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

function percentOf(p: { value?: number } | undefined, legacy?: number, dflt = 100): number {
  if (p && typeof p.value === 'number') return p.value;
  if (typeof legacy === 'number') return legacy;
  return dflt;
}

const GRPC_STATUS: Record<string, number> = {
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
class RouteCell<T = unknown> {
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
class CompiledVirtualHost implements VirtualHost {
  constructor(readonly host: string, readonly origin: string, private readonly cell: { get(): readonly CompiledRoute[]; readonly built: boolean }) {}

  get routes(): readonly CompiledRoute[] {
    return this.cell.get();
  }

  /** Whether the routes have been compiled yet (the dashboard leaves idle default routes unbuilt). */
  get compiled(): boolean {
    return this.cell.built;
  }
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

/**
 * Look a request host (lowercase, without port) up: exact/alias, then VIP, then wildcard; on a miss, the name
 * with each domain of the pod's resolver search path, in the resolver's order.
 */
export function lookupHost(s: Snapshot, host: string): HostEntry | undefined {
  const e = lookupExact(s, host);
  if (e !== undefined || s.search === undefined || host.endsWith('.')) return e;
  // A name the registry knows as written wins (as an Envoy virtual-host domain would); only a miss walks the
  // search path. The as-written try the resolver makes last (fewer than ndots dots) has just been done.
  for (const d of s.search.domains) {
    const c = lookupExact(s, `${host}.${d}`);
    if (c !== undefined) return c;
  }
  return undefined;
}

function lookupExact(s: Snapshot, host: string): HostEntry | undefined {
  const e = s.hosts.get(host);
  if (e) return e;
  const a = s.addresses.get(host);
  if (a) return a;
  for (let i = 0; i < s.wildcards.length; i++) {
    const w = s.wildcards[i]!;
    if (host.endsWith(w.suffix)) return w.entry;
  }
  return undefined;
}

export { fullMatchRegex, expandHost };
