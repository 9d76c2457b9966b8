/**
 * VirtualService `tcp[]` and `tls[]` routes, pure: compiled from the VirtualService that owns a host (the same one
 * the HTTP routes come from), matched per connection, first match wins, then a weighted destination. Istio's rules:
 * - `tcp[].match`: `port` (the service port the app dialled), `destinationSubnets` (the original destination IP),
 *   `sourceLabels` / `sourceNamespace` (this workload, evaluated once), `gateways` (only `mesh` applies to a
 *   sidecar). A route without `match` takes every connection.
 * - `tls[].match` also needs `sniHosts` (exact or `*.suffix`), matched against the ClientHello's server name.
 *   TLS is not terminated: the bytes go to the chosen cluster as they came.
 * - A destination without `port` takes the service's only port, else the port the app dialled.
 */
import type { Resource } from '../config/resource.js';
import { objectName } from '../config/resource.js';
import type { Snapshot } from '../config/snapshot.js';
import type { ClusterDef } from '../model.js';
import { clusterName } from '../config/compile.js';
import { expandHost } from '../config/hosts.js';
import { cidrContains, parseCidr, parseIp, type Cidr } from '../authz/cidr.js';

export interface L4Destination {
  /** FQDN as the registry knows it. */
  host: string;
  subset: string;
  port: number | undefined;
  weight: number;
}

export interface L4Match {
  port: number | undefined;
  subnets: readonly Cidr[];
  /** tls only: exact names and `*.suffix` wildcards, lowercase. */
  sniHosts: readonly string[];
  /** Decided once from this workload's labels, namespace and the match's gateways. */
  appliesToSelf: boolean;
}

export interface L4Route {
  kind: 'tcp' | 'tls';
  /** `VirtualService/ns/name.tcp.0`, for logs and metrics. */
  name: string;
  matches: readonly L4Match[];
  destinations: readonly L4Destination[];
  cumulative: readonly number[];
  total: number;
}

export interface L4Routes {
  origin: string;
  tcp: readonly L4Route[];
  tls: readonly L4Route[];
}

export interface L4Self {
  labels: Readonly<Record<string, string>>;
  namespace: string;
  clusterDomain: string;
}

interface RawMatch {
  port?: number;
  destinationSubnets?: string[];
  sniHosts?: string[];
  sourceLabels?: Record<string, string>;
  sourceNamespace?: string;
  gateways?: string[];
}
interface RawRoute {
  match?: RawMatch[];
  route?: Array<{ destination?: { host?: string; subset?: string; port?: { number?: number } }; weight?: number }>;
}

function compileMatch(m: RawMatch, self: L4Self): L4Match {
  const labelsOk = Object.entries(m.sourceLabels ?? {}).every(([k, v]) => self.labels[k] === v);
  const nsOk = m.sourceNamespace === undefined || m.sourceNamespace === self.namespace;
  const gwOk = m.gateways === undefined || m.gateways.length === 0 || m.gateways.includes('mesh');
  const subnets: Cidr[] = [];
  for (const s of m.destinationSubnets ?? []) {
    const c = parseCidr(s.includes('/') ? s : `${s}/${s.includes(':') ? 128 : 32}`);
    if (c !== undefined) subnets.push(c);
  }
  return { port: m.port, subnets, sniHosts: (m.sniHosts ?? []).map((h) => h.toLowerCase()), appliesToSelf: labelsOk && nsOk && gwOk };
}

function compileRoute(kind: 'tcp' | 'tls', origin: string, i: number, r: RawRoute, vsNamespace: string, self: L4Self): L4Route {
  const dests: L4Destination[] = (r.route ?? []).map((d) => ({
    host: expandHost(d.destination?.host ?? '', vsNamespace, self.clusterDomain),
    subset: d.destination?.subset ?? '',
    port: d.destination?.port?.number,
    // Istio: a lone destination takes all traffic whatever its weight says; otherwise weights as given (0 = none).
    weight: (r.route ?? []).length === 1 ? 100 : (d.weight ?? 0),
  }));
  const cumulative: number[] = [];
  let total = 0;
  for (const d of dests) { total += d.weight; cumulative.push(total); }
  return { kind, name: `${origin}.${kind}.${i}`, matches: (r.match ?? []).map((m) => compileMatch(m, self)), destinations: dests, cumulative, total };
}

/** Compile one VirtualService's L4 routes (undefined when it has none). */
export function compileL4Routes(vs: Resource, self: L4Self): L4Routes | undefined {
  const spec = vs.spec as { tcp?: RawRoute[]; tls?: RawRoute[] };
  if ((spec.tcp ?? []).length === 0 && (spec.tls ?? []).length === 0) return undefined;
  const origin = objectName(vs);
  const ns = vs.metadata.namespace;
  return {
    origin,
    tcp: (spec.tcp ?? []).map((r, i) => compileRoute('tcp', origin, i, r, ns, self)),
    tls: (spec.tls ?? []).map((r, i) => compileRoute('tls', origin, i, r, ns, self)),
  };
}

const cache = new WeakMap<Snapshot, Map<string, L4Routes | null>>();

/** The L4 routes of the VirtualService named `origin` (`VirtualService/ns/name`), compiled once per snapshot. */
export function l4RoutesFor(snap: Snapshot, origin: string, self: L4Self): L4Routes | undefined {
  if (!origin.startsWith('VirtualService/')) return undefined;
  let byOrigin = cache.get(snap);
  if (byOrigin === undefined) { byOrigin = new Map(); cache.set(snap, byOrigin); }
  const hit = byOrigin.get(origin);
  if (hit !== undefined) return hit ?? undefined;
  const vs = snap.resources.find((r) => r.kind === 'VirtualService' && objectName(r) === origin);
  const compiled = vs === undefined ? undefined : compileL4Routes(vs, self);
  byOrigin.set(origin, compiled ?? null);
  return compiled;
}

function sniMatches(patterns: readonly string[], sni: string): boolean {
  for (const p of patterns) {
    if (p === '*' || p === sni) return true;
    if (p.startsWith('*.') && sni.endsWith(p.slice(1))) return true;
  }
  return false;
}

export interface L4Connection {
  /** The service port the app dialled. */
  port: number;
  /** The original destination IP. */
  address: string;
  /** The ClientHello's server name (tls routes), when there was one. */
  sni?: string;
}

/** First route whose match (any of them; none = all) fits the connection. */
export function selectL4Route(routes: readonly L4Route[], conn: L4Connection): L4Route | undefined {
  const ip = parseIp(conn.address);
  for (const r of routes) {
    if (r.matches.length === 0) {
      if (r.kind === 'tcp') return r;
      continue; // a tls route needs a match (validation requires one)
    }
    for (const m of r.matches) {
      if (!m.appliesToSelf) continue;
      if (m.port !== undefined && m.port !== conn.port) continue;
      if (m.subnets.length > 0 && (ip === undefined || !m.subnets.some((c) => cidrContains(c, ip)))) continue;
      if (r.kind === 'tls' && (conn.sni === undefined || conn.sni === '' || !sniMatches(m.sniHosts, conn.sni))) continue;
      return r;
    }
  }
  return undefined;
}

/** Weighted choice: `r` uniform in [0, 1). undefined when every weight is 0. */
export function pickL4Destination(route: L4Route, r: number): L4Destination | undefined {
  if (route.total <= 0) return undefined;
  const x = r * route.total;
  for (let i = 0; i < route.cumulative.length; i++) if (x < route.cumulative[i]!) return route.destinations[i];
  return route.destinations[route.destinations.length - 1];
}

/** The cluster a destination sends to: its port, else the service's only port, else the port the app dialled. */
export function l4Cluster(snap: Snapshot, d: L4Destination, dialledPort: number): ClusterDef | undefined {
  let port = d.port;
  if (port === undefined) {
    const svc = snap.hosts.get(d.host)?.service;
    port = svc !== undefined && svc.ports.length === 1 ? svc.ports[0]!.number : dialledPort;
  }
  return snap.clusters.get(clusterName(port, d.subset, d.host));
}
