/**
 * Host names as Istio treats them in resources: short-name expansion against the resource's namespace,
 * DNS-1123 checks (FQDN, `*.suffix` wildcards), IP/CIDR checks, and wildcard overlap. Pure functions.
 */
import { isIP } from 'node:net';

/** Kubernetes `--cluster-domain` default. */
export const DEFAULT_CLUSTER_DOMAIN = 'cluster.local';

/**
 * Istio's short-name resolution for hosts written in a resource (VirtualService hosts and destinations,
 * DestinationRule host): a name without a dot means `name.<namespace>.svc.<clusterDomain>`; anything with a
 * dot, and wildcards (`*`, `*.x`), are taken as written (Istio does *not* expand `reviews.default`).
 * Lowercased, because DNS names compare case-insensitively.
 */
export function expandHost(host: string, namespace: string, clusterDomain: string = DEFAULT_CLUSTER_DOMAIN): string {
  const h = host.toLowerCase();
  if (h === '' || h.includes('.') || h.startsWith('*')) return h;
  return `${h}.${namespace}.svc.${clusterDomain}`;
}

const DNS1123_LABEL = /^[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?$/;
// Istio allows a leading `*` in the first label only: `*`, `*foo`, `*-foo` (labels.IsWildcardDNS1123Label).
const WILDCARD_LABEL = /^(?:\*|(?:\*|\*-)?[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?)$/;
const LOWER_DNS1123_LABEL = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?$/;
const LOWER_DNS1123_SUBDOMAIN = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$/;

/** RFC 1123 label as Istio checks it (≤ 63 chars; Istio accepts upper case here). */
export function isDns1123Label(s: string): boolean {
  return s.length <= 63 && DNS1123_LABEL.test(s);
}

/** Kubernetes object namespace: a lowercase RFC 1123 label. */
export function isK8sNamespace(s: string): boolean {
  return s.length <= 63 && LOWER_DNS1123_LABEL.test(s);
}

/** Kubernetes object name: a lowercase RFC 1123 subdomain (≤ 253). */
export function isK8sName(s: string): boolean {
  return s.length <= 253 && LOWER_DNS1123_SUBDOMAIN.test(s);
}

function checkLabels(domain: string, labels: string[]): string | undefined {
  const tld = labels[labels.length - 1] ?? '';
  if (/^[0-9]+$/.test(tld)) return `domain name "${domain}" invalid (top level domain "${tld}" cannot be all-numeric)`;
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i]!;
    // A trailing dot (`istio.io.`) is allowed: the last label may be empty.
    if (i === labels.length - 1 && l === '') return undefined;
    if (!isDns1123Label(l)) return `domain name "${domain}" invalid (label "${l}" invalid)`;
  }
  return undefined;
}

function preconditions(name: string): string | undefined {
  if (name.length > 255) return `domain name "${name}" too long (max 255)`;
  if (name.length === 0) return 'empty domain name not allowed';
  return undefined;
}

/** A fully-qualified (or short) DNS name without wildcards; returns the reason it is invalid, if it is. */
export function validateFqdn(name: string): string | undefined {
  return preconditions(name) ?? checkLabels(name, name.split('.'));
}

/** A DNS name that may have a wildcard first label (`*`, `*.example.com`, `*x`); returns the reason, if invalid. */
export function validateWildcardDomain(name: string): string | undefined {
  const pre = preconditions(name);
  if (pre) return pre;
  const dot = name.indexOf('.');
  const first = dot < 0 ? name : name.slice(0, dot);
  if (first.length > 63 || !WILDCARD_LABEL.test(first)) return `domain name "${name}" invalid (label "${first}" invalid)`;
  return dot < 0 ? undefined : checkLabels(name, name.slice(dot + 1).split('.'));
}

export function isIpAddress(s: string): boolean {
  return isIP(s) !== 0;
}

/** An IP address or a CIDR block (`10.0.0.0/8`, `2001:db8::/32`); returns the reason, if invalid. */
export function validateIpOrCidr(s: string): string | undefined {
  const slash = s.indexOf('/');
  if (slash < 0) return isIP(s) ? undefined : `${s} is not a valid IP`;
  const ip = s.slice(0, slash);
  const bits = s.slice(slash + 1);
  const family = isIP(ip);
  const max = family === 4 ? 32 : 128;
  if (family === 0 || !/^[0-9]{1,3}$/.test(bits) || Number(bits) > max) return `${s} is not a valid CIDR block`;
  return undefined;
}

/**
 * Whether two resource hosts (already expanded) can name the same service: equal, or one wildcard covers the
 * other (`*.foo.com` overlaps `a.foo.com` and `*.com`). Mirrors Istio's host.Name.Matches.
 */
export function hostsOverlap(a: string, b: string): boolean {
  if (a === b) return true;
  const aw = a.startsWith('*');
  const bw = b.startsWith('*');
  if (!aw && !bw) return false;
  const as = aw ? a.slice(1) : a;
  const bs = bw ? b.slice(1) : b;
  if (aw && bw) return as.endsWith(bs) || bs.endsWith(as);
  return aw ? b.endsWith(as) : a.endsWith(bs);
}

/** Whether wildcard-or-exact resource host `pattern` covers concrete host `host` (`*.foo.com` covers `a.foo.com`). */
export function hostCovers(pattern: string, host: string): boolean {
  if (pattern === host) return true;
  if (pattern === '*') return true;
  if (!pattern.startsWith('*')) return false;
  return host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1;
}

/**
 * A set of resource hosts (expanded, lowercase) answering "does any of them overlap `host`" (hostsOverlap) without
 * a scan: exact names in a Set, wildcards in a list (few in practice). Sidecar scoping asks this once per
 * DestinationRule, which with a scan over every kept host was quadratic at 10,000 services.
 */
export class HostOverlapSet {
  private readonly exact = new Set<string>();
  private readonly wildcards: string[] = [];

  add(host: string): void {
    if (host.startsWith('*')) this.wildcards.push(host);
    else this.exact.add(host);
  }

  overlaps(host: string): boolean {
    if (this.exact.has(host)) return true;
    if (!host.startsWith('*')) {
      for (const w of this.wildcards) if (hostsOverlap(w, host)) return true;
      return false;
    }
    // A wildcard query (rare): every kept host may fall under it.
    for (const w of this.wildcards) if (hostsOverlap(w, host)) return true;
    for (const h of this.exact) if (hostsOverlap(h, host)) return true;
    return false;
  }
}
