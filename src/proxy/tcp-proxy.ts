/**
 * L4 connections (captured non-HTTP traffic, TCP-declared ports, HTTP CONNECT): Envoy's tcp_proxy filter as Istio
 * configures it. One upstream connection per downstream one, to an endpoint the cluster's load balancer picks
 * (connection-level balancing), admitted by the cluster's resource limits (tcp.maxConnections; overflow: the client
 * is reset, UO) with tcp.connectTimeout (UF) and connect failures fed to outlier detection; then the bytes go through
 * the one byte pipe (src/proxy/byte-pipe.ts) with tcp.idleTimeout. Metrics and the access log come from the one
 * Observer: opened at connect, bytes every reportIntervalMs while open, one record at close.
 */
import net from 'node:net';
import type { ClusterDef, ClusterRuntime, Endpoint, RequestRecord } from '../model.js';
import type { ConnectionMeter, Observer } from './observer.js';
import type { PeerIdentity } from '../security/mtls.js';
import { BytePipe, type PipeOwner } from './byte-pipe.js';
import { DETAILS, detailsOf, E, L4 } from '../errors.js';

/** Who the connection is going to, for metrics and the access log. */
export interface TcpDestination {
  direction: 'outbound' | 'inbound';
  /** FQDN of the destination service ('' for passthrough). */
  service: string;
  serviceName: string;
  serviceNamespace: string;
  /** Subset, '' if none. */
  version: string;
  /** Route name for the access log (VirtualService tcp route, or the cluster). */
  routeName: string;
}

/**
 * An accepted L4 connection as it was at accept: its addresses are read then, not from a socket that may be gone by
 * the time its record is made.
 */
export interface L4Conn {
  /** Envoy's %DOWNSTREAM_REMOTE_ADDRESS%: the client's `ip:port`. */
  remote: string;
  /** The client's IP (AuthorizationPolicy `source.ip`, NetworkPolicy). */
  remoteIp: string;
  /** %DOWNSTREAM_LOCAL_ADDRESS%: a captured connection's original destination (as Envoy logs it), else the listener's. */
  local: string;
  /** The verified mTLS peer, when the connection came over Istio mTLS. */
  peer?: PeerIdentity | undefined;
  /** Inbound: the app port (the original destination's), for the STRICT check of open connections. */
  port?: number;
}

/**
 * An HTTP CONNECT tunnel's answers (the client waits for one before it sends): `established` is written to the
 * client once the upstream is connected, `failed(flag, details)` instead of the reset a plain TCP client gets when no
 * upstream can be had. Neither counts in the TCP byte metrics.
 */
export interface TunnelGreeting {
  established: Buffer;
  failed: (flag: string, details: string) => Buffer;
}

/**
 * A captured inbound connection whose client said nothing within the protocol-detection timeout: the upstream is
 * dialled, and whoever speaks first decides. The app first: a server-first protocol, piped at once. The client
 * first: `classify` reads its bytes — 'tcp' (piped), 'more' (keep reading), or 'taken' (it was HTTP after all and has
 * been handed to the HTTP path with these bytes: the upstream connection is dropped unused and nothing is recorded).
 */
export type FirstBytes = (head: Buffer) => 'tcp' | 'more' | 'taken';

export interface TcpProxyOptions {
  observer: Observer;
  now(): number;
  /**
   * How often the byte counters of open connections are brought up to date (ms), as Istio's TCP stats report
   * long-lived connections periodically (15 s); the rest is added at close.
   */
  reportIntervalMs?: number;
  /** A connector for an upstream connection (Istio mTLS to a meshed endpoint), or undefined for plaintext TCP. */
  connector?: (def: ClusterDef, ep: Endpoint) => ((host: string, port: number) => net.Socket) | undefined;
}

/** One proxied connection, from accept to its record. */
class TcpConn implements PipeOwner {
  upstream: net.Socket | undefined;
  ep: Endpoint | undefined;
  rt: ClusterRuntime | undefined;
  admitted = false;
  startTime = Date.now();
  connectedHr = 0;
  flags = '-';
  details = '-';
  meter: ConnectionMeter | undefined;
  pipe: BytePipe | undefined;
  /** Bytes read from the client before any pipe (a refused connection's sniffed head). */
  headBytes = 0;
  done = false;
  /** The client was handed back to the HTTP path (FirstBytes 'taken'): no record. */
  handedOff = false;

  constructor(
    readonly proxy: TcpProxy,
    readonly client: net.Socket,
    readonly clusterName: string,
    readonly dest: TcpDestination,
    readonly conn: L4Conn,
    readonly startHr: number,
    readonly greeting: TunnelGreeting | undefined,
  ) {}

  pipeClosed(): void {
    this.proxy.finished(this);
  }
}

export class TcpProxy {
  /** Open downstream connections, for stop(), the drain count and the STRICT check. */
  readonly active = new Map<net.Socket, TcpConn>();
  private cxOpenedTotal = 0;
  /** Connected connections whose byte counters are reported while they are open. */
  private readonly reporting = new Set<TcpConn>();
  private reportTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: TcpProxyOptions) {}

  /** TCP connections taken since start (remora_tcp_connections_total). */
  get opened(): number {
    return this.cxOpenedTotal;
  }

  /** Bring the byte counters of open connections up to date (every reportIntervalMs while any is open). */
  report(): void {
    for (const c of this.reporting) c.meter!.bytes(c.pipe!.bytesUp, c.pipe!.bytesDown);
    if (this.reporting.size === 0 && this.reportTimer !== undefined) {
      clearInterval(this.reportTimer);
      this.reportTimer = undefined;
    }
  }

  private track(client: net.Socket, clusterName: string, dest: TcpDestination, conn: L4Conn, greeting: TunnelGreeting | undefined): TcpConn {
    const c = new TcpConn(this, client, clusterName, dest, conn, this.opts.now(), greeting);
    this.cxOpenedTotal++;
    this.active.set(client, c);
    client.on('error', noop); // surfaces as 'close'
    client.once('close', () => this.clientClosed(c));
    return c;
  }

  /**
   * Proxy `client` to an endpoint of `rt`. `head` holds bytes already read from the client (protocol sniffing): they
   * are sent first. `firstBytes`: wait for either side to speak before piping (see FirstBytes).
   */
  handle(client: net.Socket, head: Buffer | undefined, rt: ClusterRuntime, dest: TcpDestination, conn: L4Conn, greeting?: TunnelGreeting, firstBytes?: FirstBytes): void {
    const c = this.track(client, rt.def.name, dest, conn, greeting);
    client.setNoDelay(true);
    // Hold the client's bytes until the upstream is there (the pipe reads them then).
    client.pause();
    if (head !== undefined) c.headBytes = head.length;
    const now = c.startHr;
    const counters = this.opts.observer.counters(rt.def.name);
    if (!rt.admitConnection()) {
      counters.upstream_cx_overflow++;
      return this.refuse(c, L4.overflow.flag, L4.overflow.details);
    }
    c.rt = rt;
    c.admitted = true;
    const ep = rt.pick({}, now);
    if (ep === undefined) return this.refuse(c, L4.noHealthy.flag, L4.noHealthy.details);
    const limits = rt.def.policy.pool;
    const connect = this.opts.connector?.(rt.def, ep);
    let up: net.Socket;
    try {
      up = connect !== undefined ? connect(ep.address, ep.port) : net.connect({ host: ep.address, port: ep.port, allowHalfOpen: true, noDelay: true });
    } catch {
      // An mTLS destination and no workload certificate (expired, unreadable): refused as a connect failure.
      counters.upstream_cx_connect_fail++;
      return this.refuse(c, L4.noWorkloadCertificate.flag, L4.noWorkloadCertificate.details);
    }
    c.ep = ep;
    c.upstream = up;
    counters.upstream_cx_total++;
    counters.upstream_cx_active++;
    rt.attemptStarted(ep, now);
    const timer = limits.connectTimeoutMs > 0 ? setTimeout(() => {
      counters.upstream_cx_connect_timeout++;
      up.destroy(new Error('connect timeout'));
    }, limits.connectTimeoutMs) : undefined;
    const connectFailed = (err: NodeJS.ErrnoException): void => {
      clearTimeout(timer);
      if (err.message !== 'connect timeout') counters.upstream_cx_connect_fail++;
      rt.attemptFinished(ep, { kind: 'connect-failure' }, this.opts.now() - now, this.opts.now());
      c.flags = E.connectFailure.flag;
      c.details = detailsOf.connectError(err.code ?? err.message);
      // Tell the client the way a refused connection would: a reset, not a clean close (a CONNECT: its answer).
      if (!client.destroyed) this.refuse(c, c.flags, c.details);
    };
    up.once('error', connectFailed);
    up.once('close', () => {
      clearTimeout(timer);
      counters.upstream_cx_active--;
      if (c.connectedHr !== 0) rt.attemptFinished(ep, { kind: 'response', status: 200 }, c.connectedHr - now, this.opts.now());
    });
    // Over mTLS the connection is up once the handshake is done (a failed handshake is a connect failure, UF).
    up.once(connect !== undefined ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      up.off('error', connectFailed);
      up.on('error', noop); // from here the pipe reports errors
      c.connectedHr = this.opts.now();
      if (c.done || client.destroyed) { up.destroy(); return; }
      if (limits.tcpKeepalive?.timeMs) up.setKeepAlive(true, limits.tcpKeepalive.timeMs);
      if (greeting !== undefined) client.write(greeting.established);
      if (firstBytes === undefined) this.startPipe(c, up, head === undefined ? undefined : [head], undefined);
      else this.awaitFirstBytes(c, up, head, firstBytes);
    });
  }

  /** FirstBytes: the upstream is connected and nobody has spoken; whoever does first decides (bounded by the idle timeout). */
  private awaitFirstBytes(c: TcpConn, up: net.Socket, head: Buffer | undefined, classify: FirstBytes): void {
    const client = c.client;
    let held = head;
    const idle = c.rt!.def.policy.pool.tcpIdleTimeoutMs;
    const stop = (): void => {
      client.off('data', fromClient);
      client.off('end', toPipe);
      up.off('data', fromUpstream);
      up.off('end', toPipe);
      up.off('close', upstreamGone);
      if (timer !== undefined) clearTimeout(timer);
      client.pause();
      up.pause();
    };
    // A FIN from either side, or the app speaking: it is TCP (the pipe passes on what was said and the FIN).
    const toPipe = (): void => {
      stop();
      this.startPipe(c, up, held === undefined ? undefined : [held], undefined);
    };
    const fromUpstream = (d: Buffer): void => {
      stop();
      this.startPipe(c, up, held === undefined ? undefined : [held], [d]);
    };
    const fromClient = (d: Buffer): void => {
      held = held === undefined ? d : Buffer.concat([held, d]);
      const what = classify(held);
      if (what === 'more') return;
      stop();
      if (what === 'tcp') { this.startPipe(c, up, [held], undefined); return; }
      // HTTP after all: the HTTP path owns the client now; the upstream connection goes unused and unrecorded.
      c.handedOff = true;
      c.done = true;
      this.active.delete(client);
      this.release(c);
      up.destroy();
    };
    const upstreamGone = (): void => { stop(); resetSocket(client); };
    const timer = idle > 0 ? setTimeout(() => { stop(); c.details = DETAILS.tcpIdleTimeout; up.destroy(); client.destroy(); }, idle) : undefined;
    timer?.unref();
    client.on('data', fromClient);
    client.once('end', toPipe);
    up.on('data', fromUpstream);
    up.once('end', toPipe);
    up.once('close', upstreamGone);
    client.resume();
    up.resume();
  }

  private startPipe(c: TcpConn, up: net.Socket, clientHead: Buffer[] | undefined, upstreamHead: Buffer[] | undefined): void {
    c.headBytes = 0;
    c.meter = this.opts.observer.connectionOpened(this.record(c, 0, 0));
    this.reporting.add(c);
    if (this.reportTimer === undefined) {
      this.reportTimer = setInterval(() => this.report(), this.opts.reportIntervalMs ?? 15_000);
      this.reportTimer.unref();
    }
    const p = new BytePipe(c.client, up, c.rt!.def.policy.pool.tcpIdleTimeoutMs, c);
    c.pipe = p;
    p.start(clientHead, upstreamHead);
  }

  /**
   * Refuse a connection without an upstream (BlackHoleCluster, a denied inbound connection, an own port): a reset,
   * counted and recorded as a connection of `clusterName`.
   */
  reject(client: net.Socket, clusterName: string, dest: TcpDestination, conn: L4Conn, flag: string, details: string, greeting?: TunnelGreeting, head?: Buffer): void {
    const c = this.track(client, clusterName, dest, conn, greeting);
    if (head !== undefined) c.headBytes = head.length;
    this.refuse(c, flag, details);
  }

  /** Before any upstream: a reset (as a refused connection would look); a CONNECT client gets its error answer instead. */
  private refuse(c: TcpConn, flag: string, details: string): void {
    c.flags = flag;
    c.details = details;
    const g = c.greeting;
    if (g === undefined) { resetSocket(c.client); return; }
    c.client.end(g.failed(flag, details));
    c.client.resume();
  }

  private clientClosed(c: TcpConn): void {
    if (c.pipe !== undefined || c.handedOff) return; // the pipe tells when both sides are done
    // No pipe yet: an upstream still connecting is dropped at once.
    c.upstream?.destroy();
    this.finished(c);
  }

  /** @internal the connection is over (both sides closed, or refused): its one record. */
  finished(c: TcpConn): void {
    if (c.done) return;
    c.done = true;
    this.active.delete(c.client);
    this.reporting.delete(c);
    this.release(c);
    const p = c.pipe;
    if (p !== undefined) {
      if (p.end === 'idle_timeout') c.details = DETAILS.tcpIdleTimeout;
      else if (p.end === 'upstream_error') c.details = detailsOf.upstreamReset(p.errorCode ?? 'error');
    }
    const rec = this.record(c, p?.bytesUp ?? c.headBytes, p?.bytesDown ?? 0);
    rec.durationMs = this.opts.now() - c.startHr;
    this.opts.observer.connectionClosed(rec, c.meter);
  }

  private release(c: TcpConn): void {
    if (!c.admitted) return;
    c.admitted = false;
    c.rt!.releaseConnection();
  }

  /** The connection's record (Istio's TCP access-log entry and metric labels). */
  private record(c: TcpConn, received: number, sent: number): RequestRecord {
    const ep = c.ep;
    const d = c.dest;
    return {
      direction: d.direction,
      peer: c.conn.peer,
      startTime: c.startTime,
      durationMs: 0,
      method: '',
      path: '',
      protocol: '',
      authority: '',
      requestId: '',
      status: 0,
      flags: c.flags,
      details: c.details,
      bytesReceived: received,
      bytesSent: sent,
      upstreamHost: ep === undefined ? undefined : `${ep.address}:${ep.port}`,
      upstreamCluster: c.clusterName,
      attempts: c.upstream === undefined ? 0 : 1,
      routeName: d.routeName,
      downstreamRemoteAddress: c.conn.remote,
      downstreamLocalAddress: c.conn.local,
      destinationService: d.service,
      destinationServiceName: d.serviceName,
      destinationServiceNamespace: d.serviceNamespace,
      destinationVersion: d.version,
      requestHeaders: {},
    };
  }

  /** Close the open connections `which` selects (a PeerAuthentication change to STRICT: plaintext ones). */
  closeWhere(which: (conn: L4Conn, dest: TcpDestination) => boolean): number {
    let n = 0;
    for (const c of this.active.values()) {
      if (!which(c.conn, c.dest)) continue;
      n++;
      if (c.pipe !== undefined) c.pipe.stop();
      else { c.upstream?.destroy(); c.client.destroy(); }
    }
    return n;
  }

  /** Stop: every proxied connection is closed (the process is exiting). */
  closeAll(): void {
    for (const c of this.active.values()) {
      if (c.pipe !== undefined) c.pipe.stop();
      else { c.upstream?.destroy(); c.client.destroy(); }
    }
    if (this.reportTimer !== undefined) clearInterval(this.reportTimer);
    this.reportTimer = undefined;
  }
}

function noop(): void { /* 'close' follows */ }

function resetSocket(s: net.Socket): void {
  if (s.destroyed) return;
  try {
    s.resetAndDestroy();
  } catch {
    s.destroy(); // a TLS socket over the TCP one (an mTLS inbound connection)
  }
}
