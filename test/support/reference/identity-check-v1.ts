/**
 * What `remora validate` says about outbound mTLS identities: a ServiceEntry endpoint that Istio mTLS would be
 * originated to (auto mTLS: labelled `security.istio.io/tlsMode: istio`; or a DestinationRule `ISTIO_MUTUAL`) but
 * for which no server identity is known (no endpoint `serviceAccount`, no `subjectAltNames` on the entry or the rule)
 * gets a warning: its connections are refused (serverIdentities), never opened to any identity of the mesh. Pure.
 */
import type { Resource } from '../../../src/config/resource.js';
import { errorAt, type ConfigError } from '../../../src/config/resource.js';
import { expandHost } from '../../../src/config/hosts.js';

type Obj = Record<string, unknown>;

function obj(v: unknown): Obj | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : undefined;
}

function list(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

function nonEmptyList(v: unknown): boolean {
  return list(v).some((x) => typeof x === 'string' && x !== '');
}

/** The DestinationRule's top-level TLS mode and whether it names subjectAltNames (the level every port inherits). */
function drTls(dr: Resource): { mode: string | undefined; sans: boolean } {
  const tls = obj(obj(obj(dr.spec)?.trafficPolicy)?.tls);
  return { mode: typeof tls?.mode === 'string' ? tls.mode : undefined, sans: nonEmptyList(tls?.subjectAltNames) };
}

export function identityWarnings(resources: readonly Resource[], clusterDomain: string): ConfigError[] {
  const out: ConfigError[] = [];
  const drByHost = new Map<string, Resource>();
  for (const r of resources) {
    if (r.kind !== 'DestinationRule') continue;
    const host = obj(r.spec)?.host;
    if (typeof host === 'string') drByHost.set(expandHost(host, r.metadata.namespace, clusterDomain), r);
  }
  const workloadEntries = resources.filter((r) => r.kind === 'WorkloadEntry');
  for (const se of resources) {
    if (se.kind !== 'ServiceEntry') continue;
    const spec = obj(se.spec) ?? {};
    if (nonEmptyList(spec.subjectAltNames)) continue;
    const hosts = list(spec.hosts).filter((h): h is string => typeof h === 'string');
    const dr = hosts.map((h) => drByHost.get(expandHost(h, se.metadata.namespace, clusterDomain))).find((d) => d !== undefined);
    const tls = dr === undefined ? { mode: undefined, sans: false } : drTls(dr);
    if (tls.sans || (tls.mode !== undefined && tls.mode !== 'ISTIO_MUTUAL')) continue;
    const why = (labels: Obj | undefined): string | undefined => {
      if (tls.mode === 'ISTIO_MUTUAL') return `DestinationRule ${dr!.metadata.namespace}/${dr!.metadata.name} sets ISTIO_MUTUAL`;
      return labels?.['security.istio.io/tlsMode'] === 'istio' ? 'auto mTLS: the endpoint is labelled security.istio.io/tlsMode=istio' : undefined;
    };
    const fix = 'set its serviceAccount, or subjectAltNames on the ServiceEntry or the DestinationRule';
    list(spec.endpoints).forEach((e, i) => {
      const ep = obj(e);
      if (ep === undefined || (typeof ep.serviceAccount === 'string' && ep.serviceAccount !== '')) return;
      const reason = why(obj(ep.labels));
      if (reason !== undefined) out.push(errorAt(se, ['spec', 'endpoints', i], `no identity is known for the server of this endpoint (${reason}): mTLS connections to it are refused (503 UF); ${fix}`, 'warning'));
    });
    const sel = obj(obj(spec.workloadSelector)?.labels);
    if (sel === undefined) continue;
    for (const we of workloadEntries) {
      const w = obj(we.spec) ?? {};
      const labels = obj(w.labels) ?? {};
      if (we.metadata.namespace !== se.metadata.namespace || !Object.entries(sel).every(([k, v]) => labels[k] === v)) continue;
      if (typeof w.serviceAccount === 'string' && w.serviceAccount !== '') continue;
      const reason = why(labels);
      if (reason !== undefined) out.push(errorAt(we, ['spec'], `no identity is known for this workload, selected by ServiceEntry ${se.metadata.namespace}/${se.metadata.name} (${reason}): mTLS connections to it are refused (503 UF); ${fix}`, 'warning'));
    }
  }
  return out;
}
