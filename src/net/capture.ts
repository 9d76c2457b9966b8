/**
 * Transparent capture: what the outbound (15001) and inbound (15006) listeners do with each accepted connection
 * before HTTP is assumed. A connection addressed to the listener itself (the app set HTTP_PROXY, or a test dialled
 * 127.0.0.1:15001) is HTTP/1 at once, with no extra work. A connection that iptables redirected carries its original
 * destination; that decides:
 * - a registry port declared HTTP → HTTP/1, routed with the original destination known (VIP routing, passthrough
 *   to the original IP:port);
 * - a port declared TCP/TLS/… or a server-speaks-first port → the TCP proxy at once (never wait for the client);
 * - otherwise the first bytes are sniffed: an HTTP/1 request line → HTTP/1; anything else (TLS ClientHello, the
 *   HTTP/2 preface, a binary protocol), or silence for `sniffTimeoutMs` (the server speaks first) → TCP proxy.
 * TCP to a registry service goes to that service's cluster (load balancing per connection); to anything else
 * PassthroughCluster (the original destination) under ALLOW_ANY, BlackHoleCluster (a reset) under REGISTRY_ONLY.
 */
import type net from 'node:net';
import type { Http1Server, OriginalDestination } from '../http1/server.js';
import type { LazyHttp2Listener } from '../http2/lazy.js';
import type { Snapshot } from '../config/snapshot.js';
import type { ClusterManager } from '../upstream/cluster-manager.js';
import type { ClusterDef, ClusterRuntime } from '../model.js';
import type { TcpDestination, TcpProxy, TunnelGreeting } from '../proxy/tcp-proxy.js';
import type { OriginalDstReader } from './original-dst.js';
import { connectionProtocol, sniff, SNIFF_MAX_BYTES, type Sniffed } from './protocol.js';
import { resolveCaptured } from './destination.js';
import { readClientHelloSni } from './tls-sni.js';
import { lookupHost, clusterName } from '../config/compile.js';
import { l4Cluster, l4RoutesFor, pickL4Destination, selectL4Route, type L4Self } from '../routing/l4-route.js';
import { offersIstioAlpn, terminateMtls, type MtlsContext } from '../security/mtls.js';
import type { MtlsMode } from '../security/peer-authentication.js';

export interface CaptureEnv {
  reader: OriginalDstReader;
  snapshot(): Snapshot | undefined;
  clusters: ClusterManager;
  tcp: TcpProxy;
  /** How long to wait for a client's first bytes before taking the connection as TCP (ms). */
  sniffTimeoutMs: number;
  /** This workload, for the sourceLabels/sourceNamespace of tcp and tls routes. */
  self: L4Self;
  rand(): number;
  /** Cleartext HTTP/2 (prior knowledge) on the same port: connections that open with the HTTP/2 preface. */
  h2?: Pick<LazyHttp2Listener, 'serveSocket'>;
  /** How long a connection may stay silent before its first byte (ms), when HTTP/2 detection waits for it. */
  firstByteTimeoutMs?: number;
}

export interface InboundCaptureEnv extends CaptureEnv {
  /** The `inbound|<port>||` cluster for an app port (made on first use for ports beyond `--app-port`). */
  inboundRuntime(port: number): ClusterRuntime;
  /** NetworkPolicy/AuthorizationPolicy for a connection that is not HTTP: false = refuse it. */
  allowConnection(peerIp: string, port: number): boolean;
  /** The workload certificate's TLS material; undefined = no certificate, plaintext only (mTLS off). */
  mtls?(): MtlsContext | undefined;
  /** PeerAuthentication's mode for an app port (undefined: a connection to the listener itself, the workload's mode). */
  mtlsMode?(port: number | undefined): MtlsMode;
}

/** Counters of what capture decided, for /stats. */
export class CaptureStats {
  direct = 0;
  http = 0;
  tcp = 0;
  sniffTimeouts = 0;
  blackholed = 0;
  /** Inbound mTLS connections terminated (the peer's certificate verified). */
  mtls = 0;
  /** Inbound connections refused by PeerAuthentication: plaintext under STRICT, or a failed mTLS handshake. */
  mtlsRefused = 0;
}

/**
 * Between accepting an inbound connection and serving it: mutual TLS (PeerAuthentication). `next` serves a socket
 * (the decrypted one, or the original with the bytes already read put back) as before.
 */
type Gate = (sock: net.Socket, dst: OriginalDestination | undefined, next: (s: net.Socket) => void) => void;

type Decide = (sock: net.Socket, head: Buffer | undefined, dst: OriginalDestination, how: 'http' | 'h2' | 'tcp', sni: string | undefined) => void;

/**
 * Read a connection's first bytes until `classify` settles them (undefined: need more), then hand over in the same
 * tick (no 'data' can be emitted between here and the next owner's listener). `onTimeout` runs when the client says
 * nothing decisive within `timeoutMs`, `onEnd` when it ends its side first; either may hand the socket on too.
 */
function readFirstBytes<T>(
  sock: net.Socket, timeoutMs: number, classify: (head: Buffer) => T | undefined,
  then: (head: Buffer | undefined, what: T) => void, onTimeout: (head: Buffer | undefined) => void, onEnd: (head: Buffer | undefined) => void,
): void {
  let head: Buffer | undefined;
  let done = false;
  const stop = (): boolean => {
    if (done) return false;
    done = true;
    clearTimeout(timer);
    sock.off('data', onData);
    sock.off('end', ended);
    sock.off('close', closed);
    return true;
  };
  const onData = (d: Buffer): void => {
    head = head === undefined ? d : Buffer.concat([head, d]);
    const what = classify(head);
    if (what !== undefined && stop()) then(head, what);
  };
  const ended = (): void => { if (stop()) onEnd(head); };
  const closed = (): void => { stop(); };
  const timer = setTimeout(() => { if (stop()) onTimeout(head); }, timeoutMs);
  sock.on('data', onData);
  sock.once('end', ended);
  sock.once('close', closed);
  sock.on('error', noop);
}

/**
 * A connection addressed to the listener itself speaks HTTP: HTTP/1, or HTTP/2 with prior knowledge (h2c), told
 * apart by the first bytes. Only a first read that starts with "P" (the preface's "PRI * HTTP/2.0") waits for more;
 * everything else goes to the HTTP/1 server with that first read, in the same tick.
 */
function serveHttp(sock: net.Socket, server: Http1Server, env: CaptureEnv, dst: OriginalDestination | undefined): void {
  const h2 = env.h2;
  if (h2 === undefined) { server.serveSocket(sock, undefined, dst); return; }
  readFirstBytes<'h2' | 'http1'>(
    sock,
    env.firstByteTimeoutMs ?? 65_000,
    (head) => {
      if (head[0] !== 0x50 /* P */) return 'http1';
      const s = sniff(head);
      if (s === 'need-more' && head.length < SNIFF_MAX_BYTES) return undefined;
      return s === 'h2' ? 'h2' : 'http1';
    },
    (head, what) => (what === 'h2' ? h2.serveSocket(sock, head, dst) : server.serveSocket(sock, head, dst)),
    () => sock.destroy(), // silent since it connected: nothing to serve
    () => sock.destroy(), // ended its side before a request
  );
}

/**
 * Read where `sock` was going, then call `decide` with what the connection is; HTTP connections not redirected go
 * to `server.serveSocket` directly.
 */
function accept(sock: net.Socket, server: Http1Server, env: CaptureEnv, stats: CaptureStats, protocolOf: (dst: OriginalDestination) => string | undefined, decide: Decide, gate?: Gate): void {
  const r = env.reader.read(sock);
  if (r === undefined) {
    stats.direct++;
    if (gate !== undefined) gate(sock, undefined, (s) => serveHttp(s, server, env, undefined));
    else serveHttp(sock, server, env, undefined);
    return;
  }
  const go = (dst0: OriginalDestination | undefined): void => {
    if (gate !== undefined) gate(sock, dst0, (s) => route(s, dst0));
    else route(sock, dst0);
  };
  const route = (sock: net.Socket, dst: OriginalDestination | undefined): void => {
    if (sock.destroyed) return;
    if (dst === undefined) {
      stats.direct++;
      serveHttp(sock, server, env, undefined);
      return;
    }
    const proto = connectionProtocol(protocolOf(dst), dst.port);
    if (proto === 'tcp') return decide(sock, undefined, dst, proto, undefined);
    if (proto === 'http') {
      // Declared HTTP: HTTP/1 or HTTP/2 with prior knowledge (Envoy's codec AUTO), never TCP.
      stats.http++;
      serveHttp(sock, server, env, dst);
      return;
    }
    sniffThen(sock, env.sniffTimeoutMs, stats, (head, what, sni) => {
      // A port declared TLS is never served as HTTP, whatever its first bytes look like; HTTP/2 is served when the
      // listener has its HTTP/2 side, else passed on as bytes.
      const how = proto !== 'sniff' ? 'tcp' : what === 'http1' ? 'http' : what === 'h2' && env.h2 !== undefined ? 'h2' : 'tcp';
      decide(sock, head, dst, how, sni);
    });
  };
  if (r instanceof Promise) r.then(go, () => go(undefined));
  else go(r);
}

/**
 * Read until the first bytes say what they are (a TLS ClientHello: until it is whole, for its server name), the
 * client goes quiet for `timeoutMs` (the server speaks first: TCP), or it ends its side (TCP, the FIN passed on).
 */
function sniffThen(sock: net.Socket, timeoutMs: number, stats: CaptureStats, then: (head: Buffer | undefined, what: Sniffed, sni: string | undefined) => void): void {
  readFirstBytes<{ what: Sniffed; sni?: string }>(
    sock,
    timeoutMs,
    (head) => {
      const s = sniff(head);
      if (s === 'tls') {
        const hello = readClientHelloSni(head);
        if (hello.kind === 'sni') return { what: 'tls', sni: hello.serverName };
        return hello.kind === 'not-tls' ? { what: 'tcp' } : undefined; // else: the ClientHello is still arriving
      }
      if (s !== 'need-more') return { what: s };
      return head.length >= SNIFF_MAX_BYTES ? { what: 'tcp' } : undefined;
    },
    (head, r) => then(head, r.what, r.sni),
    (head) => { stats.sniffTimeouts++; then(head, 'tcp', undefined); },
    (head) => then(head, 'tcp', undefined),
  );
}

function noop(): void { /* 'close' follows */ }

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
 * An outbound TCP connection to `dst` (a captured connection's original destination, or the authority of an HTTP
 * CONNECT): the VirtualService `tcp[]`/`tls[]` route or the service's own cluster when the registry knows the
 * address (or, for CONNECT, the host name), else PassthroughCluster (ALLOW_ANY) or BlackHoleCluster (REGISTRY_ONLY).
 * `connect` carries a CONNECT tunnel's host name and its answers (see TunnelGreeting).
 */
export function routeOutboundTcp(env: CaptureEnv, stats: CaptureStats, sock: net.Socket, head: Buffer | undefined, dst: OriginalDestination, sni: string | undefined, connect?: { host: string; greeting: TunnelGreeting }): void {
  const greeting = connect?.greeting;
  const snap = env.snapshot();
  const ns = snap?.namespace ?? '';
  const c = resolveCaptured(snap, dst);
  // Without a VIP, a ClientHello's server name can name the service (a ServiceEntry for an external TLS host:
  // Envoy's SNI-matched filter chain on 0.0.0.0:<port>).
  const entry = c.entry ?? (connect !== undefined && snap ? lookupHost(snap, connect.host) : sni && snap ? lookupHost(snap, sni) : undefined);
  let cluster = c.cluster ?? (entry?.service !== undefined && snap !== undefined ? snap.clusters.get(clusterName(c.port, '', entry.service.hostname)) : undefined);
  let routeName: string | undefined;
  const vs = entry?.vhost?.origin;
  if (snap !== undefined && vs !== undefined) {
    const routes = l4RoutesFor(snap, vs, env.self);
    if (routes !== undefined) {
      const conn = { port: c.port, address: dst.address, ...(sni !== undefined ? { sni } : {}) };
      const route = (sni !== undefined ? selectL4Route(routes.tls, conn) : undefined) ?? selectL4Route(routes.tcp, conn);
      if (route !== undefined) {
        const d = pickL4Destination(route, env.rand());
        const def = d === undefined ? undefined : l4Cluster(snap, d, c.port);
        if (def === undefined) {
          // A route to a subset or host the registry does not have: Envoy's NC (no cluster), the connection refused.
          env.tcp.reject(sock, route.name, tcpDest('outbound', undefined, entry?.host ?? 'unknown', ns), 'NC', 'cluster_not_found', greeting);
          return;
        }
        cluster = def;
        routeName = route.name;
      }
    }
  }
  if (cluster !== undefined && cluster.resolution !== 'NONE') {
    const dest = tcpDest('outbound', cluster, '', ns);
    if (routeName !== undefined) dest.routeName = routeName;
    env.tcp.handle(sock, head, env.clusters.runtime(cluster), dest, greeting);
    return;
  }
  if (entry === undefined && snap?.outboundTrafficPolicy === 'REGISTRY_ONLY') {
    stats.blackholed++;
    env.tcp.reject(sock, 'BlackHoleCluster', tcpDest('outbound', undefined, 'BlackHoleCluster', ''), 'UH', 'blackhole_cluster', greeting);
    return;
  }
  // ALLOW_ANY (or a resolution NONE ServiceEntry): the original destination itself.
  const rt = env.clusters.passthrough(dst.address, dst.port, cluster);
  env.tcp.handle(sock, head, rt, tcpDest('outbound', cluster, 'PassthroughCluster', ns), greeting);
}

/** The outbound listener's connection hook. */
export function outboundCapture(env: CaptureEnv, stats: CaptureStats): (sock: net.Socket, server: Http1Server) => void {
  const protocolOf = (dst: OriginalDestination): string | undefined => resolveCaptured(env.snapshot(), dst).cluster?.protocol;
  const toTcp = (sock: net.Socket, head: Buffer | undefined, dst: OriginalDestination, sni: string | undefined): void => {
    stats.tcp++;
    routeOutboundTcp(env, stats, sock, head, dst, sni);
  };
  return (sock, server) => accept(sock, server, env, stats, protocolOf, (s, head, dst, how, sni) => {
    if (how === 'tcp') return toTcp(s, head, dst, sni);
    // HTTP with the original destination known: routed by Host, else by the VIP; passthrough to the original IP.
    stats.http++;
    if (how === 'h2') env.h2!.serveSocket(s, head, dst);
    else server.serveSocket(s, head, dst);
  });
}

/**
 * The inbound listener's connection hook: the original destination port is the app port (any captured port, not
 * only `--app-port`); HTTP goes through the inbound HTTP path, anything else is piped to 127.0.0.1:<port> after the
 * L4 policy check.
 */
export function inboundCapture(env: InboundCaptureEnv, stats: CaptureStats): (sock: net.Socket, server: Http1Server) => void {
  // The app's ports carry no declared protocol here: sniff, except on server-first ports.
  const protocolOf = (): string | undefined => undefined;
  const gate = env.mtls === undefined ? undefined : mtlsGate(env, stats);
  return (sock, server) => accept(sock, server, env, stats, protocolOf, (s, head, dst, how) => {
    const rt = env.inboundRuntime(dst.port);
    if (how !== 'tcp') {
      stats.http++;
      if (how === 'h2') env.h2!.serveSocket(s, head, dst);
      else server.serveSocket(s, head, dst);
      return;
    }
    stats.tcp++;
    const dest: TcpDestination = { direction: 'inbound', service: rt.def.name, serviceName: rt.def.name, serviceNamespace: '', version: '', routeName: 'inbound' };
    if (!env.allowConnection(s.remoteAddress ?? '', dst.port)) {
      env.tcp.reject(s, rt.def.name, dest, '-', 'rbac_access_denied_matched_policy[none]');
      return;
    }
    env.tcp.handle(s, head, rt, dest);
  }, gate);
}

/**
 * PeerAuthentication at the inbound listener, when the sidecar has a workload certificate: a connection that opens
 * with a ClientHello offering one of Istio's ALPN values is a sidecar's mTLS — terminated (client certificate from the
 * trust bundle required) unless the port's mode is DISABLE, and served decrypted with the peer's identity; anything
 * else is plaintext (or an app's own TLS), refused under STRICT, served as before under PERMISSIVE and DISABLE.
 * Only the first read waits: a plaintext first byte is decided at once.
 */
function mtlsGate(env: InboundCaptureEnv, stats: CaptureStats): Gate {
  return (sock, dst, next) => {
    const ctx = env.mtls?.();
    const mode = env.mtlsMode?.(dst?.port) ?? 'PERMISSIVE';
    if (ctx === undefined && mode !== 'STRICT') return next(sock);
    readFirstBytes<{ tls: boolean; istio: boolean }>(
      sock,
      // A captured connection may be a server-speaks-first protocol: its silent client is not kept waiting.
      dst !== undefined ? env.sniffTimeoutMs : env.firstByteTimeoutMs ?? 65_000,
      (head) => {
        if (head[0] !== 0x16) return { tls: false, istio: false };
        const hello = readClientHelloSni(head);
        if (hello.kind === 'need-more') return undefined;
        return { tls: hello.kind === 'sni', istio: hello.kind === 'sni' && offersIstioAlpn(hello.alpn) };
      },
      (head, what) => {
        if (what.istio && ctx !== undefined && mode !== 'DISABLE') {
          void terminateMtls(sock, head, ctx).then((r) => {
            if (!r.ok) { stats.mtlsRefused++; return; }
            stats.mtls++;
            next(r.socket);
          });
          return;
        }
        if (mode === 'STRICT') {
          // Envoy: no filter chain matches a plaintext connection on a STRICT port; the connection is closed.
          stats.mtlsRefused++;
          sock.resetAndDestroy();
          return;
        }
        handBack(sock, head, next);
      },
      (head) => { if (mode === 'STRICT') { stats.mtlsRefused++; sock.destroy(); } else handBack(sock, head, next); },
      (head) => { if (mode === 'STRICT') { stats.mtlsRefused++; sock.destroy(); } else handBack(sock, head, next); },
    );
  };
}

/**
 * Serve a socket whose first bytes were read to decide: they are put back (the next reader sees them first), the next
 * owner attaches its listeners, then the socket flows again (a paused stream does not resume for a new listener).
 */
function handBack(sock: net.Socket, head: Buffer | undefined, next: (s: net.Socket) => void): void {
  sock.pause();
  if (head !== undefined && head.length > 0) sock.unshift(head);
  next(sock);
  // Only an owner that reads now: the TCP proxy keeps the socket paused until its upstream is connected (then pipes);
  // flowing before that would hand the put-back bytes to nobody.
  if (!sock.destroyed && sock.listenerCount('data') > 0) sock.resume();
}
