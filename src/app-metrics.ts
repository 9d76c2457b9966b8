/**
 * Remora's own metrics of the sidecar's parts (`remora_*` in /stats/prometheus): each function registers, as
 * scrape-time observers, what one part counts — access log, tracing, tunnels, upstream pools, header hygiene,
 * authorization, the TCP proxy, transparent capture, workload certificates and mTLS, Kubernetes, the HTTP/1 and HTTP/2
 * listeners and their connection limit. Registration only: the parts keep their own counters.
 */
import type { Metrics } from './telemetry/metrics.js';
import type { AccessLogger } from './telemetry/access-log.js';
import type { ProxyTracing } from './telemetry/tracing.js';
import type { Tunnels } from './proxy/tunnel.js';
import type { ClusterManager } from './upstream/cluster-manager.js';
import type { HeaderHygieneStats } from './proxy/headers.js';
import type { InboundAuthorizer } from './proxy/inbound-authz.js';
import type { TcpProxy } from './proxy/tcp-proxy.js';
import type { CaptureStats } from './net/capture.js';
import type { WorkloadCertStore } from './security/workload-cert.js';
import type { TlsStats } from './security/mtls.js';
import type { KubernetesSource } from './discovery/k8s-source.js';
import type { Http1Server } from './http1/server.js';
import type { LazyHttp2Listener } from './http2/lazy.js';

/** What the sidecar wires in its constructor, observed in this order (the order of the families in the exposition). */
export interface ProxyParts {
  accessLog: AccessLogger | undefined;
  /** The tracing in use: replaced in start() when an endpoint is set. */
  tracing: () => ProxyTracing;
  tunnels: Tunnels;
  clusters: ClusterManager;
  hygiene: { outbound: HeaderHygieneStats; inbound: HeaderHygieneStats };
  authz: InboundAuthorizer;
  tcp: TcpProxy;
}

export function observeProxy(metrics: Metrics, parts: ProxyParts): void {
  const { accessLog, tunnels, clusters, hygiene, authz, tcp } = parts;
  if (accessLog) {
    const log = accessLog;
    metrics.observe('remora_access_log_dropped_lines_total', 'counter', 'Access-log lines dropped (slow or broken destination).', () => log.droppedLines());
  }
  metrics.observe('remora_tracing_spans_dropped_total', 'counter', 'Spans dropped by the bounded export queue or failed exports.', () => parts.tracing().spansDropped());
  for (const dir of ['outbound', 'inbound'] as const) {
    metrics.observe('remora_tunnels_active', 'gauge', 'Open upgraded connections (101 Switching Protocols: WebSocket and other Upgrade tunnels), by listener.', () => tunnels.active[dir], { direction: dir });
    metrics.observe('remora_tunnels_total', 'counter', 'Upgraded connections opened (101 Switching Protocols), by listener.', () => tunnels.total[dir], { direction: dir });
  }
  for (const state of ['active', 'idle', 'queued'] as const) {
    metrics.observe('remora_upstream_connections', 'gauge', 'Upstream HTTP connections of every pool: active (carrying a request), idle (kept alive for reuse); queued: requests waiting for a connection.', () => clusters.connectionStats()[state], { state });
  }
  // Header and path hygiene (src/proxy/headers.ts, src/routing/request-target.ts), per listener.
  for (const dir of ['outbound', 'inbound'] as const) {
    const st = hygiene[dir];
    metrics.observe('remora_dropped_headers_with_underscores_total', 'counter', 'Request headers dropped because their name has an underscore (--headers-with-underscores drop; Envoy dropped_headers_with_underscores).', () => st.droppedUnderscore, { direction: dir });
    metrics.observe('remora_requests_rejected_with_underscores_in_headers_total', 'counter', 'Requests answered 400 because a header name has an underscore (--headers-with-underscores reject; Envoy requests_rejected_with_underscores_in_headers).', () => st.rejectedUnderscore, { direction: dir });
    metrics.observe('remora_requests_rejected_connection_header_total', 'counter', 'Requests answered 400 because Connection nominated x-forwarded-for/-host/-proto, a pseudo-header, or 10 or more tokens.', () => st.rejectedConnection, { direction: dir });
  }
  metrics.observe('remora_inbound_authz_denied_total', 'counter', 'Inbound requests denied by NetworkPolicy or AuthorizationPolicy (403 RBAC: access denied).', () => authz.denied());
  metrics.observe('remora_inbound_authz_allowed_total', 'counter', 'Inbound requests checked against NetworkPolicy/AuthorizationPolicy and allowed (not counted while no policy applies).', () => authz.allowed());
  metrics.observe('remora_tcp_connections_active', 'gauge', 'Proxied TCP connections open now (both listeners).', () => tcp.active.size);
  metrics.observe('remora_tcp_connections_total', 'counter', 'TCP connections taken by the TCP proxy (passthrough, TCP routes, non-HTTP traffic).', () => tcp.opened);
}

/** What transparent capture made of the connections each proxy listener accepted, and what inbound refused. */
export function observeCapture(metrics: Metrics, capture: { outbound: CaptureStats; inbound: CaptureStats }): void {
  for (const [dir, st] of Object.entries(capture)) {
    const labels = { listener: dir };
    const help = 'Connections accepted by a proxy listener, by what transparent capture made of them (direct: addressed to the listener; http, tcp: redirected, by protocol).';
    metrics.observe('remora_listener_connections_total', 'counter', help, () => st.direct, { ...labels, kind: 'direct' });
    metrics.observe('remora_listener_connections_total', 'counter', help, () => st.http, { ...labels, kind: 'http' });
    metrics.observe('remora_listener_connections_total', 'counter', help, () => st.tcp, { ...labels, kind: 'tcp' });
    metrics.observe('remora_protocol_detection_timeouts_total', 'counter', 'Captured connections whose client sent nothing within --protocol-detection-timeout (outbound: taken as TCP; inbound: the app is dialled and whoever speaks first decides).', () => st.sniffTimeouts, labels);
  }
  const inb = capture.inbound;
  metrics.observe('remora_inbound_late_http_total', 'counter', 'Inbound connections silent past --protocol-detection-timeout whose first bytes, sent before the app said anything, were HTTP: served as HTTP with its policies.', () => inb.lateHttp);
  const refusedHelp = 'Inbound connections refused before any policy (reset): to one of the proxy\'s own ports, addressed to the inbound listener itself in capture mode (not redirected), or redirected in capture mode with an original destination that is not one of the pod\'s addresses.';
  metrics.observe('remora_inbound_refused_total', 'counter', refusedHelp, () => inb.refusedOwnPort, { reason: 'proxy_port' });
  metrics.observe('remora_inbound_refused_total', 'counter', refusedHelp, () => inb.refusedNotRedirected, { reason: 'not_redirected' });
  metrics.observe('remora_inbound_refused_total', 'counter', refusedHelp, () => inb.refusedNotPodAddress, { reason: 'not_pod_address' });
}

/** `--cert-dir`: the workload certificate, the TLS handshakes by direction, and inbound mTLS (Envoy's ssl.* stats). */
export function observeCertificates(
  metrics: Metrics,
  store: WorkloadCertStore,
  tlsStats: { inbound: TlsStats; outbound: TlsStats },
  capture: { outbound: CaptureStats; inbound: CaptureStats },
): void {
  metrics.observe('remora_workload_cert_expiry_timestamp_seconds', 'gauge', 'When the workload certificate in use expires (Unix time, seconds); 0 without one.', () => (store.current ? store.current.notAfter.getTime() / 1000 : 0));
  metrics.observe('remora_workload_cert_rotations_total', 'counter', 'Workload certificates taken after the first (rotations).', () => store.rotations);
  metrics.observe('remora_workload_cert_load_failures_total', 'counter', 'Changed certificate files that were not taken (incomplete, invalid, expired, another CA); the last good certificate stayed.', () => store.failures);
  for (const [direction, st] of Object.entries(tlsStats)) {
    metrics.observe('remora_ssl_handshakes_total', 'counter', 'Mutual TLS handshakes completed with a verified peer (Envoy ssl.handshake), by direction.', () => st.handshakes, { direction });
    metrics.observe('remora_ssl_connection_errors_total', 'counter', 'Mutual TLS handshakes that failed before verification: a protocol error, a timeout, a close (Envoy ssl.connection_error).', () => st.connectionErrors, { direction });
    for (const reason of ['fail_verify_error', 'fail_verify_san', 'fail_verify_no_cert'] as const) {
      metrics.observe('remora_ssl_verify_failures_total', 'counter', 'Peers refused by certificate verification, by Envoy\'s reason: fail_verify_error (the chain: another root, self-signed, expired, not yet valid, not a CA, wrong key usage, revoked), fail_verify_san (no SPIFFE identity, a trust domain not ours, an unexpected server identity), fail_verify_no_cert (no client certificate).', () => st.failures[reason], { direction, reason });
    }
  }
  for (const [listener, st] of Object.entries(capture)) {
    if (listener !== 'inbound') continue;
    metrics.observe('remora_inbound_mtls_connections_total', 'counter', 'Inbound connections terminated as mutual TLS (the peer certificate verified).', () => st.mtls);
    metrics.observe('remora_inbound_mtls_refused_total', 'counter', 'Inbound connections refused by PeerAuthentication: plaintext on a STRICT port, or a failed mTLS handshake.', () => st.mtlsRefused);
  }
}

/** The Kubernetes watch's staleness. */
export function observeKubernetes(metrics: Metrics, kube: KubernetesSource): void {
  metrics.observe('remora_kubernetes_staleness_seconds', 'gauge', 'Seconds since the Kubernetes watch state was last known complete.', () => kube.current().stalenessMs(Date.now()) / 1000);
}

/** The HTTP/1 side of a listener: requests it answered itself, early responses, stream idle timeouts. */
export function observeHttp1(metrics: Metrics, listener: string, h1: Http1Server): void {
  metrics.observe('remora_http1_requests_rejected_total', 'counter', 'HTTP/1 requests the listener answered itself for a framing or header error (400, 413, 431, 501, 505; Envoy downstream_cx_protocol_error), the connection closed after.', () => h1.stats.rejected, { listener });
  metrics.observe('remora_http1_responses_before_request_complete_total', 'counter', 'HTTP/1 responses that started before their request body had all arrived: the connection closed after them (Envoy downstream_rq_response_before_rq_complete).', () => h1.stats.responsesBeforeRequestComplete, { listener });
  metrics.observe('remora_http1_stream_idle_timeouts_total', 'counter', 'HTTP/1 requests ended by --stream-idle-timeout: no byte moved either way for that long (408 if unanswered, else a reset; Envoy downstream_rq_idle_timeout).', () => h1.stats.streamIdleTimeouts, { listener });
}

/** The HTTP/2 side of a listener in /stats/prometheus: sessions, and the ones closed for floods or premature resets. */
export function observeHttp2(metrics: Metrics, listener: string, h2: LazyHttp2Listener): void {
  // Read at scrape time: the listener's counters exist once its first HTTP/2 connection made it.
  const labels = { listener };
  metrics.observe('remora_http2_sessions_total', 'counter', 'Cleartext HTTP/2 connections served by a proxy listener.', () => h2.stats.sessions, labels);
  metrics.observe('remora_http2_protocol_error_closes_total', 'counter', 'HTTP/2 connections closed by a protocol error or a frame flood (SETTINGS/PING floods not read, CONTINUATION floods, invalid frames).', () => h2.stats.protocolErrors, labels);
  metrics.observe('remora_http2_premature_reset_closes_total', 'counter', 'HTTP/2 connections closed for too many premature stream resets (rapid reset, CVE-2023-44487; Envoy downstream_rq_too_many_premature_resets).', () => h2.stats.prematureResetCloses, labels);
  metrics.observe('remora_http2_stream_idle_timeouts_total', 'counter', 'HTTP/2 streams ended by --stream-idle-timeout: no byte moved either way for that long (408 if unanswered, else RST_STREAM; Envoy downstream_rq_idle_timeout).', () => h2.stats.streamIdleTimeouts, labels);
  metrics.observe('remora_http2_headers_timeouts_total', 'counter', 'HTTP/2 connections closed (GOAWAY) because a header block was not complete within --request-headers-timeout of its first byte.', () => h2.stats.headersTimeouts, labels);
  metrics.observe('remora_http2_streams_reset_by_peer_total', 'counter', 'HTTP/2 streams the client reset before their response was complete (Envoy downstream_rq_rx_reset).', () => h2.stats.streamsResetByPeer, labels);
}

/** --max-connections: connections a proxy listener closed at accept. */
export function observeListenerOverflow(metrics: Metrics, name: string, st: { overflow: number }): void {
  metrics.observe('remora_listener_connections_overflow_total', 'counter', 'Connections closed at accept because the listener had --max-connections open (Envoy downstream_cx_overflow).', () => st.overflow, { listener: name });
}
