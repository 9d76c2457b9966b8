/**
 * The outbound listener's request entry: parse the target, find the virtual host and the first
 * matching route, apply local actions (redirect, direct response, fault, CORS), pick the weighted
 * destination, rewrite, and hand the request to the forwarder.
 */
import type { OriginalDestination } from '../http1/server.js';
import type { DownstreamRequest, DownstreamResponse } from './downstream.js';
import { resolveCaptured } from '../routing/l4-destination.js';
import { requestId as newRequestId } from '../util/request-id.js';
import { performance } from 'node:perf_hooks';
import type { Snapshot } from '../config/snapshot.js';
import { lookupHost } from '../config/compile.js';
import { destinationPort, findRoute, pickDestination, replacePrefixMatch, type CompiledDestination, type CompiledRoute, type RequestView } from '../routing/route.js';
import { frontendEntry } from '../gateway/frontend.js';
import { testStringMatch } from '../routing/string-match.js';
import { parseTarget, type PathNormalization, type RequestTarget } from '../routing/request-target.js';
import { isOwnEndpoint, type OwnEndpoints } from '../routing/l4-decision.js';
import { applyRetryOverrides, routeTimeoutOverride } from './retry-policy.js';
import { applyHeaderOps, HeaderHygieneStats, screenRequestHeaders, upstreamRequestHeaders, type UnderscoreAction } from './headers.js';
import { forward } from './forwarder.js';
import type { ForwardContext, ForwardPlan } from './forward-plan.js';
import { shadowsFor } from './mirror.js';
import { localReplyRecord } from './local-reply.js';
import { DETAILS, E, FLAG, type LocalError } from '../errors.js';
import { localReplyParts, parseGrpcTimeout } from './grpc.js';
import type { ClusterRuntime } from '../model.js';

export interface OutboundEnv extends ForwardContext {
  snapshot(): Snapshot | undefined;
  /** `--path-normalization` (Istio's mesh pathNormalization); default base. */
  pathNormalization?: PathNormalization;
  /** `--headers-with-underscores`; default allow. */
  headersWithUnderscores?: UnderscoreAction;
  /** What the header checks dropped or rejected on this listener. */
  hygiene?: HeaderHygieneStats;
  /**
   * The proxy's own listening ports and this pod's addresses: a passthrough to one of those ports on loopback, an
   * any-address or one of the pod's own addresses is never made (the admin API above all; the same rule as L4).
   */
  own?: OwnEndpoints;
}

const noHygieneStats = new HeaderHygieneStats();
/** A Gateway API backendRef that could not be resolved answers its share of requests with this (500, or 503 for gRPC). */
const INVALID_BACKEND: Readonly<Record<number, LocalError>> = {
  500: { ...E.backendRefInvalid, status: 500 },
  503: { ...E.backendRefInvalid, status: 503 },
};
function invalidBackend(status: number): LocalError {
  return INVALID_BACKEND[status] ?? { ...E.backendRefInvalid, status };
}
/** A passthrough to one of the proxy's own ports on loopback: the admin API, or a loop back into a listener. */
const SELF_DESTINATION: LocalError = E.proxyPortNotRoutable;

export function handleOutbound(req: DownstreamRequest, res: DownstreamResponse, env: OutboundEnv): void {
  const startTime = Date.now();
  const startHr = performance.now();
  const snap = env.snapshot();
  const rawHeaders = req.rawHeaders;
  let hostCount = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.length === 4 && rawHeaders[i]!.toLowerCase() === 'host') hostCount++;
  const te = req.headers['transfer-encoding'];
  const target = parseTarget(req.url ?? '/', req.headers.host, env.pathNormalization);
  const requestId = (req.headers['x-request-id'] as string | undefined) || newRequestId();
  const base = { req, res, env, startTime, startHr, requestId, target };
  // Framing and header errors close the connection after the answer (as trusted proxies do): what follows on it can
  // no longer be trusted to be a request boundary.
  if (target === undefined || hostCount > 1 || (te !== undefined && req.httpVersion === '1.0')) return local(base, E.badRequest, undefined, true);
  if (te !== undefined && te.trim().toLowerCase() !== 'chunked') return local(base, E.notImplemented, undefined, true);
  const hygiene = screenRequestHeaders(req, env.headersWithUnderscores ?? 'allow', env.hygiene ?? noHygieneStats, req.httpVersion === '2.0');
  if (hygiene !== undefined) return local(base, { ...E.badRequest, details: hygiene }, undefined, true);
  if (snap === undefined) return local(base, E.noCluster);

  // A captured connection (iptables REDIRECT) knows where the app dialled: that port selects the routes (Envoy's
  // per-port outbound listener), the VIP or endpoint address stands in for a Host the registry does not know, and
  // passthrough goes to the original IP, not to a DNS lookup of Host.
  const dst = req.originalDst;
  const captured = dst === undefined ? undefined : resolveCaptured(snap, dst);
  const port = captured !== undefined ? captured.port : target.explicitPort || (target.scheme === 'https' ? 443 : 80);
  const named = lookupHost(snap, target.host);
  // Gateway API routes bind a Service's frontend (its ClusterIP), never its endpoints: with such routes in the
  // config, a captured connection's destination decides (src/gateway/frontend.ts).
  const entry = captured !== undefined && snap.mesh !== undefined ? frontendEntry(snap.mesh, named, captured) : named ?? captured?.entry;
  const view: RequestView = {
    method: req.method ?? 'GET',
    path: target.path,
    query: target.query,
    scheme: target.scheme,
    authority: target.authority,
    port,
    headers: req.headers,
  };

  if (entry === undefined || entry.vhost === undefined) {
    // REGISTRY_ONLY: Envoy's BlackHoleCluster answers, and the request is recorded as that cluster's (bounded labels).
    if (snap.outboundTrafficPolicy === 'REGISTRY_ONLY') return local(base, E.registryOnly, undefined, false, 'BlackHoleCluster');
    if (isOwnEndpoint(env.own, dst !== undefined ? dst.address : target.host, dst !== undefined ? dst.port : port)) return local(base, SELF_DESTINATION);
    // ALLOW_ANY: pass through to the host and port the app named (captured: the address it dialled).
    const rt = dst !== undefined ? env.clusters.passthrough(dst.address, dst.port) : env.clusters.passthrough(target.host, port);
    return send(base, view, undefined, undefined, rt, PASSTHROUGH_RETRY(), 0, target.authority, undefined);
  }

  const m = findRoute(entry.vhost, view);
  if (m === undefined) return local(base, E.noRoute);
  const route = m.route;
  const action = route.action;

  if (route.cors !== undefined && view.method === 'OPTIONS' && req.headers.origin !== undefined && req.headers['access-control-request-method'] !== undefined) {
    return corsPreflight(base, route);
  }
  if (action.kind === 'direct') {
    return localCustom(base, action.status, action.body, '-', DETAILS.directResponse, route);
  }
  if (action.kind === 'redirect') {
    const a = action;
    let host = a.authority ?? hostOnly(target.authority);
    let p = a.port !== undefined ? a.port : a.derivePort === 'FROM_REQUEST_PORT' ? target.explicitPort : a.derivePort === 'FROM_LISTENER_PORT' ? port : a.derivePort === 'FROM_PROTOCOL_DEFAULT' ? 0 : (a.authority === undefined ? target.explicitPort : 0);
    const scheme = a.scheme ?? target.scheme;
    if ((scheme === 'http' && p === 80) || (scheme === 'https' && p === 443)) p = 0;
    if (a.authority !== undefined && a.authority.includes(':') && a.port === undefined) { p = 0; host = a.authority; }
    let pathq = a.prefixMatch !== undefined ? replacePrefixMatch(target.path, a.prefixMatch) : a.uri ?? target.path;
    if (a.uri !== undefined && !a.uri.includes('?') && target.query !== '') pathq = `${a.uri}?${target.query}`;
    else if (a.uri === undefined && target.query !== '') pathq = `${pathq}?${target.query}`;
    const location = `${scheme}://${host}${p ? `:${p}` : ''}${pathq}`;
    return localCustom(base, a.code, Buffer.alloc(0), '-', DETAILS.redirect, route, ['location', location]);
  }

  const dest = pickDestination(action, env.rand());
  if (dest === undefined) return local(base, E.noCluster, route);
  const rt = clusterFor(env, dest, target, port, dst);
  if (rt === undefined) return local(base, dest.failStatus !== undefined ? invalidBackend(dest.failStatus) : E.noCluster, route);

  const fault = route.fault;
  if (fault !== undefined) {
    if (fault.abortStatus > 0 && env.rand() * 100 < fault.abortPercent) {
      if (fault.abortGrpcStatus !== undefined) {
        return localCustom(base, 200, Buffer.alloc(0), E.faultAbort.flag, E.faultAbort.details, route, ['content-type', 'application/grpc', 'grpc-status', String(fault.abortGrpcStatus), 'grpc-message', E.faultAbort.body]);
      }
      return local(base, { ...E.faultAbort, status: fault.abortStatus }, route);
    }
    if (fault.delayMs > 0 && env.rand() * 100 < fault.delayPercent) {
      setTimeout(() => {
        if (res.destroyed) return;
        send(base, view, route, dest, rt, route.retry, route.timeoutMs, target.authority, FLAG.delayInjected);
      }, fault.delayMs);
      return;
    }
  }
  send(base, view, route, dest, rt, route.retry, route.timeoutMs, target.authority, undefined);
}

interface Base {
  req: DownstreamRequest;
  res: DownstreamResponse;
  env: OutboundEnv;
  startTime: number;
  startHr: number;
  requestId: string;
  target: RequestTarget | undefined;
}

let passthroughRetry: ReturnType<typeof applyRetryOverrides> | undefined;
function PASSTHROUGH_RETRY(): ReturnType<typeof applyRetryOverrides> {
  // Istio's default retry policy applies to passthrough traffic as well.
  return (passthroughRetry ??= defaultRetry());
}
import { compileRetryPolicy } from './retry-policy.js';
function defaultRetry(): ReturnType<typeof applyRetryOverrides> {
  return compileRetryPolicy(undefined, 0);
}

function hostOnly(authority: string): string {
  if (authority.startsWith('[')) return authority.slice(0, authority.indexOf(']') + 1);
  const c = authority.lastIndexOf(':');
  return c < 0 ? authority : authority.slice(0, c);
}

function clusterFor(env: OutboundEnv, dest: CompiledDestination, target: RequestTarget, port: number, dst: OriginalDestination | undefined): ClusterRuntime | undefined {
  if (dest.missingSubset || !dest.known) return undefined;
  const p = destinationPort(dest, port, target.explicitPort);
  const def = dest.clusters.get(p);
  if (def === undefined) return undefined;
  if (def.resolution === 'NONE') return dst !== undefined ? env.clusters.passthrough(dst.address, dst.port, def) : env.clusters.passthrough(target.host, target.explicitPort || p, def);
  return env.clusters.runtime(def);
}

function send(
  b: Base, view: RequestView, route: CompiledRoute | undefined, dest: CompiledDestination | undefined, rt: ClusterRuntime,
  retry: ForwardPlan['retry'], timeoutMs: number, authority: string, flag: string | undefined,
): void {
  const { req, res, env, target } = b;
  const t = target!;
  const headers = upstreamRequestHeaders(req.rawHeaders, req.headers.connection, { stripAllEnvoy: false, upgrade: req.upgrade });
  // x-envoy-* controls from the local app override the route (then they were stripped above).
  const r = applyRetryOverrides(retry, req.headers);
  let tOverride = routeTimeoutOverride(req.headers);
  // A gRPC deadline (grpc-timeout) bounds the call as a route timeout would, never beyond the route's own.
  const grpcDeadline = parseGrpcTimeout(req.headers['grpc-timeout']);
  if (grpcDeadline !== undefined) {
    const base = tOverride ?? timeoutMs;
    tOverride = base > 0 ? Math.min(base, Math.max(1, grpcDeadline)) : Math.max(1, grpcDeadline);
  }
  let path = t.query === '' ? t.path : `${t.path}?${t.query}`;
  const originalPath = req.url ?? path;
  let host = authority;
  if (route?.rewrite !== undefined) {
    const rw = route.rewrite;
    let newPath = t.path;
    if (rw.prefixMatch !== undefined) newPath = replacePrefixMatch(t.path, rw.prefixMatch);
    else if (rw.fullPath !== undefined) newPath = rw.fullPath;
    else if (rw.uri !== undefined) {
      const m = route.matches.length > 0 ? route.matches.find((x) => x.uri !== undefined && testStringMatch(x.uri, t.path)) : undefined;
      if (m?.uri !== undefined && m.uri.kind === 1 /* prefix */) newPath = rw.uri + t.path.slice(m.uri.value.length);
      else if (m?.uri !== undefined) newPath = rw.uri; // exact or regex: the whole path
      else newPath = rw.uri + t.path.slice(1); // no uri match: Istio rewrites the "/" prefix
      if (newPath === '') newPath = '/';
    } else if (rw.regex !== undefined) {
      rw.regex.lastIndex = 0;
      newPath = t.path.replace(rw.regex, rw.regexReplacement);
    }
    if (newPath !== t.path) {
      headers.push('x-envoy-original-path', path);
      path = t.query === '' ? newPath : `${newPath}?${t.query}`;
    }
    if (rw.authority !== undefined) host = rw.authority;
  }
  headers.push('Host', host);
  headers.push('x-request-id', b.requestId);
  const xff = req.headers['x-forwarded-for'];
  const remote = req.remoteAddress;
  headers.push('x-forwarded-for', xff ? `${xff}, ${remote}` : remote);
  headers.push('x-forwarded-proto', (req.headers['x-forwarded-proto'] as string | undefined) ?? t.scheme);
  if (route?.requestHeaders) applyHeaderOps(headers, route.requestHeaders);
  if (dest?.requestHeaders) applyHeaderOps(headers, dest.requestHeaders);
  let responseExtra: string[] | undefined;
  if (route?.cors !== undefined && req.headers.origin !== undefined) responseExtra = corsHeaders(route, req.headers.origin);
  const plan: ForwardPlan = {
    direction: 'outbound',
    route,
    dest,
    cluster: rt,
    method: req.method ?? 'GET',
    path,
    headers,
    retry: r,
    timeoutMs: tOverride ?? timeoutMs,
    requestId: b.requestId,
    authority: t.authority,
    originalPath,
    startTime: b.startTime,
    startHr: b.startHr,
    remote,
    local: req.localKey,
    responseExtra,
    flags: flag ?? '-',
    routeName: route?.name,
    shadows: undefined,
  };
  // Route mirrors: the shadows copy the head now (before the forwarder adds per-try headers) and leave once the body
  // is whole and the primary's first try went out (src/proxy/mirror.ts).
  if (route !== undefined && route.mirrors.length > 0) {
    plan.shadows = shadowsFor(env, route, plan.method, path, headers, host, view.port, t.explicitPort, req.httpVersion === '2.0', req.upgrade, plan.timeoutMs);
  }
  forward(req, res, plan, env);
}

// === CORS ===

function originAllowed(route: CompiledRoute, origin: string): boolean {
  for (const o of route.cors!.allowOrigins) if (testStringMatch(o, origin)) return true;
  return false;
}

function corsHeaders(route: CompiledRoute, origin: string | string[]): string[] | undefined {
  const o = Array.isArray(origin) ? origin[0]! : origin;
  if (!originAllowed(route, o)) return undefined;
  const c = route.cors!;
  const h = ['access-control-allow-origin', o];
  if (c.allowCredentials) h.push('access-control-allow-credentials', 'true');
  if (c.exposeHeaders && !(c.echoWildcards === true && c.allowCredentials && c.exposeHeaders === '*')) h.push('access-control-expose-headers', c.exposeHeaders);
  return h;
}

function corsPreflight(b: Base, route: CompiledRoute): void {
  const origin = b.req.headers.origin!;
  if (!originAllowed(route, origin)) return localCustom(b, 403, Buffer.alloc(0), '-', DETAILS.corsOriginNotAllowed, route);
  const c = route.cors!;
  const h = ['access-control-allow-origin', origin];
  if (c.echoWildcards === true && c.allowCredentials) {
    // Gateway API: with credentials a `*` must not be sent; the preflight's own method and headers are allowed.
    const rh = b.req.headers['access-control-request-headers'];
    if (c.allowMethods) h.push('access-control-allow-methods', c.allowMethods === '*' ? String(b.req.headers['access-control-request-method']) : c.allowMethods);
    if (c.allowHeaders && (c.allowHeaders !== '*' || rh !== undefined)) h.push('access-control-allow-headers', c.allowHeaders === '*' ? String(rh) : c.allowHeaders);
  } else {
    if (c.allowMethods) h.push('access-control-allow-methods', c.allowMethods);
    if (c.allowHeaders) h.push('access-control-allow-headers', c.allowHeaders);
  }
  if (c.maxAge) h.push('access-control-max-age', c.maxAge);
  if (c.allowCredentials) h.push('access-control-allow-credentials', 'true');
  if (c.exposeHeaders && !(c.echoWildcards === true && c.allowCredentials && c.exposeHeaders === '*')) h.push('access-control-expose-headers', c.exposeHeaders);
  return localCustom(b, 200, Buffer.alloc(0), '-', DETAILS.corsResponse, route, h);
}

// === local replies (before any upstream) ===

function local(b: Base, err: LocalError, route?: CompiledRoute, close = false, cluster?: string): void {
  const proxyError = ['x-remora-proxy-error', `${err.flag} ${err.details}`];
  if (close) proxyError.push('connection', 'close');
  // A gRPC client gets a gRPC error (404 NR → UNIMPLEMENTED, 503 → UNAVAILABLE …), not a bare HTTP status.
  const r = localReplyParts(b.req.headers, err.status, err.flag, err.body, err.details, proxyError);
  localCustom(b, r.status, r.body, err.flag, err.details, route, r.headers, r.grpcStatus, cluster);
}

function localCustom(b: Base, status: number, body: Buffer, flag: string, details: string, route: CompiledRoute | undefined, extra?: string[], grpcStatus?: number, cluster?: string): void {
  const { req, res, env } = b;
  const headers = extra ? extra.slice() : [];
  headers.push('content-length', String(body.length));
  if (route?.responseHeaders) applyHeaderOps(headers, route.responseHeaders);
  if (!res.headersSent) {
    res.writeHead(status, headers);
    res.end(body);
  }
  // Drain any request body so the connection can be reused.
  req.resume();
  const rec = localReplyRecord(req, { direction: 'outbound', startTime: b.startTime, startHr: b.startHr, authority: b.target?.authority, requestId: b.requestId, status, flag, details, bytesSent: body.length });
  if (route) rec.routeName = route.name;
  if (grpcStatus !== undefined) rec.grpcStatus = grpcStatus;
  if (cluster !== undefined) rec.upstreamCluster = cluster;
  env.observer.record(rec);
}
