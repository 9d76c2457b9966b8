/**
 * Parse the request target the app sent: origin-form with Host, or absolute-form (HTTP_PROXY clients),
 * into authority, host, port, path and query. The path is normalized before routing (normalizePath, Istio's mesh
 * `pathNormalization`, BASE by default: Envoy's normalize_path), so `/a/../admin` is matched, authorized and
 * forwarded as `/admin`: the path a route matched is the path the upstream receives.
 *
 * Absolute-form wins over Host (RFC 9112 §3.2.2): `GET http://a/x` with `Host: b` is routed to `a`, and `a` is the
 * one Host the upstream sees (the callers drop the client's Host and add the target's authority).
 */

/**
 * Istio's MeshConfig.ProxyPathNormalization: `none` (forward as received), `base` (RFC 3986: dot-segments removed,
 * percent-encoded unreserved characters decoded, `\` → `/`; Envoy `normalize_path`), `merge-slashes` (base, then
 * `//` → `/`), `decode-and-merge-slashes` (`%2F`/`%5C` unescaped first, Envoy `UNESCAPE_AND_FORWARD`, then
 * merge-slashes). base and merge-slashes keep `%2F` and `%5C` as sent (Envoy `KEEP_UNCHANGED`, Istio's choice).
 */
export type PathNormalization = 'none' | 'base' | 'merge-slashes' | 'decode-and-merge-slashes';
export const PATH_NORMALIZATIONS: readonly PathNormalization[] = ['none', 'base', 'merge-slashes', 'decode-and-merge-slashes'];

export interface RequestTarget {
  /** Authority as it should be forwarded (host[:port]). */
  authority: string;
  /** Lowercase host without port and trailing dot. */
  host: string;
  /** Explicit port, or 0 when the authority has none. */
  explicitPort: number;
  scheme: string;
  path: string;
  query: string;
}

export function parseTarget(url: string, hostHeader: string | undefined, normalization: PathNormalization = 'base'): RequestTarget | undefined {
  let authority: string | undefined = hostHeader;
  let scheme = 'http';
  let rest = url;
  if (url.charCodeAt(0) !== 47 /* / */) {
    const lower = url.slice(0, 8).toLowerCase();
    let skip = 0;
    if (lower.startsWith('http://')) skip = 7;
    else if (lower.startsWith('https://')) { skip = 8; scheme = 'https'; }
    else if (url === '*') return hostHeader ? split(hostHeader, scheme, '*', '') : undefined;
    else return undefined;
    let end = skip;
    while (end < url.length) {
      const c = url.charCodeAt(end);
      if (c === 47 || c === 63 || c === 35) break; // / ? #
      end++;
    }
    authority = url.slice(skip, end);
    const at = authority.lastIndexOf('@');
    if (at >= 0) authority = authority.slice(at + 1); // userinfo never goes upstream
    rest = url.slice(end);
    if (rest === '' || rest.charCodeAt(0) !== 47) rest = `/${rest}`;
  }
  if (!authority) return undefined;
  let path = rest;
  const hash = path.indexOf('#');
  if (hash >= 0) path = path.slice(0, hash);
  let query = '';
  const q = path.indexOf('?');
  if (q >= 0) {
    query = path.slice(q + 1);
    path = path.slice(0, q);
  }
  if (normalization !== 'none') {
    // An encoded NUL in the path is refused (400), as Envoy's normalize_path does under every Istio mode but NONE:
    // an app that decodes it may end the path there (`/admin%00.png` read as `/admin`).
    if (path.includes('%00')) return undefined;
    path = normalizePath(path, normalization);
  }
  return split(authority, scheme, path, query);
}

/** An authority (host[:port], [IPv6][:port]) on its own: lowercase host without trailing dot, port 0 when none. */
export function parseAuthority(authority: string): { host: string; explicitPort: number } | undefined {
  return split(authority, 'http', '', '');
}

function split(authority: string, scheme: string, path: string, query: string): RequestTarget | undefined {
  let host = authority;
  let explicitPort = 0;
  if (authority.charCodeAt(0) === 91 /* [ */) {
    const close = authority.indexOf(']');
    if (close < 0) return undefined;
    host = authority.slice(1, close);
    const rest = authority.slice(close + 1);
    if (rest.startsWith(':')) explicitPort = Number(rest.slice(1));
  } else {
    const colon = authority.lastIndexOf(':');
    if (colon >= 0) {
      host = authority.slice(0, colon);
      explicitPort = portNumber(authority, colon + 1);
    }
  }
  if (!Number.isInteger(explicitPort) || explicitPort < 0 || explicitPort > 65535) return undefined;
  if (isPlainLowercaseHost(host)) {
    // The common case (a DNS name as apps write it): nothing to lowercase, no character to reject.
    if (host.charCodeAt(host.length - 1) === 46 /* . */) host = host.slice(0, -1);
    if (host === '') return undefined;
  } else {
    host = host.toLowerCase();
    if (host.endsWith('.')) host = host.slice(0, -1);
    if (host === '' || /[\s/\\@]/.test(host)) return undefined;
  }
  return { authority, host, explicitPort, scheme, path, query };
}

/** Only `a-z`, `0-9`, `.` and `-`: already lowercase, and none of the characters a host must not contain. */
function isPlainLowercaseHost(h: string): boolean {
  for (let i = 0; i < h.length; i++) {
    const c = h.charCodeAt(i);
    if (!((c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 46 || c === 45)) return false;
  }
  return true;
}

/** `Number(s.slice(from))`, without the slice for the usual 1–5 digit port; anything else gets Number's own rules. */
function portNumber(s: string, from: number): number {
  const n = s.length - from;
  if (n < 1 || n > 5) return Number(s.slice(from));
  let v = 0;
  for (let i = from; i < s.length; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return Number(s.slice(from));
    v = v * 10 + d;
  }
  return v;
}

/** Hex digit value, or -1. */
function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/** RFC 3986 §2.3 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~". */
function isUnreserved(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 45 || c === 46 || c === 95 || c === 126;
}

/**
 * Normalize a request path (no query, no fragment) as Envoy does for Istio's `pathNormalization` modes: in order,
 * `%2F`/`%5C` unescaped (decode-and-merge-slashes only), percent-encoded unreserved characters decoded (`%61` → `a`,
 * `%2e` → `.`; anything else, `%2F` included, stays encoded as sent, never decoded twice), `\` → `/`, dot-segments
 * removed (RFC 3986 §5.2.4; `..` above the root stays at the root), then `//` merged (merge modes). Pure.
 *
 * Hot path: a path without `%`, `\`, `/.` (and, when merging, `//`) — nearly every real one — is returned as is
 * after one scan of its characters.
 */
export function normalizePath(path: string, mode: PathNormalization): string {
  if (mode === 'none') return path;
  const merge = mode !== 'base';
  let work = false;
  let prev = 0;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === 37 /* % */ || c === 92 /* \ */ || (prev === 47 && (c === 46 || (merge && c === 47)))) { work = true; break; }
    prev = c;
  }
  if (!work) return path;
  let p = path;
  if (p.includes('%')) {
    let out = '';
    let from = 0;
    for (let i = p.indexOf('%'); i >= 0 && i + 2 < p.length; i = p.indexOf('%', i + 1)) {
      const h = hexVal(p.charCodeAt(i + 1));
      const l = hexVal(p.charCodeAt(i + 2));
      if (h < 0 || l < 0) continue;
      const v = h * 16 + l;
      let rep: string | undefined;
      if (isUnreserved(v)) rep = String.fromCharCode(v);
      else if (mode === 'decode-and-merge-slashes' && (v === 47 || v === 92)) rep = String.fromCharCode(v);
      if (rep === undefined) continue;
      out += p.slice(from, i) + rep;
      from = i + 3;
      i += 2;
    }
    if (from > 0) p = out + p.slice(from);
  }
  if (p.includes('\\')) p = p.replace(/\\/g, '/');
  if (p.includes('/.')) p = removeDotSegments(p);
  if (merge && p.includes('//')) p = p.replace(/\/{2,}/g, '/');
  return p;
}

/**
 * RFC 3986 §5.2.4 remove_dot_segments on a path whose percent-encoded dots were already decoded (normalizePath does
 * that first; decoding here again would turn `%252e` into `%25.`).
 */
export function removeDotSegments(path: string): string {
  const input = path.split('/');
  const out: string[] = [];
  for (let i = 0; i < input.length; i++) {
    const seg = input[i]!;
    if (seg === '.') { if (i === input.length - 1) out.push(''); continue; }
    if (seg === '..') {
      if (out.length > 1) out.pop();
      if (i === input.length - 1) out.push('');
      continue;
    }
    out.push(seg);
  }
  let r = out.join('/');
  if (!r.startsWith('/')) r = `/${r}`;
  return r;
}

/**
 * The value of an IPv4 address in any form getaddrinfo(3) accepts (inet_aton: 1 to 4 parts, each decimal, octal
 * with a leading 0 or hex with 0x; `127.1`, `2130706433`, `0x7f.0.0.1`, `0177.0.0.1` are all 127.0.0.1), or -1.
 */
export function inetAton(s: string): number {
  const parts = s.split('.');
  if (parts.length > 4 || parts.length === 0) return -1;
  const nums: number[] = [];
  for (const p of parts) {
    let n: number;
    if (/^0x[0-9a-f]*$/i.test(p)) n = p.length === 2 ? 0 : parseInt(p.slice(2), 16);
    else if (/^0[0-7]*$/.test(p)) n = p.length === 1 ? 0 : parseInt(p.slice(1), 8);
    else if (/^[1-9][0-9]*$/.test(p)) n = Number(p);
    else return -1;
    nums.push(n);
  }
  const last = nums.length - 1;
  for (let i = 0; i < last; i++) if (nums[i]! > 255) return -1;
  if (nums[last]! >= 2 ** (8 * (4 - last))) return -1;
  let v = nums[last]!;
  for (let i = 0; i < last; i++) v += nums[i]! * 2 ** (8 * (3 - i));
  return v;
}

/**
 * True when connecting to `host` reaches this machine's own loopback (or unspecified) address: `localhost` and
 * `*.localhost`, 127.0.0.0/8 and 0.0.0.0/8 in every inet_aton spelling, `::1`, `::` and their IPv4-mapped forms.
 * Used to keep the proxy's own ports (admin above all) from being a passthrough destination.
 */
export function isLoopbackHost(host: string): boolean {
  let h = host.toLowerCase();
  if (h.endsWith('.')) h = h.slice(0, -1);
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h.includes(':')) {
    // The WHATWG URL parser canonicalizes IPv6 (zero compression, embedded IPv4 as hex): `0:0:0:0:0:0:0:1` → `::1`,
    // `::ffff:127.0.0.1` → `::ffff:7f00:1`.
    let c: string;
    try {
      c = new URL(`http://[${h}]/`).hostname.slice(1, -1);
    } catch {
      return false;
    }
    if (c === '::1' || c === '::') return true;
    const m = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(c);
    if (m === null) return false;
    const first = Number.parseInt(m[1]!, 16) >> 8;
    return first === 127 || first === 0;
  }
  const v = inetAton(h);
  if (v < 0) return false;
  const first = Math.floor(v / 2 ** 24);
  return first === 127 || first === 0;
}
