/**
 * Composition root of `remora run`: wires the config store, sources, listeners, cluster manager,
 * telemetry and admin servers together, and owns the process lifecycle (ready, drain, exit).
 * No request logic lives here. The parts it wires have their own modules beside it: app-listeners.ts (binding and
 * closing listeners), app-metrics.ts (the remora_* registrations), app-drain.ts (in-flight requests, the shutdown
 * sequence), app-mtls.ts (certificates, PeerAuthentication on open connections), app-kubernetes.ts (the API-server
 * watch) and app-views.ts (the admin API's views).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Snapshot } from './config/snapshot.js';
import { Http1Server, type Http1Request, type Http1Response, type Http1ServerOptions } from './http1/server.js';
import type { Http2ListenerOptions } from './http2/server.js';
import { LazyHttp2Listener } from './http2/lazy.js';
import { asksH2c } from './http2/h2c.js';
import { handleConnect } from './proxy/connect.js';
import type { DownstreamRequest, DownstreamResponse } from './proxy/downstream.js';
import { ConfigStore } from './discovery/config-store.js';
import { changedClusters } from './config/compile.js';
import { deltaKinds } from './config/compile-delta.js';
import { startHeapShrinker, type HeapShrinker } from './util/heap-shrink.js';
import { FileWatcher } from './discovery/file-watcher.js';
import type { KubernetesSource } from './discovery/k8s-source.js';
import { servicesFromEnv } from './discovery/env-discovery.js';
import { ClusterManager } from './upstream/cluster-manager.js';
import { handleOutbound, type OutboundEnv } from './proxy/outbound.js';
import { handleInbound, inboundClusters, type InboundEnv } from './proxy/inbound.js';
import { InboundAuthorizer } from './proxy/inbound-authz.js';
import { Metrics } from './telemetry/metrics.js';
import { recordingObserver } from './telemetry/observer.js';
import { AccessLogger } from './telemetry/access-log.js';
import type { ProxyTracing } from './telemetry/tracing.js';
import { TRACING_OFF } from './telemetry/tracing-off.js';
import { adminRoutes, createAdminServer } from './admin/server.js';
import { clustersText } from './cluster/merge.js';
import { forwardProbe, parseAppProbers, type AppProber } from './admin/app-probes.js';
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
import { WorkloadCertStore } from './security/workload-cert.js';
import type { MtlsContext } from './security/mtls.js';
import { networkInterfaces } from 'node:os';
import type { Environment, RunOptions } from './run-options.js';
import { InFlight, drainThenStop, watchApp } from './app-drain.js';
import { Listeners } from './app-listeners.js';
import { observeCapture, observeCertificates, observeHttp1, observeHttp2, observeKubernetes, observeProxy } from './app-metrics.js';
import { closePlaintextToStrict, followCertificates, peerAuthnKey, warnUnenforcedMtls } from './app-mtls.js';
import { startKubernetes } from './app-kubernetes.js';
import { configDump, serverInfo, statsJson, statsText } from './app-views.js';

export { adoptConnection } from './net/ipv6-companion.js';

/** Data-plane listener limits: Envoy-like idle keep-alive, a 30 s head deadline (slowloris), node's 16 KiB head. */
const LISTENER_HTTP: Http1ServerOptions = { keepAliveTimeoutMs: 65_000, maxHeaderSize: 16_384 };
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
  /**
   * Gives back the heap a burst of config changes left once they stop (src/util/heap-shrink.ts): every applied config
   * (file edits, API watch) counts as a change; after start-up too. Undefined without the addon or with
   * REMORA_HEAP_SHRINK=0.
   */
  private heapShrinker: HeapShrinker | undefined;
  private statusWriter: { stop(): Promise<void> } | undefined;
  /** The bound listeners (admin, stats, health, outbound, inbound) and their IPv6 companions. */
  private readonly listeners: Listeners;
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
  /** Requests in flight (the drain waits for them). */
  private readonly inFlight = new InFlight();
  private startedAt = Date.now();
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
    this.listeners = new Listeners(this.logger, this.metrics, opts.maxConnections ?? 0);
    if (opts.accessLog !== 'off') {
      this.accessLog = new AccessLogger(opts.accessLog === 'stdout' ? 'stdout' : opts.accessLog, opts.accessLogFormat, {
        env: this.env,
        onError: (err) => log('warn', `access log: ${err.code ?? err.message}`),
      });
    }
    // Tracing starts in start() (the OTel SDK is loaded only when an endpoint is set); requests read it through the env.
    const observer = recordingObserver(this.metrics, this.accessLog);
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
    // Header and path hygiene (src/proxy/headers.ts, src/routing/request-target.ts), per listener.
    const hygiene = { outbound: new HeaderHygieneStats(), inbound: new HeaderHygieneStats() };
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
    observeProxy(this.metrics, { accessLog: this.accessLog, tracing: () => this.tracing, tunnels: base.tunnels, clusters: this.clusters, hygiene, authz, tcp: this.tcp });
    if (opts.certDir !== undefined) this.setupCertificates(opts.certDir);
    observeCapture(this.metrics, this.capture);
    const loopback = new Map<number, ClusterRuntime>();
    for (const def of inboundClusters(opts.appPorts, '127.0.0.1')) loopback.set(def.port, this.clusters.pin(def));
    this.inboundRuntimes.set('127.0.0.1', loopback);
    this.store.on('rejected', () => this.metrics.configReloadFailures.inc());
    this.store.on('update', (snap: Snapshot, prev: Snapshot | undefined) => {
      const mtlsBefore = peerAuthnKey(this.authz.peerAuthn);
      // A snapshot compiled from the previous one changed only routing and registry kinds: the same policies.
      this.authz.update({ resources: snap.resources, samePolicies: prev !== undefined && deltaKinds(snap).length > 0 });
      if (peerAuthnKey(this.authz.peerAuthn) !== mtlsBefore) this.enforceStrict();
      this.warnUnenforcedMtls();
      this.metrics.configReloads.inc();
      this.metrics.setConfigInfo(String(snap.version), snap.hash);
      // A snapshot compiled from the previous one (compile-delta.ts) names the clusters it changed: the runtimes, pools
      // and cluster series of those alone are updated (none when only VirtualServices changed); walking every cluster
      // and endpoint is the mesh's size.
      const changed = prev === undefined ? undefined : prev.clusters === snap.clusters ? new Set<string>() : changedClusters(snap, prev);
      if (changed === undefined) {
        this.clusters.onSnapshot(snap);
        const live = new Set<string>(snap.clusters.keys());
        for (const rt of this.clusters.clusters()) live.add(rt.def.name);
        this.metrics.retainClusters(live);
      } else if (changed.size > 0) {
        this.clusters.onClustersChanged(snap, changed, prev!.clusters);
        const inUse = new Set(this.clusters.clusters().map((rt) => rt.def.name));
        this.metrics.forgetClusters([...changed].filter((n) => !snap.clusters.has(n) && !inUse.has(n)));
      }
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
    this.heapShrinker = startHeapShrinker();
    if (this.heapShrinker !== undefined) { const h = this.heapShrinker; this.store.on('update', () => h.noteChange()); }
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
      const kube = await startKubernetes({
        opts: this.opts, logger: this.logger, store: this.store, authz: this.authz, heapShrinker: this.heapShrinker,
        source: (kube) => { this.kube = kube; },
        statusWriter: (writer) => { this.statusWriter = writer; },
      }, this.opts.kubernetes);
      observeKubernetes(this.metrics, kube);
    }
    const ok = await this.store.reloadFiles(true);
    if (!ok) {
      const err = new Error(`invalid configuration:\n${(this.store.lastError?.errors ?? []).join('\n')}`);
      (err as Error & { configErrors?: string[] }).configErrors = this.store.lastError?.errors;
      throw err;
    }
    const onClose = this.inFlight.ended;
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
      this.inFlight.active++;
      res.on('close', onClose);
      handleOutbound(req, res, this.outboundEnv);
    };
    const onInbound = (req: DownstreamRequest, res: DownstreamResponse): void => {
      this.inFlight.active++;
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
    observeHttp2(this.metrics, 'outbound', outboundH2);
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
    observeHttp1(this.metrics, 'outbound', outbound);
    await this.listeners.listen('outbound', outbound, this.opts.outboundAddress, this.opts.outboundPort);
    if (this.opts.appPorts.length > 0) {
      const inboundH2 = new LazyHttp2Listener(onInbound, { ...LISTENER_H2, headersTimeoutMs, streamIdleTimeoutMs });
      this.h2Listeners.inbound = inboundH2;
      observeHttp2(this.metrics, 'inbound', inboundH2);
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
      observeHttp1(this.metrics, 'inbound', inbound);
      await this.listeners.listen('inbound', inbound, this.opts.inboundAddress, this.opts.inboundPort);
    }
    if (this.opts.serveAdmin !== false) await this.listenAdmin();
    // The proxy's own ports on loopback are never a passthrough destination: GET http://127.0.0.1:15000/… through
    // the outbound listener must not reach the admin API, nor a request loop back into a listener. A worker
    // (--concurrency) does not bind admin/stats/health itself: the configured ports stand in.
    const own = this.listeners.servers.map((s) => s.port);
    for (const p of [this.opts.outboundPort, this.opts.inboundPort, this.opts.adminPort, this.opts.statsPort, this.opts.healthPort]) if (p > 0) own.push(p);
    for (const p of own) this.own.ports.add(p);
    this.outboundEnv.own = this.own;
    this.watcher = new FileWatcher(this.opts.configPaths, (since) => { void this.store.reloadFiles(false, since); });
    await this.watcher.start();
    this.listening = true;
    if ((this.opts.exitOnAppExitSeconds ?? 0) > 0 && this.opts.appPorts.length > 0) watchApp(this.opts.appPorts[0]!, this.opts.exitOnAppExitSeconds!, this.logger, (reason) => this.shutdown(reason));
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

  /** PeerAuthentication changed: plaintext connections open to a port STRICT now are closed (src/app-mtls.ts). */
  private enforceStrict(): void {
    if (this.certs === undefined) return;
    closePlaintextToStrict(this.authz, { h1: this.inboundH1, h2: this.h2Listeners.inbound, tcp: this.tcp }, this.logger);
  }

  private async listenAdmin(): Promise<void> {
    const routes = adminRoutes(this);
    await this.listeners.listen('admin', createAdminServer(routes), '127.0.0.1', this.opts.adminPort);
    await this.listeners.listen('stats', createAdminServer(routes, ['/stats/prometheus']), '0.0.0.0', this.opts.statsPort);
    const probers = parseAppProbers(this.opts.appProbers);
    const probeHandler = (path: string): ((req: IncomingMessage, res: ServerResponse) => void) | undefined => {
      const p: AppProber | undefined = probers.get(path);
      return p === undefined ? undefined : (req, res) => forwardProbe(p, req, res);
    };
    await this.listeners.listen('health', createAdminServer(routes, ['/healthz/ready'], probeHandler), '0.0.0.0', this.opts.healthPort);
  }

  private mtlsWarned = '';
  /** A STRICT PeerAuthentication applies but the sidecar has no certificate (no --cert-dir): it cannot be enforced. */
  private warnUnenforcedMtls(): void {
    if (this.certs !== undefined) return;
    this.mtlsWarned = warnUnenforcedMtls(this.authz.peerAuthn, this.mtlsWarned, this.logger);
  }

  /**
   * `--cert-dir`: load the workload certificate now and follow its rotations. New mTLS connections (both ways) use the
   * newest valid one; open connections keep theirs. Without a valid certificate the sidecar is not ready.
   */
  private setupCertificates(dir: string): void {
    const store = new WorkloadCertStore(dir);
    this.certs = store;
    const tlsStats = followCertificates(store, {
      trustDomainAliases: this.opts.trustDomainAliases ?? [], logger: this.logger, authz: this.authz,
      context: () => this.mtlsCtx, setContext: (ctx) => { this.mtlsCtx = ctx; },
    });
    this.clusters.mtls = () => (store.valid ? this.mtlsCtx : undefined);
    this.inboundEnv.ownSpiffeId = () => this.mtlsCtx?.ownUri;
    observeCertificates(this.metrics, store, tlsStats, this.capture);
    store.start();
  }

  port(name: string): number {
    return this.listeners.port(name);
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
    this.listeners.closeInbound(inboundOnly, this.opts.drainSeconds);
    // HTTP/2 peers get GOAWAY: their open streams finish, new ones go elsewhere.
    this.h2Listeners.inbound?.closeIdleConnections();
  }

  /** SIGTERM / quitquitquit: drain inbound, keep outbound for the app, exit when idle or at the deadline (src/app-drain.ts). */
  shutdown(reason: string): Promise<number> {
    if (this.shuttingDown) return this.shuttingDown;
    this.shuttingDown = drainThenStop({
      logger: this.logger,
      inFlight: this.inFlight,
      drainSeconds: this.opts.drainSeconds,
      drainListeners: (inboundOnly) => this.drainListeners(inboundOnly),
      inboundConnections: () => this.listeners.inboundConnections(),
      tcpActive: () => this.tcp.active.size,
      stop: () => this.stop(),
      onExit: (code) => this.onExit(code),
    }, reason);
    return this.shuttingDown;
  }

  async stop(): Promise<void> {
    this.watcher?.stop();
    this.heapShrinker?.stop();
    await this.statusWriter?.stop();
    this.kube?.stop();
    this.store.stop();
    this.listeners.closeAll();
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
    return statsText(this.renderMetrics());
  }

  statsJson(): unknown {
    return statsJson(this.statsText());
  }

  resetCounters(): void {
    this.metrics.reset();
  }

  serverInfo(): unknown {
    return serverInfo({ opts: this.opts, servers: this.listeners.servers, draining: this.draining, ready: () => this.readiness().ready, startedAt: this.startedAt });
  }

  listenerInfo(): Array<{ name: string; address: string; port: number }> {
    return this.listeners.info();
  }

  configDump(): unknown {
    return configDump({ opts: this.opts, store: this.store, servers: this.listeners.servers, originalDst: this.originalDst, certs: this.certs, mtlsCtx: this.mtlsCtx, authz: this.authz, kube: this.kube });
  }
}

const ALLOWED_CONNECTION: ConnectionVerdict = Object.freeze({ allowed: true });

/** This host's addresses other than loopback (a pod's interfaces): its own ports there are never a destination. */
function localAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (!a.internal) out.push(a.address);
  return out;
}
