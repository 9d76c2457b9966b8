/**
 * The shared vocabulary of the data plane: compiled (normalized, frozen) forms that the config compiler
 * produces and the proxy consumes, plus the per-request record that telemetry observes.
 * Units are in the names (…Ms). Nothing here does I/O.
 */

// === Endpoints and clusters ===

export interface Endpoint {
  /** Identity across snapshots: `address:port`. Pools, outlier state and counters are keyed by it. */
  readonly key: string;
  readonly address: string;
  readonly port: number;
  readonly labels: Readonly<Record<string, string>>;
  /** Relative LB weight, ≥ 1 (ServiceEntry/WorkloadEntry `weight`, default 1). */
  readonly weight: number;
  readonly locality?: string;
  /** When the endpoint came from DNS, the name it was resolved from. */
  readonly hostname?: string;
  /** The workload's service account, when the registry knows it: the identity its sidecar must present (mTLS). */
  readonly identity?: WorkloadIdentity;
}

/** A workload's Kubernetes service account (Pod `spec.serviceAccountName`, WorkloadEntry `serviceAccount`). */
export interface WorkloadIdentity {
  readonly namespace: string;
  readonly serviceAccount: string;
}

export type LbKind = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM' | 'PASSTHROUGH' | 'RING_HASH' | 'MAGLEV';

export interface HashPolicy {
  httpHeaderName?: string;
  httpCookie?: { name: string; path?: string; ttlMs?: number };
  useSourceIp?: boolean;
  httpQueryParameterName?: string;
}

export interface LbPolicy {
  kind: LbKind;
  /** Set for RING_HASH / MAGLEV. */
  hash?: HashPolicy;
  ringMinSize?: number; // ringHash.minimumRingSize, default 1024
  maglevTableSize?: number; // maglev.tableSize, default 65537
  /** LEAST_REQUEST with Linkerd-style peak-EWMA latency instead of active-request counts (opt-in). */
  peakEwma?: boolean;
  /** Slow start (warmup.duration), 0 = off. */
  warmupMs: number;
  warmupMinPercent: number;
  warmupAggression: number;
}

export interface PoolLimits {
  maxConnections: number; // tcp.maxConnections, default 2^32-1
  connectTimeoutMs: number; // tcp.connectTimeout, default 10s
  maxConnectionDurationMs: number; // tcp.maxConnectionDuration, 0 = unlimited
  tcpIdleTimeoutMs: number; // tcp.idleTimeout, default 1h
  tcpKeepalive?: { probes?: number; timeMs?: number; intervalMs?: number };
  http1MaxPendingRequests: number; // default 2^32-1
  http2MaxRequests: number; // default 2^32-1
  maxRequestsPerConnection: number; // 0 = unlimited; 1 = no keep-alive
  maxRetries: number; // concurrent retries, default 2^32-1
  httpIdleTimeoutMs: number; // http.idleTimeout, default 1h
  /** http.h2UpgradePolicy: UPGRADE sends HTTP/1.1 requests to this cluster as HTTP/2 (Istio's mesh default: DO_NOT_UPGRADE). */
  h2UpgradePolicy?: 'DEFAULT' | 'DO_NOT_UPGRADE' | 'UPGRADE';
  /** http.useClientProtocol: HTTP/2 upstream when the downstream request came over HTTP/2. */
  useClientProtocol?: boolean;
  /** http.maxConcurrentStreams: streams per upstream HTTP/2 connection (0 = the peer's limit). */
  maxConcurrentStreams?: number;
  /** http.http2KeepAlive: PING interval and timeout (ms; 0 = off). */
  h2PingIntervalMs?: number;
  h2PingTimeoutMs?: number;
}

export interface OutlierPolicy {
  consecutive5xxErrors: number; // default 5, 0 = off
  consecutiveGatewayErrors: number; // default 0 = off
  splitExternalLocalOriginErrors: boolean;
  consecutiveLocalOriginFailures: number; // default 5
  intervalMs: number; // default 10s
  baseEjectionTimeMs: number; // default 30s
  maxEjectionPercent: number; // default 10
  minHealthPercent: number; // default 0
}

export interface RetryBudgetPolicy {
  percent: number; // default 20
  minRetryConcurrency: number; // default 3
}

export interface ClusterPolicy {
  lb: LbPolicy;
  pool: PoolLimits;
  /** Undefined when the DestinationRule has no outlierDetection (Istio: off). */
  outlier?: OutlierPolicy;
  retryBudget: RetryBudgetPolicy;
  tlsMode: 'DISABLE' | 'SIMPLE' | 'MUTUAL' | 'ISTIO_MUTUAL';
  /** The DestinationRule sets no TLS: Istio's auto mTLS decides per endpoint (mTLS to a meshed one). */
  tlsAuto?: boolean;
  /** tls.subjectAltNames: the SPIFFE IDs (ISTIO_MUTUAL) or names (SIMPLE/MUTUAL) the server must present. */
  subjectAltNames?: string[];
  /** SIMPLE / MUTUAL origination to an external service: certificate files and verification (DestinationRule tls). */
  tlsFiles?: { caCertificates?: string; clientCertificate?: string; privateKey?: string; credentialName?: string; caCrl?: string; insecureSkipVerify?: boolean };
  sni?: string;
}

export type Resolution = 'STATIC' | 'DNS' | 'DNS_ROUND_ROBIN' | 'NONE' | 'PASSTHROUGH';

export interface ClusterDef {
  /** Envoy/Istio cluster name: `outbound|<port>|<subset>|<fqdn>`. */
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly subset: string;
  readonly policy: ClusterPolicy;
  readonly endpoints: readonly Endpoint[];
  readonly resolution: Resolution;
  /** Service port protocol (lowercase: http, http2, grpc, tcp, https, tls …). */
  readonly protocol: string;
  /** ServiceEntry `subjectAltNames`: identities the service's servers may present (mTLS), beside their accounts. */
  readonly serviceSubjectAltNames?: readonly string[];
}

// === Upstream attempts ===

export type AttemptOutcome =
  /** Response headers arrived. */
  | { kind: 'response'; status: number; grpcStatus?: number }
  /** No connection could be made (refused, connect timeout, DNS): nothing was sent. */
  | { kind: 'connect-failure' }
  /** Connection closed or reset after connecting, before the response headers. */
  | { kind: 'reset' }
  /** Per-try (or route) timeout fired before response headers. */
  | { kind: 'timeout' };

export type AdmitResult = 'ok' | 'pending_overflow' | 'rq_overflow';

/**
 * Live state of one cluster (load balancer, outlier detection, circuit-breaker counters, retry budget).
 * Survives snapshot swaps: `update(def)` keeps per-endpoint state for endpoints whose key is unchanged.
 * Pure: no timers or I/O; callers pass `now` (ms, monotonic) and the instance gets a `rand` at construction.
 */
export interface ClusterRuntime {
  readonly def: ClusterDef;
  update(def: ClusterDef): void;
  /** Choose an endpoint, skipping ejected ones (unless in panic) and, when possible, those in `exclude`. undefined = no healthy upstream (UH). */
  pick(input: PickInput, now: number): Endpoint | undefined;
  /** Circuit breaking on admission of a request (http2MaxRequests, maxConnections + http1MaxPendingRequests). */
  admit(): AdmitResult;
  /** Must be called exactly once for each admit() that returned 'ok'. */
  release(): void;
  /** Circuit breaking on an L4 connection (TCP proxy, CONNECT): tcp.maxConnections; false = overflow (UO). */
  admitConnection(): boolean;
  /** Must be called exactly once for each admitConnection() that returned true. */
  releaseConnection(): void;
  /**
   * Retry circuit breaker: maxRetries and the retry budget. false = skip the retry (retry overflow).
   * `budgeted` false: the failed try never reached a server (connect failure), so only maxRetries applies.
   */
  tryStartRetry(budgeted?: boolean): boolean;
  endRetry(budgeted?: boolean): void;
  /**
   * The retry rate budget (Linkerd's 20 % of requests + 10/s): asked for every budgeted retry, not only the first of
   * a request (tryStartRetry's slot is held across a request's retries). false = skip the retry (retry overflow).
   */
  retryToken?(now: number): boolean;
  attemptStarted(ep: Endpoint, now: number): void;
  attemptFinished(ep: Endpoint, outcome: AttemptOutcome, latencyMs: number, now: number): void;
  /** For /clusters and metrics. */
  view(now: number): ClusterView;
}

export interface PickInput {
  /** Consistent-hash key (computed by the caller with the cluster's HashPolicy). */
  hashKey?: string;
  /** Endpoint keys already tried by this request (retryIgnorePreviousHosts). */
  exclude?: ReadonlySet<string>;
}

export interface EndpointView {
  key: string;
  address: string;
  port: number;
  weight: number;
  labels: Readonly<Record<string, string>>;
  healthy: boolean;
  /** Envoy health flags, e.g. ['failed_outlier_check']. */
  healthFlags: string[];
  ejections: number;
  ejectedUntil?: number;
  activeRequests: number;
  totalRequests: number;
  successRequests: number;
  errorRequests: number;
}

export interface ClusterView {
  name: string;
  activeRequests: number;
  pendingRequests: number;
  activeRetries: number;
  ejectionsActive: number;
  endpoints: EndpointView[];
}

// === Retries ===

export interface RetryOn {
  fiveXx: boolean;
  gatewayError: boolean;
  reset: boolean;
  connectFailure: boolean;
  refusedStream: boolean;
  retriable4xx: boolean;
  /** HTTP status codes retried (from `retriable-status-codes` and numeric tokens). */
  statusCodes: readonly number[];
  /** gRPC status names: cancelled, deadline-exceeded, internal, resource-exhausted, unavailable. */
  grpc: readonly string[];
}

export interface RetryPolicy {
  /** Number of retries (so at most 1 + attempts tries); 0 = off. */
  attempts: number;
  /** 0 = no per-try timeout (bounded by the route timeout). */
  perTryTimeoutMs: number;
  retryOn: RetryOn;
  retryIgnorePreviousHosts: boolean;
  retryRemoteLocalities: boolean;
  backoffBaseMs: number; // 25
  backoffMaxMs: number; // 250
  /** Gateway API `retry.backoff`: no retry starts sooner than this after the failed try (ms; unset = 0). */
  backoffMinMs?: number;
}

// === Response flags and the per-request record ===

export type ResponseFlag =
  | 'NR' | 'NC' | 'UH' | 'UF' | 'UO' | 'UC' | 'UT' | 'URX' | 'UR' | 'LR' | 'DC' | 'DI' | 'FI' | 'RL' | 'DPE' | 'UPE' | 'UAEX' | 'SI';

/** One per finished downstream request, handed to metrics, access log and tracing. */
export interface RequestRecord {
  direction: 'outbound' | 'inbound';
  /** Inbound over mutual TLS: the verified peer (Istio's source_principal, connection_security_policy mutual_tls). */
  peer?: { readonly spiffeId: string; readonly namespace: string } | undefined;
  /** Wall clock at start (ms since epoch) and duration (ms, fractional). */
  startTime: number;
  durationMs: number;
  method: string;
  /** Original path with query, as the app sent it. */
  path: string;
  protocol: string; // 'HTTP/1.1'
  authority: string;
  requestId: string;
  /** Downstream status sent (0 = none, the downstream went away). */
  status: number;
  /** Comma-separated Envoy flags, '-' when none. */
  flags: string;
  /** Envoy response code details, e.g. 'via_upstream', 'upstream_reset_before_response_started{connection_failure}'. */
  details: string;
  bytesReceived: number;
  bytesSent: number;
  /** ms from the start of the last attempt to its response headers; undefined when no upstream answered. */
  upstreamServiceTimeMs?: number;
  upstreamHost?: string;
  upstreamCluster?: string;
  attempts: number;
  routeName?: string;
  downstreamRemoteAddress: string;
  downstreamLocalAddress: string;
  /** Destination service identity for Istio labels. */
  destinationService?: string; // FQDN
  destinationServiceName?: string;
  destinationServiceNamespace?: string;
  destinationVersion?: string; // subset
  /** gRPC status from the response headers, when the upstream sent one (metrics label grpc_response_status). */
  grpcStatus?: number;
  /** Request and response headers (lowercase names) for %REQ()% / %RESP()% operators. */
  requestHeaders: Readonly<Record<string, string | string[] | undefined>>;
  responseHeaders?: Readonly<Record<string, string | string[] | undefined>>;
}

// === Service registry (what hosts exist and where their endpoints are) ===

export interface ServicePortDef {
  number: number;
  name: string;
  /** Lowercase protocol: http, http2, grpc, tcp, https, tls, mongo … ('' = unknown, sniffed as http). */
  protocol: string;
  /** Port on the endpoints when an endpoint has no explicit mapping for this port's name. */
  targetPort?: number;
}

export interface WorkloadDef {
  /** IP or DNS name (DNS names are resolved for resolution DNS / DNS_ROUND_ROBIN). */
  address: string;
  /** Port name → endpoint port, as WorkloadEntry.ports. */
  ports: Readonly<Record<string, number>>;
  labels: Readonly<Record<string, string>>;
  weight: number;
  locality?: string;
  /** Optional name of the workload (pod or WorkloadEntry), used by /clusters and metrics. */
  name?: string;
  /** Its service account, when known (Pod `spec.serviceAccountName`, WorkloadEntry `serviceAccount`). */
  identity?: WorkloadIdentity;
}

/** One host of the mesh registry, from a ServiceEntry, a Kubernetes Service, or the environment. */
export interface ServiceDef {
  /** FQDN (or wildcard `*.example.com` for ServiceEntry). */
  hostname: string;
  namespace: string;
  ports: readonly ServicePortDef[];
  resolution: Resolution;
  workloads: readonly WorkloadDef[];
  /** Virtual IPs (ServiceEntry addresses, Kubernetes ClusterIP) that map back to this host. */
  addresses: readonly string[];
  location: 'MESH_EXTERNAL' | 'MESH_INTERNAL';
  /** Where it came from, e.g. `ServiceEntry/default/reviews` or `Service/default/reviews`. */
  origin: string;
  /** ServiceEntry `subjectAltNames`. */
  subjectAltNames?: readonly string[];
}
