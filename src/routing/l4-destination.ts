/**
 * What a captured connection's original destination is in the registry, pure: a Service/ServiceEntry VIP (ClusterIP,
 * ServiceEntry `addresses`) with the port, an endpoint address and port (headless Services, pod IPs, ServiceEntry
 * STATIC endpoints), or an address inside a ServiceEntry's CIDR `addresses`. Istio answers the same question with one listener per VIP:port and a passthrough filter chain.
 */
import type { ClusterDef } from '../model.js';
import type { HostEntry, Snapshot } from '../config/snapshot.js';
import { clusterName } from '../config/compile.js';
import type { OriginalDestination } from '../http1/server.js';
import { cidrContains, parseCidr, parseIp, type Cidr } from '../authz/cidr.js';

export interface CapturedDestination {
  /** The registry host the destination belongs to, when known. */
  entry: HostEntry | undefined;
  /** The service's subset-less cluster for the port, when the port is one of the service's. */
  cluster: ClusterDef | undefined;
  /** Port as the app dialled it (a service port for a VIP; an endpoint port for an endpoint address). */
  port: number;
  /** How it was found. */
  via: 'vip' | 'endpoint' | 'cidr' | 'unknown';
}

/**
 * `ip:port` of every endpoint of every subset-less cluster → that cluster's name; built once per snapshot, on first
 * use. Names, not defs: the snapshot builds its clusters on first use, and its iteration does not keep them.
 */
const endpointIndex = new WeakMap<Snapshot, Map<string, string>>();

function endpointsOf(snap: Snapshot): Map<string, string> {
  let idx = endpointIndex.get(snap);
  if (idx !== undefined) return idx;
  idx = new Map();
  for (const def of snap.clusters.values()) {
    if (def.subset !== '') continue;
    for (const ep of def.endpoints) {
      const k = `${ep.address}:${ep.port}`;
      // Two services over the same endpoint: the first (registry order) wins, as Istio's first-wins listener merge.
      if (!idx.has(k)) idx.set(k, def.name);
    }
  }
  endpointIndex.set(snap, idx);
  return idx;
}

/** ServiceEntry `addresses` given as CIDRs (`192.0.2.0/24`), most specific first; built once per snapshot. */
const cidrIndex = new WeakMap<Snapshot, Array<{ cidr: Cidr; host: string }>>();

function cidrsOf(snap: Snapshot): Array<{ cidr: Cidr; host: string }> {
  let idx = cidrIndex.get(snap);
  if (idx !== undefined) return idx;
  idx = [];
  for (const svc of snap.services) {
    for (const a of svc.addresses) {
      if (!a.includes('/')) continue;
      const cidr = parseCidr(a);
      if (cidr !== undefined) idx.push({ cidr, host: svc.hostname });
    }
  }
  idx.sort((x, y) => y.cidr.prefix - x.cidr.prefix);
  cidrIndex.set(snap, idx);
  return idx;
}

export function resolveCaptured(snap: Snapshot | undefined, dst: OriginalDestination): CapturedDestination {
  if (snap === undefined) return { entry: undefined, cluster: undefined, port: dst.port, via: 'unknown' };
  const vip = snap.addresses.get(dst.address);
  if (vip !== undefined) {
    const cluster = vip.service !== undefined ? snap.clusters.get(clusterName(dst.port, '', vip.service.hostname)) : undefined;
    return { entry: vip, cluster, port: dst.port, via: 'vip' };
  }
  const name = endpointsOf(snap).get(`${dst.address}:${dst.port}`);
  const def = name === undefined ? undefined : snap.clusters.get(name);
  if (def !== undefined) {
    return { entry: snap.hosts.get(def.host), cluster: def, port: def.port, via: 'endpoint' };
  }
  // An address inside a ServiceEntry's CIDR (resolution NONE or STATIC): that service, on the port dialled.
  const cidrs = cidrsOf(snap);
  if (cidrs.length > 0) {
    const ip = parseIp(dst.address);
    if (ip !== undefined) {
      for (const c of cidrs) {
        if (!cidrContains(c.cidr, ip)) continue;
        const entry = snap.hosts.get(c.host);
        return { entry, cluster: snap.clusters.get(clusterName(dst.port, '', c.host)), port: dst.port, via: 'cidr' };
      }
    }
  }
  return { entry: undefined, cluster: undefined, port: dst.port, via: 'unknown' };
}
