/**
 * The compiler's entry into the Gateway API mesh profile, pure: valid routes in, per bound host a lazily built route
 * list (translate.ts) and TCP/TLS routes out; `remora explain` reads the bindings back. Kubernetes Services and
 * EndpointSlices written in config files become registry hosts here too (a `kubectl get … -o yaml` dump runs offline).
 */
import type { Resource } from '../config/resource.js';
import type { ServiceDef } from '../model.js';
import type { CompiledRoute } from '../routing/route.js';
import type { L4Destination, L4Match, L4Route, L4Routes } from '../routing/l4-route.js';
import type { V1EndpointSlice, V1Pod, V1Service } from '@kubernetes/client-node';
import { servicesFromKubernetes } from '../discovery/k8s-mapping.js';
import { bindRoutes, compareRoutes, type Binding, type HostBindings, type MeshBindings } from './binding.js';
import { buildHostRoutes, type TranslateContext } from './translate.js';
import { resolveBackend } from './refs.js';
import { isGatewayRoute, type L4RouteRule } from './types.js';

export interface MeshHost {
  /** `Kind/ns/name` of the oldest bound route (a virtual host's origin). */
  origin: string;
  /** Every route bound to the host for this sidecar, oldest first. */
  routes: string[];
  /** Creation time of the oldest bound route (ms; 0 = none given). */
  created: number;
  service: ServiceDef;
  build(): CompiledRoute[];
}

export interface MeshCompileResult {
  /** Hosts with HTTPRoutes or GRPCRoutes for this sidecar. */
  hosts: Map<string, MeshHost>;
  /** Hosts with TCPRoutes or TLSRoutes. */
  l4: Map<string, L4Routes>;
  bindings: MeshBindings;
}

/** A MeshHost as one class (no closure per host: 10,000 routes make 10,000 of them). */
class MeshHostOf implements MeshHost {
  constructor(readonly origin: string, readonly routes: string[], readonly created: number, private readonly hb: HostBindings, private readonly ctx: TranslateContext) {}
  get service(): ServiceDef { return this.hb.service; }
  build(): CompiledRoute[] { return buildHostRoutes(this.hb, this.ctx); }
}

export function gatewayRoutes(resources: readonly Resource[]): Resource[] {
  return resources.filter((r) => isGatewayRoute(r.apiVersion, r.kind));
}

/** Bind and prepare the routes of a config (undefined when it has no Gateway API route: nothing changes then). */
export function compileMesh(resources: readonly Resource[], namespace: string, ctx: TranslateContext): MeshCompileResult | undefined {
  const routes = gatewayRoutes(resources);
  if (routes.length === 0) return undefined;
  const bindings = bindRoutes(routes, ctx.byHost, ctx.clusterDomain, namespace);
  const hosts = new Map<string, MeshHost>();
  const l4 = new Map<string, L4Routes>();
  for (const [host, hb] of bindings.hosts) {
    const n = hb.grpc.length + hb.http.length;
    if (n === 1) {
      const r = (hb.http[0] ?? hb.grpc[0])!.route;
      hosts.set(host, new MeshHostOf(r.origin, [r.origin], r.created, hb, ctx));
    } else if (n > 1) {
      const httpLike = [...hb.grpc, ...hb.http].map((b) => b.route).sort(compareRoutes);
      hosts.set(host, new MeshHostOf(httpLike[0]!.origin, [...new Set(httpLike.map((r) => r.origin))], httpLike[0]!.created, hb, ctx));
    }
    if (hb.tcp.length + hb.tls.length > 0) l4.set(host, buildL4Routes(hb, ctx)!);
  }
  return { hosts, l4, bindings };
}

function l4Route(kind: 'tcp' | 'tls', b: Binding, rule: L4RouteRule, index: number, sni: readonly string[], ctx: TranslateContext): L4Route {
  const matches: L4Match[] = b.ports === undefined
    ? (kind === 'tls' ? [{ port: undefined, subnets: [], sniHosts: sni, appliesToSelf: true }] : [])
    : b.ports.map((port) => ({ port, subnets: [], sniHosts: sni, appliesToSelf: true }));
  const destinations: L4Destination[] = (rule.backendRefs ?? []).map((ref) => {
    const res = resolveBackend(ref, b.route.r.metadata.namespace, ctx.byHost, ctx.clusterDomain);
    // An unresolved backend keeps its share and is refused (no cluster: the connection is reset), as the spec asks.
    return res.ok ? { host: res.host, subset: '', port: res.port, weight: ref.weight ?? 1 } : { host: '', subset: '', port: 0, weight: ref.weight ?? 1 };
  });
  const cumulative: number[] = [];
  let total = 0;
  for (const d of destinations) { total += d.weight; cumulative.push(total); }
  return { kind, name: `${b.route.origin}.${rule.name ?? index}`, matches, destinations, cumulative, total };
}

/** TCPRoutes and TLSRoutes of a host as `tcp[]`/`tls[]` routes (oldest route first; TLS matched on its SNI hostnames). */
function buildL4Routes(hb: HostBindings, ctx: TranslateContext): L4Routes | undefined {
  if (hb.tcp.length === 0 && hb.tls.length === 0) return undefined;
  const tcp: L4Route[] = [];
  const tls: L4Route[] = [];
  for (const b of [...hb.tcp].sort((x, y) => compareRoutes(x.route, y.route))) {
    ((b.route.r.spec as { rules?: L4RouteRule[] }).rules ?? []).forEach((rule, i) => tcp.push(l4Route('tcp', b, rule, i, [], ctx)));
  }
  for (const b of [...hb.tls].sort((x, y) => compareRoutes(x.route, y.route))) {
    const names = ((b.route.r.spec as { hostnames?: string[] }).hostnames ?? []).map((h) => h.toLowerCase());
    ((b.route.r.spec as { rules?: L4RouteRule[] }).rules ?? []).forEach((rule, i) => tls.push(l4Route('tls', b, rule, i, names.length > 0 ? names : ['*'], ctx)));
  }
  const origin = [...hb.tcp, ...hb.tls].map((b) => b.route).sort(compareRoutes)[0]!.origin;
  return { origin, tcp, tls };
}

/**
 * `v1 Service`, `discovery.k8s.io/v1 EndpointSlice` and `v1 Pod` objects in config files as registry hosts, mapped
 * exactly as the API watch maps them (discovery/k8s-mapping.ts). Undefined when the files hold no Service.
 */
export function servicesFromFiles(resources: readonly Resource[], clusterDomain: string): ServiceDef[] | undefined {
  let any = false;
  for (const r of resources) if (r.kind === 'Service' && r.apiVersion === 'v1') { any = true; break; }
  if (!any) return undefined;
  const withNs = (r: Resource): Record<string, unknown> => ({ ...r.raw, metadata: { ...(r.raw.metadata as object), namespace: r.metadata.namespace } });
  const services = resources.filter((r) => r.kind === 'Service' && r.apiVersion === 'v1').map((r) => withNs(r) as V1Service);
  const endpointSlices = resources.filter((r) => r.kind === 'EndpointSlice' && r.apiVersion === 'discovery.k8s.io/v1').map((r) => withNs(r) as unknown as V1EndpointSlice);
  const pods = resources.filter((r) => r.kind === 'Pod' && r.apiVersion === 'v1').map((r) => withNs(r) as V1Pod);
  return servicesFromKubernetes({ services, endpointSlices, pods }, { clusterDomain });
}
