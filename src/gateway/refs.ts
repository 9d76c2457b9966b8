/**
 * References in Gateway API routes, pure: which parentRefs and backendRefs name a Service (and its registry host),
 * the defaults the API server applies (group, kind, namespace), and GEP-2257 durations.
 */
import type { ServiceDef } from '../model.js';
import type { BackendObjectReference, ParentReference } from './types.js';
import { GATEWAY_GROUP } from './types.js';

/** `group: ""` or `core` with `kind: Service` (the mesh parent; also the default backend kind). */
export function isServiceKind(group: string, kind: string): boolean {
  return (group === '' || group === 'core') && kind === 'Service';
}

/** Istio's extension: a backendRef of group networking.istio.io, kind Hostname, names a registry host directly. */
export function isHostnameKind(group: string, kind: string): boolean {
  return group === 'networking.istio.io' && kind === 'Hostname';
}

const DURATION = /^(?:[0-9]{1,5}(?:h|ms|m|s)){1,4}$/;
const TERM = /([0-9]{1,5})(h|ms|m|s)/g;
const UNIT: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };

/** GEP-2257 duration → ms (`0s` = 0 = disabled), or undefined when the string is not one. */
export function gatewayDurationMs(v: string): number | undefined {
  if (!DURATION.test(v)) return undefined;
  let ms = 0;
  for (const m of v.matchAll(TERM)) ms += Number(m[1]) * UNIT[m[2]!]!;
  return ms;
}

export interface ParentTarget {
  /** The registry host (`name.ns.svc.<domain>`). */
  host: string;
  namespace: string;
  name: string;
  /** The service port the route is limited to (parentRef.port or sectionName), undefined = every port. */
  port: number | undefined;
}

export type ParentResolution =
  | { ok: true; target: ParentTarget; service: ServiceDef }
  /** `notService`: the parent is not a Service (a Gateway …): not Remora's to report on. */
  | { ok: false; reason: 'NoMatchingParent' | 'NotService'; message: string };

/** Resolve one parentRef of a route in `routeNs` against the registry. */
export function resolveParent(ref: ParentReference, routeNs: string, byHost: ReadonlyMap<string, ServiceDef>, clusterDomain: string): ParentResolution {
  const group = ref.group ?? GATEWAY_GROUP;
  const kind = ref.kind ?? 'Gateway';
  if (!isServiceKind(group, kind)) return { ok: false, reason: 'NotService', message: `parent ${group}/${kind} ${ref.name} is not a Service` };
  const namespace = ref.namespace && ref.namespace !== '' ? ref.namespace : routeNs;
  const host = `${ref.name}.${namespace}.svc.${clusterDomain}`;
  const svc = byHost.get(host);
  if (svc === undefined) return { ok: false, reason: 'NoMatchingParent', message: `Service ${namespace}/${ref.name} not found` };
  let port: number | undefined;
  if (ref.sectionName !== undefined && ref.sectionName !== '') {
    const p = svc.ports.find((x) => x.name === ref.sectionName);
    if (p === undefined) return { ok: false, reason: 'NoMatchingParent', message: `Service ${namespace}/${ref.name} has no port named ${ref.sectionName}` };
    port = p.number;
  }
  if (ref.port !== undefined) {
    if (!svc.ports.some((x) => x.number === ref.port)) return { ok: false, reason: 'NoMatchingParent', message: `Service ${namespace}/${ref.name} has no port ${ref.port}` };
    if (port !== undefined && port !== ref.port) return { ok: false, reason: 'NoMatchingParent', message: `port ${ref.port} is not the port named ${ref.sectionName}` };
    port = ref.port;
  }
  return { ok: true, target: { host, namespace, name: ref.name, port }, service: svc };
}

export type BackendResolution =
  | { ok: true; host: string; port: number; service: ServiceDef }
  | { ok: false; reason: 'BackendNotFound' | 'InvalidKind'; message: string };

/** Resolve a backendRef (or a mirror's) of a route in `routeNs`. No ReferenceGrant is needed in the mesh (GEP-1294). */
export function resolveBackend(ref: BackendObjectReference, routeNs: string, byHost: ReadonlyMap<string, ServiceDef>, clusterDomain: string): BackendResolution {
  const group = ref.group ?? '';
  const kind = ref.kind ?? 'Service';
  let host: string;
  let what: string;
  if (isServiceKind(group, kind)) {
    const namespace = ref.namespace && ref.namespace !== '' ? ref.namespace : routeNs;
    host = `${ref.name}.${namespace}.svc.${clusterDomain}`;
    what = `Service ${namespace}/${ref.name}`;
  } else if (isHostnameKind(group, kind)) {
    host = ref.name.toLowerCase();
    what = `host ${ref.name}`;
  } else {
    return { ok: false, reason: 'InvalidKind', message: `backendRef kind ${group === '' ? '' : `${group}/`}${kind} is not supported (Service, or networking.istio.io/Hostname)` };
  }
  const svc = byHost.get(host);
  if (svc === undefined) return { ok: false, reason: 'BackendNotFound', message: `${what} not found` };
  const port = ref.port ?? (svc.ports.length === 1 ? svc.ports[0]!.number : 0);
  if (!svc.ports.some((p) => p.number === port)) return { ok: false, reason: 'BackendNotFound', message: `${what} has no port ${ref.port ?? '(none given)'}` };
  return { ok: true, host, port, service: svc };
}

/** `ns/name` of a route, the key of precedence ties and of status. */
export function routeKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}
