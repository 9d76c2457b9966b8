/**
 * Host names in a compiled Snapshot: the aliases a Kubernetes-style FQDN answers to, and the lookup of a request's
 * host (exact or alias, VIP, wildcard, then the resolver's search path). Pure.
 */
import type { Snapshot, HostEntry } from './snapshot.js';

/** The names a request may use for a Kubernetes-style FQDN, as Envoy virtual host domains do. */
export function hostAliases(fqdn: string, proxyNamespace: string, clusterDomain: string): string[] {
  const suffix = `.svc.${clusterDomain}`;
  if (!fqdn.endsWith(suffix)) return [];
  const base = fqdn.slice(0, -suffix.length); // name.ns
  const dot = base.indexOf('.');
  if (dot < 0) return [];
  const name = base.slice(0, dot);
  const ns = base.slice(dot + 1);
  const out = [`${base}.svc`, base];
  if (ns === proxyNamespace) out.push(name);
  return out;
}

/**
 * Look a request host (lowercase, without port) up: exact/alias, then VIP, then wildcard; on a miss, the name
 * with each domain of the pod's resolver search path, in the resolver's order.
 */
export function lookupHost(s: Snapshot, host: string): HostEntry | undefined {
  const e = lookupExact(s, host);
  if (e !== undefined || s.search === undefined || host.endsWith('.')) return e;
  // A name the registry knows as written wins (as an Envoy virtual-host domain would); only a miss walks the
  // search path. The as-written try the resolver makes last (fewer than ndots dots) has just been done.
  for (const d of s.search.domains) {
    const c = lookupExact(s, `${host}.${d}`);
    if (c !== undefined) return c;
  }
  return undefined;
}

function lookupExact(s: Snapshot, host: string): HostEntry | undefined {
  const e = s.hosts.get(host);
  if (e) return e;
  const a = s.addresses.get(host);
  if (a) return a;
  for (let i = 0; i < s.wildcards.length; i++) {
    const w = s.wildcards[i]!;
    if (host.endsWith(w.suffix)) return w.entry;
  }
  return undefined;
}
