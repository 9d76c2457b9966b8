/**
 * An HTTP/1 request head as its HTTP/2 header block (RFC 9113 §8.2.2, §8.3.1): what the upstream pool sends and what
 * an h2c upgrade's stream 1 carries. Pure: strings in, strings out.
 */
import { CONNECTION_SPECIFIC } from './validate.js';

/** What an HTTP/1 request carries that its HTTP/2 form does not: connection-specific fields, h2c's own, Host. */
const NOT_IN_H2_REQUEST: ReadonlySet<string> = new Set([...CONNECTION_SPECIFIC, 'host', 'http2-settings']);

export function hasUpper(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 65 && c <= 90) return true;
  }
  return false;
}

/**
 * An HTTP/1 request head (flat raw headers) as an HTTP/2 header block: pseudo-headers first (`:authority` from
 * Host, when there is one), names lowercase, no connection-specific fields nor those `Connection` names, `TE` only
 * as "trailers" (§8.2.2). The upstream pool's requests and an h2c upgrade's stream 1 alike.
 */
export function h2RequestHeaders(method: string, path: string, raw: readonly string[]): string[] {
  const out = [':method', method, ':scheme', 'http', ':path', path, ':authority', ''];
  let listed: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    let name = raw[i]!;
    if (hasUpper(name)) name = name.toLowerCase();
    const value = raw[i + 1]!;
    if (name === 'host') { if (out[7] === '') out[7] = value; continue; }
    if (name === 'connection') {
      for (const t of value.split(',')) {
        const n = t.trim().toLowerCase();
        if (n !== '' && n !== 'close' && !NOT_IN_H2_REQUEST.has(n)) (listed ??= new Set()).add(n);
      }
      continue;
    }
    if (NOT_IN_H2_REQUEST.has(name)) continue;
    if (name === 'te' && value.trim().toLowerCase() !== 'trailers') continue;
    out.push(name, value);
  }
  if (out[7] === '') out.splice(6, 2);
  if (listed === undefined) return out;
  const kept: string[] = [];
  for (let i = 0; i < out.length; i += 2) if (!listed.has(out[i]!)) kept.push(out[i]!, out[i + 1]!);
  return kept;
}
