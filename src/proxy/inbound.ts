/**
 * The inbound listener's request entry: peers' requests go to the app at the connection's original destination
 * (the pod's address and the port dialled, as Istio since 1.10), or, in explicit mode (a connection to the listener
 * itself), to 127.0.0.1:<app port>. Peer-supplied x-envoy-* headers are stripped (never trusted, CVE-2024-45806); no
 * retries beyond the keep-alive race protection (as Istio's inbound routes); while draining, responses carry
 * Connection: close. When NetworkPolicy/AuthorizationPolicy apply (InboundAuthorizer), a denied request gets Envoy's
 * RBAC 403 locally; a plaintext request for an app port whose PeerAuthentication is STRICT never reaches the app.
 */
import type { DownstreamRequest, DownstreamResponse } from './downstream.js';
import { requestId as newRequestId } from '../util/request-id.js';
import { performance } from 'node:perf_hooks';
import type { ClusterDef, ClusterRuntime, RetryPolicy } from '../model.js';
import { compileClusterPolicy } from '../upstream/policy.js';
import { compileRetryPolicy } from './retry-policy.js';
import { HeaderHygieneStats, screenRequestHeaders, upstreamRequestHeaders, type UnderscoreAction } from './headers.js';
import { forward } from './forwarder.js';
import type { ForwardContext, ForwardPlan } from './forward-plan.js';
import { localReplyRecord } from './local-reply.js';
import { E } from '../errors.js';
import { localReplyParts } from './grpc.js';
import { parseTarget, type PathNormalization, type RequestTarget } from '../routing/request-target.js';
import type { InboundAuthorizer } from './inbound-authz.js';
import type { AuthnResult } from '../security/request-authn.js';
import { peerOf, xfcc, type PeerIdentity } from '../security/mtls.js';
import { lookupHost } from '../config/compile.js';
import type { Snapshot } from '../config/snapshot.js';

export interface InboundEnv extends ForwardContext {
  appPorts: readonly number[];
  /** Address the app is reached at for a connection to the listener itself (explicit mode): 127.0.0.1. */
  appHost: string;
  /**
   * A plaintext request for this app port must not reach the app (PeerAuthentication STRICT, enforced when the
   * sidecar has a certificate): the connection is closed instead. Checked per request where the port was not known
   * when the connection was accepted (explicit mode: the port comes from Host).
   */
  plaintextRefused?(port: number): boolean;
  /** Counts such a refusal. */
  onPlaintextRefused?(): void;
  /** destination_service for a request whose Host names no registry service: this workload's own service (FQDN). */
  localService?: string;
  /** NetworkPolicy + AuthorizationPolicy for this workload; absent or off = every peer is allowed. */
  authz?: InboundAuthorizer;
  /** `--path-normalization`: the path AuthorizationPolicy checks is the path the app receives; default base. */
  pathNormalization?: PathNormalization;
  /** `--headers-with-underscores`; default allow. */
  headersWithUnderscores?: UnderscoreAction;
  /** What the header checks dropped or rejected on this listener. */
  hygiene?: HeaderHygieneStats;
  /** This sidecar's SPIFFE ID while it has a workload certificate (XFCC's By=). */
  ownSpiffeId?(): string | undefined;
  /** The config snapshot: the service a request's Host names, for destination_service. */
  snapshot?(): Snapshot | undefined;
}

/**
 * Istio's inbound destination_service: the service the request was addressed to — the FQDN the registry knows for
 * its Host (`reviews:9080` → `reviews.default.svc.cluster.local`); a Host the registry does not know (any caller
 * can write any Host) is this workload's own service (`<canonical name>.<namespace>.svc.<domain>`), never the Host as
 * written, so the metric's label set stays bounded (as Istio's stats without the Host fallback, which name the
 * workload's canonical service). Undefined (the app's own address) without a Host.
 */
function serviceHostOf(env: InboundEnv, target: RequestTarget | undefined, authority: string | undefined): string | undefined {
  if (target === undefined || authority === undefined || authority === '') return undefined;
  const snap = env.snapshot?.();
  const found = snap === undefined ? undefined : lookupHost(snap, target.host);
  return found?.service?.hostname ?? found?.host ?? env.localService;
}

/** The verified mTLS peer of a request's connection (HTTP/1: its socket; HTTP/2: its session's). */
function peerOfRequest(req: DownstreamRequest): PeerIdentity | undefined {
  return 'socket' in req ? peerOf(req.socket) : req.peer;
}

const noHygieneStats = new HeaderHygieneStats();

/** `inbound|<port>||` clusters, one per app port. */
export function inboundClusters(appPorts: readonly number[], appHost: string): ClusterDef[] {
  const policy = compileClusterPolicy({ dr: { loadBalancer: { simple: 'ROUND_ROBIN' } } }, 0);
  return appPorts.map((port) => ({
    name: `inbound|${port}||`,
    host: appHost,
    port,
    subset: '',
    policy,
    endpoints: [{ key: `${appHost}:${port}`, address: appHost, port, labels: {}, weight: 1 }],
    resolution: 'STATIC' as const,
    // The app port's protocol is not declared here: the app is spoken to in the client's protocol (HTTP/2 for a
    // gRPC caller, HTTP/1.1 otherwise), as Istio's inbound clusters do for sniffed ports.
    protocol: '',
  }));
}

let noRetry: RetryPolicy | undefined;

/** The `inbound|<port>||` cluster of an app port, its endpoint at `address`. */
export type InboundRuntimes = (port: number, address: string) => ClusterRuntime;

export function handleInbound(req: DownstreamRequest, res: DownstreamResponse, env: InboundEnv, runtimes: InboundRuntimes): void {
  const startTime = Date.now();
  const startHr = performance.now();
  noRetry ??= compileRetryPolicy({ attempts: 0 }, 0);
  // No Host (HTTP/1.0) still gets a normalized path: policies and the app must see the same one.
  const target = parseTarget(req.url ?? '/', req.headers.host ?? 'localhost', env.pathNormalization);
  // The app: where a captured connection was going (its original destination, the pod's address), else, on a
  // connection to the listener itself, 127.0.0.1 at the app port the peer named in Host, else the first one.
  let rt: ClusterRuntime;
  const dst = req.originalDst;
  if (dst !== undefined) rt = runtimes(dst.port, dst.address);
  else {
    const named = target?.explicitPort;
    const port = named !== undefined && named > 0 && env.appPorts.includes(named) ? named : env.appPorts[0]!;
    rt = runtimes(port, env.appHost);
    // PeerAuthentication per port: the mode of a connection to the listener itself was the workload's; the port is
    // known only now. A plaintext request for a STRICT port is closed without an answer, as a refused handshake.
    if (peerOfRequest(req) === undefined && env.plaintextRefused?.(port) === true) {
      env.onPlaintextRefused?.();
      res.destroy();
      return;
    }
  }
  const requestId = (req.headers['x-request-id'] as string | undefined) || newRequestId();
  // A target that does not parse, or a rejected header, gets 400 and the connection closes (as on outbound).
  const hygiene = target === undefined ? E.badRequest.details : screenRequestHeaders(req, env.headersWithUnderscores ?? 'allow', env.hygiene ?? noHygieneStats, req.httpVersion === '2.0');
  if (hygiene !== undefined) return localInbound(req, res, env, rt!, target, requestId, startTime, startHr, E.badRequest.status, E.badRequest.body, E.badRequest.flag, hygiene, true);
  // Absolute-form wins over Host (RFC 9112 §3.2.2): its authority is the one Host the app sees.
  const authority = req.headers.host === undefined && !/^https?:\/\//i.test(req.url ?? '') ? undefined : target!.authority;
  const authn = env.authz?.authn;
  // RequestAuthentication: only a request carrying a token waits for its verification (keys may be fetched).
  if (authn !== undefined && authn.hasToken(req.headers, target!.query, req.rawHeaders)) {
    authn.authenticate(req.headers, target!.query, req.rawHeaders).then(
      (r) => {
        if (res.destroyed) return;
        if (!r.ok) {
          // Envoy jwt_authn's local reply: 401, its message, and a Bearer challenge naming the request.
          const realm = `http://${authority ?? ''}${target!.path}`.replace(/["\\]/g, '');
          return localInbound(req, res, env, rt!, target, requestId, startTime, startHr, r.status, r.message, '-', r.details, false, ['www-authenticate', `Bearer realm="${realm}", error="invalid_token"`]);
        }
        authorizeAndForward(req, res, env, rt!, target!, requestId, startTime, startHr, authority, r);
      },
      () => localInbound(req, res, env, rt!, target, requestId, startTime, startHr, E.jwtFailed.status, E.jwtFailed.body, E.jwtFailed.flag, E.jwtFailed.details),
    );
    return;
  }
  authorizeAndForward(req, res, env, rt!, target!, requestId, startTime, startHr, authority, undefined);
}

/** AuthorizationPolicy / NetworkPolicy, then the request goes to the app (with the JWT outcome's header edits). */
function authorizeAndForward(
  req: DownstreamRequest, res: DownstreamResponse, env: InboundEnv, rt: ClusterRuntime, target: RequestTarget, requestId: string,
  startTime: number, startHr: number, authority: string | undefined, jwt: (AuthnResult & { ok: true }) | undefined,
): void {
  const authz = env.authz;
  const peer = peerOfRequest(req);
  // RequestAuthentication's output headers come only from a verified token: whatever the caller sent under those
  // names is gone before the policy reads the headers and before the app does (Envoy's jwt_authn strips them first).
  const outputs = authz?.authn?.outputHeaders;
  const jwtEdits = outputs !== undefined && outputs.size > 0 ? outputs : undefined;
  if (authz !== undefined && authz.enabled) {
    const d = authz.check(
      { ip: req.remoteAddress, port: rt.def.port, ...(peer !== undefined ? { principal: peer.principal, namespace: peer.namespace } : {}) },
      { method: req.method ?? 'GET', path: target.path, host: authority ?? '', headers: jwtEdits === undefined ? req.headers : policyHeaders(req.headers, jwtEdits, jwt), ...(jwt?.auth !== undefined ? { requestAuth: jwt.auth } : {}) },
    );
    // Envoy's RBAC filter sets no response flag: the details string names the policy.
    if (!d.allowed) return localInbound(req, res, env, rt, target, requestId, startTime, startHr, d.status, d.body, '-', d.details);
  }
  let headers = upstreamRequestHeaders(req.rawHeaders, req.headers.connection, { stripAllEnvoy: true, upgrade: req.upgrade });
  if (jwtEdits !== undefined || (jwt !== undefined && (jwt.setHeaders.length > 0 || jwt.removeHeaders.length > 0))) headers = applyJwtHeaders(headers, jwt, jwtEdits);
  headers.push('Host', authority ?? `${env.appHost}:${rt.def.port}`);
  headers.push('x-request-id', requestId);
  const remote = req.remoteAddress;
  const xff = req.headers['x-forwarded-for'];
  headers.push('x-forwarded-for', xff ? `${xff}, ${remote}` : remote);
  headers.push('x-forwarded-proto', (req.headers['x-forwarded-proto'] as string | undefined) ?? 'http');
  // Envoy's forward_client_cert_details SANITIZE_SET, as Istio's inbound sets it: the caller's identity for the app
  // (what a peer sent itself was stripped with the other internal headers).
  if (peer !== undefined) headers.push('x-forwarded-client-cert', xfcc(env.ownSpiffeId?.() ?? '', peer));
  const path = target.query === '' ? target.path : `${target.path}?${target.query}`;
  const plan: ForwardPlan = {
    direction: 'inbound',
    route: undefined,
    dest: undefined,
    cluster: rt,
    method: req.method ?? 'GET',
    path,
    headers,
    retry: noRetry!,
    timeoutMs: 0,
    requestId,
    authority: authority ?? '',
    originalPath: req.url ?? '/',
    startTime,
    startHr,
    remote,
    local: req.localKey,
    responseExtra: undefined,
    flags: '-',
    routeName: 'inbound',
    peer,
    serviceHost: serviceHostOf(env, target, authority),
  };
  forward(req, res, plan, env);
}

/**
 * The app's request headers under RequestAuthentication: every configured output header the caller sent removed,
 * and after a verified JWT the token headers removed unless forwarded and the output headers set from the token.
 */
function applyJwtHeaders(headers: string[], jwt: (AuthnResult & { ok: true }) | undefined, outputs: ReadonlySet<string> | undefined): string[] {
  const drop = new Set<string>(outputs);
  if (jwt !== undefined) {
    for (const h of jwt.removeHeaders) drop.add(h);
    for (const [h] of jwt.setHeaders) drop.add(h);
  }
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (!drop.has(headers[i]!.toLowerCase())) out.push(headers[i]!, headers[i + 1]!);
  }
  if (jwt !== undefined) for (const [h, v] of jwt.setHeaders) out.push(h, v);
  return out;
}

/**
 * The headers AuthorizationPolicy reads under RequestAuthentication: the caller's without the output headers, plus
 * those a verified token set. The request's own object when there is nothing to change (no copy).
 */
function policyHeaders(
  h: Readonly<Record<string, string | string[] | undefined>>, outputs: ReadonlySet<string>, jwt: (AuthnResult & { ok: true }) | undefined,
): Readonly<Record<string, string | string[] | undefined>> {
  let spoofed = false;
  for (const name of outputs) if (h[name] !== undefined) { spoofed = true; break; }
  if (!spoofed && (jwt === undefined || jwt.setHeaders.length === 0)) return h;
  const out: Record<string, string | string[] | undefined> = {};
  for (const k of Object.keys(h)) if (!outputs.has(k)) out[k] = h[k];
  if (jwt !== undefined) for (const [k, v] of jwt.setHeaders) out[k] = v;
  return out;
}

/** A reply made by the sidecar itself (no app involved), recorded like forwarded inbound requests. */
function localInbound(
  req: DownstreamRequest, res: DownstreamResponse, env: InboundEnv, rt: ClusterRuntime, target: RequestTarget | undefined, requestId: string,
  startTime: number, startHr: number, status: number, text: string, flag: string, details: string, close = false, extraHeaders: readonly string[] = [],
): void {
  // A gRPC caller gets its error as gRPC (403 RBAC → PERMISSION_DENIED), in a 200.
  const r = localReplyParts(req.headers, status, flag, text, details, ['x-request-id', requestId, ...extraHeaders]);
  const { headers, body, grpcStatus } = r;
  status = r.status;
  headers.push('content-length', String(body.length));
  if (env.draining || close) headers.push('connection', 'close');
  if (!res.headersSent) {
    res.writeHead(status, headers);
    res.end(body);
  }
  // Drain any request body so the connection can be reused.
  req.resume();
  const host = serviceHostOf(env, target, target?.authority) ?? rt.def.host;
  const dot = host.indexOf('.');
  const rec = localReplyRecord(req, { direction: 'inbound', startTime, startHr, authority: target?.authority, requestId, status, flag, details, bytesSent: body.length });
  rec.routeName = 'inbound';
  if (grpcStatus !== undefined) rec.grpcStatus = grpcStatus;
  rec.destinationService = host;
  rec.destinationServiceName = dot < 0 ? host : host.slice(0, dot);
  env.observer.record(rec);
}
