/**
 * Which Gateway API routes bind which Service ports, pure (GEP-1294): parentRefs of kind Service, by name and
 * namespace, on every port or on parentRef.port / sectionName; one route kind per Service port (GRPCRoute, then
 * HTTPRoute, TLSRoute, TCPRoute); producer routes (the Service's namespace) for every client, consumer routes (another
 * namespace) only for clients in theirs, where they replace the producer routes port by port.
 */
import type { Resource } from '../config/resource.js';
import { objectName } from '../config/resource.js';
import type { ServiceDef } from '../model.js';
import { resolveParent, type ParentResolution } from './refs.js';
import type { GatewayRouteKind, ParentReference } from './types.js';

export interface RouteInfo {
  r: Resource;
  kind: GatewayRouteKind;
  /** `Kind/ns/name`. */
  origin: string;
  /** `ns/name`, the alphabetical tie-break of precedence. */
  key: string;
  /** metadata.creationTimestamp in ms (0 when absent: files usually have none). */
  created: number;
}

export interface ParentResult {
  /** Index in spec.parentRefs. */
  index: number;
  ref: ParentReference;
  resolution: ParentResolution;
  /** The ports this parentRef lost to another route kind (GEP-1294 route type precedence), and to which. */
  conflicts: Array<{ port: number; winner: GatewayRouteKind }>;
  /** Every port it asked for was taken by another route kind. */
  conflicted: boolean;
}

/** A route's hold on one host for this sidecar: on `ports` (undefined = every port, including ports not declared). */
export interface Binding {
  route: RouteInfo;
  host: string;
  ports: readonly number[] | undefined;
  consumer: boolean;
}

export interface HostBindings {
  service: ServiceDef;
  http: Binding[];
  grpc: Binding[];
  tcp: Binding[];
  tls: Binding[];
}

export interface MeshBindings {
  /** Per route, per parentRef: what it resolved to (for status, independent of the sidecar). */
  parents: Map<Resource, ParentResult[]>;
  /** Per registry host, the bindings in force for a sidecar in `namespace` (only hosts with at least one). */
  hosts: Map<string, HostBindings>;
}

const KIND_RANK: Record<GatewayRouteKind, number> = { GRPCRoute: 4, HTTPRoute: 3, TLSRoute: 2, TCPRoute: 1 };

export function createdMs(r: Resource): number {
  const md = r.raw.metadata as { creationTimestamp?: unknown } | undefined;
  const c = md?.creationTimestamp;
  if (c instanceof Date) return c.getTime();
  if (typeof c === 'string') {
    const t = Date.parse(c);
    return Number.isFinite(t) ? t : 0;
  }
  return 0;
}

export function routeInfo(r: Resource): RouteInfo {
  return { r, kind: r.kind as GatewayRouteKind, origin: objectName(r), key: `${r.metadata.namespace}/${r.metadata.name}`, created: createdMs(r) };
}

/** Oldest first, then `ns/name` (the spec's tie-break across routes). */
export function compareRoutes(a: RouteInfo, b: RouteInfo): number {
  if (a.created !== b.created) {
    // A route without a timestamp (a file) sorts after every timestamped one, then by name.
    if (a.created === 0) return 1;
    if (b.created === 0) return -1;
    return a.created - b.created;
  }
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

interface Candidate { route: RouteInfo; host: string; service: ServiceDef; ports: number[] | undefined; consumer: boolean; parents: ParentResult[] }

/**
 * Bind `routes` (valid Gateway API routes) to `byHost`. `namespace` is the sidecar's (consumer routes apply only
 * there); undefined computes the cluster-wide view only (`hosts` empty), as the status writer needs.
 */
export function bindRoutes(routes: readonly Resource[], byHost: ReadonlyMap<string, ServiceDef>, clusterDomain: string, namespace: string | undefined): MeshBindings {
  const parents = new Map<Resource, ParentResult[]>();
  const candidates: Candidate[] = [];
  const byRouteHost = new Map<string, Candidate>();
  const infos = routes.map(routeInfo).sort(compareRoutes);
  for (const info of infos) {
    const refs = ((info.r.spec as { parentRefs?: ParentReference[] }).parentRefs ?? []);
    const results: ParentResult[] = [];
    refs.forEach((ref, index) => {
      const resolution = resolveParent(ref, info.r.metadata.namespace, byHost, clusterDomain);
      const pr: ParentResult = { index, ref, resolution, conflicts: [], conflicted: false };
      results.push(pr);
      if (!resolution.ok) return;
      const t = resolution.target;
      // One candidate per (route, host): several parentRefs to one Service add their ports.
      const ck = `${info.origin}\n${t.host}`;
      const prev = byRouteHost.get(ck);
      if (prev !== undefined) {
        if (prev.ports !== undefined) prev.ports = t.port === undefined ? undefined : [...new Set([...prev.ports, t.port])];
        prev.parents.push(pr);
        return;
      }
      const c: Candidate = { route: info, host: t.host, service: resolution.service, ports: t.port === undefined ? undefined : [t.port], consumer: info.r.metadata.namespace !== resolution.service.namespace, parents: [pr] };
      candidates.push(c);
      byRouteHost.set(ck, c);
    });
    parents.set(info.r, results);
  }

  // Route type precedence per Service port, within each group (the producers; each consumer namespace).
  const byHostGroup = new Map<string, Candidate[]>();
  for (const c of candidates) {
    const k = `${c.host}\n${c.consumer ? c.route.r.metadata.namespace : ''}`;
    const l = byHostGroup.get(k);
    if (l === undefined) byHostGroup.set(k, [c]); else l.push(c);
  }
  const effective = new Map<Candidate, number[] | undefined>();
  for (const group of byHostGroup.values()) {
    // One route per Service (the common case): nothing to rank.
    if (group.length === 1) { effective.set(group[0]!, group[0]!.ports); continue; }
    const svcPorts = group[0]!.service.ports.map((p) => p.number);
    const winner = new Map<number, GatewayRouteKind>();
    for (const c of group) for (const p of c.ports ?? svcPorts) {
      const w = winner.get(p);
      if (w === undefined || KIND_RANK[c.route.kind] > KIND_RANK[w]) winner.set(p, c.route.kind);
    }
    for (const c of group) {
      const asked = c.ports ?? svcPorts;
      const lost = asked.filter((p) => winner.get(p) !== c.route.kind);
      for (const pr of c.parents) {
        // Each parentRef's own ports (a ref without port asks for all of them).
        const own = pr.resolution.ok && pr.resolution.target.port !== undefined ? [pr.resolution.target.port] : svcPorts;
        const ownLost = lost.filter((p) => own.includes(p));
        for (const p of ownLost) pr.conflicts.push({ port: p, winner: winner.get(p)! });
        pr.conflicted = own.length > 0 && ownLost.length === own.length;
      }
      if (lost.length === 0) effective.set(c, c.ports);
      else if (lost.length < asked.length) effective.set(c, asked.filter((p) => winner.get(p) === c.route.kind));
    }
  }

  const hosts = new Map<string, HostBindings>();
  if (namespace === undefined) return { parents, hosts };
  // For this sidecar: its own namespace's consumer routes replace the producer routes on the ports they cover.
  const perHost = new Map<string, Candidate[]>();
  for (const c of candidates) {
    if (!effective.has(c)) continue;
    if (c.consumer && c.route.r.metadata.namespace !== namespace) continue;
    const l = perHost.get(c.host);
    if (l === undefined) perHost.set(c.host, [c]); else l.push(c);
  }
  for (const [host, list] of perHost) {
    const svc = list[0]!.service;
    if (list.length === 1) {
      // One route (the common case): it applies as it is.
      const c = list[0]!;
      const hb: HostBindings = { service: svc, http: [], grpc: [], tcp: [], tls: [] };
      const b: Binding = { route: c.route, host, ports: effective.get(c), consumer: c.consumer };
      (c.route.kind === 'HTTPRoute' ? hb.http : c.route.kind === 'GRPCRoute' ? hb.grpc : c.route.kind === 'TCPRoute' ? hb.tcp : hb.tls).push(b);
      hosts.set(host, hb);
      continue;
    }
    const svcPorts = svc.ports.map((p) => p.number);
    const consumers = list.filter((c) => c.consumer);
    const consumerAll = consumers.some((c) => effective.get(c) === undefined);
    const consumerPorts = new Set<number>();
    for (const c of consumers) for (const p of effective.get(c) ?? []) consumerPorts.add(p);
    const hb: HostBindings = { service: svc, http: [], grpc: [], tcp: [], tls: [] };
    for (const c of list) {
      let ports = effective.get(c);
      if (!c.consumer && (consumerAll || consumerPorts.size > 0)) {
        if (consumerAll) continue;
        ports = (ports ?? svcPorts).filter((p) => !consumerPorts.has(p));
        if (ports.length === 0) continue;
      }
      const b: Binding = { route: c.route, host, ports, consumer: c.consumer };
      const kind = c.route.kind;
      if (kind === 'HTTPRoute') hb.http.push(b);
      else if (kind === 'GRPCRoute') hb.grpc.push(b);
      else if (kind === 'TCPRoute') hb.tcp.push(b);
      else hb.tls.push(b);
    }
    if (hb.http.length + hb.grpc.length + hb.tcp.length + hb.tls.length > 0) hosts.set(host, hb);
  }
  return { parents, hosts };
}
