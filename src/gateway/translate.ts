/**
 * HTTPRoute and GRPCRoute rules bound to one Service → the compiled route list VirtualServices produce (no second
 * router): one compiled route per match, ordered by the spec's precedence, so the existing first-match matcher
 * gives the spec's answer. Ports a route does not bind keep Istio's default route. Pure.
 */
import type { Headers, HTTPRetry } from '../config/types.js';
import type { ServiceDef, RetryPolicy } from '../model.js';
import type {
  CompiledDestination, CompiledMatch, CompiledRoute, CorsPolicy, HeaderMatch, HeaderOps, Mirror, RouteAction, Rewrite,
} from '../routing/route.js';
import { compilePathPrefix, compileStringMatch, type CompiledStringMatch } from '../routing/string-match.js';
import { compileRetryPolicy } from '../proxy/retry-policy.js';
import type { Binding, HostBindings, RouteInfo } from './binding.js';
import { compareRoutes } from './binding.js';
import { gatewayDurationMs, resolveBackend } from './refs.js';
import { originalRuleIndex } from './api-errors.js';
import type {
  BackendObjectReference, GRPCRouteMatch, GRPCRouteRule, HTTPCORSFilter, HTTPHeaderFilter, HTTPRouteFilter, HTTPRouteMatch, HTTPRouteRule,
} from './types.js';

export interface TranslateContext {
  clusterDomain: string;
  byHost: ReadonlyMap<string, ServiceDef>;
  /** A route destination to `host:port` (the compiler's: clusters with their DestinationRule policy). */
  destination(host: string, port: number, weight: number, headers: Headers | undefined): CompiledDestination;
  /** Istio's default route of a service (all traffic to it, default retries). */
  defaultRoutes(svc: ServiceDef): CompiledRoute[];
}

/**
 * Why a compiled route sits where it does, for `remora explain` (kept off the route object: the hot path's shape;
 * formatted only when asked, building route tables stays cheap).
 */
const reasons = new WeakMap<CompiledRoute, () => string>();
export function routeReason(r: CompiledRoute): string | undefined {
  return reasons.get(r)?.();
}

const NO_HEADERS: readonly HeaderMatch[] = [];

function headerOps(f: HTTPHeaderFilter | undefined): HeaderOps | undefined {
  if (f === undefined) return undefined;
  return {
    remove: (f.remove ?? []).map((n) => n.toLowerCase()),
    set: (f.set ?? []).map((h) => [h.name, h.value] as const),
    add: (f.add ?? []).map((h) => [h.name, h.value] as const),
  };
}

/** The same edits as Istio `Headers` (what the compiler's destinations take). */
function istioHeaders(req: HTTPHeaderFilter | undefined, res: HTTPHeaderFilter | undefined): Headers | undefined {
  if (req === undefined && res === undefined) return undefined;
  const conv = (f: HTTPHeaderFilter | undefined): NonNullable<Headers['request']> | undefined => {
    if (f === undefined) return undefined;
    const o: NonNullable<Headers['request']> = {};
    if (f.set) o.set = Object.fromEntries(f.set.map((h) => [h.name, h.value]));
    if (f.add) o.add = Object.fromEntries(f.add.map((h) => [h.name, h.value]));
    if (f.remove) o.remove = f.remove;
    return o;
  };
  const h: Headers = {};
  const rq = conv(req);
  const rs = conv(res);
  if (rq) h.request = rq;
  if (rs) h.response = rs;
  return h;
}

/** First entry per name wins (header names case-insensitively, query names exactly), as the spec says. */
function valueMatches(list: ReadonlyArray<{ type?: string; name: string; value: string }> | undefined, header: boolean): readonly HeaderMatch[] {
  if (list === undefined || list.length === 0) return NO_HEADERS;
  const seen = new Set<string>();
  const out: HeaderMatch[] = [];
  for (const m of list) {
    const name = header ? m.name.toLowerCase() : m.name;
    if (seen.has(name)) continue;
    seen.add(name);
    out.push({ name, match: m.type === 'RegularExpression' ? compileStringMatch({ regex: m.value }) : compileStringMatch({ exact: m.value }) });
  }
  return out;
}

function compiledMatch(uri: CompiledStringMatch | undefined, method: string | undefined, headers: readonly HeaderMatch[], query: readonly HeaderMatch[], port: number): CompiledMatch {
  return {
    name: '', uri, scheme: undefined, method: method !== undefined ? compileStringMatch({ exact: method }) : undefined, authority: undefined,
    headers, withoutHeaders: NO_HEADERS, queryParams: query, port,
  };
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A backend share that could not be resolved: its requests get `status` (500; 503 = UNAVAILABLE for gRPC). */
function failing(weight: number, status: number): CompiledDestination {
  return {
    host: '', subset: '', port: 0, weight, requestHeaders: undefined, responseHeaders: undefined, clusters: new Map(), defaultPort: 0,
    missingSubset: false, known: false, followsRequestPort: false, failStatus: status,
  };
}

function usesHashLb(d: CompiledDestination): boolean {
  for (const c of d.clusters.values()) if (c.policy.lb.kind === 'RING_HASH' || c.policy.lb.kind === 'MAGLEV') return true;
  return false;
}

/** What a rule contributes to each of its compiled routes (one per match). */
type RuleParts = Pick<CompiledRoute, 'action' | 'rewrite' | 'requestHeaders' | 'responseHeaders' | 'timeoutMs' | 'retry' | 'mirrors' | 'cors' | 'hashBased'>;

function filterOf<T extends keyof HTTPRouteFilter>(filters: readonly HTTPRouteFilter[] | undefined, type: string, field: T): HTTPRouteFilter[T] | undefined {
  for (const f of filters ?? []) if (f.type === type) return f[field];
  return undefined;
}

/** `*` and `https://*.example.com` origins (the `*` is greedy to the left, dots included) as full-match regexes. */
function corsPolicy(c: HTTPCORSFilter): CorsPolicy {
  const origins = (c.allowOrigins ?? []).map((o) => compileStringMatch(o.includes('*') ? { regex: o.split('*').map(escapeRegex).join('.*') } : { exact: o }));
  return {
    allowOrigins: origins,
    allowMethods: (c.allowMethods ?? []).join(','),
    allowHeaders: (c.allowHeaders ?? []).join(','),
    exposeHeaders: (c.exposeHeaders ?? []).join(','),
    maxAge: String(c.maxAge ?? 5),
    allowCredentials: c.allowCredentials === true,
    echoWildcards: true,
  };
}

function retryPolicy(rule: HTTPRouteRule, timeoutMs: number): RetryPolicy {
  const perTry = rule.timeouts?.backendRequest !== undefined ? gatewayDurationMs(rule.timeouts.backendRequest) ?? 0 : 0;
  const perTryTimeout = perTry > 0 ? `${perTry}ms` : undefined;
  if (rule.retry === undefined) {
    // No retry stanza: Istio's default policy, as Istio applies to HTTPRoutes; backendRequest is its per-try timeout.
    const base = compileRetryPolicy(undefined, timeoutMs);
    return perTry > 0 ? { ...base, perTryTimeoutMs: timeoutMs > 0 ? Math.min(perTry, timeoutMs) : perTry } : base;
  }
  const r = rule.retry;
  // GEP-1731: retry the codes given, and connection errors (connect failure, reset, timeout) whenever a stanza is set.
  const on = ['connect-failure', 'refused-stream', 'reset', ...((r.codes ?? []).length > 0 ? r.codes!.map(String) : ['503'])];
  const raw: HTTPRetry = { attempts: r.attempts ?? 2, retryOn: on.join(',') };
  if (perTryTimeout !== undefined) raw.perTryTimeout = perTryTimeout;
  const backoff = r.backoff !== undefined ? gatewayDurationMs(r.backoff) : undefined;
  if (backoff !== undefined && backoff > 0) raw.backoff = `${backoff}ms`;
  const p = compileRetryPolicy(raw, timeoutMs);
  return backoff !== undefined && backoff > 0 ? { ...p, backoffMinMs: backoff } : p;
}

/** The parts of a rule every match shares (one object each, whatever the number of matches and ports). */
function ruleParts(route: RouteInfo, rule: Omit<HTTPRouteRule, 'matches'>, grpc: boolean, matchedPrefix: string | undefined, ctx: TranslateContext): RuleParts {
  const ns = route.r.metadata.namespace;
  const filters = rule.filters;
  const failStatus = grpc ? 503 : 500;
  const timeoutMs = rule.timeouts?.request !== undefined ? gatewayDurationMs(rule.timeouts.request) ?? 0 : 0;
  const redirect = filterOf(filters, 'RequestRedirect', 'requestRedirect');
  let action: RouteAction;
  let hashBased = false;
  if (redirect !== undefined) {
    const path = redirect.path;
    action = {
      kind: 'redirect',
      uri: path?.type === 'ReplaceFullPath' ? path.replaceFullPath : undefined,
      authority: redirect.hostname,
      port: redirect.port,
      // The spec's port rules: the scheme's well-known port when a scheme is given, else the listener's (the
      // service port the request was for); 80 for http and 443 for https are left out of Location.
      derivePort: redirect.scheme !== undefined ? 'FROM_PROTOCOL_DEFAULT' : 'FROM_LISTENER_PORT',
      scheme: redirect.scheme,
      code: redirect.statusCode ?? 302,
      ...(path?.type === 'ReplacePrefixMatch' && matchedPrefix !== undefined ? { prefixMatch: { prefix: matchedPrefix, replacement: path.replacePrefixMatch ?? '' } } : {}),
    };
  } else {
    const dests: CompiledDestination[] = [];
    for (const b of rule.backendRefs ?? []) {
      const weight = b.weight ?? 1;
      const res = resolveBackend(b, ns, ctx.byHost, ctx.clusterDomain);
      if (!res.ok) { dests.push(failing(weight, failStatus)); continue; }
      const req = filterOf(b.filters, 'RequestHeaderModifier', 'requestHeaderModifier');
      const rsp = filterOf(b.filters, 'ResponseHeaderModifier', 'responseHeaderModifier');
      dests.push(ctx.destination(res.host, res.port, weight, istioHeaders(req, rsp)));
    }
    let total = 0;
    for (const d of dests) total += d.weight;
    // No backend, or every weight 0: nothing may be chosen, and the rule answers 500 (UNAVAILABLE for gRPC).
    const list = total > 0 ? dests.filter((d) => d.weight > 0) : [failing(1, failStatus)];
    const cumulative: number[] = [];
    let sum = 0;
    for (const d of list) { sum += d.weight; cumulative.push(sum); }
    action = { kind: 'route', destinations: list, cumulative, total: sum };
    hashBased = list.some(usesHashLb);
  }
  let rewrite: Rewrite | undefined;
  const rw = filterOf(filters, 'URLRewrite', 'urlRewrite');
  if (rw !== undefined) {
    rewrite = { uri: undefined, authority: rw.hostname, regex: undefined, regexReplacement: '' };
    if (rw.path?.type === 'ReplaceFullPath') rewrite.fullPath = rw.path.replaceFullPath ?? '/';
    else if (rw.path?.type === 'ReplacePrefixMatch' && matchedPrefix !== undefined) rewrite.prefixMatch = { prefix: matchedPrefix, replacement: rw.path.replacePrefixMatch ?? '' };
  }
  const mirrors: Mirror[] = [];
  for (const f of filters ?? []) {
    if (f.type !== 'RequestMirror' || f.requestMirror === undefined) continue;
    const m = f.requestMirror;
    const res = resolveBackend(m.backendRef as BackendObjectReference, ns, ctx.byHost, ctx.clusterDomain);
    if (!res.ok) continue; // an unresolved mirror is dropped (and reported in status)
    const percent = m.fraction !== undefined ? (m.fraction.numerator / (m.fraction.denominator ?? 100)) * 100 : m.percent ?? 100;
    mirrors.push({ destination: ctx.destination(res.host, res.port, 100, undefined), percent });
  }
  const cors = filterOf(filters, 'CORS', 'cors');
  const retry = grpc ? compileRetryPolicy(undefined, 0) : retryPolicy(rule, timeoutMs);
  return {
    action, rewrite,
    requestHeaders: headerOps(filterOf(filters, 'RequestHeaderModifier', 'requestHeaderModifier')),
    responseHeaders: headerOps(filterOf(filters, 'ResponseHeaderModifier', 'responseHeaderModifier')),
    timeoutMs, retry: hashBased && retry.retryIgnorePreviousHosts ? { ...retry, retryIgnorePreviousHosts: false } : retry,
    mirrors, cors: cors !== undefined ? corsPolicy(cors) : undefined, hashBased,
  };
}

interface Entry {
  /** The spec's precedence keys, compared in order, larger first. */
  key: readonly number[];
  route: RouteInfo;
  rule: number;
  match: number;
  compiled: CompiledRoute;
}

function compareEntries(a: Entry, b: Entry): number {
  for (let i = 0; i < a.key.length; i++) if (a.key[i] !== b.key[i]) return b.key[i]! - a.key[i]!;
  return compareRoutes(a.route, b.route) || a.rule - b.rule || a.match - b.match;
}

function portsOf(b: Binding): readonly number[] {
  return b.ports ?? [0];
}

function describeBinding(b: Binding): string {
  return `${b.consumer ? 'consumer' : 'producer'} route${b.ports !== undefined ? ` on port${b.ports.length > 1 ? 's' : ''} ${b.ports.join(', ')}` : ''}`;
}

function httpEntries(b: Binding, ctx: TranslateContext, out: Entry[]): void {
  const rules = (b.route.r.spec as { rules?: HTTPRouteRule[] }).rules ?? [{}];
  rules.forEach((rule, i) => {
    const ri = originalRuleIndex(b.route.r, i);
    const matches: HTTPRouteMatch[] = rule.matches && rule.matches.length > 0 ? rule.matches : [{ path: { type: 'PathPrefix', value: '/' } }];
    const onlyPrefix = matches.length === 1 && (matches[0]!.path?.type ?? 'PathPrefix') === 'PathPrefix' ? compilePathPrefix(matches[0]!.path?.value ?? '/').value : undefined;
    const parts = ruleParts(b.route, rule, false, onlyPrefix, ctx);
    matches.forEach((m, mi) => {
      const type = m.path?.type ?? 'PathPrefix';
      const value = m.path?.value ?? '/';
      const uri = type === 'Exact' ? compileStringMatch({ exact: value }) : type === 'RegularExpression' ? compileStringMatch({ regex: value }) : compilePathPrefix(value);
      const headers = valueMatches(m.headers, true);
      const query = valueMatches(m.queryParams, false);
      // Istio's order (the spec leaves regexes open): Exact, then PathPrefix, then RegularExpression; longer first.
      const rank = type === 'Exact' ? 3 : type === 'PathPrefix' ? 2 : 1;
      const key = [rank, type === 'PathPrefix' ? uri.value.length + 1 : value.length, m.method !== undefined ? 1 : 0, headers.length, query.length];
      const compiled = compiledRoute(b, rule.name, ri, parts, portsOf(b).map((p) => compiledMatch(uri, m.method, headers, query, p)));
      reasons.set(compiled, () => `${b.route.origin} rules[${ri}]${rule.name ? ` (${rule.name})` : ''} matches[${mi}], ${describeBinding(b)}; ranked by ${type} path "${value}"${m.method ? `, method ${m.method}` : ''}, ${headers.length} header and ${query.length} query match(es)`);
      out.push({ key, route: b.route, rule: ri, match: mi, compiled });
    });
  });
}

function grpcPath(m: GRPCRouteMatch): CompiledStringMatch | undefined {
  const mm = m.method;
  if (mm === undefined) return undefined;
  const service = mm.service ?? '';
  const method = mm.method ?? '';
  if ((mm.type ?? 'Exact') === 'RegularExpression') return compileStringMatch({ regex: `/${service || '[^/]+'}/${method || '[^/]+'}` });
  if (service !== '' && method !== '') return compileStringMatch({ exact: `/${service}/${method}` });
  if (service !== '') return compileStringMatch({ prefix: `/${service}/` });
  return compileStringMatch({ regex: `/[^/]+/${escapeRegex(method)}` });
}

function grpcEntries(b: Binding, ctx: TranslateContext, out: Entry[]): void {
  const rules = (b.route.r.spec as { rules?: GRPCRouteRule[] }).rules ?? [{}];
  rules.forEach((rule, i) => {
    const ri = originalRuleIndex(b.route.r, i);
    const parts = ruleParts(b.route, rule, true, undefined, ctx);
    const matches: GRPCRouteMatch[] = rule.matches && rule.matches.length > 0 ? rule.matches : [{}];
    matches.forEach((m, mi) => {
      const uri = grpcPath(m);
      const headers = valueMatches(m.headers, true);
      const key = [(m.method?.service ?? '').length, (m.method?.method ?? '').length, headers.length];
      const compiled = compiledRoute(b, rule.name, ri, parts, portsOf(b).map((p) => compiledMatch(uri, undefined, headers, NO_HEADERS, p)));
      reasons.set(compiled, () => `${b.route.origin} rules[${ri}]${rule.name ? ` (${rule.name})` : ''} matches[${mi}], ${describeBinding(b)}; ranked by service "${m.method?.service ?? ''}", method "${m.method?.method ?? ''}", ${headers.length} header match(es)`);
      out.push({ key, route: b.route, rule: ri, match: mi, compiled });
    });
  });
}

function compiledRoute(b: Binding, ruleName: string | undefined, ruleIndex: number, p: RuleParts, matches: CompiledMatch[]): CompiledRoute {
  return {
    name: `${b.route.r.metadata.name}.${ruleName ?? ruleIndex}`,
    origin: b.route.origin,
    index: ruleIndex,
    matches,
    action: p.action,
    rewrite: p.rewrite,
    requestHeaders: p.requestHeaders,
    responseHeaders: p.responseHeaders,
    timeoutMs: p.timeoutMs,
    retry: p.retry,
    fault: undefined,
    mirrors: p.mirrors,
    cors: p.cors,
    hashBased: p.hashBased,
  };
}

/**
 * The compiled routes of one Service with HTTPRoutes/GRPCRoutes: each kind's matches in the spec's precedence
 * (the kinds never share a port), then Istio's default route for the ports no route binds. A request on a bound
 * port that matches nothing finds no route: 404 (gRPC: UNIMPLEMENTED), as the spec requires.
 */
export function buildHostRoutes(hb: HostBindings, ctx: TranslateContext): CompiledRoute[] {
  const http: Entry[] = [];
  for (const b of hb.http) httpEntries(b, ctx, http);
  const grpc: Entry[] = [];
  for (const b of hb.grpc) grpcEntries(b, ctx, grpc);
  http.sort(compareEntries);
  grpc.sort(compareEntries);
  const out = [...grpc.map((e) => e.compiled), ...http.map((e) => e.compiled)];
  const bound = new Set<number>();
  let all = false;
  for (const b of [...hb.http, ...hb.grpc]) {
    if (b.ports === undefined) all = true;
    else for (const p of b.ports) bound.add(p);
  }
  if (!all) {
    const free = hb.service.ports.map((p) => p.number).filter((p) => !bound.has(p));
    if (free.length > 0) {
      for (const d of ctx.defaultRoutes(hb.service)) {
        const fallback: CompiledRoute = { ...d, matches: free.map((p) => compiledMatch(undefined, undefined, NO_HEADERS, NO_HEADERS, p)) };
        reasons.set(fallback, () => `Istio's default route for port${free.length > 1 ? 's' : ''} ${free.join(', ')}, which no route binds`);
        out.push(fallback);
      }
    }
  }
  return out;
}

