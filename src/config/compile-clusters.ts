/**
 * Cluster building blocks for ./compile.ts: cluster names, a service port's endpoints (DNS-resolved, per subset,
 * shared between a port's clusters) and the DestinationRule that applies to a host. Pure.
 */
import { isIP } from 'node:net';
import type { Resource } from './resource.js';
import type { Endpoint, ServiceDef, ServicePortDef, WorkloadDef } from '../model.js';
import { labelsMatch } from './compile-registry.js';

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
  return out;
}

/** DestinationRules by host: one rule as itself (nearly every host), several in an array. */
export interface DrIndex { exact: Map<string, Resource | Resource[]>; wildcard: Array<{ suffix: string; r: Resource }> }

export function findDestinationRule(idx: DrIndex, host: string, proxyNs: string, svcNs: string): Resource | undefined {
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
