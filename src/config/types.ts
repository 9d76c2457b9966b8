/**
 * Raw Istio resource shapes (networking.istio.io v1 / v1beta1 / v1alpha3), exactly as users write them.
 * Field names follow istio/api; nothing here is normalized. See compile.ts for the compiled forms.
 */

export interface StringMatch { exact?: string; prefix?: string; regex?: string }
export interface Percent { value?: number }
export interface PortSelector { number?: number }

export interface HeaderOperations { set?: Record<string, string>; add?: Record<string, string>; remove?: string[] }
export interface Headers { request?: HeaderOperations; response?: HeaderOperations }

export interface Destination { host: string; subset?: string; port?: PortSelector }
export interface HTTPRouteDestination { destination: Destination; weight?: number; headers?: Headers }

export interface HTTPMatchRequest {
  name?: string;
  uri?: StringMatch; scheme?: StringMatch; method?: StringMatch; authority?: StringMatch;
  headers?: Record<string, StringMatch>;
  withoutHeaders?: Record<string, StringMatch>;
  queryParams?: Record<string, StringMatch>;
  port?: number;
  sourceLabels?: Record<string, string>;
  sourceNamespace?: string;
  gateways?: string[];
  ignoreUriCase?: boolean;
  statPrefix?: string;
}

export interface HTTPRedirect {
  uri?: string; authority?: string; port?: number;
  derivePort?: 'FROM_PROTOCOL_DEFAULT' | 'FROM_REQUEST_PORT';
  scheme?: string; redirectCode?: number;
}
export interface RegexRewrite { match?: string; rewrite?: string }
export interface HTTPRewrite { uri?: string; authority?: string; uriRegexRewrite?: RegexRewrite }
export interface HTTPDirectResponse { status: number; body?: { string?: string; bytes?: string } }
export interface HTTPRetry {
  attempts?: number; perTryTimeout?: string; retryOn?: string;
  retryRemoteLocalities?: boolean; retryIgnorePreviousHosts?: boolean; backoff?: string;
}
export interface HTTPFaultInjection {
  delay?: { fixedDelay?: string; exponentialDelay?: string; percentage?: Percent; percent?: number };
  abort?: { httpStatus?: number; grpcStatus?: string; http2Error?: string; percentage?: Percent };
}
export interface HTTPMirrorPolicy { destination: Destination; percentage?: Percent }
export interface CorsPolicy {
  allowOrigins?: StringMatch[]; allowOrigin?: string[]; allowMethods?: string[]; allowHeaders?: string[];
  exposeHeaders?: string[]; maxAge?: string; allowCredentials?: boolean; unmatchedPreflights?: string;
}

export interface HTTPRoute {
  name?: string;
  match?: HTTPMatchRequest[];
  route?: HTTPRouteDestination[];
  redirect?: HTTPRedirect;
  directResponse?: HTTPDirectResponse;
  delegate?: { name?: string; namespace?: string };
  rewrite?: HTTPRewrite;
  timeout?: string;
  retries?: HTTPRetry;
  fault?: HTTPFaultInjection;
  mirror?: Destination;
  mirrors?: HTTPMirrorPolicy[];
  mirrorPercentage?: Percent;
  mirror_percent?: number;
  mirrorPercent?: number;
  corsPolicy?: CorsPolicy;
  headers?: Headers;
}

export interface VirtualServiceSpec {
  hosts?: string[];
  gateways?: string[];
  http?: HTTPRoute[];
  tls?: unknown[];
  tcp?: unknown[];
  exportTo?: string[];
}

export interface ConnectionPoolSettings {
  tcp?: {
    maxConnections?: number; connectTimeout?: string;
    tcpKeepalive?: { probes?: number; time?: string; interval?: string };
    maxConnectionDuration?: string; idleTimeout?: string;
  };
  http?: {
    http1MaxPendingRequests?: number; http2MaxRequests?: number; maxRequestsPerConnection?: number;
    maxRetries?: number; idleTimeout?: string; h2UpgradePolicy?: string; useClientProtocol?: boolean;
    maxConcurrentStreams?: number;
    http2KeepAlive?: { interval?: string; timeout?: string };
  };
}
export interface LoadBalancerSettings {
  simple?: 'UNSPECIFIED' | 'LEAST_CONN' | 'RANDOM' | 'PASSTHROUGH' | 'ROUND_ROBIN' | 'LEAST_REQUEST';
  consistentHash?: {
    httpHeaderName?: string;
    httpCookie?: { name: string; path?: string; ttl?: string };
    useSourceIp?: boolean;
    httpQueryParameterName?: string;
    ringHash?: { minimumRingSize?: number };
    maglev?: { tableSize?: number };
    minimumRingSize?: number;
  };
  localityLbSetting?: unknown;
  warmupDurationSecs?: string;
  warmup?: { duration?: string; minimumPercent?: Percent; aggression?: number };
}
export interface OutlierDetection {
  splitExternalLocalOriginErrors?: boolean;
  consecutiveLocalOriginFailures?: number;
  consecutiveGatewayErrors?: number;
  consecutive5xxErrors?: number;
  consecutiveErrors?: number;
  interval?: string;
  baseEjectionTime?: string;
  maxEjectionPercent?: number;
  minHealthPercent?: number;
}
export interface ClientTLSSettings { mode?: string; sni?: string; [k: string]: unknown }
export interface RetryBudget { percent?: Percent; minRetryConcurrency?: number }
export interface PortTrafficPolicy {
  port?: PortSelector;
  loadBalancer?: LoadBalancerSettings;
  connectionPool?: ConnectionPoolSettings;
  outlierDetection?: OutlierDetection;
  tls?: ClientTLSSettings;
}
export interface TrafficPolicy extends Omit<PortTrafficPolicy, 'port'> {
  portLevelSettings?: PortTrafficPolicy[];
  tunnel?: unknown;
  proxyProtocol?: unknown;
  retryBudget?: RetryBudget;
}
export interface Subset { name: string; labels?: Record<string, string>; trafficPolicy?: TrafficPolicy }
export interface DestinationRuleSpec {
  host?: string;
  trafficPolicy?: TrafficPolicy;
  subsets?: Subset[];
  exportTo?: string[];
  workloadSelector?: { matchLabels?: Record<string, string> };
}

export interface ServicePort { number: number; protocol?: string; name?: string; targetPort?: number }
export interface WorkloadEntrySpec {
  address?: string;
  ports?: Record<string, number>;
  labels?: Record<string, string>;
  network?: string;
  locality?: string;
  weight?: number;
  serviceAccount?: string;
}
export interface ServiceEntrySpec {
  hosts?: string[];
  addresses?: string[];
  ports?: ServicePort[];
  location?: 'MESH_EXTERNAL' | 'MESH_INTERNAL';
  resolution?: 'NONE' | 'STATIC' | 'DNS' | 'DNS_ROUND_ROBIN';
  endpoints?: WorkloadEntrySpec[];
  workloadSelector?: { labels?: Record<string, string> };
  exportTo?: string[];
  subjectAltNames?: string[];
}

export const ISTIO_KINDS = ['VirtualService', 'DestinationRule', 'ServiceEntry', 'WorkloadEntry'] as const;
export type IstioKind = (typeof ISTIO_KINDS)[number];
export const ISTIO_API_VERSIONS = [
  'networking.istio.io/v1',
  'networking.istio.io/v1beta1',
  'networking.istio.io/v1alpha3',
] as const;
