/**
 * The mesh registry from ServiceEntries and WorkloadEntries: a port's protocol, the WorkloadEntry index a
 * workloadSelector looks in, and one ServiceDef per ServiceEntry host. Part of ./compile.ts; pure.
 */
import type { ServiceEntrySpec, WorkloadEntrySpec } from './types.js';
import type { Resource } from './resource.js';
import { objectName } from './resource.js';
import type { ServiceDef, ServicePortDef, WorkloadDef } from '../model.js';

const PROTOCOL_BY_NAME_PREFIX = ['http2', 'https', 'http', 'grpc-web', 'grpc', 'tcp', 'tls', 'mongo', 'redis', 'mysql', 'udp'];
const PROTOCOL_NAMES = new Map(PROTOCOL_BY_NAME_PREFIX.map((p) => [p, p]));
/** One read-only array for every ServiceEntry without addresses. */
const NO_ADDRESSES: readonly string[] = Object.freeze([]);
/**
 * Port lists by their JSON: the ServiceEntries of a large mesh declare a handful of distinct port lists, and each
 * ServiceDef held its own copy (~100 B per service). Read-only, shared; bounded (cleared when full).
 */
const PORT_LISTS = new Map<string, readonly ServicePortDef[]>();

export function protocolOf(port: { protocol?: string; name?: string }): string {
  // A known protocol as the one shared string (toLowerCase() makes a new one per port).
  if (port.protocol) { const p = port.protocol.toLowerCase(); return PROTOCOL_NAMES.get(p) ?? p; }
  const n = (port.name ?? '').toLowerCase();
  for (const p of PROTOCOL_BY_NAME_PREFIX) if (n === p || n.startsWith(`${p}-`)) return p;
  return '';
}

/**
 * WorkloadEntries by namespace and by (namespace, label, value), in input order: a ServiceEntry's
 * workloadSelector looks at the entries carrying its first label instead of every entry (10,000 ServiceEntries
 * over 10,000 WorkloadEntries would otherwise be 10^8 label checks).
 */
export class WorkloadEntryIndex {
  private readonly byNs = new Map<string, Resource[]>();
  private readonly byLabel = new Map<string, Resource[]>();

  constructor(entries: readonly Resource[]) {
    const push = (m: Map<string, Resource[]>, k: string, r: Resource): void => {
      const l = m.get(k);
      if (l === undefined) m.set(k, [r]); else l.push(r);
    };
    for (const we of entries) {
      const ns = we.metadata.namespace;
      push(this.byNs, ns, we);
      const labels = (we.spec as WorkloadEntrySpec).labels ?? {};
      for (const k in labels) push(this.byLabel, `${ns}\0${k}\0${String(labels[k])}`, we);
    }
  }

  /** The entries of `namespace` whose labels include every `selector` label, in input order. */
  select(namespace: string, selector: Readonly<Record<string, string>>): Resource[] {
    let candidates: Resource[] | undefined;
    for (const k in selector) { candidates = this.byLabel.get(`${namespace}\0${k}\0${String(selector[k])}`); break; }
    if (candidates === undefined) candidates = Object.keys(selector).length === 0 ? this.byNs.get(namespace) : undefined;
    return (candidates ?? []).filter((we) => labelsMatch(selector, (we.spec as WorkloadEntrySpec).labels ?? {}));
  }
}

export function serviceEntryDefs(r: Resource, workloadEntries: WorkloadEntryIndex): ServiceDef[] {
  const spec = r.spec as ServiceEntrySpec;
  const own: ServicePortDef[] = (spec.ports ?? []).map((p) => {
    const d: ServicePortDef = { number: p.number, name: p.name ?? String(p.number), protocol: protocolOf(p) };
    if (p.targetPort) d.targetPort = p.targetPort;
    return d;
  });
  const portsKey = JSON.stringify(own);
  let ports = PORT_LISTS.get(portsKey);
  if (ports === undefined) {
    if (PORT_LISTS.size >= 4096) PORT_LISTS.clear();
    ports = Object.freeze(own.map((d) => Object.freeze(d)));
    PORT_LISTS.set(portsKey, ports);
  }
  const toWorkload = (w: WorkloadEntrySpec, namespace: string, name?: string): WorkloadDef => {
    const wd: WorkloadDef = { address: w.address ?? '', ports: w.ports ?? {}, labels: w.labels ?? {}, weight: w.weight && w.weight > 0 ? w.weight : 1 };
    if (w.locality) wd.locality = w.locality;
    if (name) wd.name = name;
    // Istio: a WorkloadEntry's serviceAccount is an account of its own namespace (an inline endpoint: the entry's).
    if (w.serviceAccount) wd.identity = { namespace, serviceAccount: w.serviceAccount };
    return wd;
  };
  let workloads: WorkloadDef[] = (spec.endpoints ?? []).map((e) => toWorkload(e, r.metadata.namespace));
  const sel = spec.workloadSelector?.labels;
  if (sel) {
    workloads = workloadEntries.select(r.metadata.namespace, sel).map((we) => toWorkload(we.spec as WorkloadEntrySpec, we.metadata.namespace, we.metadata.name));
  }
  const sans = (spec.subjectAltNames ?? []).filter((s) => typeof s === 'string' && s !== '');
  const resolution = spec.resolution ?? 'NONE';
  return (spec.hosts ?? []).map((h) => {
    const host = h.toLowerCase();
    // DNS resolution without endpoints resolves the host name itself (Istio).
    const ws = workloads.length === 0 && (resolution === 'DNS' || resolution === 'DNS_ROUND_ROBIN') && !host.startsWith('*')
      ? [{ address: host, ports: {}, labels: {}, weight: 1 }]
      : workloads;
    return {
      hostname: host,
      namespace: r.metadata.namespace,
      ports,
      resolution,
      workloads: ws,
      addresses: spec.addresses ?? NO_ADDRESSES,
      location: spec.location ?? 'MESH_EXTERNAL',
      origin: objectName(r),
      ...(sans.length > 0 ? { subjectAltNames: sans } : {}),
    };
  });
}

export function labelsMatch(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  for (const k in selector) if (labels[k] !== selector[k]) return false;
  return true;
}
