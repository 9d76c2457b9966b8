/**
 * The byte pipe for connections that are not HTTP (or that go to a TCP-declared port): Envoy's tcp_proxy filter as
 * Istio configures it. One upstream connection per downstream connection, to an endpoint the cluster's load balancer
 * picks (connection-level balancing), guarded by `tcp.maxConnections` (overflow: the client connection is closed, UO)
 * and `tcp.connectTimeout` (UF), with connect failures fed to outlier detection. Bytes flow both ways with backpressure
 * (Node's pipe: the writer's `false` pauses the reader), a FIN is passed on as a FIN (half-close), a reset as a
 * reset. Istio's TCP metrics are recorded (opened at connect; bytes every reportIntervalMs while open and the rest
 * at close; closed at close) and one access-log line is written at close.
 */
import net from 'node:net';
import type { ClusterDef, ClusterRuntime, Endpoint, RequestRecord } from '../model.js';
import type { Metrics, Counter } from '../telemetry/metrics.js';

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

export interface TcpIdentity {
  workload: string;
  namespace: string;
  app: string;
  version: string;
  clusterId: string;
}

export interface TcpProxyOptions {
  metrics: Metrics;
  identity: TcpIdentity;
  now(): number;
  /** One line per closed connection (Istio's TCP access-log entry). */
  accessLog?: (rec: RequestRecord) => void;
  /**
   * How often the byte counters of open connections are brought up to date (ms), as Istio's TCP stats report
   * long-lived connections periodically (15 s); the rest is added at close.
   */
  reportIntervalMs?: number;
  /** A connector for an upstream connection (Istio mTLS to a meshed endpoint), or undefined for plaintext TCP. */
  connector?: (def: ClusterDef, ep: Endpoint) => ((host: string, port: number) => net.Socket) | undefined;
}

interface TcpSeries {
  opened: Counter;
  closed: Counter;
  sent: Counter;
  received: Counter;
}

/**
 * An HTTP CONNECT tunnel's answers (the client waits for one before it sends): `established` is written to the
 * client once the upstream is connected, `failed(flag, details)` instead of the reset a plain TCP client gets when no
 * upstream can be had. Neither counts in the TCP byte metrics, nor does the CONNECT head read before (`baseIn`).
 */
export interface TunnelGreeting {
  established: Buffer;
  failed: (flag: string, details: string) => Buffer;
  /** Bytes the client's socket had read before the tunnel (the CONNECT request head). */
  baseIn: number;
}

/** Hop state of one proxied connection. */
interface Pipe {
  client: net.Socket;
  upstream: net.Socket | undefined;
  clusterName: string;
  ep: Endpoint | undefined;
  dest: TcpDestination;
  startTime: number;
  startHr: number;
  connectedHr: number;
  flags: string;
  details: string;
  series: TcpSeries | undefined;
  done: boolean;
  /** Bytes already added to the series (periodic reports), from the baselines below on. */
  reportedIn: number;
  reportedOut: number;
  /** Socket bytes that are not the tunnel's (a CONNECT head in, its answer out). */
  baseIn: number;
  baseOut: number;
  greeting: TunnelGreeting | undefined;
}

const UNKNOWN = 'unknown';

export class TcpProxy {
  /** Open downstream connections, for stop() and the drain count. */
  readonly active = new Set<net.Socket>();
  private readonly perCluster = new Map<string, number>();
  private readonly series = new Map<string, TcpSeries>();
  private cxOpenedTotal = 0;
  /** Connected pipes whose byte counters are reported while they are open. */
  private readonly reporting = new Set<Pipe>();
  private reportTimer: NodeJS.Timeout | undefined;

  /** Bring the byte counters of open connections up to date (every reportIntervalMs while any is open). */
  report(): void {
    for (const p of this.reporting) {
      const inb = p.client.bytesRead - p.baseIn;
      const out = p.client.bytesWritten - p.baseOut;
      p.series!.received.inc(inb - p.reportedIn);
      p.series!.sent.inc(out - p.reportedOut);
      p.reportedIn = inb;
      p.reportedOut = out;
    }
    if (this.reporting.size === 0 && this.reportTimer !== undefined) {
      clearInterval(this.reportTimer);
      this.reportTimer = undefined;
    }
  }

  constructor(private readonly opts: TcpProxyOptions) {
    opts.metrics.observe('remora_tcp_connections_active', 'gauge', 'Proxied TCP connections open now (both listeners).', () => this.active.size);
    opts.metrics.observe('remora_tcp_connections_total', 'counter', 'TCP connections taken by the TCP proxy (passthrough, TCP routes, non-HTTP traffic).', () => this.cxOpenedTotal);
  }

  /**
   * Proxy `client` to an endpoint of `rt`. `head` holds bytes already read from the client (protocol sniffing): they
   * are sent first. `endpoint` forces the endpoint (passthrough to the original destination).
   */
  handle(client: net.Socket, head: Buffer | undefined, rt: ClusterRuntime, dest: TcpDestination, greeting?: TunnelGreeting): void {
    const now = this.opts.now();
    const p: Pipe = {
      client, upstream: undefined, clusterName: rt.def.name, ep: undefined, dest, startTime: Date.now(), startHr: now, connectedHr: 0,
      flags: '-', details: '-', series: undefined, done: false, reportedIn: 0, reportedOut: 0,
      baseIn: greeting?.baseIn ?? 0, baseOut: client.bytesWritten, greeting,
    };
    this.cxOpenedTotal++;
    this.active.add(client);
    client.setNoDelay(true);
    client.on('error', () => { /* surfaces as 'close' */ });
    client.once('close', (hadError: boolean) => this.clientClosed(p, hadError));
    // Hold the client's bytes until the upstream is there (the pipe is set up on connect).
    client.pause();
    if (head !== undefined && head.length > 0) client.unshift(head);

    const name = rt.def.name;
    const limits = rt.def.policy.pool;
    const counters = this.opts.metrics.cluster(name);
    const open = this.perCluster.get(name) ?? 0;
    if (open >= limits.maxConnections) {
      counters.upstream_cx_overflow++;
      return this.fail(p, 'UO', 'upstream_cx_overflow');
    }
    const ep = rt.pick({}, now);
    if (ep === undefined) return this.fail(p, 'UH', 'no_healthy_upstream');
    const connect = this.opts.connector?.(rt.def, ep);
    let up: net.Socket;
    try {
      up = connect !== undefined ? connect(ep.address, ep.port) : net.connect({ host: ep.address, port: ep.port, allowHalfOpen: true, noDelay: true });
    } catch {
      // An mTLS destination and no workload certificate (expired, unreadable): refused as a connect failure.
      counters.upstream_cx_connect_fail++;
      return this.fail(p, 'UF', 'upstream_connect_error{no_workload_certificate}');
    }
    p.ep = ep;
    this.perCluster.set(name, open + 1);
    counters.upstream_cx_total++;
    counters.upstream_cx_active++;
    rt.attemptStarted(ep, now);
    p.upstream = up;
    const timer = limits.connectTimeoutMs > 0 ? setTimeout(() => {
      counters.upstream_cx_connect_timeout++;
      up.destroy(new Error('connect timeout'));
    }, limits.connectTimeoutMs) : undefined;
    // Over mTLS the connection is up once the handshake is done (a failed handshake is a connect failure, UF).
    up.once(connect !== undefined ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      p.connectedHr = this.opts.now();
      if (p.done) { up.destroy(); return; }
      if (limits.tcpKeepalive?.timeMs) up.setKeepAlive(true, limits.tcpKeepalive.timeMs);
      if (greeting !== undefined) {
        client.write(greeting.established);
        p.baseOut += greeting.established.length;
      }
      p.series = this.seriesFor(dest, '-');
      p.series.opened.inc();
      this.reporting.add(p);
      if (this.reportTimer === undefined) {
        this.reportTimer = setInterval(() => this.report(), this.opts.reportIntervalMs ?? 15_000);
        this.reportTimer.unref();
      }
      // Both directions: pipe() pauses the reader when the writer's buffer is full and passes 'end' on as a FIN.
      client.pipe(up);
      up.pipe(client);
      client.resume();
      const idle = limits.tcpIdleTimeoutMs;
      if (idle > 0) {
        // Istio's tcp idleTimeout: the connection closes after this long without bytes either way.
        const onIdle = (): void => { p.details = 'idle_timeout'; up.destroy(); client.destroy(); };
        client.setTimeout(idle, onIdle);
        up.setTimeout(idle, onIdle);
      }
    });
    up.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (p.connectedHr === 0) {
        if (err.message !== 'connect timeout') counters.upstream_cx_connect_fail++;
        rt.attemptFinished(ep, { kind: 'connect-failure' }, this.opts.now() - now, this.opts.now());
        p.flags = 'UF';
        p.details = `upstream_connect_error{${err.code ?? err.message}}`;
        // Tell the client the way a refused connection would: a reset, not a clean close (a CONNECT: its answer).
        if (!client.destroyed) this.refuse(p);
        return;
      }
      p.details = `upstream_reset{${err.code ?? err.message}}`;
      // A reset upstream is passed on as a reset.
      if (err.code === 'ECONNRESET' && !client.destroyed) client.resetAndDestroy();
      else client.destroy();
    });
    up.once('close', () => {
      const cur = this.perCluster.get(name) ?? 1;
      this.perCluster.set(name, cur - 1);
      counters.upstream_cx_active--;
      if (p.connectedHr !== 0) rt.attemptFinished(ep, { kind: 'response', status: 200 }, p.connectedHr - now, this.opts.now());
      if (!client.destroyed) {
        // The upstream is gone both ways; a FIN already reached the client through pipe(). Close what is left once
        // the client has nothing more to read.
        if (client.writableEnded) client.destroySoon(); else client.end();
      }
    });
    client.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET' && !up.destroyed) up.resetAndDestroy();
    });
    // The client is gone: an upstream still connecting is dropped at once; a connected one finishes writing first.
    client.once('close', () => {
      if (up.destroyed) return;
      if (p.connectedHr === 0) up.destroy();
      else up.destroySoon();
    });
  }

  /**
   * Refuse a connection without an upstream (BlackHoleCluster, a denied inbound connection): a reset, counted and
   * logged as a connection of `clusterName`.
   */
  reject(client: net.Socket, clusterName: string, dest: TcpDestination, flag: string, details: string, greeting?: TunnelGreeting): void {
    const p: Pipe = {
      client, upstream: undefined, clusterName, ep: undefined, dest, startTime: Date.now(), startHr: this.opts.now(), connectedHr: 0,
      flags: flag, details, series: undefined, done: false, reportedIn: 0, reportedOut: 0, baseIn: greeting?.baseIn ?? 0, baseOut: client.bytesWritten, greeting,
    };
    this.cxOpenedTotal++;
    this.active.add(client);
    client.on('error', () => { /* surfaces as 'close' */ });
    client.once('close', () => this.clientClosed(p, true));
    this.refuse(p);
  }

  /** Before any upstream: close the client with a reset (as a refused connection would look) and log it. */
  private fail(p: Pipe, flag: string, details: string): void {
    p.flags = flag;
    p.details = details;
    this.refuse(p);
  }

  /** A reset; a CONNECT client gets its error answer and a clean close instead. */
  private refuse(p: Pipe): void {
    const g = p.greeting;
    if (g === undefined) { p.client.resetAndDestroy(); return; }
    const answer = g.failed(p.flags, p.details);
    p.baseOut += answer.length;
    p.client.end(answer);
    p.client.resume();
  }

  private clientClosed(p: Pipe, _hadError: boolean): void {
    if (p.done) return;
    p.done = true;
    this.active.delete(p.client);
    const up = p.upstream;
    // Bytes as the client saw them: received from the client, sent to the client.
    const received = p.client.bytesRead - p.baseIn;
    const sent = p.client.bytesWritten - p.baseOut;
    if (p.series !== undefined) {
      this.reporting.delete(p);
      p.series.closed.inc();
      p.series.received.inc(received - p.reportedIn);
      p.series.sent.inc(sent - p.reportedOut);
    } else if (p.flags !== '-' || p.upstream === undefined) {
      // A connection refused locally is opened and closed at once, with its flag (Istio counts these too).
      const s = this.seriesFor(p.dest, p.flags);
      s.opened.inc();
      s.closed.inc();
    }
    const log = this.opts.accessLog;
    if (log === undefined) return;
    const ep = p.ep;
    const rec: RequestRecord = {
      direction: p.dest.direction,
      startTime: p.startTime,
      durationMs: this.opts.now() - p.startHr,
      method: '',
      path: '',
      protocol: '',
      authority: '',
      requestId: '',
      status: 0,
      flags: p.flags,
      details: p.details,
      bytesReceived: received,
      bytesSent: sent,
      upstreamHost: ep === undefined ? undefined : `${ep.address}:${ep.port}`,
      upstreamCluster: p.clusterName,
      attempts: up === undefined ? 0 : 1,
      routeName: p.dest.routeName,
      downstreamRemoteAddress: `${p.client.remoteAddress ?? ''}:${p.client.remotePort ?? 0}`,
      downstreamLocalAddress: `${p.client.localAddress ?? ''}:${p.client.localPort ?? 0}`,
      destinationService: p.dest.service,
      destinationServiceName: p.dest.serviceName,
      destinationServiceNamespace: p.dest.serviceNamespace,
      destinationVersion: p.dest.version,
      requestHeaders: {},
    };
    log(rec);
  }

  /** Istio's four TCP series for a destination and flag set, created on first use. */
  private seriesFor(d: TcpDestination, flags: string): TcpSeries {
    const key = `${d.direction}\u0000${d.service}\u0000${d.version}\u0000${flags}`;
    let s = this.series.get(key);
    if (s !== undefined) return s;
    const labels = tcpLabels(this.opts.identity, d, flags);
    const m = this.opts.metrics;
    s = {
      opened: m.counter('istio_tcp_connections_opened_total', 'TCP connections opened (Istio standard metric).', labels),
      closed: m.counter('istio_tcp_connections_closed_total', 'TCP connections closed (Istio standard metric).', labels),
      sent: m.counter('istio_tcp_sent_bytes_total', 'Bytes sent to the downstream during TCP connections (Istio standard metric).', labels),
      received: m.counter('istio_tcp_received_bytes_total', 'Bytes received from the downstream during TCP connections (Istio standard metric).', labels),
    };
    this.series.set(key, s);
    return s;
  }

  /** Stop: every proxied connection is closed (the process is exiting). */
  closeAll(): void {
    for (const c of this.active) c.destroy();
    if (this.reportTimer !== undefined) clearInterval(this.reportTimer);
    this.reportTimer = undefined;
  }
}

/** Istio's TCP metric labels: the request labels without response_code/grpc_response_status, request_protocol "tcp". */
export function tcpLabels(id: TcpIdentity, d: TcpDestination, flags: string): Record<string, string> {
  const svcNs = d.serviceNamespace || UNKNOWN;
  const local = {
    workload: id.workload || UNKNOWN, namespace: id.namespace || UNKNOWN, app: id.app || UNKNOWN, version: id.version || UNKNOWN,
  };
  const outbound = d.direction === 'outbound';
  return {
    reporter: outbound ? 'source' : 'destination',
    source_workload: outbound ? local.workload : UNKNOWN,
    source_workload_namespace: outbound ? local.namespace : UNKNOWN,
    source_principal: UNKNOWN,
    source_app: outbound ? local.app : UNKNOWN,
    source_version: outbound ? local.version : UNKNOWN,
    source_cluster: outbound ? id.clusterId : UNKNOWN,
    destination_workload: outbound ? UNKNOWN : local.workload,
    destination_workload_namespace: outbound ? svcNs : local.namespace,
    destination_principal: UNKNOWN,
    destination_app: outbound ? UNKNOWN : local.app,
    destination_version: outbound ? (d.version || UNKNOWN) : local.version,
    destination_service: d.service || UNKNOWN,
    destination_service_name: d.serviceName || UNKNOWN,
    destination_service_namespace: svcNs,
    destination_cluster: outbound ? UNKNOWN : id.clusterId,
    request_protocol: 'tcp',
    response_flags: flags,
    connection_security_policy: outbound ? UNKNOWN : 'none',
  };
}
