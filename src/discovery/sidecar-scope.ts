/**
 * Istio `Sidecar` egress scoping: which Sidecar applies to this workload, and the pure filter that keeps only
 * the Services and Istio resources its `egress[].hosts` can reach (so memory grows with reach, not cluster size).
 */
import type { Resource } from '../config/resource.js';
import type { ServiceDef } from '../model.js';
import { DEFAULT_CLUSTER_DOMAIN, expandHost, HostOverlapSet, hostsOverlap } from '../config/hosts.js';
import { DEFAULT_ROOT_NAMESPACE } from '../authz/authorization-policy.js';
import { validateAuthzResource } from '../authz/validate-authz.js';

export interface SidecarWorkload {
  namespace: string;
  labels: Readonly<Record<string, string>>;
  /** meshConfig.rootNamespace: its selector-less Sidecar is the mesh-wide default. Default `istio-system`. */
  rootNamespace?: string;
}

export interface ScopeInput {
  resources: readonly Resource[];
  services: readonly ServiceDef[];
}

export interface ScopeResult {
  resources: Resource[];
  services: ServiceDef[];
  /** `spec.outboundTrafficPolicy.mode` of the Sidecar, when set: overrides `--outbound-traffic-policy`. */
  outboundTrafficPolicy?: 'ALLOW_ANY' | 'REGISTRY_ONLY';
  /** Egress fields Remora does not apply (port-bound listeners, bad host entries), with how they were treated. */
  warnings: string[];
}

export interface ScopeOptions {
  clusterDomain?: string;
}

const selectorLabels = (r: Resource): Record<string, string> | undefined => {
  const ws = r.spec.workloadSelector as { labels?: Record<string, string> } | undefined;
  return ws?.labels && Object.keys(ws.labels).length > 0 ? ws.labels : undefined;
};

const byName = (a: Resource, b: Resource): number => (a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0);

/**
 * The Sidecar Istio would apply to this workload: one in its namespace whose `workloadSelector.labels` select
 * it, else its namespace's selector-less one, else the root namespace's selector-less one. Istio breaks ties by
 * the oldest creationTimestamp, which Remora does not keep; ties are broken by name. A Sidecar that fails
 * validation is passed over, as the config store skips (API server) or rejects (files) it.
 */
export function selectSidecar(resources: readonly Resource[], workload: SidecarWorkload): Resource | undefined {
  const root = workload.rootNamespace ?? DEFAULT_ROOT_NAMESPACE;
  const sidecars = resources
    .filter((r) => r.kind === 'Sidecar' && r.apiVersion.startsWith('networking.istio.io/'))
    .filter((r) => validateAuthzResource(r).every((e) => e.severity === 'warning'))
    .sort(byName);
  const inNs = sidecars.filter((r) => r.metadata.namespace === workload.namespace);
  const selected = inNs.find((r) => {
    const sel = selectorLabels(r);
    return sel !== undefined && Object.entries(sel).every(([k, v]) => workload.labels[k] === v);
  });
  if (selected) return selected;
  return inNs.find((r) => selectorLabels(r) === undefined) ?? sidecars.find((r) => r.metadata.namespace === root && selectorLabels(r) === undefined);
}

interface EgressHost {
  /** undefined = any namespace (`*`); '' = none (`~`). */
  namespace: string | undefined;
  /** Lowercase; `*` = every host. */
  dnsName: string;
}

/** Parse `egress[].hosts` entries `ns/dnsName` (`.` = this proxy's namespace, `*` = any, `~` = none). */
function parseEgress(sidecar: Resource, proxyNamespace: string, warnings: string[]): EgressHost[] | undefined {
  const egress = sidecar.spec.egress;
  if (!Array.isArray(egress) || egress.length === 0) return undefined; // no egress section: everything is reachable
  const id = `Sidecar/${sidecar.metadata.namespace}/${sidecar.metadata.name}`;
  const out: EgressHost[] = [];
  egress.forEach((l: unknown, i) => {
    const listener = (l ?? {}) as { hosts?: unknown; port?: unknown; bind?: unknown; captureMode?: unknown };
    if (listener.port !== undefined && listener.port !== null) {
      warnings.push(`${id}: egress[${i}].port is not applied: its hosts are reachable on every port`);
    }
    const hosts = Array.isArray(listener.hosts) ? listener.hosts : [];
    for (const h of hosts) {
      const s = String(h);
      const slash = s.indexOf('/');
      if (slash <= 0 || slash === s.length - 1) {
        warnings.push(`${id}: egress[${i}].hosts "${s}" is not namespace/dnsName; ignored`);
        continue;
      }
      const ns = s.slice(0, slash);
      const dnsName = s.slice(slash + 1).toLowerCase();
      // `.` is "the namespace of the Sidecar" for a namespace's own Sidecar; for the root namespace's default,
      // Istio reads it as each proxy's own namespace, which is the same thing for the proxies it applies to.
      out.push({ namespace: ns === '*' ? undefined : ns === '.' ? proxyNamespace : ns === '~' ? '' : ns, dnsName });
    }
  });
  return out;
}

function visible(egress: readonly EgressHost[], namespace: string, host: string): boolean {
  for (const e of egress) {
    if (e.namespace === '') continue;
    if (e.namespace !== undefined && e.namespace !== namespace) continue;
    if (e.dnsName === '*' || hostsOverlap(e.dnsName, host)) return true;
  }
  return false;
}

const hostList = (v: unknown): string[] => (Array.isArray(v) ? v.map((h) => String(h)) : []);

/** `name.ns.svc.<domain>` → ns (the namespace a Kubernetes Service host belongs to). */
function namespaceOfServiceHost(host: string, clusterDomain: string): string | undefined {
  const suffix = `.svc.${clusterDomain}`;
  if (!host.endsWith(suffix)) return undefined;
  const parts = host.slice(0, -suffix.length).split('.');
  return parts.length >= 2 ? parts[parts.length - 1] : undefined;
}

/**
 * Keep only what `sidecar`'s egress hosts reach. Services (Kubernetes and ServiceEntry hosts) are kept when an
 * egress host names their namespace and overlaps their host; VirtualServices when one of their hosts is visible
 * from their own namespace; ServiceEntries likewise; DestinationRules when their host overlaps a kept service or
 * ServiceEntry host (or is a reachable `name.ns.svc.<domain>`); WorkloadEntries when their namespace keeps a ServiceEntry (which is what selects them). Other
 * kinds (Sidecar, NetworkPolicy, AuthorizationPolicy …) are inbound or scoping objects and are always kept.
 * Without a Sidecar, or one without `egress`, the input is returned unfiltered.
 */
export function scopeInputs(input: ScopeInput, sidecar: Resource | undefined, proxyNamespace: string, opts: ScopeOptions = {}): ScopeResult {
  const warnings: string[] = [];
  const clusterDomain = opts.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN;
  const result: ScopeResult = { resources: [...input.resources], services: [...input.services], warnings };
  if (!sidecar) return result;
  const mode = (sidecar.spec.outboundTrafficPolicy as { mode?: unknown } | undefined)?.mode;
  if (mode === 'ALLOW_ANY' || mode === 'REGISTRY_ONLY') result.outboundTrafficPolicy = mode;
  const egress = parseEgress(sidecar, proxyNamespace, warnings);
  if (!egress) return result;

  result.services = input.services.filter((s) => visible(egress, s.namespace, s.hostname.toLowerCase()));
  const keptHosts = new HostOverlapSet();
  for (const s of result.services) keptHosts.add(s.hostname.toLowerCase());
  const keptSeNamespaces = new Set<string>();
  const kept: Resource[] = [];
  const deferred: Resource[] = [];
  for (const r of input.resources) {
    const ns = r.metadata.namespace;
    switch (r.kind) {
      case 'VirtualService':
        if (hostList(r.spec.hosts).some((h) => visible(egress, ns, expandHost(h, ns, clusterDomain)))) kept.push(r);
        break;
      case 'ServiceEntry': {
        const hosts = hostList(r.spec.hosts).map((h) => h.toLowerCase());
        if (hosts.some((h) => visible(egress, ns, h))) {
          kept.push(r);
          keptSeNamespaces.add(ns);
          for (const h of hosts) keptHosts.add(h);
        }
        break;
      }
      case 'DestinationRule':
      case 'WorkloadEntry':
        deferred.push(r); // decided once every service and ServiceEntry is known
        break;
      default:
        kept.push(r);
    }
  }
  for (const r of deferred) {
    const ns = r.metadata.namespace;
    if (r.kind === 'WorkloadEntry') {
      if (keptSeNamespaces.has(ns)) kept.push(r);
      continue;
    }
    const host = expandHost(String(r.spec.host ?? ''), ns, clusterDomain);
    if (host === '') continue;
    // A Kubernetes Service host names its namespace, so its DR is kept when that host is reachable even if the
    // Service itself came from another source; any other host must belong to a kept service or ServiceEntry.
    const svcNs = namespaceOfServiceHost(host, clusterDomain);
    if (keptHosts.overlaps(host) || (svcNs !== undefined && visible(egress, svcNs, host))) kept.push(r);
  }
  // Keep the input order (the compiler and the config hash see resources in a stable order).
  const keep = new Set(kept);
  result.resources = input.resources.filter((r) => keep.has(r));
  return result;
}

/** Identity of the Sidecar in force (name and version/content), to notice when a re-scope is due; '' for none. */
export function sidecarKey(sidecar: Resource | undefined): string {
  if (!sidecar) return '';
  return `${sidecar.metadata.namespace}/${sidecar.metadata.name}@${sidecar.metadata.resourceVersion ?? JSON.stringify(sidecar.spec)}`;
}

/**
 * What a Sidecar's egress lets a workload reach, for a source that wants to keep only that (k8s-source.ts caches no
 * Service, EndpointSlice or Pod the store's scopeInputs would drop): whether a service host in a namespace is
 * visible, and the namespaces its hosts are confined to (undefined when an entry names any namespace, `*`).
 * Undefined without a Sidecar or egress section (everything is reachable).
 */
export interface EgressScope {
  visible(namespace: string, host: string): boolean;
  namespaces: ReadonlySet<string> | undefined;
  /** Identity of the scope, to notice a change. */
  key: string;
}

export function egressScope(sidecar: Resource | undefined, proxyNamespace: string): EgressScope | undefined {
  if (!sidecar) return undefined;
  const egress = parseEgress(sidecar, proxyNamespace, []);
  if (!egress) return undefined;
  const any = egress.some((e) => e.namespace === undefined);
  const namespaces = any ? undefined : new Set(egress.map((e) => e.namespace!).filter((n) => n !== ''));
  return {
    visible: (namespace, host) => visible(egress, namespace, host.toLowerCase()),
    namespaces,
    key: JSON.stringify(egress),
  };
}

