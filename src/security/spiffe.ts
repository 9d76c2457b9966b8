/**
 * SPIFFE workload identities as Istio uses them: `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>` in
 * a certificate's URI SAN, and the principal `<trust-domain>/ns/<namespace>/sa/<service-account>` that
 * AuthorizationPolicy `principals` and `source.principal` match. Pure.
 */
import type { X509Certificate } from 'node:crypto';
import type { WorkloadIdentity } from '../model.js';

export interface SpiffeId {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

const ID = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/;

/** Parse an Istio-shaped SPIFFE ID; undefined for anything else (another path shape, another scheme). */
export function parseSpiffeId(uri: string): SpiffeId | undefined {
  const m = ID.exec(uri);
  if (!m) return undefined;
  return { trustDomain: m[1]!, namespace: m[2]!, serviceAccount: m[3]! };
}

export function spiffeUri(id: SpiffeId): string {
  return `spiffe://${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
}

/** AuthorizationPolicy's principal form: the SPIFFE ID without its scheme. */
export function principalOf(id: SpiffeId): string {
  return `${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
}

/**
 * The SANs of one kind (`URI`, `DNS`) in node's subjectAltName string ('DNS:a, URI:spiffe://x, IP Address:1.2.3.4';
 * entries holding ", " or quotes are JSON-quoted, and come back unquoted).
 */
export function sanEntries(san: string | undefined, kind: 'URI' | 'DNS'): string[] {
  if (san === undefined) return [];
  const out: string[] = [];
  const re = new RegExp(`(?:^|, )${kind}:("(?:[^"\\\\]|\\\\.)*"|[^,]*)`, 'g');
  for (const m of san.matchAll(re)) {
    const v = m[1]!;
    out.push(v.startsWith('"') ? (JSON.parse(v) as string) : v);
  }
  return out;
}

/** The URI SANs of a certificate. */
export function uriSans(cert: Pick<X509Certificate, 'subjectAltName'>): string[] {
  return sanEntries(cert.subjectAltName, 'URI');
}

/** The one Istio SPIFFE identity of a certificate, if it has exactly one. */
export function certIdentity(cert: Pick<X509Certificate, 'subjectAltName'>): SpiffeId | undefined {
  const ids = uriSans(cert).map(parseSpiffeId).filter((x): x is SpiffeId => x !== undefined);
  return ids.length === 1 ? ids[0] : undefined;
}

/**
 * The identities the server of one endpoint may present, as Istio derives them for ISTIO_MUTUAL and auto mTLS:
 * DestinationRule `subjectAltNames` when given; otherwise ServiceEntry `subjectAltNames` and the endpoint's own
 * service account (Pod `spec.serviceAccountName`, WorkloadEntry `serviceAccount`) in our trust domain. Every SPIFFE
 * ID of one of our trust domains is also accepted in each alias (Istio's ExpandWithTrustDomains). Empty when nothing
 * is known: the connection is then refused — never "any identity of the trust domain". Istio takes the accounts of
 * all of a service's endpoints for each of them; an endpoint here must present its own (stricter). Pure.
 */
export function serverIdentities(
  policySans: readonly string[] | undefined, serviceSans: readonly string[] | undefined, ep: WorkloadIdentity | undefined,
  trustDomain: string, trustDomains: ReadonlySet<string>,
): string[] {
  let base: string[];
  if (policySans !== undefined && policySans.length > 0) base = [...policySans];
  else {
    base = serviceSans !== undefined ? [...serviceSans] : [];
    if (ep !== undefined) base.push(spiffeUri({ trustDomain, namespace: ep.namespace, serviceAccount: ep.serviceAccount }));
  }
  if (trustDomains.size <= 1) return base;
  const out = new Set<string>();
  for (const san of base) {
    out.add(san);
    const id = parseSpiffeId(san);
    if (id === undefined || !trustDomains.has(id.trustDomain)) continue;
    for (const td of trustDomains) out.add(spiffeUri({ ...id, trustDomain: td }));
  }
  return [...out];
}
