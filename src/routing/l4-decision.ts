/**
 * Where an outbound L4 connection goes, pure: a captured connection's original destination (or an HTTP CONNECT's
 * host:port) → the VirtualService `tcp[]`/`tls[]` route's cluster, the service's own cluster, PassthroughCluster
 * (ALLOW_ANY, or a resolution NONE ServiceEntry) or BlackHoleCluster (REGISTRY_ONLY). The proxy's own ports on a
 * local address are never a destination (the admin API, a loop into a listener), whatever the policy says.
 */
import type { ClusterDef } from '../model.js';
import type { Snapshot } from '../config/snapshot.js';
import type { OriginalDestination } from '../http1/server.js';
import { lookupHost, clusterName } from '../config/compile.js';
import { resolveCaptured } from './l4-destination.js';
import { l4Cluster, l4RoutesFor, pickL4Destination, selectL4Route, type L4Self } from './l4-route.js';
import { isLoopbackHost } from './request-target.js';

export type L4Decision =
  /** A registry cluster (the service's, or the one a tcp/tls route picked). */
  | { kind: 'cluster'; cluster: ClusterDef; routeName: string | undefined }
  /** The original destination itself; `cluster` is a resolution NONE ServiceEntry's, when the address is one's. */
  | { kind: 'passthrough'; cluster: ClusterDef | undefined }
  /** REGISTRY_ONLY and no service: refused. */
  | { kind: 'blackhole' }
  /** A route to a subset or host the registry does not have: Envoy's NC, refused. */
  | { kind: 'no-cluster'; routeName: string; host: string }
  /** One of the proxy's own ports on a local address: refused. */
  | { kind: 'own-port' };

export interface L4Request {
  dst: OriginalDestination;
  /** The ClientHello's server name, when the first bytes were one. */
  sni?: string | undefined;
  /** An HTTP CONNECT's host name (names the service when the registry knows it). */
  connectHost?: string | undefined;
}

/** The proxy's own listening ports and this host's addresses: never an outbound destination. */
export interface OwnEndpoints {
  ports: ReadonlySet<number>;
  /** Addresses of this pod beyond loopback (its interfaces'). */
  addresses: ReadonlySet<string>;
}

/** Whether `address:port` is one of the proxy's own listeners. */
export function isOwnEndpoint(own: OwnEndpoints | undefined, address: string, port: number): boolean {
  if (own === undefined || !own.ports.has(port)) return false;
  // An HTTP host may carry IPv6 brackets (`[fd00::5]`); a dual-stack socket's IPv4 is `::ffff:10.0.0.5`.
  const b = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1).toLowerCase() : address;
  const a = b.startsWith('::ffff:') && b.includes('.') ? b.slice(7) : b;
  return isLoopbackHost(a) || a === '0.0.0.0' || a === '::' || own.addresses.has(a);
}

/** Decide an outbound L4 connection. `r` is uniform in [0, 1) (weighted tcp/tls route destinations). */
export function decideOutboundL4(snap: Snapshot | undefined, req: L4Request, self: L4Self, r: number, own?: OwnEndpoints): L4Decision {
  const { dst, sni, connectHost } = req;
  const c = resolveCaptured(snap, dst);
  // Without a VIP, a ClientHello's server name can name the service (a ServiceEntry for an external TLS host:
  // Envoy's SNI-matched filter chain on 0.0.0.0:<port>); a CONNECT names it in its target.
  const entry = c.entry ?? (snap === undefined ? undefined : connectHost !== undefined ? lookupHost(snap, connectHost) : sni ? lookupHost(snap, sni) : undefined);
  let cluster = c.cluster ?? (entry?.service !== undefined && snap !== undefined ? snap.clusters.get(clusterName(c.port, '', entry.service.hostname)) : undefined);
  let routeName: string | undefined;
  const vs = entry?.vhost?.origin;
  // TCPRoutes/TLSRoutes bind a Service's frontend: never a connection to one of its endpoints (src/gateway/).
  const meshL4 = c.via !== 'endpoint' && entry !== undefined ? snap?.mesh?.l4.get(entry.host) : undefined;
  if (snap !== undefined && (vs !== undefined || meshL4 !== undefined)) {
    const routes = meshL4 ?? l4RoutesFor(snap, vs!, self);
    if (routes !== undefined) {
      const conn = { port: c.port, address: dst.address, ...(sni !== undefined ? { sni } : {}) };
      const route = (sni !== undefined ? selectL4Route(routes.tls, conn) : undefined) ?? selectL4Route(routes.tcp, conn);
      if (route !== undefined) {
        const d = pickL4Destination(route, r);
        const def = d === undefined ? undefined : l4Cluster(snap, d, c.port);
        if (def === undefined) return { kind: 'no-cluster', routeName: route.name, host: entry?.host ?? 'unknown' };
        cluster = def;
        routeName = route.name;
      }
    }
  }
  if (cluster !== undefined && cluster.resolution !== 'NONE') return { kind: 'cluster', cluster, routeName };
  if (entry === undefined && snap?.outboundTrafficPolicy === 'REGISTRY_ONLY') return { kind: 'blackhole' };
  if (isOwnEndpoint(own, dst.address, dst.port)) return { kind: 'own-port' };
  return { kind: 'passthrough', cluster };
}
