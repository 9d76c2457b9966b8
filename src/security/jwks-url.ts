/**
 * Which key-set URLs a sidecar may fetch (pure, loaded with the config): https always, plain http only for an issuer
 * the operator names (`--jwks-allow-http`). The fetching itself (src/security/jwks.ts: node:https, jose) is loaded
 * when the first token is verified.
 */

/** Why a URL may not be fetched, or undefined: https always, http only when `allowHttp`. */
export function urlRefusal(url: string, allowHttp: boolean): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `"${url}" is not a URL`;
  }
  if (u.protocol === 'https:') return undefined;
  if (u.protocol === 'http:') return allowHttp ? undefined : `${url}: plain http is refused (https only; --jwks-allow-http names a test issuer)`;
  return `${url}: only https is fetched`;
}
