/**
 * What `remora run` is told by its command line (src/cli/run.ts builds it; a `--concurrency` worker gets it over
 * IPC): ports, config sources, telemetry, timeouts, capture and mTLS settings. Types only.
 */
import type { Level } from './util/logger.js';
import type { PathNormalization } from './routing/request-target.js';
import type { UnderscoreAction } from './proxy/headers.js';
import type { KubeEnv } from './discovery/kubeconfig.js';

export interface RunOptions {
  configPaths: string[];
  namespace: string;
  clusterDomain: string;
  outboundPort: number;
  inboundPort: number;
  /** App ports for inbound; empty = no inbound listener. */
  appPorts: number[];
  adminPort: number;
  statsPort: number;
  healthPort: number;
  labels: Record<string, string>;
  outboundTrafficPolicy: 'ALLOW_ANY' | 'REGISTRY_ONLY';
  accessLog: string; // 'off' | 'stdout' | path
  accessLogFormat: string; // 'text' | 'json' | custom
  traceEndpoint?: string;
  traceSampling: number;
  drainSeconds: number;
  logLevel: Level;
  retryBufferBytes: number;
  /** `--mirror-body-bytes`: the largest request body a shadow carries (default retryBufferBytes). */
  mirrorBodyBytes?: number;
  outboundAddress: string;
  inboundAddress: string;
  workloadName: string;
  /**
   * `--kubernetes`: `env` holds KUBECONFIG, KUBERNETES_SERVICE_HOST/PORT and HOME as the CLI read them;
   * `gatewayStatus`: stand for the Gateway API route status writer (one per cluster, elected by a Lease).
   */
  kubernetes?: { kubeconfig?: string; namespaces: string[]; env?: KubeEnv; gatewayStatus?: { identity: string; leaseNamespace: string; leaseDurationMs?: number } };
  envDiscovery?: boolean;
  /** The app's original httpGet probes (REMORA_APP_PROBERS JSON), served on the health port. */
  appProbers?: string;
  /** Resolver config for the search path ('' = none; default /etc/resolv.conf). */
  resolvConf?: string;
  /** Exit when the app's port has stopped listening for this many seconds (0 = off). */
  exitOnAppExitSeconds?: number;
  /** Worker processes serving the proxy listeners (`--concurrency`, Istio `proxy.istio.io/config` concurrency); default 1 = this process alone. */
  concurrency?: number;
  /** false in `--concurrency N` workers: the primary owns the admin, stats and health ports (default true). */
  serveAdmin?: boolean;
  /** Captured connections of unknown protocol whose client says nothing for this long are TCP (ms; default 100). */
  protocolDetectionTimeoutMs?: number;
  /** `--connect`: HTTP CONNECT on the outbound port opens a TCP tunnel (src/proxy/connect.ts); default off (405). */
  connect?: boolean;
  /** Upgraded connections (WebSocket) close after this long without a byte either way (ms; 0 = never; default 1 h). */
  tunnelIdleTimeoutMs?: number;
  /** `--path-normalization` (Istio's mesh pathNormalization), both listeners; default base. */
  pathNormalization?: PathNormalization;
  /** `--headers-with-underscores` (Envoy's headers_with_underscores_action), both listeners; default allow. */
  headersWithUnderscores?: UnderscoreAction;
  /** `--request-headers-timeout`: a request head must be complete this long after its first byte, else 408 (ms; default 30 s). */
  requestHeadersTimeoutMs?: number;
  /** `--stream-idle-timeout`: a request with no byte moving either way for this long ends (ms; default 5 min, Envoy's; 0 = off). */
  streamIdleTimeoutMs?: number;
  /** `--max-connections`: open downstream connections per proxy listener; past it new ones are closed at accept (0/unset = no limit). */
  maxConnections?: number;
  /** `--cert-dir`: the workload certificate (cert-manager's tls.crt/tls.key/ca.crt or Istio's layout); mTLS on when set. */
  certDir?: string;
  /** `--trust-domain-aliases`: Istio meshConfig trustDomainAliases, identities of these trust domains are ours too. */
  trustDomainAliases?: string[];
  /** `--jwks-allow-http`: issuers whose JWKS (and OpenID discovery) may be fetched over plain http (test issuers). */
  jwksAllowHttp?: string[];
  /**
   * `--capture-mode redirect` (set by `remora inject` with its iptables init container): every inbound connection is
   * redirected, so one addressed to the inbound listener itself was not, and is refused. Default: explicit mode (no
   * iptables; peers and tests dial the inbound port, served as HTTP for `--app-port`).
   */
  captureMode?: boolean;
  /** `POD_NAME`: this pod, whose container ports name NetworkPolicy ports (docs/kubernetes.md). */
  podName?: string;
  /** `REMORA_CREDENTIALS_DIR`: where DestinationRule `credentialName` directories are (default /etc/remora/credentials). */
  credentialsDir?: string;
  /** `REMORA_ORIGINAL_DST=native|conntrack|none`: force an original-destination reader (default: the best available). */
  originalDst?: string;
  /** `REMORA_CLUSTER_SCHED=rr|none`: the `--concurrency` primary's scheduling policy (default rr). */
  clusterSched?: string;
}

/**
 * The process environment as the CLI read it, handed down to what needs more than a setting: the service variables of
 * `--env-discovery`, `%ENVIRONMENT(X)%` in access-log formats, the resolver's LOCALDOMAIN/RES_OPTIONS. Nothing below
 * src/cli/ reads `process.env` itself (scripts/check-imports.mjs checks it).
 */
export type Environment = Readonly<Record<string, string | undefined>>;
