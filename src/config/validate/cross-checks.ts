/**
 * What a resource contributes to the checks across resources, derived from it alone (so a change can withdraw it
 * again): a VirtualService's hosts, delegates and subset references; a DestinationRule's subsets; a duplicate's key.
 * The checks themselves live in state.ts, over indexes of these facts. Pure.
 */
import type { FieldPath, Resource } from '../resource.js';
import { expandHost, isDns1123Label } from '../hosts.js';
import { has, listOf, objOf, strOf } from './common.js';
import { takesPart } from './one.js';

export interface Delegate {
  /** Path of the route's `delegate` object. */
  path: FieldPath;
  name: string;
  namespace: string;
}

/** A VirtualService as the cross-checks see it (Istio kind, supported apiVersion, spec a mapping). */
export interface VsFacts {
  /** spec.hosts, the strings among them, in order (a claim's index is its place in this list). */
  hosts: string[];
  appliesToMesh: boolean;
  delegates: Delegate[];
}

const NO_DELEGATES: Delegate[] = [];

export function vsFacts(r: Resource): VsFacts | undefined {
  if (r.kind !== 'VirtualService' || !takesPart(r)) return undefined;
  const spec = objOf(r.raw.spec)!;
  const hosts = listOf(spec.hosts).filter((h): h is string => typeof h === 'string');
  const gateways = listOf(spec.gateways).filter((g): g is string => typeof g === 'string');
  const appliesToMesh = gateways.length === 0 || gateways.includes('mesh');
  let delegates = NO_DELEGATES;
  if (hosts.length > 0) {
    listOf(spec.http).forEach((route, i) => {
      const http = objOf(route);
      if (!http || !has(http, 'delegate')) return;
      const name = strOf(objOf(http.delegate)?.name);
      if (!name) return;
      if (delegates === NO_DELEGATES) delegates = [];
      delegates.push({ path: ['spec', 'http', i, 'delegate'], name, namespace: strOf(objOf(http.delegate)?.namespace) || r.metadata.namespace });
    });
  }
  return { hosts, appliesToMesh, delegates };
}

/** A destination naming a subset, as the subset check reads it. */
export interface SubsetRef {
  /** Path of the `destination` object. */
  path: FieldPath;
  host: string;
  subset: string;
}

/**
 * The subset references of a VirtualService the mesh applies (a gateway-only one is never applied by a sidecar), in
 * the order validation meets them: per HTTP route its mirror, mirrors, then route destinations; then TLS and TCP
 * routes. Only well-formed ones (a host, a subset that is a DNS label): the others are errors of the resource itself.
 */
export function subsetRefs(r: Resource, facts: VsFacts): SubsetRef[] {
  const out: SubsetRef[] = [];
  if (!facts.appliesToMesh) return out;
  const spec = objOf(r.raw.spec)!;
  const dest = (d: unknown, path: FieldPath): void => {
    const o = objOf(d);
    if (!o) return;
    const host = strOf(o.host);
    const subset = strOf(o.subset);
    if (subset !== undefined && subset !== '' && isDns1123Label(subset) && host) out.push({ path, host, subset });
  };
  const routes = (list: unknown, path: FieldPath): void => {
    listOf(list).forEach((rd, j) => {
      const o = objOf(rd);
      if (o) dest(o.destination, [...path, j, 'destination']);
    });
  };
  listOf(spec.http).forEach((route, i) => {
    const http = objOf(route);
    if (!http) return;
    const p = ['spec', 'http', i];
    if (http.mirror !== undefined) dest(http.mirror, [...p, 'mirror']);
    listOf(http.mirrors).forEach((m, j) => {
      const o = objOf(m);
      if (o) dest(o.destination, [...p, 'mirrors', j, 'destination']);
    });
    routes(http.route, [...p, 'route']);
  });
  for (const section of ['tls', 'tcp'] as const) {
    listOf(spec[section]).forEach((t, i) => {
      const o = objOf(t);
      if (o) routes(o.route, ['spec', section, i, 'route']);
    });
  }
  return out;
}

/** The expanded hosts whose DestinationRules a VirtualService's subset references depend on (wildcards skipped). */
export function subsetRefHosts(r: Resource, facts: VsFacts, clusterDomain: string): Set<string> {
  const out = new Set<string>();
  for (const ref of subsetRefs(r, facts)) if (!ref.host.includes('*')) out.add(expandHost(ref.host, r.metadata.namespace, clusterDomain));
  return out;
}

/** The expanded hosts a mesh VirtualService claims (the same host twice counts once). */
export function claimedHosts(r: Resource, facts: VsFacts, clusterDomain: string): Set<string> {
  const out = new Set<string>();
  if (facts.appliesToMesh) for (const h of facts.hosts) out.add(expandHost(h, r.metadata.namespace, clusterDomain));
  return out;
}

/** `Kind/ns/name` of a resource that takes part in the duplicate check (a named one), else undefined. */
export function duplicateKey(r: Resource): string | undefined {
  if (!r.metadata.name || !takesPart(r)) return undefined;
  return `${r.kind}/${r.metadata.namespace}/${r.metadata.name}`;
}

/** A DestinationRule's host (expanded) and subset names, as the subset check reads them; undefined without a host. */
export function drSubsets(dr: Resource, clusterDomain: string): { host: string; subsets: string[] } | undefined {
  const host = strOf(dr.spec.host);
  if (!host) return undefined;
  const subsets = listOf(dr.spec.subsets).map((s) => strOf(objOf(s)?.name)).filter((n): n is string => !!n);
  return { host: expandHost(host, dr.metadata.namespace, clusterDomain), subsets };
}
