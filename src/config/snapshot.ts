/**
 * The immutable result of compiling a config: route table, registry and clusters. A request reads the
 * current snapshot once and keeps it to the end; reloads swap the whole object.
 */
import type { ClusterDef, ServiceDef } from '../model.js';
import type { Resource } from './resource.js';
import type { VirtualHost } from '../routing/route.js';
import type { MeshSnapshot } from '../gateway/frontend.js';

export interface HostEntry {
  /** Canonical host (FQDN or the VS/SE host as written). */
  host: string;
  vhost: VirtualHost | undefined;
  service: ServiceDef | undefined;
}

export interface Snapshot {
  version: number;
  hash: string;
  loadedAt: number;
  resources: readonly Resource[];
  /** Exact and alias host names (lowercase, no port) → entry. */
  hosts: ReadonlyMap<string, HostEntry>;
  /** Wildcard hosts (`*.example.com`), longest suffix first. */
  wildcards: ReadonlyArray<{ suffix: string; entry: HostEntry }>;
  /** Service VIPs (ServiceEntry addresses, ClusterIPs) → entry. */
  addresses: ReadonlyMap<string, HostEntry>;
  clusters: ReadonlyMap<string, ClusterDef>;
  services: readonly ServiceDef[];
  namespace: string;
  clusterDomain: string;
  outboundTrafficPolicy: 'ALLOW_ANY' | 'REGISTRY_ONLY';
  /** The pod resolver's search path (/etc/resolv.conf): tried, in the resolver's order, for hosts the registry lacks. */
  search: { domains: readonly string[]; ndots: number } | undefined;
  warnings: readonly string[];
  /** Present when Gateway API routes bind some hosts (src/gateway/): their plain routes and TCP/TLS routes. */
  mesh?: MeshSnapshot;
}
