/**
 * Composition root of `remora run`: wires the config store, sources, listeners, cluster manager,
 * telemetry and admin servers together, and owns the process lifecycle (ready, drain, exit).
 * No request logic lives here.
 */
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Snapshot } from './config/snapshot.js';
import { Http1Server, type Http1Request, type Http1Response, type Http1ServerOptions } from './http1/server.js';
import type { Http2ListenerOptions } from './http2/server.js';
import { LazyHttp2Listener } from './http2/lazy.js';
import { asksH2c } from './http2/h2c.js';
import { handleConnect } from './proxy/connect.js';
import type { DownstreamRequest, DownstreamResponse } from './proxy/downstream.js';
import { ConfigStore } from './discovery/config-store.js';
import { FileWatcher } from './discovery/file-watcher.js';
import type { KubernetesSource } from './discovery/k8s-source.js';
import { servicesFromEnv } from './discovery/env-discovery.js';
import { ClusterManager } from './upstream/cluster-manager.js';
import { handleOutbound, type OutboundEnv } from './proxy/outbound.js';
import { handleInbound, inboundClusters, type InboundEnv } from './proxy/inbound.js';
import { InboundAuthorizer } from './proxy/inbound-authz.js';
import type { Observer, ClusterCounters, ConnectionMeter } from './proxy/observer.js';
import { Metrics, type TcpMeter } from './telemetry/metrics.js';
import { AccessLogger } from './telemetry/access-log.js';
import type { ProxyTracing } from './telemetry/tracing.js';
import { TRACING_OFF } from './telemetry/tracing-off.js';
import { adminRoutes, createAdminServer } from './admin/server.js';
import { clustersText } from './cluster/merge.js';
import { forwardProbe, parseAppProbers, type AppProber } from './admin/app-probes.js';
import { connect as netConnect, createServer as netCreateServer, type Server as NetServer, type Socket as NetSocket } from 'node:net';
import { Logger } from './util/logger.js';
import { TcpProxy, type L4Conn } from './proxy/tcp-proxy.js';
import type { ConnectionVerdict } from './proxy/l4.js';
import type { OwnEndpoints } from './routing/l4-decision.js';
import { CaptureStats, inboundCapture, outboundCapture, type CaptureEnv } from './net/capture.js';
import { createOriginalDstReader, type OriginalDstReader } from './net/original-dst.js';
import { DEFAULT_STREAM_TIMEOUTS } from './proxy/stream-timeouts.js';
import { DEFAULT_TUNNEL_IDLE_TIMEOUT_MS, Tunnels } from './proxy/tunnel.js';
import { HeaderHygieneStats } from './proxy/headers.js';
import type { ClusterDef, ClusterRuntime, ClusterView, Endpoint, RequestRecord } from './model.js';
import { WorkloadCertStore, type WorkloadCert } from './security/workload-cert.js';
import { MtlsContext, TlsStats, peerOf, type MtlsOptions } from './security/mtls.js';
import { networkInterfaces } from 'node:os';
import { VERSION } from './version.js';
import type { Environment, RunOptions } from './run-options.js';


/** A listener: node:http for admin/stats/health, Http1Server for the data plane. */
type Server = HttpServer | Http1Server;

/** Data-plane listener limits: Envoy-like idle keep-alive, a 30 s head deadline (slowloris), node's 16 KiB head. */
const LISTENER_HTTP: Http1ServerOptions = { keepAliveTimeoutMs: 65_000, maxHeaderSize: 16_384 };
/** Drain: how long idle inbound keep-alive connections stay open (a request already sent on one is still served). */
const DRAIN_IDLE_GRACE_MS = 1000;
/** The same limits for HTTP/2 connections: idle 65 s, 16 KiB of headers; up to 1024 streams at once per connection. */
const LISTENER_H2: Http2ListenerOptions = { idleTimeoutMs: 65_000, maxHeaderListSize: 16_384, maxConcurrentStreams: 1024 };


export class Sidecar {
  readonly logger: Logger;
  readonly store: ConfigStore;
  readonly clusters: ClusterManager;
  readonly metrics: Metrics;
  private accessLog: AccessLogger | undefined;
  tracing: ProxyTracing = TRACING_OFF;
  private watcher: FileWatcher | undefined;
  private kube: KubernetesSource | undefined;
  private statusWriter: { stop(): Promise<void> } | undefined;
  private servers: Array<{ name: string; server: Server; address: string; port: number }> = [];
  /** IPv6 companions of the proxy listeners ([::1] beside 127.0.0.1, [::] beside 0.0.0.0), by listener name. */
  private companions: Array<{ name: string; server: NetServer }> = [];
  /** `inbound|<port>||` runtimes by address, then port (the app's address: 127.0.0.1 in explicit mode, the original destination when captured). */
  private inboundRuntimes = new Map<string, Map<number, ClusterRuntime>>();
  /** The proxy's own ports and this pod's addresses: never a passthrough destination nor an inbound target. */
  private readonly own: { ports: Set<number>; addresses: Set<string> } = { ports: new Set(), addresses: new Set() };
  /** Non-HTTP connections (passthrough, TCP services, server-first protocols) on both listeners. */
  readonly tcp: TcpProxy;
  /** What transparent capture decided, per listener. */
  readonly capture = { outbound: new CaptureStats(), inbound: new CaptureStats() };
  private originalDst: OriginalDstReader | undefined;
  private h2Listeners: { outbound?: LazyHttp2Listener; inbound?: LazyHttp2Listener } = {};
  private inboundH1: Http1Server | undefined;
  private outboundEnv: OutboundEnv;
  private inboundEnv: InboundEnv;
  /** NetworkPolicy + AuthorizationPolicy at the inbound listener (off until a policy selects this workload). */
  readonly authz: InboundAuthorizer;
  /** The workload certificate (`--cert-dir`), hot-rotated; its TLS material for new mTLS connections. */
  private certs: WorkloadCertStore | undefined;
  private mtlsCtx: MtlsContext | undefined;
  private listening = false;
  draining = false;
  healthFail = false;
  private active = 0;
  private startedAt = Date.now();
  private drainWaiters: Array<() => void> = [];
  private shuttingDown: Promise<number> | undefined;
  onExit: (code: number) => void = () => {};

  /**
   * `env`: the process environment as the CLI read it (--env-discovery's service variables, `%ENVIRONMENT(X)%` in
   * the access-log format, the resolver's variables); this class never reads `process.env` itself.
   */
  constructor(readonly opts: RunOptions, private readonly env: Environment = {}) {
    this.logger = new Logger(opts.logLevel);
    const log = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>): void => this.logger.log(level, msg, fields);
    this.store = new ConfigStore({
      paths: opts.configPaths,
      namespace: opts.namespace,
      clusterDomain: opts.clusterDomain,
      labels: opts.labels,
      outboundTrafficPolicy: opts.outboundTrafficPolicy,
      log,
    });
    const now = (): number => performance.now();
    this.clusters = new ClusterManager(Math.random, now, { keepAliveMs: 4000, headersTimeoutMs: 0 });
    if (opts.credentialsDir !== undefined) this.clusters.credentialsDir = opts.credentialsDir;
    // This workload as Istio's metric labels name it: the request metrics and the TCP proxy's share it.
    const app = opts.labels.app ?? opts.labels['app.kubernetes.io/name'];
    const version = opts.labels.version ?? opts.labels['app.kubernetes.io/version'];
    this.metrics = new Metrics({ sourceWorkload: opts.workloadName, sourceNamespace: opts.namespace, sourceApp: app, sourceVersion: version });
    if (opts.accessLog !== 'off') {
      this.accessLog = new AccessLogger(opts.accessLog === 'stdout' ? 'stdout' : opts.accessLog, opts.accessLogFormat, {
        env: this.env,
        onError: (err) => log('warn', `access log: ${err.code ?? err.message}`),
      });
    }
    if (this.accessLog) {
      const log = this.accessLog;
      this.metrics.observe('remora_access_log_dropped_lines_total', 'counter', 'Access-log lines dropped (slow or broken destination).', () => log.droppedLines());
    }
    // Tracing starts in start() (the OTel SDK is loaded only when an endpoint is set); requests read it through the env.
    this.metrics.observe('remora_tracing_spans_dropped_total', 'counter', 'Spans dropped by the bounded export queue or failed exports.', () => this.tracing.spansDropped());
    const metrics = this.metrics;
    const accessLog = this.accessLog;
    const observer: Observer = {
      record(rec: RequestRecord): void {
        metrics.recordRequest(rec);
        if (accessLog !== undefined) accessLog.log(rec);
      },
      counters(cluster: string): ClusterCounters {
        return metrics.cluster(cluster) as unknown as ClusterCounters;
      },
      connectionOpened(rec: RequestRecord): TcpMeter {
        return metrics.tcpOpened(rec);
      },
      connectionClosed(rec: RequestRecord, meter: ConnectionMeter | undefined): void {
        metrics.tcpClosed(rec, meter as TcpMeter | undefined);
        if (accessLog !== undefined) accessLog.log(rec);
      },
    };
    const base = {
      clusters: this.clusters,
      observer,
      rand: Math.random,
      now,
      retryBufferBytes: opts.retryBufferBytes,
      mirrorBodyBytes: opts.mirrorBodyBytes ?? opts.retryBufferBytes,
      draining: false,
      tracing: TRACING_OFF,
      tunnels: new Tunnels(opts.tunnelIdleTimeoutMs ?? DEFAULT_TUNNEL_IDLE_TIMEOUT_MS),
    };
    const tunnels = base.tunnels;
    for (const dir of ['outbound', 'inbound'] as const) {
      this.metrics.observe('remora_tunnels_active', 'gauge', 'Open upgraded connections (101 Switching Protocols: WebSocket and other Upgrade tunnels), by listener.', () => tunnels.active[dir], { direction: dir });
      this.metrics.observe('remora_tunnels_total', 'counter', 'Upgraded connections opened (101 Switching Protocols), by listener.', () => tunnels.total[dir], { direction: dir });
    }
    const clusters = this.clusters;
    for (const state of ['active', 'idle', 'queued'] as const) {
      this.metrics.observe('remora_upstream_connections', 'gauge', 'Upstream HTTP connections of every pool: active (carrying a request), idle (kept alive for reuse); queued: requests waiting for a connection.', () => clusters.connectionStats()[state], { state });
    }
    // Header and path hygiene (src/proxy/headers.ts, src/routing/request-target.ts), per listener.
    const hygiene = { outbound: new HeaderHygieneStats(), inbound: new HeaderHygieneStats() };
    for (const dir of ['outbound', 'inbound'] as const) {
      const st = hygiene[dir];
      this.metrics.observe('remora_dropped_headers_with_underscores_total', 'counter', 'Request headers dropped because their name has an underscore (--headers-with-underscores drop; Envoy dropped_headers_with_underscores).', () => st.droppedUnderscore, { direction: dir });
      this.metrics.observe('remora_requests_rejected_with_underscores_in_headers_total', 'counter', 'Requests answered 400 because a header name has an underscore (--headers-with-underscores reject; Envoy requests_rejected_with_underscores_in_headers).', () => st.rejectedUnderscore, { direction: dir });
      this.metrics.observe('remora_requests_rejected_connection_header_total', 'counter', 'Requests answered 400 because Connection nominated x-forwarded-for/-host/-proto, a pseudo-header, or 10 or more tokens.', () => st.rejectedConnection, { direction: dir });
    }
    const hygieneOpts = { pathNormalization: opts.pathNormalization ?? 'base', headersWithUnderscores: opts.headersWithUnderscores ?? 'allow' } as const;
    this.outboundEnv = { ...base, ...hygieneOpts, hygiene: hygiene.outbound, snapshot: () => this.store.current };
    const authz = new InboundAuthorizer({
      namespace: opts.namespace,
      labels: opts.labels,
      ...(opts.podName ? { podName: opts.podName } : {}),
      log: (level, msg, fields) => this.logger.log(level, msg, fields),
      authn: {
        allowHttpIssuers: opts.jwksAllowHttp ?? [],
        onStaleKeys: (url, error) => this.logger.log('warn', `JWKS refetch failed, the last good key set stays in use: ${error}`, { url }),
      },
    });
    this.authz = authz;
    this.metrics.observe('remora_inbound_authz_denied_total', 'counter', 'Inbound requests denied by NetworkPolicy or AuthorizationPolicy (403 RBAC: access denied).', () => authz.denied());
    this.metrics.observe('remora_inbound_authz_allowed_total', 'counter', 'Inbound requests checked against NetworkPolicy/AuthorizationPolicy and allowed (not counted while no policy applies).', () => authz.allowed());
    const capture = this.capture;
    this.inboundEnv = {
      ...base, ...hygieneOpts, hygiene: hygiene.inbound, appPorts: opts.appPorts, appHost: '127.0.0.1', authz, snapshot: () => this.store.current,
      // A Host the registry does not know is recorded as this workload's own service: its canonical name
      // (service.istio.io/canonical-name, else the app label, else the workload) as a Service of its namespace —
      // bounded, and the Service Istio would name in the usual case (a Service named after the app).
      localService: `${opts.labels['service.istio.io/canonical-name'] ?? app ?? opts.workloadName}.${opts.namespace}.svc.${opts.clusterDomain}`,
      onPlaintextRefused: () => { capture.inbound.mtlsRefused++; },
    };
    this.tcp = new TcpProxy({
      observer,
      now,
      connector: (def: ClusterDef, ep: Endpoint) => this.clusters.tcpConnector(def, ep),
    });
    const tcp = this.tcp;
    this.metrics.observe('remora_tcp_connections_active', 'gauge', 'Proxied TCP connections open now (both listeners).', () => tcp.active.size);
    this.metrics.observe('remora_tcp_connections_total', 'counter', 'TCP connections taken by the TCP proxy (passthrough, TCP routes, non-HTTP traffic).', () => tcp.opened);
    if (opts.certDir !== undefined) this.setupCertificates(opts.certDir);
    for (const [dir, st] of Object.entries(this.capture)) {
      const labels = { listener: dir };
      const help = 'Connections accepted by a proxy listener, by what transparent capture made of them (direct: addressed to the listener; http, tcp: redirected, by protocol).';
      this.metrics.observe('remora_listener_connections_total', 'counter', help, () => st.direct, { ...labels, kind: 'direct' });
      this.metrics.observe('remora_listener_connections_total', 'counter', help, () => st.http, { ...labels, kind: 'http' });
      this.metrics.observe('remora_listener_connections_total', 'counter', help, () => st.tcp, { ...labels, kind: 'tcp' });
      this.metrics.observe('remora_protocol_detection_timeouts_total', 'counter', 'Captured connections whose client sent nothing within --protocol-detection-timeout (outbound: taken as TCP; inbound: the app is dialled and whoever speaks first decides).', () => st.sniffTimeouts, labels);
    }
    const inb = this.capture.inbound;
    this.metrics.observe('remora_inbound_late_http_total', 'counter', 'Inbound connections silent past --protocol-detection-timeout whose first bytes, sent before the app said anything, were HTTP: served as HTTP with its policies.', () => inb.lateHttp);
    const refusedHelp = 'Inbound connections refused before any policy (reset): to one of the proxy\'s own ports, addressed to the inbound listener itself in capture mode (not redirected), or redirected in capture mode with an original destination that is not one of the pod\'s addresses.';
    this.metrics.observe('remora_inbound_refused_total', 'counter', refusedHelp, () => inb.refusedOwnPort, { reason: 'proxy_port' });
    this.metrics.observe('remora_inbound_refused_total', 'counter', refusedHelp, () => inb.refusedNotRedirected, { reason: 'not_redirected' });
    this.metrics.observe('remora_inbound_refused_total', 'counter', refusedHelp, () => inb.refusedNotPodAddress, { reason: 'not_pod_address' });
    const loopback = new Map<number, ClusterRuntime>();
    for (const def of inboundClusters(opts.appPorts, '127.0.0.1')) loopback.set(def.port, this.clusters.pin(def));
    this.inboundRuntimes.set('127.0.0.1', loopback);
    this.store.on('rejected', () => this.metrics.configReloadFailures.inc());
    this.store.on('update', (snap: Snapshot, prev: Snapshot | undefined) => {
      const mtlsBefore = this.peerAuthnKey();
      this.authz.update({ resources: snap.resources });
      if (this.peerAuthnKey() !== mtlsBefore) this.enforceStrict();
      this.warnUnenforcedMtls();
      // A snapshot that kept the previous one's clusters (compile-delta.ts: only VirtualServices changed) leaves the
      // runtimes, pools and cluster series as they are: walking every cluster and endpoint is the mesh's size.
      const sameClusters = prev !== undefined && prev.clusters === snap.clusters;
      if (!sameClusters) this.clusters.onSnapshot(snap);
      this.metrics.configReloads.inc();
      this.metrics.setConfigInfo(String(snap.version), snap.hash);
      if (!sameClusters) {
        const live = new Set<string>(snap.clusters.keys());
        for (const rt of this.clusters.clusters()) live.add(rt.def.name);
        this.metrics.retainClusters(live);
      }
      this.logger.log('info', `config version ${snap.version} applied`, { hash: snap.hash, resources: snap.resources.length, clusters: snap.clusters.size });
    });
  }

  /** Load config, bind listeners, start watching. Throws with the validation errors when the first config is invalid. */
  async start(): Promise<void> {
    if (this.opts.resolvConf !== '') {
      // Short names the registry lacks are looked up with the pod resolver's search path, as the app's own resolver would.
      const { readResolvConf } = await import('./discovery/resolv-conf.js');
      try {
        const rc = await readResolvConf(this.opts.resolvConf ?? '/etc/resolv.conf', this.env);
        this.store.opts.search = { domains: rc.search, ndots: rc.ndots };
      } catch (err) {
        this.logger.log('warn', `cannot read ${this.opts.resolvConf ?? '/etc/resolv.conf'}: ${(err as Error).message}`);
      }
    }
    if (this.opts.envDiscovery) {
      this.store.setExternal('env', { resources: [], services: servicesFromEnv(this.env, { namespace: this.opts.namespace, clusterDomain: this.opts.clusterDomain }) });
    }
    if (this.opts.traceEndpoint) {
      // Loaded on demand: the SDK and exporter cost start-up time and memory that most sidecars never use.
      const { createTracing } = await import('./telemetry/otel-sdk.js');
      this.tracing = createTracing({ endpoint: this.opts.traceEndpoint, samplingPercent: this.opts.traceSampling, serviceName: `${this.opts.labels.app ?? this.opts.workloadName}.${this.opts.namespace}` });
      this.outboundEnv.tracing = this.tracing;
      this.inboundEnv.tracing = this.tracing;
    }
    if (this.opts.kubernetes) {
      // Loaded on demand (the watch machinery; @kubernetes/client-node itself only for kubeconfig auth plugins).
      const { KubernetesSource } = await import('./discovery/k8s-source.js');
      const k = this.opts.kubernetes;
      const kopts: ConstructorParameters<typeof KubernetesSource>[0] = {
        clusterDomain: this.opts.clusterDomain,
        log: (level, msg, fields) => this.logger.log(level === 'debug' ? 'info' : level, `kubernetes: ${msg}`, fields),
      };
      if (k.kubeconfig) kopts.kubeconfig = k.kubeconfig;
      if (k.env) kopts.env = k.env;
      // A Sidecar from the API server that applies to this workload narrows what is cached to what it reaches.
      kopts.workload = { namespace: this.opts.namespace, labels: this.opts.labels };
      if (k.namespaces.length > 0) kopts.namespaces = k.namespaces;
      const kube = new KubernetesSource(kopts);
      this.kube = kube;
      await kube.start();
      // Sidecar egress scoping happens in the store, over every source alike.
      const push = (): void => {
        const cur = kube.current();
        this.authz.update({ pods: cur.pods, namespaceLabels: cur.namespaceLabels });
        this.store.setExternal('kubernetes', { resources: cur.resources, services: cur.services });
      };
      push();
      kube.on('change', push);
      if (k.gatewayStatus !== undefined) {
        // Loaded on demand, like the watch: most sidecars never write status.
        const { GatewayStatusWriter } = await import('./gateway/status-writer.js');
        const { kubeApi } = await import('./gateway/kube-api.js');
        const writer = new GatewayStatusWriter({
          api: kubeApi(await kube.kubeConfig()), identity: k.gatewayStatus.identity, leaseNamespace: k.gatewayStatus.leaseNamespace,
          ...(k.gatewayStatus.leaseDurationMs !== undefined ? {
            leaseDurationMs: k.gatewayStatus.leaseDurationMs, leaseRenewMs: Math.max(100, Math.floor(k.gatewayStatus.leaseDurationMs / 3)),
            leaseRetryMs: Math.max(100, Math.min(2000, Math.floor(k.gatewayStatus.leaseDurationMs / 5))),
          } : {}),
          clusterDomain: this.opts.clusterDomain, log: (level, msg) => this.logger.log(level, msg),
        });
        this.statusWriter = writer;
        const feed = (): void => { const cur = kube.current(); writer.update({ resources: cur.resources, services: cur.services }); };
        kube.on('change', feed);
        feed();
        writer.start();
      }
      const metrics = this.metrics;
      metrics.observe('remora_kubernetes_staleness_seconds', 'gauge', 'Seconds since the Kubernetes watch state was last known complete.', () => kube.current().stalenessMs(Date.now()) / 1000);
    }
    const ok = await this.store.reloadFiles(true);
    if (!ok) {
      const err = new Error(`invalid configuration:\n${(this.store.lastError?.errors ?? []).join('\n')}`);
      (err as Error & { configErrors?: string[] }).configErrors = this.store.lastError?.errors;
      throw err;
    }
    const onClose = this.onResponseClose;
    this.originalDst = createOriginalDstReader(this.opts.originalDst !== undefined ? { force: this.opts.originalDst } : {});
    this.logger.log(this.originalDst.kind === 'native' ? 'info' : 'warn', this.originalDst.description);
    // The pod's addresses before any listener: in capture mode an inbound original destination must be one of them.
    for (const a of localAddresses()) this.own.addresses.add(a);
    const capture: CaptureEnv = {
      reader: this.originalDst,
      snapshot: () => this.store.current,
      clusters: this.clusters,
      tcp: this.tcp,
      sniffTimeoutMs: this.opts.protocolDetectionTimeoutMs ?? 100,
      self: { labels: this.opts.labels, namespace: this.opts.namespace, clusterDomain: this.opts.clusterDomain },
      rand: Math.random,
      own: this.own as OwnEndpoints,
    };
    // One handler per direction for both protocols: cleartext HTTP/2 (prior knowledge) shares the ports and the
    // request model with HTTP/1.
    const onOutbound = (req: DownstreamRequest, res: DownstreamResponse): void => {
      this.active++;
      res.on('close', onClose);
      handleOutbound(req, res, this.outboundEnv);
    };
    const onInbound = (req: DownstreamRequest, res: DownstreamResponse): void => {
      this.active++;
      res.on('close', onClose);
      handleInbound(req, res, this.inboundEnv, this.inboundRuntimeFor);
    };
    // The stream timeouts are one policy for both codecs (src/proxy/stream-timeouts.ts): HTTP/1 requests and HTTP/2
    // streams alike.
    const headersTimeoutMs = this.opts.requestHeadersTimeoutMs ?? DEFAULT_STREAM_TIMEOUTS.headersTimeoutMs;
    const streamIdleTimeoutMs = this.opts.streamIdleTimeoutMs ?? DEFAULT_STREAM_TIMEOUTS.streamIdleTimeoutMs;
    // The HTTP/2 codec is imported when the first HTTP/2 connection or h2c upgrade arrives (src/http2/lazy.ts).
    const outboundH2 = new LazyHttp2Listener(onOutbound, { ...LISTENER_H2, headersTimeoutMs, streamIdleTimeoutMs });
    this.h2Listeners.outbound = outboundH2;
    this.observeHttp2('outbound', outboundH2);
    // HTTP/1.1 requests that ask for h2c (Upgrade: h2c) continue as HTTP/2 on the same connection; one the listener
    // does not take goes on as plain HTTP/1.1, never as an upgrade the app could take (asksH2c).
    const viaH2c = (h2: LazyHttp2Listener, next: typeof onOutbound) => {
      const plain = (req: Http1Request, res: Http1Response): void => {
        if (req.upgrade && asksH2c(req.rawHeaders)) req.upgrade = false;
        next(req, res);
      };
      return (req: Http1Request, res: Http1Response): void => {
        if (req.upgrade && h2.upgrade(req, res, plain)) return;
        plain(req, res);
      };
    };
    const connect = this.opts.connect === true;
    const toOutbound = viaH2c(outboundH2, onOutbound);
    const outboundHandler = connect
      ? (req: Http1Request, res: Http1Response): void => { if (req.method === 'CONNECT' && req.upgrade) handleConnect(req, res, capture); else toOutbound(req, res); }
      : toOutbound;
    const outbound = new Http1Server(outboundHandler, { ...LISTENER_HTTP, headersTimeoutMs, streamIdleTimeoutMs, connect, onConnection: outboundCapture({ ...capture, h2: outboundH2 }, this.capture.outbound) });
    this.observeHttp1('outbound', outbound);
    await this.listen('outbound', outbound, this.opts.outboundAddress, this.opts.outboundPort);
    if (this.opts.appPorts.length > 0) {
      const inboundH2 = new LazyHttp2Listener(onInbound, { ...LISTENER_H2, headersTimeoutMs, streamIdleTimeoutMs });
      this.h2Listeners.inbound = inboundH2;
      this.observeHttp2('inbound', inboundH2);
      const inbound = new Http1Server(viaH2c(inboundH2, onInbound), {
        ...LISTENER_HTTP,
        headersTimeoutMs,
        streamIdleTimeoutMs,
        onConnection: inboundCapture({
          ...capture,
          h2: inboundH2,
          inboundRuntime: this.inboundRuntimeFor,
          ...(this.certs !== undefined ? { mtls: () => (this.certs!.valid ? this.mtlsCtx : undefined), mtlsMode: (port: number | undefined) => this.authz.mtlsMode(port) } : {}),
          authorizeConnection: (conn, port) => this.authorizeConnection(conn, port),
          captureMode: this.opts.captureMode === true,
        }, this.capture.inbound),
      });
      this.inboundH1 = inbound;
      if (this.certs !== undefined) this.inboundEnv.plaintextRefused = (port) => this.authz.mtlsMode(port) === 'STRICT';
      this.observeHttp1('inbound', inbound);
      await this.listen('inbound', inbound, this.opts.inboundAddress, this.opts.inboundPort);
    }
    if (this.opts.serveAdmin !== false) await this.listenAdmin();
    // The proxy's own ports on loopback are never a passthrough destination: GET http://127.0.0.1:15000/… through
    // the outbound listener must not reach the admin API, nor a request loop back into a listener. A worker
    // (--concurrency) does not bind admin/stats/health itself: the configured ports stand in.
    const own = this.servers.map((s) => s.port);
    for (const p of [this.opts.outboundPort, this.opts.inboundPort, this.opts.adminPort, this.opts.statsPort, this.opts.healthPort]) if (p > 0) own.push(p);
    for (const p of own) this.own.ports.add(p);
    this.outboundEnv.own = this.own;
    this.watcher = new FileWatcher(this.opts.configPaths, () => { void this.store.reloadFiles(); });
    await this.watcher.start();
    this.listening = true;
    if ((this.opts.exitOnAppExitSeconds ?? 0) > 0 && this.opts.appPorts.length > 0) this.watchApp(this.opts.exitOnAppExitSeconds!);
  }

  /**
   * The `inbound|<port>||` cluster of an app port reached at `address` (127.0.0.1 in explicit mode, the original
   * destination when captured); ports beyond --app-port (captured by original destination) get one on first use.
   */
  private inboundRuntimeFor = (port: number, address: string): ClusterRuntime => {
    // Two lookups, no key string: this runs for every inbound request.
    let byPort = this.inboundRuntimes.get(address);
    if (byPort === undefined) this.inboundRuntimes.set(address, (byPort = new Map()));
    let rt = byPort.get(port);
    if (rt === undefined) {
      rt = this.clusters.pin(inboundClusters([port], address)[0]!);
      byPort.set(port, rt);
    }
    return rt;
  };

  /** AuthorizationPolicy (TCP semantics) and NetworkPolicy for an inbound L4 connection. */
  private authorizeConnection(conn: L4Conn, port: number): ConnectionVerdict {
    const a = this.authz;
    if (!a.enabled) return ALLOWED_CONNECTION;
    const p = conn.peer;
    const d = a.checkConnection({ ip: conn.remoteIp, port, ...(p !== undefined ? { principal: p.principal, namespace: p.namespace } : {}) });
    return d.allowed ? ALLOWED_CONNECTION : { allowed: false, details: d.details };
  }

  /** The PeerAuthentication in force, as a comparable string. */
  private peerAuthnKey(): string {
    const pa = this.authz.peerAuthn;
    return `${pa.mode}|${[...pa.ports].map(([p, m]) => `${p}=${m}`).join(',')}`;
  }

  /**
   * PeerAuthentication changed: plaintext connections already open to a port that is STRICT now are closed once their
   * in-flight requests finish, as Envoy drains the filter chains it replaced — HTTP/1: Connection: close on the
   * current response (idle ones at once); HTTP/2: GOAWAY; L4: closed. Only with a certificate (else STRICT cannot be
   * enforced and is warned about).
   */
  private enforceStrict(): void {
    if (this.certs === undefined) return;
    const strict = (port: number | undefined): boolean => this.authz.mtlsMode(port) === 'STRICT';
    let n = this.inboundH1?.drainWhere((sock, dst) => peerOf(sock) === undefined && strict(dst?.port)) ?? 0;
    n += this.h2Listeners.inbound?.closeWhere((peer, dst) => peer === undefined && strict(dst?.port)) ?? 0;
    n += this.tcp.closeWhere((conn, dest) => dest.direction === 'inbound' && conn.peer === undefined && strict(conn.port));
    if (n > 0) this.logger.log('info', `PeerAuthentication STRICT: closing ${n} plaintext inbound connection(s) once their requests finish`);
  }

  private async listenAdmin(): Promise<void> {
    const routes = adminRoutes(this);
    await this.listen('admin', createAdminServer(routes), '127.0.0.1', this.opts.adminPort);
    await this.listen('stats', createAdminServer(routes, ['/stats/prometheus']), '0.0.0.0', this.opts.statsPort);
    const probers = parseAppProbers(this.opts.appProbers);
    const probeHandler = (path: string): ((req: IncomingMessage, res: ServerResponse) => void) | undefined => {
      const p: AppProber | undefined = probers.get(path);
      return p === undefined ? undefined : (req, res) => forwardProbe(p, req, res);
    };
    await this.listen('health', createAdminServer(routes, ['/healthz/ready'], probeHandler), '0.0.0.0', this.opts.healthPort);
  }

  /** --exit-on-app-exit: once the app has listened, exit when its port stops accepting for `seconds` (Jobs, pain 4). */
  private watchApp(seconds: number): void {
    const port = this.opts.appPorts[0]!;
    let seenUp = false;
    let downSince = 0;
    const timer = setInterval(() => {
      const sock = netConnect({ port, host: '127.0.0.1' });
      sock.setTimeout(500);
      const result = (up: boolean): void => {
        sock.destroy();
        const now = Date.now();
        if (up) { seenUp = true; downSince = 0; return; }
        if (!seenUp) return;
        if (downSince === 0) downSince = now;
        if (now - downSince >= seconds * 1000) {
          clearInterval(timer);
          this.logger.log('info', `app port ${port} stopped listening ${seconds}s ago: exiting`);
          void this.shutdown('app exited');
        }
      };
      sock.once('connect', () => result(true));
      sock.once('error', () => result(false));
      sock.once('timeout', () => result(false));
    }, 500);
    timer.unref();
  }

  private onResponseClose = (): void => {
    this.active--;
    if (this.active === 0 && this.drainWaiters.length > 0) for (const w of this.drainWaiters.splice(0)) w();
  };

  private mtlsWarned = '';
  /** A STRICT PeerAuthentication applies but the sidecar has no certificate (no --cert-dir): it cannot be enforced. */
  private warnUnenforcedMtls(): void {
    if (this.certs !== undefined) return;
    const pa = this.authz.peerAuthn;
    const strict = pa.mode === 'STRICT' || [...pa.ports.values()].includes('STRICT');
    const key = strict ? pa.policies.join(',') : '';
    if (key === this.mtlsWarned) return;
    this.mtlsWarned = key;
    if (strict) this.logger.log('warn', 'PeerAuthentication STRICT applies to this workload but remora run has no --cert-dir: mutual TLS is not enforced (plaintext is accepted)', { policies: pa.policies });
  }

  /**
   * `--cert-dir`: load the workload certificate now and follow its rotations. New mTLS connections (both ways) use the
   * newest valid one; open connections keep theirs. Without a valid certificate the sidecar is not ready.
   */
  private setupCertificates(dir: string): void {
    const store = new WorkloadCertStore(dir);
    this.certs = store;
    // Envoy's ssl.* counters, kept across rotations (each rotation makes a new context).
    const tlsStats = { inbound: new TlsStats(), outbound: new TlsStats() };
    const mtlsOpts: MtlsOptions = {
      trustDomainAliases: this.opts.trustDomainAliases ?? [],
      inboundStats: tlsStats.inbound,
      outboundStats: tlsStats.outbound,
      log: (level, msg, fields) => this.logger.log(level, msg, fields),
    };
    store.on('rotated', (c: WorkloadCert) => {
      const before = this.mtlsCtx === undefined ? '' : [...this.mtlsCtx.trustDomains].join();
      this.mtlsCtx = new MtlsContext(c, mtlsOpts);
      // AuthorizationPolicy principals match across the trust domain and its aliases: recompiled when they change.
      if ([...this.mtlsCtx.trustDomains].join() !== before) this.authz.update({ trustDomains: [...this.mtlsCtx.trustDomains] });
      this.logger.log('info', 'workload certificate loaded', { identity: c.spiffeId, notAfter: c.notAfter.toISOString(), serial: c.serialNumber, bundle: pemCount(c.ca), crl: c.files.crl ?? null });
    });
    store.on('rejected', (err: string) => this.logger.log('warn', `workload certificate not taken: ${err}`));
    store.on('expired', () => this.logger.log('error', 'workload certificate expired: mTLS connections fail until a new one is written'));
    this.clusters.mtls = () => (store.valid ? this.mtlsCtx : undefined);
    this.inboundEnv.ownSpiffeId = () => this.mtlsCtx?.ownUri;
    this.metrics.observe('remora_workload_cert_expiry_timestamp_seconds', 'gauge', 'When the workload certificate in use expires (Unix time, seconds); 0 without one.', () => (store.current ? store.current.notAfter.getTime() / 1000 : 0));
    this.metrics.observe('remora_workload_cert_rotations_total', 'counter', 'Workload certificates taken after the first (rotations).', () => store.rotations);
    this.metrics.observe('remora_workload_cert_load_failures_total', 'counter', 'Changed certificate files that were not taken (incomplete, invalid, expired, another CA); the last good certificate stayed.', () => store.failures);
    for (const [direction, st] of Object.entries(tlsStats)) {
      this.metrics.observe('remora_ssl_handshakes_total', 'counter', 'Mutual TLS handshakes completed with a verified peer (Envoy ssl.handshake), by direction.', () => st.handshakes, { direction });
      this.metrics.observe('remora_ssl_connection_errors_total', 'counter', 'Mutual TLS handshakes that failed before verification: a protocol error, a timeout, a close (Envoy ssl.connection_error).', () => st.connectionErrors, { direction });
      for (const reason of ['fail_verify_error', 'fail_verify_san', 'fail_verify_no_cert'] as const) {
        this.metrics.observe('remora_ssl_verify_failures_total', 'counter', 'Peers refused by certificate verification, by Envoy\'s reason: fail_verify_error (the chain: another root, self-signed, expired, not yet valid, not a CA, wrong key usage, revoked), fail_verify_san (no SPIFFE identity, a trust domain not ours, an unexpected server identity), fail_verify_no_cert (no client certificate).', () => st.failures[reason], { direction, reason });
      }
    }
    for (const [listener, st] of Object.entries(this.capture)) {
      if (listener !== 'inbound') continue;
      this.metrics.observe('remora_inbound_mtls_connections_total', 'counter', 'Inbound connections terminated as mutual TLS (the peer certificate verified).', () => st.mtls);
      this.metrics.observe('remora_inbound_mtls_refused_total', 'counter', 'Inbound connections refused by PeerAuthentication: plaintext on a STRICT port, or a failed mTLS handshake.', () => st.mtlsRefused);
    }
    store.start();
  }

  /** The HTTP/2 side of a listener in /stats/prometheus: sessions, and the ones closed for floods or premature resets. */
  private observeHttp1(listener: string, h1: Http1Server): void {
    this.metrics.observe('remora_http1_requests_rejected_total', 'counter', 'HTTP/1 requests the listener answered itself for a framing or header error (400, 413, 431, 501, 505; Envoy downstream_cx_protocol_error), the connection closed after.', () => h1.stats.rejected, { listener });
    this.metrics.observe('remora_http1_responses_before_request_complete_total', 'counter', 'HTTP/1 responses that started before their request body had all arrived: the connection closed after them (Envoy downstream_rq_response_before_rq_complete).', () => h1.stats.responsesBeforeRequestComplete, { listener });
    this.metrics.observe('remora_http1_stream_idle_timeouts_total', 'counter', 'HTTP/1 requests ended by --stream-idle-timeout: no byte moved either way for that long (408 if unanswered, else a reset; Envoy downstream_rq_idle_timeout).', () => h1.stats.streamIdleTimeouts, { listener });
  }

  private observeHttp2(listener: string, h2: LazyHttp2Listener): void {
    // Read at scrape time: the listener's counters exist once its first HTTP/2 connection made it.
    const labels = { listener };
    this.metrics.observe('remora_http2_sessions_total', 'counter', 'Cleartext HTTP/2 connections served by a proxy listener.', () => h2.stats.sessions, labels);
    this.metrics.observe('remora_http2_protocol_error_closes_total', 'counter', 'HTTP/2 connections closed by a protocol error or a frame flood (SETTINGS/PING floods not read, CONTINUATION floods, invalid frames).', () => h2.stats.protocolErrors, labels);
    this.metrics.observe('remora_http2_premature_reset_closes_total', 'counter', 'HTTP/2 connections closed for too many premature stream resets (rapid reset, CVE-2023-44487; Envoy downstream_rq_too_many_premature_resets).', () => h2.stats.prematureResetCloses, labels);
    this.metrics.observe('remora_http2_stream_idle_timeouts_total', 'counter', 'HTTP/2 streams ended by --stream-idle-timeout: no byte moved either way for that long (408 if unanswered, else RST_STREAM; Envoy downstream_rq_idle_timeout).', () => h2.stats.streamIdleTimeouts, labels);
    this.metrics.observe('remora_http2_headers_timeouts_total', 'counter', 'HTTP/2 connections closed (GOAWAY) because a header block was not complete within --request-headers-timeout of its first byte.', () => h2.stats.headersTimeouts, labels);
    this.metrics.observe('remora_http2_streams_reset_by_peer_total', 'counter', 'HTTP/2 streams the client reset before their response was complete (Envoy downstream_rq_rx_reset).', () => h2.stats.streamsResetByPeer, labels);
  }

  private async listen(name: string, server: Server, address: string, port: number): Promise<void> {
    // The data-plane listeners answer malformed requests themselves (Http1Server); the admin ones are node:http.
    if (!(server instanceof Http1Server)) {
      server.on('clientError', (err: NodeJS.ErrnoException, socket: import('node:stream').Duplex) => {
        if (!socket.writable) { socket.destroy(); return; }
        const code = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
        const text = code === 431 ? 'Request Header Fields Too Large' : code === 408 ? 'Request Timeout' : 'Bad Request';
        socket.end(`HTTP/1.1 ${code} ${text}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      });
    }
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, address, () => { server.off('error', reject); resolve(); });
    });
    server.on('error', (err) => this.logger.log('error', `${name} listener: ${err.message}`));
    if (server instanceof Http1Server && (name === 'outbound' || name === 'inbound')) this.limitConnections(name, server);
    const a = server.address() as AddressInfo;
    this.servers.push({ name, server, address, port: a.port });
    if (server instanceof Http1Server && (name === 'outbound' || name === 'inbound')) await this.listenIPv6(name, server, address, a.port);
  }

  /**
   * IPv6 beside a proxy listener bound to IPv4's loopback or any-address: ip6tables REDIRECTs a pod's outbound IPv6
   * connections to [::1]:15001 and inbound ones to [<pod address>]:15006 (`remora iptables`, IPv6 rules), which an
   * IPv4-only listener would refuse — breaking the app's IPv6 traffic. The companion takes the same port on [::1]
   * (resp. [::], IPv6 only) and hands each connection to the listener, as if it had accepted it (original
   * destination, sniffing, HTTP/1, HTTP/2, TCP alike). A host without IPv6 (or the port taken there) keeps IPv4 alone.
   * The listener owns the connection from then on (adoptConnection): one --max-connections, overflow counter, drain
   * count and close for both families.
   */
  private async listenIPv6(name: string, primary: Http1Server, address: string, port: number): Promise<void> {
    const v6 = address === '127.0.0.1' ? '::1' : address === '0.0.0.0' ? '::' : undefined;
    if (v6 === undefined) return;
    const companion = netCreateServer({ allowHalfOpen: true, noDelay: true }, (sock) => adoptConnection(primary, companion, sock));
    try {
      await new Promise<void>((resolve, reject) => {
        companion.once('error', reject);
        companion.listen({ port, host: v6, ipv6Only: true }, () => { companion.off('error', reject); resolve(); });
      });
    } catch (err) {
      this.logger.log('info', `${name} listener: IPv4 only ([${v6}]:${port}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      return;
    }
    companion.on('error', (err) => this.logger.log('error', `${name} IPv6 listener: ${err.message}`));
    this.companions.push({ name, server: companion });
  }

  /**
   * --max-connections: node's net.Server closes a connection accepted past `maxConnections` at once ('drop'), as
   * Envoy's listener connection limit does, so a flood stops short of the fd limit and admin, upstream connects and
   * config reads keep their descriptors. Past the fd limit itself (EMFILE) libuv accepts and closes the waiting
   * connections with its reserve descriptor and accepting resumes by itself once fds are free (measured in
   * test/reliability/fd-exhaustion.test.ts).
   */
  private limitConnections(name: string, server: Http1Server): void {
    const st = { overflow: 0 };
    const max = this.opts.maxConnections ?? 0;
    if (max > 0) server.maxConnections = max;
    server.on('drop', () => { st.overflow++; });
    this.metrics.observe('remora_listener_connections_overflow_total', 'counter', 'Connections closed at accept because the listener had --max-connections open (Envoy downstream_cx_overflow).', () => st.overflow, { listener: name });
  }

  port(name: string): number {
    return this.servers.find((s) => s.name === name)?.port ?? 0;
  }

  readiness(): { ready: boolean; reason: string } {
    if (this.draining) return { ready: false, reason: 'DRAINING' };
    if (this.healthFail) return { ready: false, reason: 'HEALTH_CHECK_FAILED' };
    if (!this.listening) return { ready: false, reason: 'PRE_INITIALIZING' };
    if (!this.store.current) return { ready: false, reason: 'NO_CONFIG' };
    // With --cert-dir, mTLS is expected: no valid workload certificate, no traffic to or from other sidecars.
    if (this.certs !== undefined && !this.certs.valid) return { ready: false, reason: 'NO_VALID_WORKLOAD_CERTIFICATE' };
    return { ready: true, reason: 'LIVE' };
  }

  /** Stop taking new inbound work: ready turns 503, inbound answers Connection: close and stops accepting. */
  drainListeners(inboundOnly: boolean): void {
    this.draining = true;
    this.inboundEnv.draining = true;
    for (const s of this.servers) {
      if (s.name === 'inbound' || (!inboundOnly && s.name === 'outbound' && false)) {
        s.server.close();
        // Busy connections close after their response (Connection: close, inboundEnv.draining). Idle keep-alive ones
        // are closed after a grace, not at once: a client may have written a request on one that the proxy has not
        // read yet, and destroying the connection then resets a request that was already sent (seen at 1000 rps with
        // --concurrency 2: 2 of 200 in flight). Within the grace such a request is served, with Connection: close.
        const server = s.server;
        setTimeout(() => server.closeIdleConnections(), Math.min(DRAIN_IDLE_GRACE_MS, this.opts.drainSeconds * 1000)).unref();
      }
    }
    for (const c of this.companions) if (c.name === 'inbound') c.server.close();
    // HTTP/2 peers get GOAWAY: their open streams finish, new ones go elsewhere.
    this.h2Listeners.inbound?.closeIdleConnections();
  }

  /** SIGTERM / quitquitquit: drain inbound, keep outbound for the app, exit when idle or at the deadline. */
  shutdown(reason: string): Promise<number> {
    if (this.shuttingDown) return this.shuttingDown;
    this.shuttingDown = (async () => {
      this.logger.log('info', `draining (${reason}); up to ${this.opts.drainSeconds}s`, { active: this.active });
      this.drainListeners(true);
      const deadline = this.opts.drainSeconds * 1000;
      const until = Date.now() + deadline;
      if (this.active > 0) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, deadline);
          this.drainWaiters.push(() => { clearTimeout(t); resolve(); });
        });
      }
      // Inbound keep-alive connections still open get the idle grace (see drainListeners) before stop() cuts them.
      const graceEnd = Math.min(until, Date.now() + DRAIN_IDLE_GRACE_MS);
      while (Date.now() < graceEnd && (await this.inboundConnections()) > 0) await new Promise((r) => setTimeout(r, 25));
      // Proxied TCP connections (a database session, a tunnel) are not cut before the drain deadline either.
      while (this.tcp.active.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      await this.stop();
      this.logger.log('info', 'exiting', { active: this.active });
      this.onExit(0);
      return 0;
    })();
    return this.shuttingDown;
  }

  private inboundConnections(): Promise<number> {
    const s = this.servers.find((x) => x.name === 'inbound');
    if (s === undefined) return Promise.resolve(0);
    return new Promise((resolve) => s.server.getConnections((err, n) => resolve(err ? 0 : n)));
  }

  async stop(): Promise<void> {
    this.watcher?.stop();
    await this.statusWriter?.stop();
    this.kube?.stop();
    this.store.stop();
    for (const s of this.servers) {
      s.server.close();
      s.server.closeAllConnections();
    }
    for (const c of this.companions) c.server.close();
    this.tcp.closeAll();
    this.h2Listeners.outbound?.closeAllConnections();
    this.h2Listeners.inbound?.closeAllConnections();
    await this.clusters.destroy();
    await this.accessLog?.close();
    await this.tracing.shutdown(2000);
  }

  // === admin views ===

  clusterViews(): ClusterView[] {
    const now = performance.now();
    return this.clusters.clusters().map((c) => c.view(now));
  }

  clustersText(): string {
    return clustersText(this.clusterViews());
  }

  renderMetrics(): string {
    return this.metrics.render({ clusters: this.clusterViews() });
  }

  statsText(): string {
    return this.renderMetrics().split('\n').filter((l) => l && !l.startsWith('#')).join('\n') + '\n';
  }

  statsJson(): unknown {
    return { stats: this.statsText().trim().split('\n').map((l) => { const i = l.lastIndexOf(' '); return { name: l.slice(0, i), value: Number(l.slice(i + 1)) }; }) };
  }

  resetCounters(): void {
    this.metrics.reset();
  }

  serverInfo(): unknown {
    return {
      version: VERSION,
      state: this.draining ? 'DRAINING' : this.readiness().ready ? 'LIVE' : 'PRE_INITIALIZING',
      uptime_current_epoch: `${Math.round((Date.now() - this.startedAt) / 1000)}s`,
      node: { id: `sidecar~${this.opts.workloadName}.${this.opts.namespace}`, metadata: { NAMESPACE: this.opts.namespace, LABELS: this.opts.labels } },
      command_line_options: this.opts,
      ports: Object.fromEntries(this.servers.map((s) => [s.name, s.port])),
    };
  }

  listenerInfo(): Array<{ name: string; address: string; port: number }> {
    return this.servers.map((s) => ({ name: s.name, address: s.address, port: s.port }));
  }

  configDump(): unknown {
    const snap = this.store.current;
    return {
      version: snap?.version ?? null,
      hash: snap?.hash ?? null,
      lastReloadTime: this.store.lastReloadAt ? new Date(this.store.lastReloadAt).toISOString() : null,
      reloads: this.store.reloads,
      reloadFailures: this.store.reloadFailures,
      // The last accepted build: ms to read + parse the files, validate, compile.
      lastBuildMs: this.store.lastBuild ?? null,
      lastError: this.store.lastError ? { time: new Date(this.store.lastError.at).toISOString(), errors: this.store.lastError.errors } : null,
      ports: Object.fromEntries(this.servers.map((s) => [s.name, s.port])),
      capture: { mode: this.opts.captureMode === true ? 'redirect' : 'none', originalDestination: this.originalDst?.kind ?? null, description: this.originalDst?.description ?? null, protocolDetectionTimeoutMs: this.opts.protocolDetectionTimeoutMs ?? 100 },
      certificates: this.certs === undefined ? null : {
        dir: this.certs.dir,
        identity: this.certs.current?.spiffeId ?? null,
        notBefore: this.certs.current?.notBefore.toISOString() ?? null,
        notAfter: this.certs.current?.notAfter.toISOString() ?? null,
        serialNumber: this.certs.current?.serialNumber ?? null,
        valid: this.certs.valid,
        rotations: this.certs.rotations,
        trustBundleCertificates: this.certs.current === undefined ? 0 : pemCount(this.certs.current.ca),
        crl: this.certs.current?.files.crl ?? null,
        trustDomains: this.mtlsCtx === undefined ? [] : [...this.mtlsCtx.trustDomains],
        lastError: this.certs.lastError ?? null,
        peerAuthentication: { mode: this.authz.peerAuthn.mode, ports: Object.fromEntries(this.authz.peerAuthn.ports), policies: this.authz.peerAuthn.policies },
      },
      kubernetes: this.kube ? { stalenessMs: this.kube.current().stalenessMs(Date.now()), syncedAt: new Date(this.kube.current().syncedAt).toISOString(), versions: this.kube.versions() } : null,
      warnings: snap?.warnings ?? [],
      resources: (snap?.resources ?? []).map((r) => ({
        apiVersion: r.apiVersion, kind: r.kind, metadata: r.metadata, spec: r.spec, source: r.source,
      })),
      clusters: snap ? [...snap.clusters.values()].map((c) => ({ name: c.name, resolution: c.resolution, lb: c.policy.lb.kind, endpoints: c.endpoints.map((e) => e.key) })) : [],
    };
  }
}

const ALLOWED_CONNECTION: ConnectionVerdict = Object.freeze({ allowed: true });

/** This host's addresses other than loopback (a pod's interfaces): its own ports there are never a destination. */
function localAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (!a.internal) out.push(a.address);
  return out;
}

/** node's net.Server/Socket bookkeeping that `adoptConnection` moves (stable in node's net.js since 0.x). */
interface ServerCount { _connections: number; maxConnections: number }
interface OwnedSocket { server: NetServer; _server: NetServer }

/**
 * Hand a socket the IPv6 companion accepted over to the listener, which then owns it exactly as if it had accepted
 * it: counted in the listener's open connections (its `--max-connections`, `getConnections` for the drain, and its
 * 'close' waiting for it), or dropped past the limit and counted as the listener's overflow ('drop').
 */
export function adoptConnection(primary: NetServer, companion: NetServer, sock: NetSocket): void {
  const p = primary as unknown as ServerCount;
  (companion as unknown as ServerCount)._connections--;
  if (p.maxConnections > 0 && p._connections >= p.maxConnections) {
    primary.emit('drop', { localAddress: sock.localAddress, localPort: sock.localPort, remoteAddress: sock.remoteAddress, remotePort: sock.remotePort, remoteFamily: sock.remoteFamily });
    (sock as unknown as Partial<OwnedSocket>)._server = undefined;
    sock.destroy();
    return;
  }
  p._connections++;
  const owned = sock as unknown as OwnedSocket;
  owned.server = primary;
  owned._server = primary;
  primary.emit('connection', sock);
}

/** How many certificates a PEM bundle holds (the roots of a trust bundle, for the log). */
function pemCount(pem: string): number {
  return pem.split('-----BEGIN CERTIFICATE-----').length - 1;
}
