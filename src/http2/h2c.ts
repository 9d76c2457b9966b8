/**
 * Whether an HTTP/1.1 request asks for cleartext HTTP/2 in a way that may be taken (RFC 7540 §3.2): pure header
 * checks, apart from the codec, so that a listener can decide before the codec is loaded (./lazy.ts). An h2c upgrade
 * the listener does not take is never passed on (asksH2c): served as plain HTTP/1.1, as Envoy does.
 */

/**
 * The SETTINGS payload of an h2c upgrade request, or null when it must not be taken (RFC 7540 §3.2, §3.2.1):
 * `Upgrade` lists h2c, exactly one `HTTP2-Settings` holds base64url of whole settings (6 bytes each), and
 * `Connection` names `HTTP2-Settings` (it is a hop-by-hop header).
 */
export function h2cSettings(raw: readonly string[]): Buffer | null {
  let settings: string | undefined;
  let count = 0;
  let h2c = false;
  let named = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    if (name === 'http2-settings') { settings = value.trim(); count++; }
    else if (name === 'upgrade') { for (const t of value.split(',')) if (t.trim().toLowerCase() === 'h2c') h2c = true; }
    else if (name === 'connection') { for (const t of value.split(',')) if (t.trim().toLowerCase() === 'http2-settings') named = true; }
  }
  if (!h2c || !named || count !== 1 || !/^[A-Za-z0-9_-]*={0,2}$/.test(settings!)) return null;
  const payload = Buffer.from(settings!, 'base64url');
  return payload.length % 6 === 0 ? payload : null;
}

/**
 * Whether `Upgrade` lists h2c. Such a request that the listener does not take itself (h2cSettings refuses it, or it
 * came inside TLS, or the listener drains) is served as plain HTTP/1.1 without the upgrade, as Envoy's codec removes
 * `Upgrade: h2c`: passed on, an app that takes it would switch the connection to HTTP/2 behind the proxy, and no
 * policy would see the streams on it.
 */
export function asksH2c(raw: readonly string[]): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length !== 7 || name.toLowerCase() !== 'upgrade') continue;
    for (const t of raw[i + 1]!.split(',')) if (t.trim().toLowerCase() === 'h2c') return true;
  }
  return false;
}
