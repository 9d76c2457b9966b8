// Generated configuration for the benchmark peers: Istio YAML for Remora (pass-through, the
// full policy path, N services) and an nginx reverse-proxy config with upstream keep-alive.
import { existsSync } from 'node:fs';

/** The Host a pass-through request carries; the ServiceEntry's port is the upstream's port. */
export const PASS_HOST = 'upstream.bench.local';
/** The Host of the full policy path (weighted subsets, header match, retries, outlier detection). */
export const POLICY_HOST = 'policy.bench.local';
/** Requests with this header = "1" match the header route (to subset v2). */
export const CANARY_HEADER = 'x-bench-canary';

/** One ServiceEntry, one endpoint: the shortest path through the proxy. */
export function passThroughYaml(port: number, host = PASS_HOST): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: ${host.replace(/\./g, '-')}
  namespace: default
spec:
  hosts: [${host}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - number: ${port}
    name: http
    protocol: HTTP
  endpoints:
  - address: 127.0.0.1
`;
}

/**
 * The full policy path: two endpoints (v1 on portV1, v2 on portV2 — the same upstream process),
 * a header match to v2, an 80/20 (or `weights`) split, Istio's default retry policy (no
 * `retries` field), outlier detection and a connection pool on the DestinationRule.
 */
export function policyYaml(portV1: number, portV2: number, weights: [number, number] = [80, 20]): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: policy-bench-local
  namespace: default
spec:
  hosts: [${POLICY_HOST}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - number: ${portV1}
    name: http
    protocol: HTTP
  endpoints:
  - address: 127.0.0.1
    labels: {version: v1}
  - address: 127.0.0.1
    ports: {http: ${portV2}}
    labels: {version: v2}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: policy
  namespace: default
spec:
  host: ${POLICY_HOST}
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1024}
      http: {http1MaxPendingRequests: 4096}
    outlierDetection:
      consecutive5xxErrors: 5
      interval: 10s
      baseEjectionTime: 30s
      maxEjectionPercent: 50
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: policy
  namespace: default
spec:
  hosts: [${POLICY_HOST}]
  http:
  - name: canary
    match:
    - headers:
        ${CANARY_HEADER}: {exact: "1"}
    route:
    - destination: {host: ${POLICY_HOST}, subset: v2}
  - name: split
    route:
    - destination: {host: ${POLICY_HOST}, subset: v1}
      weight: ${weights[0]}
    - destination: {host: ${POLICY_HOST}, subset: v2}
      weight: ${weights[1]}
`;
}

/**
 * `n` extra services (ServiceEntry + VirtualService with a prefix route each), so the route
 * table and host lookup are as large as a big mesh's; they never receive traffic.
 */
export function manyServicesYaml(n: number): string {
  const parts: string[] = [];
  for (let i = 0; i < n; i++) {
    const host = `svc-${i}.mesh.bench.local`;
    parts.push(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc-${i}, namespace: default}
spec:
  hosts: [${host}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.${2 + (i % 250)}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: svc-${i}, namespace: default}
spec:
  hosts: [${host}]
  http:
  - match: [{uri: {prefix: /api/v${i % 3}}}]
    route: [{destination: {host: ${host}}}]
  - route: [{destination: {host: ${host}}}]
`);
  }
  return parts.join('---\n');
}

/** The nginx binary: PATH, then Debian's location. */
export function findNginx(): string | undefined {
  for (const p of ['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx']) if (existsSync(p)) return p;
  return undefined;
}

/** What every nginx peer shares: one worker in the foreground, files in `dir`, no access log (opens `http {`). */
export function nginxPreamble(dir: string): string {
  return `daemon off;
master_process on;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
`;
}

/** One worker, reverse proxy with upstream keep-alive, no access log: nginx's fast path. */
export function nginxConf(dir: string, listenPort: number, upstreamPort: number): string {
  return `${nginxPreamble(dir)}  keepalive_requests 1000000;
  upstream up {
    server 127.0.0.1:${upstreamPort};
    keepalive 256;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${listenPort} backlog=4096;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # 256 KB of buffers: a 100 KB response stays in memory instead of a temp file.
      proxy_buffer_size 16k;
      proxy_buffers 32 8k;
      proxy_max_temp_file_size 0;
    }
  }
}
`;
}

export const MTLS_HOST = 'mtls.bench.local';

/**
 * The mTLS chain's client side: the outbound sidecar sends MTLS_HOST to the server sidecar's inbound port, an endpoint
 * labelled as meshed (Istio's auto mTLS) whose service account is `server` (the identity the server sidecar must
 * present), or in plaintext when `mtls` is false.
 */
export function mtlsClientYaml(serverInbound: number, mtls: boolean): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: mtls-bench, namespace: default }
spec:
  hosts: [${MTLS_HOST}]
  ports: [{ number: 80, name: http, protocol: HTTP }]
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports: { http: ${serverInbound} }
    labels: ${mtls ? "{ 'security.istio.io/tlsMode': istio }" : '{}'}${mtls ? '\n    serviceAccount: server' : ''}
`;
}

export const STRICT_YAML = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: default }
spec: { mtls: { mode: STRICT } }
`;

/**
 * nginx with TLS on both sides in one process (one worker): a plaintext front that proxies over mutual TLS (client
 * certificate, server verified, upstream keep-alive and session reuse) to a TLS back that requires a client
 * certificate and proxies to the upstream — the native anchor for a sidecar-to-sidecar mTLS hop.
 */
export function nginxMtlsConf(dir: string, frontPort: number, backPort: number, upstreamPort: number, certs: { server: string; client: string; ca: string }): string {
  return `${nginxPreamble(dir)}  keepalive_requests 1000000;
  upstream back {
    server 127.0.0.1:${backPort};
    keepalive 256;
    keepalive_requests 1000000;
  }
  upstream up {
    server 127.0.0.1:${upstreamPort};
    keepalive 256;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${frontPort} backlog=4096;
    location / {
      proxy_pass https://back;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_ssl_certificate ${certs.client}/tls.crt;
      proxy_ssl_certificate_key ${certs.client}/tls.key;
      proxy_ssl_trusted_certificate ${certs.ca};
      proxy_ssl_verify on;
      proxy_ssl_name ${MTLS_HOST};
      proxy_ssl_session_reuse on;
    }
  }
  server {
    listen 127.0.0.1:${backPort} ssl backlog=4096;
    ssl_certificate ${certs.server}/tls.crt;
    ssl_certificate_key ${certs.server}/tls.key;
    ssl_client_certificate ${certs.ca};
    ssl_verify_client on;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
}

/** The Host the HTTPRoute version of the policy path is called with (the parent Service's name). */
export const GATEWAY_POLICY_HOST = 'policy.default.svc.cluster.local';

/**
 * The policy path of `policyYaml` written with the Gateway API instead: Services `policy` (the parent), `policy-v1`
 * and `policy-v2` (the backends, EndpointSlices on portV1/portV2), the same DestinationRule policy on each backend,
 * and an HTTPRoute with the header match to v2 and the 80/20 split. The same request gets the same treatment.
 */
export function gatewayPolicyYaml(portV1: number, portV2: number, weights: [number, number] = [80, 20]): string {
  const svc = (name: string, port: number | undefined): string => `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: default}
spec: {clusterIP: 10.96.80.${port === undefined ? 1 : port === portV1 ? 2 : 3}, ports: [{name: http, port: ${portV1}, appProtocol: http}]}
${port === undefined ? '' : `---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${name}-1, namespace: default, labels: {kubernetes.io/service-name: ${name}}}
addressType: IPv4
endpoints: [{addresses: [127.0.0.1]}]
ports: [{name: http, port: ${port}}]
`}`;
  const dr = (name: string): string => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ${name}, namespace: default}
spec:
  host: ${name}
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1024}
      http: {http1MaxPendingRequests: 4096}
    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}
`;
  return [svc('policy', undefined), svc('policy-v1', portV1), svc('policy-v2', portV2), dr('policy-v1'), dr('policy-v2'), `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: policy, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: policy}]
  rules:
  - name: canary
    matches: [{headers: [{name: ${CANARY_HEADER}, value: "1"}]}]
    backendRefs: [{name: policy-v2, port: ${portV1}}]
  - name: split
    backendRefs: [{name: policy-v1, port: ${portV1}, weight: ${weights[0]}}, {name: policy-v2, port: ${portV1}, weight: ${weights[1]}}]
`].join('---\n');
}
