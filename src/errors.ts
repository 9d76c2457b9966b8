/**
 * The one table of what Remora answers or records itself (STYLE.md §5.5), with Envoy's status codes, response flags
 * and RESPONSE_CODE_DETAILS: the local replies (`E`: status, flag, details, body), how a request, tunnel or
 * connection that was not a local reply ended (`END`, `L4`), the details of answers that are not errors (`DETAILS`),
 * and the details built from a cause (`detailsOf`). Every module that sets a flag or a details string takes it from
 * here (scripts/check-imports.mjs checks that no flag literal is written elsewhere). Pure data.
 */
import type { ResponseFlag } from './model.js';

/** A reply the proxy makes itself. `flag` '-' when Envoy sets none (RBAC, JWT, the proxy-port refusal). */
export interface LocalError {
  status: number;
  flag: ResponseFlag | '-';
  details: string;
  body: string;
}

/** How something ended that was not a local reply (a reset, a timeout, a refused connection). */
export interface End {
  flag: ResponseFlag;
  details: string;
}

/** Local replies (before any byte of an upstream answer reached the client). */
export const E = {
  noRoute: { status: 404, flag: 'NR', details: 'route_not_found', body: '' },
  registryOnly: { status: 502, flag: 'NR', details: 'registry_only_blackhole', body: '' },
  noCluster: { status: 503, flag: 'NC', details: 'cluster_not_found', body: 'no cluster' },
  noHealthy: { status: 503, flag: 'UH', details: 'no_healthy_upstream', body: 'no healthy upstream' },
  overflow: { status: 503, flag: 'UO', details: 'upstream_reset_before_response_started{overflow}', body: 'upstream connect error or disconnect/reset before headers. reset reason: overflow' },
  connectFailure: { status: 503, flag: 'UF', details: 'upstream_reset_before_response_started{connection_failure}', body: 'upstream connect error or disconnect/reset before headers. reset reason: connection failure' },
  reset: { status: 503, flag: 'UC', details: 'upstream_reset_before_response_started{connection_termination}', body: 'upstream connect error or disconnect/reset before headers. reset reason: connection termination' },
  timeout: { status: 504, flag: 'UT', details: 'upstream_response_timeout', body: 'upstream request timeout' },
  protocolError: { status: 502, flag: 'UPE', details: 'upstream_reset_before_response_started{protocol_error}', body: 'upstream connect error or disconnect/reset before headers. reset reason: protocol error' },
  /** An upstream response head that cannot be written (an invalid header name or value). */
  invalidUpstreamHeader: { status: 502, flag: 'UPE', details: 'upstream_invalid_header', body: 'upstream sent an invalid header' },
  faultAbort: { status: 503, flag: 'FI', details: 'fault_filter_abort', body: 'fault filter abort' },
  badRequest: { status: 400, flag: 'DPE', details: 'http1.codec_error', body: 'Bad Request' },
  notImplemented: { status: 501, flag: 'DPE', details: 'http1.invalid_transfer_encoding', body: 'Not Implemented' },
  /** A Gateway API backendRef that could not be resolved (500, or 503 for gRPC: its status replaces this one's). */
  backendRefInvalid: { status: 500, flag: 'NC', details: 'backend_ref_invalid', body: 'invalid backendRef' },
  /** A passthrough to one of the proxy's own ports: the admin API, or a loop back into a listener. */
  proxyPortNotRoutable: { status: 403, flag: '-', details: 'proxy_port_not_routable', body: 'proxy port not routable' },
  /** AuthorizationPolicy or NetworkPolicy denied the request (Envoy's RBAC filter: no flag; the details name the policy). */
  rbacDenied: { status: 403, flag: '-', details: 'rbac_access_denied_matched_policy[none]', body: 'RBAC: access denied' },
  /** RequestAuthentication: a token that could not be verified at all (the key fetch failed). */
  jwtFailed: { status: 401, flag: '-', details: 'jwt_authn_access_denied{Jwt_verification_fails}', body: 'Jwt verification fails' },
} as const satisfies Record<string, LocalError>;

/** Ends of a request or tunnel whose answer had started, or whose client left. */
export const END = {
  streamIdleTimeout: { flag: 'SI', details: 'stream_idle_timeout' },
  downstreamDisconnect: { flag: 'DC', details: 'downstream_remote_disconnect' },
  upstreamResetAfterResponse: { flag: 'UR', details: 'upstream_reset_after_response_started{remote_reset}' },
  upstreamProtocolErrorAfterResponse: { flag: 'UPE', details: 'upstream_reset_after_response_started{protocol_error}' },
} as const satisfies Record<string, End>;

/** Flags added to a request's flags on their own (their details come from the answer). */
export const FLAG = {
  /** The last try was retriable but no retry was left. */
  retryLimitExceeded: 'URX',
  /** The route or per-try timeout fired after the answer started. */
  upstreamTimeout: 'UT',
  /** A fault delay was injected. */
  delayInjected: 'DI',
} as const satisfies Record<string, ResponseFlag>;

/** L4 connections (TCP, CONNECT) refused before an upstream, or ended. */
export const L4 = {
  overflow: { flag: 'UO', details: 'upstream_cx_overflow' },
  noHealthy: { flag: 'UH', details: 'no_healthy_upstream' },
  noWorkloadCertificate: { flag: 'UF', details: 'upstream_connect_error{no_workload_certificate}' },
  clusterNotFound: { flag: 'NC', details: 'cluster_not_found' },
  blackHole: { flag: 'UH', details: 'blackhole_cluster' },
  proxyPort: { flag: 'UH', details: 'proxy_port_not_routable' },
  inboundProxyPort: { flag: 'UH', details: 'inbound_proxy_port' },
  inboundNotRedirected: { flag: 'UH', details: 'inbound_not_redirected' },
  inboundNotPodAddress: { flag: 'UH', details: 'inbound_not_pod_address' },
} as const satisfies Record<string, End>;

/** RESPONSE_CODE_DETAILS of answers that are not errors, and of ends that keep the flags they had. */
export const DETAILS = {
  viaUpstream: 'via_upstream',
  directResponse: 'direct_response',
  redirect: 'redirect',
  corsResponse: 'cors_response',
  corsOriginNotAllowed: 'cors_origin_not_allowed',
  /** A TCP connection closed by its idle timeout (tcp.idleTimeout). */
  tcpIdleTimeout: 'idle_timeout',
  /** Header hygiene (src/proxy/headers.ts), answered 400 DPE. */
  http2InvalidMethod: 'http2.invalid_method',
  http1UnexpectedUnderscore: 'http1.unexpected_underscore',
  http2UnexpectedUnderscore: 'http2.unexpected_underscore',
  http1ConnectionHeaderRejected: 'http1.connection_header_rejected',
} as const;

/** Details built from a cause: an error code, a policy, a JWT failure message. */
export const detailsOf = {
  /** An L4 upstream that could not be connected (ECONNREFUSED, connect timeout, a failed handshake). */
  connectError: (cause: string): string => `upstream_connect_error{${cause}}`,
  /** An L4 upstream that reset once the pipe was up. */
  upstreamReset: (cause: string): string => `upstream_reset{${cause}}`,
  /** Denied by a DENY policy's rule or for no ALLOW match (Istio's RBAC policy naming). */
  rbacDenied: (ns: string, name: string, rule: number): string => `rbac_access_denied_matched_policy[ns[${ns}]-policy[${name}]-rule[${rule}]]`,
  /** RequestAuthentication refused a token: Envoy's jwt_authn message, as a details token. */
  jwtDenied: (message: string): string => `jwt_authn_access_denied{${message.replace(/[^A-Za-z0-9]+/g, '_').replace(/_+$/, '')}}`,
};
