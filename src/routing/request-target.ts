/**
 * Parse the request target the app sent: origin-form with Host, or absolute-form (HTTP_PROXY clients),
 * into authority, host, port, path and query. Dot-segments are removed (RFC 3986 §5.2.4) before routing,
 * as Envoy's normalize_path does, so `/a/../admin` is matched and forwarded as `/admin`.
 */

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

export function parseTarget(url: string, hostHeader: string | undefined): RequestTarget | undefined {
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
  if (path.includes('/.') || (path.includes('%') && (path.includes('%2e') || path.includes('%2E')))) path = removeDotSegments(path);
  return split(authority, scheme, path, query);
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

/** RFC 3986 remove_dot_segments, also for percent-encoded dots. */
export function removeDotSegments(path: string): string {
  const p = path.replace(/%2e/gi, '.');
  const input = p.split('/');
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
