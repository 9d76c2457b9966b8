/**
 * The L4 entry points the listeners' connection hooks (src/net/capture.ts) and HTTP CONNECT call: an outbound
 * connection routed by the pure decision of src/routing/l4-decision.ts to the TCP proxy; an inbound one checked
 * against AuthorizationPolicy/NetworkPolicy with Istio's TCP semantics and piped to the app at its original
 * destination; refusals recorded as connections of BlackHoleCluster. net/ calls these; nothing here imports net/.
 */
import type net from 'node:net';
import type { OriginalDestination } from '../http1/server.js';
import type { Snapshot } from '../config/snapshot.js';
import type { ClusterManager } from '../upstream/cluster-manager.js';
import type { ClusterDef, ClusterRuntime } from '../model.js';
import type { FirstBytes, L4Conn, TcpDestination, TcpProxy, TunnelGreeting } from './tcp-proxy.js';
import { decideOutboundL4, type L4Decision, type OwnEndpoints } from '../routing/l4-decision.js';
import type { L4Self } from '../routing/l4-route.js';
import { L4 } from '../errors.js';

export interface L4Env {
  snapshot(): Snapshot | undefined;
  clusters: ClusterManager;
  tcp: TcpProxy;
  /** This workload, for the sourceLabels/sourceNamespace of tcp and tls routes. */
  self: L4Self;
  rand(): number;
  /** The proxy's own ports and addresses: never a destination (outbound) nor a target (inbound). */
  own?: OwnEndpoints;
}

/** An inbound connection's authorization verdict (AuthorizationPolicy with TCP semantics, NetworkPolicy). */
export type ConnectionVerdict = { allowed: true } | { allowed: false; details: string };

export interface InboundL4Env extends L4Env {
  /** The `inbound|<port>||` cluster of an app port, its endpoint at `address` (the original destination). */
  inboundRuntime(port: number, address: string): ClusterRuntime;
  /** AuthorizationPolicy (Istio's TCP semantics) and NetworkPolicy for an L4 connection to `port`. */
  authorizeConnection(conn: L4Conn, port: number): ConnectionVerdict;
}

function serviceName(host: string): string {
  const dot = host.indexOf('.');
  return dot < 0 ? host : host.slice(0, dot);
}

function tcpDest(direction: 'outbound' | 'inbound', def: ClusterDef | undefined, fallback: string, namespace: string): TcpDestination {
  if (def === undefined) return { direction, service: fallback, serviceName: fallback, serviceNamespace: '', version: '', routeName: fallback };
  const parts = def.host.split('.');
  return {
    direction,
    service: def.host,
    serviceName: serviceName(def.host),
    serviceNamespace: parts.length > 1 ? parts[1]! : namespace,
    version: def.subset,
    routeName: def.name,
  };
}

/**
 * An outbound L4 connection to `dst` (a captured connection's original destination, or the authority of an HTTP
 * CONNECT, whose host name and answers `connect` carries). Returns what was decided.
 */
export function routeOutboundTcp(
  env: L4Env, sock: net.Socket, head: Buffer | undefined, dst: OriginalDestination, conn: L4Conn, sni: string | undefined,
  connect?: { host: string; greeting: TunnelGreeting },
): L4Decision['kind'] {
  const greeting = connect?.greeting;
  const snap = env.snapshot();
  const ns = snap?.namespace ?? '';
  const d = decideOutboundL4(snap, { dst, sni, connectHost: connect?.host }, env.self, env.rand(), env.own);
  switch (d.kind) {
    case 'cluster': {
      const dest = tcpDest('outbound', d.cluster, '', ns);
      if (d.routeName !== undefined) dest.routeName = d.routeName;
      env.tcp.handle(sock, head, env.clusters.runtime(d.cluster), dest, conn, greeting);
      break;
    }
    case 'no-cluster':
      env.tcp.reject(sock, d.routeName, tcpDest('outbound', undefined, d.host, ns), conn, L4.clusterNotFound.flag, L4.clusterNotFound.details, greeting, head);
      break;
    case 'blackhole':
      env.tcp.reject(sock, 'BlackHoleCluster', tcpDest('outbound', undefined, 'BlackHoleCluster', ''), conn, L4.blackHole.flag, L4.blackHole.details, greeting, head);
      break;
    case 'own-port':
      env.tcp.reject(sock, 'BlackHoleCluster', tcpDest('outbound', undefined, 'BlackHoleCluster', ''), conn, L4.proxyPort.flag, L4.proxyPort.details, greeting, head);
      break;
    case 'passthrough': {
      // ALLOW_ANY (or a resolution NONE ServiceEntry): the original destination itself.
      const rt = env.clusters.passthrough(dst.address, dst.port, d.cluster);
      env.tcp.handle(sock, head, rt, tcpDest('outbound', d.cluster, 'PassthroughCluster', ns), conn, greeting);
      break;
    }
  }
  return d.kind;
}

/**
 * An inbound L4 connection to the app port `dst.port`: authorized with TCP semantics, then piped to the original
 * destination (the pod's address, as Istio since 1.10: an app listener bound to loopback is not reachable from
 * outside). `firstBytes`: the client was silent past protocol detection; see FirstBytes.
 */
export function serveInboundTcp(env: InboundL4Env, sock: net.Socket, head: Buffer | undefined, dst: OriginalDestination, conn: L4Conn, firstBytes?: FirstBytes): void {
  const rt = env.inboundRuntime(dst.port, dst.address);
  const dest: TcpDestination = { direction: 'inbound', service: rt.def.name, serviceName: rt.def.name, serviceNamespace: '', version: '', routeName: 'inbound' };
  const v = env.authorizeConnection(conn, dst.port);
  if (!v.allowed) {
    env.tcp.reject(sock, rt.def.name, dest, conn, '-', v.details, undefined, head);
    return;
  }
  env.tcp.handle(sock, head, rt, dest, conn, undefined, firstBytes);
}

/**
 * Why an inbound connection is refused before any policy: it targets a proxy port, was not redirected in capture
 * mode, or was redirected with an original destination that is not one of the pod's addresses (capture mode).
 */
export type InboundRefusal = 'own_port' | 'not_redirected' | 'not_pod_address';

const REFUSAL_ENDS = {
  own_port: L4.inboundProxyPort,
  not_redirected: L4.inboundNotRedirected,
  not_pod_address: L4.inboundNotPodAddress,
} as const satisfies Record<InboundRefusal, unknown>;

/**
 * Refuse an inbound connection with a reset, recorded as BlackHoleCluster's (Envoy: the virtualInbound blackhole
 * filter chain for connections addressed to 15006 itself; no inbound chain for the proxy's own ports).
 */
export function refuseInbound(env: L4Env, sock: net.Socket, conn: L4Conn, why: InboundRefusal): void {
  const dest: TcpDestination = { direction: 'inbound', service: 'BlackHoleCluster', serviceName: 'BlackHoleCluster', serviceNamespace: '', version: '', routeName: 'BlackHoleCluster' };
  const end = REFUSAL_ENDS[why];
  env.tcp.reject(sock, 'BlackHoleCluster', dest, conn, end.flag, end.details);
}
