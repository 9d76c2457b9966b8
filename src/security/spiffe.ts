/**
 * SPIFFE workload identities as Istio uses them: `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>` in
 * a certificate's URI SAN, and the principal `<trust-domain>/ns/<namespace>/sa/<service-account>` that
 * AuthorizationPolicy `principals` and `source.principal` match. Pure.
 */
import type { X509Certificate } from 'node:crypto';

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
