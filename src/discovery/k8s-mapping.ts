/**
 * Kubernetes Services + EndpointSlices + Pods → mesh registry hosts (ServiceDef), the way Istio's
 * Kubernetes registry does it. Pure: objects in, ServiceDefs out; the watch lives in k8s-source.ts.
 */
import type { V1EndpointSlice, V1Pod, V1Service, V1ServicePort } from '@kubernetes/client-node';
import type { ServiceDef, ServicePortDef, WorkloadDef } from '../model.js';

export interface KubernetesInput {
  services: readonly V1Service[];
  endpointSlices: readonly V1EndpointSlice[];
  pods: readonly V1Pod[];
}

export interface MappingOptions {
  /** Kubernetes cluster domain (kubelet `--cluster-domain`), e.g. `cluster.local`. */
  clusterDomain: string;
}

/** Label that ties an EndpointSlice to its Service (set by the controller, or by hand for selectorless Services). */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** Protocol names Istio recognizes (istio `protocol.Parse`, case-insensitive). Anything else is sniffed (''). */
const KNOWN_PROTOCOLS = new Set([
  'http', 'http2', 'https', 'grpc', 'grpc-web', 'tcp', 'tls', 'udp', 'mongo', 'redis', 'mysql', 'thrift',
]);

/**
 * Istio's protocol selection for a Kubernetes Service port: UDP ports are UDP; `appProtocol` wins over the
 * name (with the Kubernetes-defined `kubernetes.io/h2c|ws|wss` values); otherwise the port name's prefix
 * before the first `-` (`http-web` → http, `grpc-web…` → grpc-web). Unknown → '' (sniffed).
 */
export function protocolOf(port: Pick<V1ServicePort, 'name' | 'appProtocol' | 'protocol'>): string {
  if ((port.protocol ?? 'TCP').toUpperCase() === 'UDP') return 'udp';
  let name = port.name ?? '';
  if (port.appProtocol) {
    name = port.appProtocol;
    switch (name) {
      case 'kubernetes.io/h2c':
        return 'http2';
      case 'kubernetes.io/ws':
        return 'http';
      case 'kubernetes.io/wss':
        return 'https';
    }
  }
  const lower = name.toLowerCase();
  // grpc-web contains a hyphen, so it must be checked before cutting at the first '-'.
  if (lower.startsWith('grpc-web')) return 'grpc-web';
  const dash = lower.indexOf('-');
  const prefix = dash >= 0 ? lower.slice(0, dash) : lower;
  return KNOWN_PROTOCOLS.has(prefix) ? prefix : '';
}

export function serviceHost(name: string, namespace: string, clusterDomain: string): string {
  return `${name}.${namespace}.svc.${clusterDomain}`;
}

/** ClusterIPs of a Service (dual-stack `clusterIPs` first), without the headless marker `None`. */
export function clusterIPsOf(svc: V1Service): string[] {
  const spec = svc.spec ?? {};
  const ips = spec.clusterIPs && spec.clusterIPs.length > 0 ? spec.clusterIPs : spec.clusterIP ? [spec.clusterIP] : [];
  return ips.filter((ip) => ip !== '' && ip !== 'None');
}

interface ReadyEndpoint {
  address: string;
  /** Service port name → resolved endpoint port, from the slice's `ports`. */
  ports: Record<string, number>;
  hostname?: string;
  podName?: string;
  nodeName?: string;
}

/**
 * EndpointSlice `conditions.ready`: nil means "unknown" and the API says to treat it as ready; a terminating
 * endpoint always has ready=false, but we check `terminating` too so that hand-made slices drain as well.
 */
function isReady(cond: { ready?: boolean; terminating?: boolean } | undefined): boolean {
  return cond?.ready !== false && cond?.terminating !== true;
}

function readyEndpoints(slices: readonly V1EndpointSlice[]): ReadyEndpoint[] {
  // Dual-stack Services have one slice family per IP family: balance over IPv4 when there is any.
  const v4 = slices.filter((s) => s.addressType === 'IPv4');
  const chosen = v4.length > 0 ? v4 : slices.filter((s) => s.addressType === 'IPv6');
  const byAddress = new Map<string, ReadyEndpoint>();
  for (const slice of chosen) {
    const ports: Record<string, number> = {};
    for (const p of slice.ports ?? []) {
      if (typeof p.port === 'number') ports[p.name ?? ''] = p.port;
    }
    for (const ep of slice.endpoints ?? []) {
      const address = ep.addresses?.[0];
      if (!address || !isReady(ep.conditions)) continue;
      // During slice rebalancing an endpoint may briefly appear in two slices: keep the first, merge ports (into a
      // copy: the endpoints of one slice share its port map).
      const prev = byAddress.get(address);
      if (prev) {
        prev.ports = { ...prev.ports, ...ports };
        continue;
      }
      const ready: ReadyEndpoint = { address, ports };
      if (ep.hostname) ready.hostname = ep.hostname;
      if (ep.targetRef?.kind === 'Pod' && ep.targetRef.name) ready.podName = ep.targetRef.name;
      if (ep.nodeName) ready.nodeName = ep.nodeName;
      byAddress.set(address, ready);
    }
  }
  return [...byAddress.values()].sort((a, b) => compareAddress(a.address, b.address));
}

function compareAddress(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function portsOf(svc: V1Service, externalName: boolean): ServicePortDef[] {
  return (svc.spec?.ports ?? []).map((p) => {
    const def: ServicePortDef = { number: p.port, name: p.name ?? '', protocol: protocolOf(p) };
    // Kubernetes defaults targetPort to port. A named targetPort has no service-wide number: it is resolved
    // per endpoint from the EndpointSlice ports (WorkloadDef.ports). ExternalName ignores targetPort.
    if (externalName) def.targetPort = p.port;
    else if (typeof p.targetPort === 'number') def.targetPort = p.targetPort;
    else if (p.targetPort === undefined || p.targetPort === '') def.targetPort = p.port;
    else if (/^\d+$/.test(p.targetPort)) def.targetPort = Number(p.targetPort);
    return def;
  });
}

/** The cache key of an object (`namespace/name`, '' for an absent namespace), as the informers key their caches. */
export function objectKey(meta: { namespace?: string; name?: string } | undefined): string {
  return [meta?.namespace ?? '', meta?.name ?? ''].join('/');
}

/** Where a Service looks for its EndpointSlices and Pods: `namespace/name`, the namespace defaulting to `default`. */
export function serviceLookupKey(svc: V1Service): string {
  return [svc.metadata?.namespace ?? 'default', svc.metadata?.name ?? ''].join('/');
}

/** The Service an EndpointSlice belongs to (`namespace/service-name`, matched with serviceLookupKey), if labelled. */
export function sliceOwnerKey(slice: V1EndpointSlice): string | undefined {
  const svcName = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
  return svcName ? [slice.metadata?.namespace ?? '', svcName].join('/') : undefined;
}

/** The order of a Service's slices: by name (the informers' arrival order must not change which endpoint wins). */
export function compareSlices(a: V1EndpointSlice, b: V1EndpointSlice): number {
  return compareAddress(a.metadata?.name ?? '', b.metadata?.name ?? '');
}

/** The order of the registry: hostname, then the Service's cache key, then the place within that Service's output. */
export function compareDefs(a: ServiceDef, aKey: string, aIdx: number, b: ServiceDef, bKey: string, bIdx: number): number {
  return compareAddress(a.hostname, b.hostname) || compareAddress(aKey, bKey) || aIdx - bIdx;
}

/**
 * One Service's registry host(s): its own, and for a headless Service one per endpoint with a hostname. `slices` are
 * the Service's EndpointSlices in compareSlices order; `pod` finds a Pod by `namespace/name` (labels for subsets, the
 * service account for identity). What the full mapping and the incremental one (k8s-registry.ts) both call.
 */
export function mapService(svc: V1Service, slices: readonly V1EndpointSlice[], pod: (key: string) => V1Pod | undefined, opts: MappingOptions): ServiceDef[] {
  const name = svc.metadata?.name;
  const namespace = svc.metadata?.namespace ?? 'default';
  if (!name) return [];
  const host = serviceHost(name, namespace, opts.clusterDomain);
  const origin = `Service/${namespace}/${name}`;

  if (svc.spec?.type === 'ExternalName') {
    const target = svc.spec.externalName;
    return [{
      hostname: host,
      namespace,
      ports: portsOf(svc, true),
      // Istio: an ExternalName Service is a DNS cluster on the external name, marked mesh-external.
      resolution: 'DNS',
      workloads: target ? [{ address: target.replace(/\.$/, ''), ports: {}, labels: {}, weight: 1 }] : [],
      addresses: [],
      location: 'MESH_EXTERNAL',
      origin,
    }];
  }

  const ports = portsOf(svc, false);
  const endpoints = readyEndpoints(slices);
  const toWorkload = (ep: ReadyEndpoint): WorkloadDef => {
    const p = ep.podName ? pod(`${namespace}/${ep.podName}`) : undefined;
    const m = p?.metadata;
    const w: WorkloadDef = {
      address: ep.address,
      ports: ep.ports,
      labels: (m?.name && (m.labels ?? {})) || {},
      weight: 1,
      name: ep.podName ?? ep.address,
    };
    // Every pod runs as a service account: Kubernetes admission sets `default` when the spec names none.
    if (m?.name) w.identity = { namespace: m.namespace ?? 'default', serviceAccount: p!.spec?.serviceAccountName || 'default' };
    return w;
  };
  const workloads = endpoints.map(toWorkload);
  const out: ServiceDef[] = [{
    hostname: host,
    namespace,
    ports,
    resolution: 'STATIC',
    workloads,
    addresses: clusterIPsOf(svc),
    location: 'MESH_INTERNAL',
    origin,
  }];
  if (svc.spec?.clusterIP === 'None') {
    // StatefulSet-style per-pod DNS names (`<hostname>.<svc>.<ns>.svc.<domain>`) reach that pod only.
    for (const ep of endpoints) {
      if (!ep.hostname) continue;
      out.push({
        hostname: `${ep.hostname}.${host}`,
        namespace,
        ports,
        resolution: 'STATIC',
        workloads: [toWorkload(ep)],
        addresses: [],
        location: 'MESH_INTERNAL',
        origin,
      });
    }
  }
  return out;
}

/**
 * Map every Service to its registry host(s), from nothing: the reference the incremental registry (k8s-registry.ts)
 * is proved equal to. Output is sorted by compareDefs, so it does not depend on the order of the input.
 */
export function servicesFromKubernetes(input: KubernetesInput, opts: MappingOptions): ServiceDef[] {
  const pods = new Map<string, V1Pod>();
  for (const pod of input.pods) {
    if (!pod.metadata?.name) continue;
    pods.set(objectKey(pod.metadata), pod);
  }
  const slicesByService = new Map<string, V1EndpointSlice[]>();
  for (const slice of input.endpointSlices) {
    const key = sliceOwnerKey(slice);
    if (key === undefined) continue;
    const list = slicesByService.get(key);
    if (list) list.push(slice);
    else slicesByService.set(key, [slice]);
  }
  const entries: Array<{ def: ServiceDef; key: string; idx: number }> = [];
  for (const svc of input.services) {
    const key = objectKey(svc.metadata);
    const slices = (slicesByService.get(serviceLookupKey(svc)) ?? []).slice().sort(compareSlices);
    mapService(svc, slices, (k) => pods.get(k), opts).forEach((def, idx) => entries.push({ def, key, idx }));
  }
  return entries.sort((a, b) => compareDefs(a.def, a.key, a.idx, b.def, b.key, b.idx)).map((e) => e.def);
}
