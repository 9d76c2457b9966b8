/**
 * Cluster building blocks for ./compile.ts: cluster names, a service port's endpoints (DNS-resolved, per subset,
 * shared between a port's clusters) and the DestinationRule that applies to a host. Pure.
 */
import { isIP } from 'node:net';
import type { Resource } from './resource.js';
import type { ClusterDef, Endpoint, ServiceDef, ServicePortDef, WorkloadDef } from '../model.js';
import type { DestinationRuleSpec, TrafficPolicy } from './types.js';
import { labelsMatch } from './compile-registry.js';
import type { ClusterPolicyCache } from '../upstream/policy.js';

const PEAK_EWMA = Object.freeze({ peakEwma: true });

/** What building a cluster needs besides its service, port, subset and rule: shared policy objects, DNS answers. */
export interface ClusterEnv {
  readonly dns: ReadonlyMap<string, readonly string[]> | undefined;
  /** The one (read-only) policy of clusters without a DestinationRule, per port. */
  defaultPolicyFor(port: number): ClusterDef['policy'];
  /** One policy object per distinct merged traffic policy. */
  readonly policies: ClusterPolicyCache;
  /** The endpoints of the (service, port) last built, shared by its default and subset clusters. */
  readonly recent: PortEndpoints;
}

/** The cluster of (service, port, subset) under `dr`; undefined for a subset the rule does not define. */
export function buildCluster(svc: ServiceDef, port: ServicePortDef, subset: string, dr: Resource | undefined, env: ClusterEnv, name?: string): ClusterDef | undefined {
  const drSpec = dr?.spec as DestinationRuleSpec | undefined;
  const sub = subset ? drSpec?.subsets?.find((s) => s.name === subset) : undefined;
  if (subset && !sub) return undefined;
  const tp: { dr?: TrafficPolicy; subset?: TrafficPolicy } = {};
  if (drSpec?.trafficPolicy) tp.dr = drSpec.trafficPolicy;
  if (sub?.trafficPolicy) tp.subset = sub.trafficPolicy;
  return {
    name: name ?? clusterName(port.number, subset, svc.hostname),
    host: svc.hostname,
    port: port.number,
    subset,
    // Remora opt-in (not an Istio field): `remora.io/lb-algorithm: peak-ewma` on the DestinationRule makes
    // LEAST_REQUEST use Linkerd's peak-EWMA latency cost (docs/resilience.md).
    policy: dr === undefined ? env.defaultPolicyFor(port.number) : env.policies.get(tp, port.number, dr.metadata.annotations?.['remora.io/lb-algorithm'] === 'peak-ewma' ? PEAK_EWMA : undefined),
    endpoints: svc.resolution === 'NONE' ? [] : endpointsFor(svc, port, sub?.labels, env.dns, env.recent),
    resolution: svc.resolution,
    protocol: port.protocol,
    ...(svc.subjectAltNames !== undefined ? { serviceSubjectAltNames: svc.subjectAltNames } : {}),
  };
}

/** Every cluster of a service, in compile() order: each port's default cluster, then one per subset of its rule. */
export function serviceClusters(svc: ServiceDef, dr: Resource | undefined, env: ClusterEnv, out: Map<string, ClusterDef>): void {
  const subsets = (dr?.spec as DestinationRuleSpec | undefined)?.subsets;
  const make = (port: ServicePortDef, subset: string): void => {
    // A repeated subset name yields its cluster once.
    if (out.has(clusterName(port.number, subset, svc.hostname))) return;
    const def = buildCluster(svc, port, subset, dr, env);
    if (def !== undefined) out.set(def.name, def);
  };
  for (const port of svc.ports) {
    make(port, '');
    if (subsets !== undefined) for (const s of subsets) make(port, s.name);
  }
}

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
export interface PortEndpoints { svc?: ServiceDef; port?: ServicePortDef; lists: ReadonlyArray<readonly Endpoint[]> }

export function endpointsFor(svc: ServiceDef, port: ServicePortDef, subsetLabels: Readonly<Record<string, string>> | undefined, dns: ReadonlyMap<string, readonly string[]> | undefined, recent: PortEndpoints): Endpoint[] {
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
  // An exact copy: a pushed-to array keeps room for 16 more elements (152 B for one or two endpoints), and a
  // cluster keeps its endpoints for the snapshot's life (24–32 B so).
  return out.slice();
}

/** DestinationRules by host: one rule as itself (nearly every host), several in an array. */
export interface DrIndex { exact: Map<string, Resource | Resource[]>; wildcard: Array<{ suffix: string; r: Resource }> }

/** What a lookup reads of a DrIndex (compile-delta.ts looks through its pending changes first). */
export interface DrLookup { exact: { get(host: string): Resource | Resource[] | undefined }; wildcard: DrIndex['wildcard'] }

export function findDestinationRule(idx: DrLookup, host: string, proxyNs: string, svcNs: string): Resource | undefined {
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
