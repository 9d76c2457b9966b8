/** The upstream mesh conformance base (conformance/mesh/manifests.yaml) as config-file objects, and compile helpers. */
import { expect } from 'vitest';
import { parseDocuments } from '../../../src/config/parse.js';
import { compile, lookupHost } from '../../../src/config/compile.js';
import { validateResources } from '../../../src/config/validate.js';
import type { Snapshot } from '../../../src/config/snapshot.js';
import { findRoute, type CompiledRoute, type RequestView } from '../../../src/routing/route.js';

export const NS = 'gateway-conformance-mesh';

function svc(name: string, ns: string, ip: string, grpcAppProtocol?: string): string {
  return `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ${ns}}
spec:
  clusterIP: ${ip}
  ports:
  - {name: http, port: 80, appProtocol: http, targetPort: 8080}
  - {name: http-alt, port: 8080, appProtocol: http}
  - {name: https, port: 443, targetPort: 8443}
  - {name: tcp, port: 9090}
  - {name: grpc, port: 7070${grpcAppProtocol ? `, appProtocol: ${grpcAppProtocol}` : ''}}
`;
}

function slice(name: string, ns: string, service: string, ip: string): string {
  return `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${name}, namespace: ${ns}, labels: {kubernetes.io/service-name: ${service}}}
addressType: IPv4
endpoints: [{addresses: [${ip}], conditions: {ready: true}}]
ports: [{name: http, port: 8080}, {name: http-alt, port: 8080}, {name: https, port: 8443}, {name: tcp, port: 9090}, {name: grpc, port: 7070}]
`;
}

/** Services echo (both versions), echo-v1, echo-v2 in the mesh namespace, echo-v1 in the consumer namespace. */
export const MESH_BASE = [
  svc('echo-v1', NS, '10.96.0.11'),
  svc('echo-v2', NS, '10.96.0.12'),
  svc('echo', NS, '10.96.0.10', 'kubernetes.io/h2c'),
  svc('echo-v1', `${NS}-consumer`, '10.96.1.11'),
  slice('echo-v1-1', NS, 'echo-v1', '10.0.0.1'),
  slice('echo-v2-1', NS, 'echo-v2', '10.0.0.2'),
  slice('echo-1', NS, 'echo', '10.0.0.1'),
  slice('echo-2', NS, 'echo', '10.0.0.2'),
].join('---\n');

export function parse(yaml: string, file = 'mesh.yaml') {
  const r = parseDocuments(yaml, file, 'default');
  expect(r.errors).toEqual([]);
  return r.resources;
}

export function meshSnapshot(routes: string, namespace = NS): Snapshot {
  const resources = parse(`${MESH_BASE}---\n${routes}`);
  const errors = validateResources(resources).filter((e) => e.severity !== 'warning');
  expect(errors).toEqual([]);
  return compile(resources, { namespace, clusterDomain: 'cluster.local', labels: {}, outboundTrafficPolicy: 'ALLOW_ANY' });
}

export interface Routed {
  route: CompiledRoute | undefined;
  /** The backend service's short name, or 'redirect' / 'direct' / `fail:<status>`. */
  backend: string | undefined;
}

/** Route a request the way handleOutbound does (host lookup, first match), without sockets. */
export function route(snap: Snapshot, host: string, path: string, opts: { port?: number; method?: string; headers?: Record<string, string> } = {}): Routed {
  const colon = host.lastIndexOf(':');
  const entry = lookupHost(snap, colon > 0 ? host.slice(0, colon) : host);
  if (entry?.vhost === undefined) return { route: undefined, backend: undefined };
  const q = path.indexOf('?');
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(opts.headers ?? {})) headers[k.toLowerCase()] = v;
  const view: RequestView = {
    method: opts.method ?? 'GET', path: q < 0 ? path : path.slice(0, q), query: q < 0 ? '' : path.slice(q + 1), scheme: 'http',
    authority: host, port: opts.port ?? 80, headers,
  };
  const m = findRoute(entry.vhost, view);
  if (m === undefined) return { route: undefined, backend: undefined };
  const a = m.route.action;
  if (a.kind !== 'route') return { route: m.route, backend: a.kind };
  const d = a.destinations[0]!;
  return { route: m.route, backend: d.failStatus !== undefined ? `fail:${d.failStatus}` : d.host.split('.')[0] };
}
