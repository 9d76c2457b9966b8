/**
 * Compiled VirtualService routes and request matching, with Istio semantics: the first matching
 * http[] route wins; match[] blocks are ORed, the conditions inside one block ANDed; a route without
 * match catches all. Pure: a RequestView in, a route (or an explanation) out.
 */
import type { ClusterDef, RetryPolicy } from '../model.js';
import { type CompiledStringMatch, MatchKind, testStringMatch, describeStringMatch } from './string-match.js';

/** What the matcher needs to know about a request. `headers` are Node's lowercase header object. */
export interface RequestView {
  method: string;
  /** Path without the query string. */
  path: string;
  /** Query string without the leading '?', '' when absent. */
  query: string;
  scheme: string;
  /** Authority as sent (host[:port]). */
  authority: string;
  /** Port the request was addressed to (explicit in the authority, else the scheme default). */
  port: number;
  headers: Readonly<Record<string, string | string[] | undefined>>;
}

export interface HeaderMatch { name: string; match: CompiledStringMatch }

export interface CompiledMatch {
  name: string;
  uri: CompiledStringMatch | undefined;
  scheme: CompiledStringMatch | undefined;
  method: CompiledStringMatch | undefined;
  authority: CompiledStringMatch | undefined;
  headers: readonly HeaderMatch[];
  withoutHeaders: readonly HeaderMatch[];
  queryParams: readonly HeaderMatch[];
  port: number; // 0 = any
}

export interface HeaderOps {
  remove: readonly string[];
  set: ReadonlyArray<readonly [string, string]>;
  add: ReadonlyArray<readonly [string, string]>;
}

export interface CompiledDestination {
  host: string; // FQDN
  subset: string;
  /** Explicit destination port, 0 = the request's port (or the service's only port). */
  port: number;
  weight: number;
  requestHeaders: HeaderOps | undefined;
  responseHeaders: HeaderOps | undefined;
  /** Clusters of this destination by service port; resolved at compile time. Empty when the host is unknown. */
  clusters: ReadonlyMap<number, ClusterDef>;
  /** The service's only port when it has exactly one (used when neither the destination nor the request names one). */
  defaultPort: number;
  /** Set when the destination names a subset no DestinationRule defines (→ 503 NC). */
  missingSubset: boolean;
  known: boolean;
  /** The synthesized default route of a registry host: the cluster port is the request's port. */
  followsRequestPort: boolean;
  /**
   * A Gateway API backendRef that cannot be resolved: the status its share of the requests gets instead of a
   * cluster (500 for HTTPRoute; 503, i.e. gRPC UNAVAILABLE, for GRPCRoute). Unset for every Istio destination.
   */
  failStatus?: number;
}

export interface Fault {
  delayMs: number;
  delayPercent: number; // 0..100
  abortStatus: number; // 0 = no abort
  abortGrpcStatus: number | undefined;
  abortPercent: number;
}

export interface Mirror { destination: CompiledDestination; percent: number }

export interface CorsPolicy {
  allowOrigins: readonly CompiledStringMatch[];
  allowMethods: string;
  allowHeaders: string;
  exposeHeaders: string;
  maxAge: string;
  allowCredentials: boolean;
  /**
   * Gateway API CORS: a `*` in allowMethods/allowHeaders answers with the preflight's requested method/headers, and
   * `*` in exposeHeaders is left out, when credentials are allowed (browsers refuse `*` with credentials).
   */
  echoWildcards?: boolean;
}

/** Gateway API `ReplacePrefixMatch`: the matched path prefix (no trailing slash, '' = `/`) and its replacement. */
export interface PrefixReplace { prefix: string; replacement: string }

/**
 * Replace the matched prefix of `path` as the Gateway API's table says: `/foo/bar` with prefix `/foo` and `/xyz`
 * (or `/xyz/`) gives `/xyz/bar`; `/foo` gives `/xyz`, `/foo/` gives `/xyz/`; an empty or `/` replacement strips the
 * prefix (`/bar`, or `/` when nothing is left). The path is known to start with the prefix (the match said so).
 */
export function replacePrefixMatch(path: string, p: PrefixReplace): string {
  let r = p.replacement;
  while (r.endsWith('/')) r = r.slice(0, -1);
  const rest = path.slice(p.prefix.length);
  const out = r + rest;
  return out === '' ? '/' : out.startsWith('/') ? out : `/${out}`;
}

export type RouteAction =
  | { kind: 'route'; destinations: readonly CompiledDestination[]; cumulative: readonly number[]; total: number }
  | {
    kind: 'redirect'; uri: string | undefined; authority: string | undefined; port: number | undefined;
    /** Istio's FROM_PROTOCOL_DEFAULT / FROM_REQUEST_PORT, or the Gateway API's FROM_LISTENER_PORT (the service port the request was for). */
    derivePort: string | undefined; scheme: string | undefined; code: number;
    /** Gateway API ReplacePrefixMatch: the path with the matched prefix replaced (`uri` unset). */
    prefixMatch?: PrefixReplace;
  }
  | { kind: 'direct'; status: number; body: Buffer };

export interface Rewrite {
  uri: string | undefined;
  authority: string | undefined;
  regex: RegExp | undefined;
  regexReplacement: string;
  /** Gateway API URLRewrite ReplaceFullPath. */
  fullPath?: string;
  /** Gateway API URLRewrite ReplacePrefixMatch (segment-wise). */
  prefixMatch?: PrefixReplace;
}

export interface CompiledRoute {
  /** http[].name, or `<vs name>.<index>` (used in logs, metrics and explain). */
  name: string;
  /** `VirtualService/ns/name`. */
  origin: string;
  index: number;
  /** Empty = match everything. */
  matches: readonly CompiledMatch[];
  action: RouteAction;
  rewrite: Rewrite | undefined;
  requestHeaders: HeaderOps | undefined;
  responseHeaders: HeaderOps | undefined;
  /** Route timeout in ms; 0 = disabled (Istio's default). */
  timeoutMs: number;
  retry: RetryPolicy;
  fault: Fault | undefined;
  mirrors: readonly Mirror[];
  cors: CorsPolicy | undefined;
  /** Consistent-hash destinations must not use previous-host retry predicates. */
  hashBased: boolean;
}

export interface VirtualHost {
  /** FQDN or wildcard (`*.example.com`). */
  host: string;
  origin: string;
  /** Compiled on first read (src/config/compile.ts). */
  routes: readonly CompiledRoute[];
  /** False while `routes` has not been read yet, so views can leave routes nobody used unbuilt. */
  readonly compiled?: boolean;
}

// === matching ===

function headerValue(headers: RequestView['headers'], name: string): string | undefined {
  const v = headers[name];
  if (v === undefined) return undefined;
  return typeof v === 'string' ? v : v.join(',');
}

/** Value of a query parameter: '' for `?key`, undefined when absent. First occurrence wins. */
export function queryParam(query: string, name: string): string | undefined {
  if (query === '') return undefined;
  let start = 0;
  const n = query.length;
  while (start <= n) {
    let end = query.indexOf('&', start);
    if (end < 0) end = n;
    const eq = query.indexOf('=', start);
    const keyEnd = eq >= 0 && eq < end ? eq : end;
    if (keyEnd - start === name.length && query.startsWith(name, start)) {
      return keyEnd === end ? '' : safeDecode(query.slice(keyEnd + 1, end));
    }
    start = end + 1;
  }
  return undefined;
}

function safeDecode(s: string): string {
  if (s.indexOf('%') < 0 && s.indexOf('+') < 0) return s;
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

export function matchesRequest(m: CompiledMatch, req: RequestView): boolean {
  if (m.port !== 0 && m.port !== req.port) return false;
  if (m.uri !== undefined && !testStringMatch(m.uri, req.path)) return false;
  if (m.method !== undefined && !testStringMatch(m.method, req.method)) return false;
  if (m.scheme !== undefined && !testStringMatch(m.scheme, req.scheme)) return false;
  if (m.authority !== undefined && !testStringMatch(m.authority, req.authority)) return false;
  for (let i = 0; i < m.headers.length; i++) {
    const h = m.headers[i]!;
    const v = headerValue(req.headers, h.name);
    if (v === undefined || !testStringMatch(h.match, v)) return false;
  }
  for (let i = 0; i < m.withoutHeaders.length; i++) {
    const h = m.withoutHeaders[i]!;
    const v = headerValue(req.headers, h.name);
    if (v !== undefined && testStringMatch(h.match, v)) return false;
  }
  for (let i = 0; i < m.queryParams.length; i++) {
    const q = m.queryParams[i]!;
    const v = queryParam(req.query, q.name);
    if (v === undefined || !testStringMatch(q.match, v)) return false;
  }
  return true;
}

/** Index of the matching match block (0 for a catch-all route), or -1. */
export function matchRoute(route: CompiledRoute, req: RequestView): number {
  const ms = route.matches;
  if (ms.length === 0) return 0;
  for (let i = 0; i < ms.length; i++) if (matchesRequest(ms[i]!, req)) return i;
  return -1;
}

export interface RouteMatchResult { route: CompiledRoute; matchIndex: number }

/** First matching route of the virtual host, as Istio orders them. */
export function findRoute(vh: VirtualHost, req: RequestView): RouteMatchResult | undefined {
  const routes = vh.routes;
  for (let i = 0; i < routes.length; i++) {
    const r = routes[i]!;
    const mi = matchRoute(r, req);
    if (mi >= 0) return { route: r, matchIndex: mi };
  }
  return undefined;
}

/** Weighted choice with a random number in [0, 1). */
export function pickDestination(action: Extract<RouteAction, { kind: 'route' }>, r: number): CompiledDestination | undefined {
  const d = action.destinations;
  if (d.length === 1) return d[0];
  if (action.total <= 0) return undefined;
  const x = r * action.total;
  const c = action.cumulative;
  for (let i = 0; i < c.length; i++) if (x < c[i]!) return d[i];
  return d[d.length - 1];
}

/**
 * The service port a destination sends to. Istio: an explicit `port.number` wins; a VirtualService destination
 * on a single-port service needs no port. The default route of a host follows the request's port; without one
 * in the authority (explicit-proxy clients often omit it), a single-port service takes its port.
 */
export function destinationPort(d: CompiledDestination, requestPort: number, explicitPort: number): number {
  if (d.port !== 0) return d.port;
  if (d.followsRequestPort) return d.clusters.has(requestPort) || explicitPort !== 0 ? requestPort : d.defaultPort || requestPort;
  return d.defaultPort || requestPort;
}

// === explanation (remora explain, /debug/route) ===

export function explainMatch(m: CompiledMatch, req: RequestView): string[] {
  const why: string[] = [];
  if (m.port !== 0 && m.port !== req.port) why.push(`port ${req.port} is not ${m.port}`);
  if (m.uri && !testStringMatch(m.uri, req.path)) why.push(`uri "${req.path}" does not match ${describeStringMatch(m.uri)}`);
  if (m.method && !testStringMatch(m.method, req.method)) why.push(`method ${req.method} does not match ${describeStringMatch(m.method)}`);
  if (m.scheme && !testStringMatch(m.scheme, req.scheme)) why.push(`scheme ${req.scheme} does not match ${describeStringMatch(m.scheme)}`);
  if (m.authority && !testStringMatch(m.authority, req.authority)) why.push(`authority ${req.authority} does not match ${describeStringMatch(m.authority)}`);
  for (const h of m.headers) {
    const v = headerValue(req.headers, h.name);
    if (v === undefined) why.push(`header ${h.name} is absent`);
    else if (!testStringMatch(h.match, v)) why.push(`header ${h.name}="${v}" does not match ${describeStringMatch(h.match)}`);
  }
  for (const h of m.withoutHeaders) {
    const v = headerValue(req.headers, h.name);
    if (v !== undefined && testStringMatch(h.match, v)) why.push(`header ${h.name}="${v}" is present (withoutHeaders ${describeStringMatch(h.match)})`);
  }
  for (const q of m.queryParams) {
    const v = queryParam(req.query, q.name);
    if (v === undefined) why.push(`query parameter ${q.name} is absent`);
    else if (!testStringMatch(q.match, v)) why.push(`query parameter ${q.name}="${v}" does not match ${describeStringMatch(q.match)}`);
  }
  return why;
}

export function describeMatch(m: CompiledMatch): string {
  const parts: string[] = [];
  if (m.name) parts.push(`name=${m.name}`);
  if (m.port) parts.push(`port ${m.port}`);
  if (m.uri) parts.push(`uri ${describeStringMatch(m.uri)}`);
  if (m.method) parts.push(`method ${describeStringMatch(m.method)}`);
  if (m.scheme) parts.push(`scheme ${describeStringMatch(m.scheme)}`);
  if (m.authority) parts.push(`authority ${describeStringMatch(m.authority)}`);
  for (const h of m.headers) parts.push(`header ${h.name} ${describeStringMatch(h.match)}`);
  for (const h of m.withoutHeaders) parts.push(`without header ${h.name} ${describeStringMatch(h.match)}`);
  for (const q of m.queryParams) parts.push(`query ${q.name} ${describeStringMatch(q.match)}`);
  return parts.length ? parts.join(', ') : 'everything';
}

export { MatchKind };
