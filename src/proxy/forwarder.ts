/**
 * One downstream request, from the matched route to the last byte: destination choice, admission
 * (circuit breaking), the attempt/retry loop over the upstream pools, timeouts, the response back to the app, and
 * the body told to the request's shadows (./mirror.ts).
 * With ./mirror.ts (shadow requests), the only module that sequences request I/O; the decisions come from pure modules.
 * Hot path: one Exchange per request and one Attempt per try are the only objects it allocates
 * beyond header arrays; callbacks are methods, timers take the object as an argument (no closures).
 */
import type { DownstreamRequest, DownstreamResponse } from './downstream.js';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import type { AttemptOutcome, ClusterDef, ClusterRuntime, Endpoint, RequestRecord, ResponseFlag, RetryPolicy } from '../model.js';
import type { CompiledDestination, CompiledRoute, HeaderOps } from '../routing/route.js';
import type { ClusterManager } from '../upstream/cluster-manager.js';
import { shouldRetry, backoffMs } from './retry-policy.js';
import { hashKeyFor } from '../upstream/hash-key.js';
import { applyHeaderOps, downstreamResponseHeaders, setHeader, upgradeResponseHeaders } from './headers.js';
import type { Socket } from 'node:net';
import { DEFAULT_TUNNEL_IDLE_TIMEOUT_MS, Tunnels } from './tunnel.js';
import { BytePipe, type PipeEnd, type PipeOwner } from './byte-pipe.js';
import { DETAILS, E, END, FLAG, type End, type LocalError } from '../errors.js';
import { classify, grpcStatusOf, LOCAL_CODES } from './attempt-outcome.js';
import { localReplyParts } from './grpc.js';
import type { ClusterCounters, Observer } from './observer.js';
import type { UpstreamHandler, UpstreamPool, UpstreamRequest } from '../upstream/h1-pool.js';
import type { ClientSpan, ProxyTracing, ServerSpan } from '../telemetry/tracing-api.js';
import type { PeerIdentity } from '../security/mtls.js';
import type { ShadowTap } from './mirror.js';

export interface ForwardContext {
  clusters: ClusterManager;
  observer: Observer;
  rand: () => number;
  now: () => number;
  /** Largest request body kept in memory for retries (bytes). */
  retryBufferBytes: number;
  /** Largest request body a shadow (mirror) carries (bytes); default retryBufferBytes. */
  mirrorBodyBytes?: number;
  /** Inbound while draining: answer with Connection: close. */
  draining: boolean;
  tracing: ProxyTracing;
  /** Upgraded connections (WebSocket): their idle timeout and counts. Default: a 1 h idle timeout, counted apart. */
  tunnels?: Tunnels;
}

let defaultTunnels: Tunnels | undefined;

/** What the listener decided before forwarding (route, destination, rewritten target). */
export interface ForwardPlan {
  direction: 'outbound' | 'inbound';
  route: CompiledRoute | undefined;
  dest: CompiledDestination | undefined;
  cluster: ClusterRuntime;
  method: string;
  /** Path (with query) to send upstream. */
  path: string;
  /** Upstream request headers without per-attempt ones (flat array, original case). */
  headers: string[];
  retry: RetryPolicy;
  /** 0 = no route timeout. */
  timeoutMs: number;
  requestId: string;
  authority: string;
  originalPath: string;
  startTime: number;
  startHr: number;
  /** Downstream peer IP (x-forwarded-for, source-IP hashing). */
  remote: string;
  local: string;
  /** Extra response headers (CORS, Set-Cookie from cookie hashing). */
  responseExtra: string[] | undefined;
  flags: string;
  routeName: string | undefined;
  /** Inbound over mutual TLS: the verified peer, for the request's metrics and access log. */
  peer?: PeerIdentity | undefined;
  /** Inbound: the service the request named (its FQDN), for destination_service; default the cluster's host. */
  serviceHost?: string | undefined;
  /** The request's shadows (route mirrors), told of its body and sent once it is whole (./mirror.ts). */
  shadows?: ShadowTap | undefined;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
const kExchange = Symbol('remora.exchange');

/** Read a request body into memory when it is small enough to replay; otherwise stream it (no retries). */
function bodyMode(req: DownstreamRequest, limit: number): 'none' | 'buffer' | 'stream' {
  // The server layers decide whether a body follows (HTTP/1: Content-Length > 0 or Transfer-Encoding; HTTP/2: the
  // HEADERS frame did not end the stream, with or without a content-length).
  if (req.body === null) return 'none';
  // Expect: 100-continue: the client sends its body only once the upstream said 100, so it cannot be read first.
  if (req.expectContinue) return 'stream';
  if (req.headers['transfer-encoding'] !== undefined) return 'stream';
  const cl = req.headers['content-length'];
  if (cl === undefined) return 'stream';
  return Number(cl) <= limit ? 'buffer' : 'stream';
}

export function forward(req: DownstreamRequest, res: DownstreamResponse, plan: ForwardPlan, ctx: ForwardContext): void {
  const ex = new Exchange(req, res, plan, ctx);
  const mode = bodyMode(req, ctx.retryBufferBytes);
  // Shadows leave once the body is whole and the primary's first try went out (never before, never instead).
  const shadows = plan.shadows;
  if (mode === 'none') {
    ex.body = null;
    ex.replayable = true;
    ex.start();
    if (shadows !== undefined) { if (ex.finished) shadows.drop(); else shadows.send(null); }
  } else if (mode === 'stream') {
    ex.body = req.body;
    ex.replayable = false;
    const cl = req.headers['content-length'];
    // Larger than the retry buffer (by its Content-Length): never retried. Envoy counts it as retry_or_shadow_abandoned.
    // A body of unknown length (chunked HTTP/1, any HTTP/2 body: a gRPC call), or one that waits for 100 Continue,
    // streams at once, and a copy is kept while it stays within the retry buffer: if it ended there, a retry replays
    // it (Envoy buffers for retries too).
    if (cl !== undefined && Number(cl) > ctx.retryBufferBytes) ex.bufferAbandoned(true);
    else ex.copy = [];
    if (shadows !== undefined) {
      // The shadows keep their own copy of the chunks as they go to the primary, up to --mirror-body-bytes.
      if (cl !== undefined && Number(cl) > shadows.maxBody) {
        shadows.drop();
        ex.bufferAbandoned(false);
      } else {
        ex.shadows = shadows;
      }
    }
    ex.start();
  } else {
    ex.replayable = true;
    const chunks: Buffer[] = [];
    let size = 0;
    const body = req.body!;
    body.on('data', (c: Buffer) => { chunks.push(c); size += c.length; });
    body.on('end', () => {
      ex.body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      ex.bytesReceived = size;
      ex.start();
      if (shadows !== undefined) {
        if (ex.finished) shadows.drop();
        else if (!shadows.send(ex.body)) ex.bufferAbandoned(false);
      }
    });
    body.on('error', () => { shadows?.drop(); ex.downstreamGone(); });
  }
}

class Exchange {
  body: Buffer | Readable | null = null;
  replayable = false;
  /** The streamed body's chunks so far, while within the retry buffer (undefined: not kept). */
  copy: Buffer[] | undefined;
  bytesReceived = 0;
  bytesSent = 0;
  attempts = 0;
  retries = 0;
  private reusedRetryUsed = false;
  /** The next try must open a new connection (the keep-alive race retry). */
  private freshConnection = false;
  /** Index of the x-envoy-attempt-count value in plan.headers (0 = not added yet). */
  private attemptSlot = 0;
  /** The trace headers of a try are in plan.headers (a later try replaces them). */
  private traceAdded = false;
  private tried: Set<string> | undefined;
  private current: Attempt | undefined;
  responded = false;
  finished = false;
  private admitted = false;
  /** The retry slot this request holds: 0 none, 1 unbudgeted (after connect failures only), 2 budgeted. */
  private retryHeld: 0 | 1 | 2 = 0;
  private counters: ClusterCounters;
  private deadline = 0;
  private routeTimer: NodeJS.Timeout | undefined;
  private backoffTimer: NodeJS.Timeout | undefined;
  flags: string;
  details = '';
  upstreamHost: string | undefined;
  serviceTimeMs: number | undefined;
  status = 0;
  private hashKey: string | undefined;
  private lastRetriable = false;
  responseHeaders: string[] | undefined;
  grpcStatus: number | undefined;
  private span: ServerSpan | undefined;
  /** retry_or_shadow_abandoned was counted for this request (once, as Envoy does). */
  private abandonCounted = false;
  /** Shadows fed from a streamed body (onBodySent / onRequestSent), until they are sent or dropped. */
  shadows: ShadowTap | undefined;

  constructor(readonly req: DownstreamRequest, readonly res: DownstreamResponse, readonly plan: ForwardPlan, readonly ctx: ForwardContext) {
    this.flags = plan.flags;
    if (ctx.tracing.enabled) {
      this.span = ctx.tracing.startServer(req.headers, { method: plan.method, path: plan.originalPath, authority: plan.authority, direction: plan.direction, peer: this.req.remoteKey });
    }
    this.counters = ctx.observer.counters(plan.cluster.def.name);
    (res as unknown as Record<symbol, Exchange>)[kExchange] = this;
    res.on('close', onResponseClose);
  }

  start(): void {
    if (this.finished) return;
    const plan = this.plan;
    const rt = plan.cluster;
    const admit = rt.admit();
    if (admit !== 'ok') {
      // Envoy counts both the pending-queue and the requests (http2MaxRequests) breaker as upstream_rq_pending_overflow.
      this.counters.upstream_rq_pending_overflow++;
      this.localReply(E.overflow, true);
      return;
    }
    this.admitted = true;
    const hash = rt.def.policy.lb.hash;
    if (hash !== undefined) {
      const hk = hashKeyFor(hash, { headers: this.req.headers, query: queryOf(plan.path), sourceIp: plan.remote }, this.ctx.rand);
      this.hashKey = hk.key;
      if (hk.setCookie !== undefined) (plan.responseExtra ??= []).push('Set-Cookie', hk.setCookie);
    }
    if (plan.timeoutMs > 0) {
      this.deadline = this.ctx.now() + plan.timeoutMs;
      this.routeTimer = setTimeout(onRouteTimeout, plan.timeoutMs, this);
    }
    this.tryOnce();
  }

  private tryOnce(): void {
    this.backoffTimer = undefined;
    if (this.finished) return;
    const rt = this.plan.cluster;
    const now = this.ctx.now();
    const ep = rt.pick(this.tried === undefined ? (this.hashKey === undefined ? NO_PICK : { hashKey: this.hashKey }) : { hashKey: this.hashKey, exclude: this.tried } as never, now);
    if (ep === undefined) {
      this.localReply(E.noHealthy, false);
      return;
    }
    this.attempts++;
    const a = new Attempt(this, ep, this.attempts, now);
    this.current = a;
    this.upstreamHost = ep.key;
    rt.attemptStarted(ep, now);
    this.counters.upstream_rq_total++;
    // The request's own header array gets the per-attempt headers in place (no copy per request): the first try
    // appends them and remembers where; a retry overwrites the values. Nothing else holds the array by then (the
    // pool writes the head synchronously or drops a queued try before the next one starts; mirrors copied it).
    const headers = this.plan.headers;
    const count = this.attempts < ATTEMPT_COUNTS.length ? ATTEMPT_COUNTS[this.attempts]! : String(this.attempts);
    if (this.attemptSlot === 0) {
      this.attemptSlot = headers.length + 1;
      headers.push('x-envoy-attempt-count', count);
    } else {
      headers[this.attemptSlot] = count;
    }
    if (this.span !== undefined) {
      a.span = this.span.startAttempt(this.attempts, { cluster: rt.def.name, upstreamHost: ep.key });
      const h = this.req.headers;
      // A root request (the common case) carries no trace headers to replace: append on the first try instead of
      // searching; later tries (a retry, or the keep-alive race re-send of try 1) replace what the first appended.
      const root = !this.traceAdded && h.traceparent === undefined && h.b3 === undefined && h['x-b3-traceid'] === undefined && h['x-b3-sampled'] === undefined && h['x-b3-spanid'] === undefined && h['x-b3-parentspanid'] === undefined && h.tracestate === undefined;
      // Indexed loop: a for-of over the pairs allocated iterator objects on every request.
      const th = a.span.headers();
      for (let i = 0; i < th.length; i++) {
        const p = th[i]!;
        if (root) headers.push(p[0], p[1]);
        else setHeader(headers, p[0], p[1]);
      }
      this.traceAdded = true;
    }
    if (this.plan.timeoutMs > 0) setHeader(headers, 'x-envoy-expected-rq-timeout-ms', String(Math.max(0, Math.round(this.deadline - now))));
    const retry = this.plan.retry;
    let tryMs = retry.perTryTimeoutMs;
    if (this.deadline > 0) {
      const left = this.deadline - now;
      if (tryMs === 0 || left < tryMs) tryMs = 0; // the route timer fires first
    }
    if (tryMs > 0) a.timer = setTimeout(onAttemptTimeout, tryMs, a);
    // HTTP/2 upstream by the port's protocol, h2UpgradePolicy or the client's protocol; an upgrade (101) needs HTTP/1.1;
    // TLS upstreams (Istio mTLS to a meshed endpoint, ISTIO_MUTUAL, SIMPLE/MUTUAL) in the cluster's own pools.
    const pool: UpstreamPool = this.ctx.clusters.httpPool(rt.def, ep, this.req.httpVersion === '2.0', this.req.upgrade);
    const req: UpstreamRequest = { method: this.plan.method, path: this.plan.path, headers, body: this.body, upgrade: this.req.upgrade };
    try {
      if (this.freshConnection) {
        this.freshConnection = false;
        pool.dispatchFresh(req, a);
      } else {
        pool.dispatch(req, a);
      }
    } catch (err) {
      a.onError(err as Error);
    }
  }

  /**
   * The body cannot be kept for a retry (over --retry-buffer-bytes, counted when a retry policy applies) or for the
   * shadows (over --mirror-body-bytes): Envoy's retry_or_shadow_abandoned on the route's cluster, once per request.
   */
  bufferAbandoned(forRetry: boolean): void {
    if (this.abandonCounted || (forRetry && this.plan.retry.attempts === 0)) return;
    this.abandonCounted = true;
    this.counters.retry_or_shadow_abandoned++;
  }

  /** The upstream reset the request (closed, RST, invalid response) before or during its response. */
  upstreamReset(protocolError: boolean): void {
    const c = this.counters;
    c.upstream_rq_rx_reset++;
    if (protocolError) c.upstream_cx_protocol_error++;
    else c.upstream_cx_destroy_remote_with_active_rq++;
  }

  /** Called by the attempt when the upstream answered with headers. Returns false if the attempt was dropped for a retry. */
  onResponseHeaders(a: Attempt, status: number, raw: string[]): boolean {
    const rt = this.plan.cluster;
    const now = this.ctx.now();
    const latency = now - a.startedAt;
    const outcome: AttemptOutcome = { kind: 'response', status };
    if (status === 200 || status >= 400) {
      const g = grpcStatusOf(raw);
      if (g !== undefined) (outcome as { grpcStatus?: number }).grpcStatus = g;
    }
    rt.attemptFinished(a.ep, outcome, latency, now);
    this.counters.response?.(status);
    this.grpcStatus = outcome.grpcStatus;
    a.span?.end(status);
    if (status >= 500 || outcome.grpcStatus !== undefined) {
      if (shouldRetry(this.plan.retry, outcome)) {
        if (this.canRetry(true)) {
          this.retryAfter(a);
          return false;
        }
        this.lastRetriable = true;
      }
    }
    this.commitResponse(a, status, raw, latency);
    return true;
  }

  private commitResponse(a: Attempt, status: number, raw: string[], latency: number): void {
    this.clearRouteTimer();
    this.status = status;
    this.serviceTimeMs = latency;
    if (this.lastRetriable && this.plan.retry.attempts > 0) {
      this.addFlag(FLAG.retryLimitExceeded);
      this.counters.upstream_rq_retry_limit_exceeded++;
    }
    if (this.retries > 0 && status < 500) this.counters.upstream_rq_retry_success++;
    const { headers } = downstreamResponseHeaders(raw);
    // RFC 9110 §8.6: no Content-Length in a 204 (an upstream that sent one, with or without the stray body, would
    // have the client wait for bytes that never come, or read them from the next response).
    if (status === 204) removeContentLength(headers);
    this.addResponseHeaders(headers, latency);
    if (this.ctx.draining && this.plan.direction === 'inbound') setHeader(headers, 'Connection', 'close');
    this.details = DETAILS.viaUpstream;
    this.responded = true;
    this.responseHeaders = headers;
    void a;
    try {
      this.res.writeHead(status, headers);
    } catch {
      // Invalid header from upstream: answer 502 instead of crashing.
      this.responded = false;
      this.current?.abort();
      this.localReply(E.invalidUpstreamHeader, false);
    }
  }

  /**
   * The upstream switched protocols (101) for an upgrade request: the client gets the 101 head (with the route's
   * response header edits) and the two sockets become a tunnel. Retries and the route timeout ended with the head;
   * the tunnel's own idle timeout applies from here. The request is recorded once, when the tunnel closes.
   */
  onResponseUpgrade(a: Attempt, raw: string[], upstream: Socket, upstreamHead: Buffer): void {
    if (this.finished) { upstream.destroy(); return; }
    const rt = this.plan.cluster;
    const now = this.ctx.now();
    const latency = now - a.startedAt;
    rt.attemptFinished(a.ep, { kind: 'response', status: 101 }, latency, now);
    this.counters.response?.(101);
    a.span?.end(101);
    this.clearRouteTimer();
    this.status = 101;
    this.serviceTimeMs = latency;
    if (this.retries > 0) this.counters.upstream_rq_retry_success++;
    const headers = upgradeResponseHeaders(raw);
    this.addResponseHeaders(headers, latency);
    let sw: { socket: Socket; head: Buffer[] };
    try {
      sw = this.res.switchProtocols(headers);
    } catch {
      upstream.destroy();
      this.localReply(E.invalidUpstreamHeader, false);
      return;
    }
    this.details = DETAILS.viaUpstream;
    this.responded = true;
    this.responseHeaders = headers;
    this.startTunnel(sw.socket, sw.head, upstream, upstreamHead);
  }

  /**
   * The exchange ends here but for its record: timers off, the retry slot returned, and the response forgets the
   * exchange, so nothing of the plan (route, destination: the config snapshot) stays reachable from the tunnel. The
   * admission slot is held until the tunnel closes (an upgraded stream is an active request, as in Envoy).
   */
  private startTunnel(client: Socket, clientHead: Buffer[], upstream: Socket, upstreamHead: Buffer): void {
    this.finished = true;
    if (this.backoffTimer) { clearTimeout(this.backoffTimer); this.backoffTimer = undefined; }
    if (this.retryHeld !== 0) { this.plan.cluster.endRetry(this.retryHeld === 2); this.retryHeld = 0; }
    (this.res as unknown as Record<symbol, Exchange | undefined>)[kExchange] = undefined;
    const p = this.plan;
    const tunnels = this.ctx.tunnels ?? (defaultTunnels ??= new Tunnels(DEFAULT_TUNNEL_IDLE_TIMEOUT_MS));
    const rec = new ProxyRecord(p, this, p.cluster.def);
    const owner = new TunnelRecord(rec, p.startHr, this.admitted ? p.cluster : undefined, this.span, this.ctx.observer, tunnels);
    this.admitted = false;
    tunnels.active[rec.direction]++;
    tunnels.total[rec.direction]++;
    new BytePipe(client, upstream, tunnels.idleTimeoutMs, owner).start(clientHead, [upstreamHead]);
  }

  /** What every forwarded response head gets: service time, the route's and destination's header edits, extras. */
  private addResponseHeaders(headers: string[], latency: number): void {
    headers.push('x-envoy-upstream-service-time', String(Math.round(latency)));
    const r = this.plan.route;
    if (r?.responseHeaders) applyHeaderOps(headers, r.responseHeaders);
    const d = this.plan.dest?.responseHeaders;
    if (d) applyHeaderOps(headers, d);
    if (this.plan.responseExtra) headers.push(...this.plan.responseExtra);
  }

  /** `budgeted` false: the failed try never reached a server (connect failure), see ResourceLimits.tryStartRetry. */
  private canRetry(budgeted: boolean): boolean {
    if (!this.replayable) {
      // A streamed body that ended within the retry buffer, whole in the copy: replay it from memory.
      const copy = this.copy;
      if (copy === undefined || !this.req.complete || this.current?.bodyFullySent !== true) return false;
      this.body = copy.length === 1 ? copy[0]! : Buffer.concat(copy, this.bytesReceived);
      this.copy = undefined;
      this.replayable = true;
    }
    if (this.retries >= this.plan.retry.attempts) return false;
    if (this.deadline > 0 && this.ctx.now() >= this.deadline) return false;
    // One retry slot (maxRetries / retry budget) is held from the first retry until the request ends;
    // an unbudgeted slot is upgraded when a later retry needs the budget.
    const want = budgeted ? 2 : 1;
    if (this.retryHeld < want) {
      const rt = this.plan.cluster;
      if (!rt.tryStartRetry(budgeted)) {
        this.counters.upstream_rq_retry_overflow++;
        return false;
      }
      if (this.retryHeld === 1) rt.endRetry(false);
      this.retryHeld = want;
    }
    // The rate budget is asked for every retry that reaches a server again (the slot above only for the first).
    if (budgeted && this.plan.cluster.retryToken !== undefined && !this.plan.cluster.retryToken(this.ctx.now())) {
      this.counters.upstream_rq_retry_overflow++;
      return false;
    }
    return true;
  }

  private retryAfter(a: Attempt): void {
    a.abort();
    this.retries++;
    this.counters.upstream_rq_retry++;
    if (this.plan.retry.retryIgnorePreviousHosts) (this.tried ??= new Set()).add(a.ep.key);
    const wait = backoffMs(this.retries, this.plan.retry, this.ctx.rand);
    if (this.deadline > 0 && this.ctx.now() + wait >= this.deadline) {
      // No attempt may start after the route deadline: let the route timer answer.
      return;
    }
    this.backoffTimer = setTimeout(onBackoffDone, wait, this);
  }

  /**
   * The attempt failed before response headers (connect failure, reset, per-try timeout). `protocolError`: the
   * upstream answered out of protocol: a reset, but the last one is answered 502 UPE. 'upgrade' (a 101 to a request
   * that did not ask for one) is never the keep-alive race: the server processed the request. 'parse' (llhttp
   * rejected the response: CL+TE, bad framing, NUL, bare LF, oversized head) on a reused connection may be stray
   * bytes a misbehaving server left after its previous response, so it gets the race's one re-send on a new
   * connection under the same conditions (nothing processed, or an idempotent method).
   */
  onAttemptFailed(a: Attempt, outcome: AttemptOutcome, noteTimeout: boolean, protocolError: false | 'upgrade' | 'parse' = false): void {
    if (this.finished) return;
    const rt = this.plan.cluster;
    const now = this.ctx.now();
    rt.attemptFinished(a.ep, outcome, now - a.startedAt, now);
    a.span?.end(undefined, outcome.kind);
    if (outcome.kind === 'connect-failure') this.counters.upstream_cx_connect_fail++;
    if (noteTimeout) this.counters.upstream_rq_per_try_timeout++;
    // Keep-alive race: a reused connection closed under us before any response byte. Safe to retry once,
    // on a fresh connection, without spending an attempt: nothing was processed, or the method is idempotent.
    if (outcome.kind === 'reset' && a.reused && protocolError !== 'upgrade' && !this.reusedRetryUsed && this.replayable && (!a.bodyFullySent || IDEMPOTENT.has(this.plan.method))) {
      this.reusedRetryUsed = true;
      this.freshConnection = true;
      this.counters.upstream_rq_reset_reused_retry++;
      this.attempts--;
      this.tryOnce();
      return;
    }
    if (shouldRetry(this.plan.retry, outcome)) {
      if (this.canRetry(outcome.kind !== 'connect-failure')) {
        this.retryAfter(a);
        return;
      }
      this.lastRetriable = true;
    }
    const err = outcome.kind === 'connect-failure' ? E.connectFailure : outcome.kind === 'timeout' ? E.timeout : protocolError ? E.protocolError : E.reset;
    if (outcome.kind === 'timeout') this.counters.upstream_rq_timeout++;
    this.localReply(err, false);
  }

  /** Route timeout: 504 UT if nothing was sent yet, else reset the downstream. */
  onRouteTimeout(): void {
    this.routeTimer = undefined;
    if (this.finished) return;
    this.counters.upstream_rq_timeout++;
    if (this.backoffTimer) { clearTimeout(this.backoffTimer); this.backoffTimer = undefined; }
    const a = this.current;
    if (a !== undefined && !a.done) {
      a.done = true;
      a.clearTimer();
      const now = this.ctx.now();
      if (!a.headersSeen) this.plan.cluster.attemptFinished(a.ep, { kind: 'timeout' }, now - a.startedAt, now);
      a.abort();
    }
    if (this.responded) {
      this.addFlag(FLAG.upstreamTimeout);
      this.resetDownstream();
    } else {
      this.localReply(E.timeout, false);
    }
  }

  onResponseData(chunk: Buffer): boolean {
    this.bytesSent += chunk.length;
    return this.res.write(chunk);
  }

  onResponseEnd(trailers: string[] | null): void {
    if (this.finished) return;
    if (trailers && trailers.length > 0) {
      // gRPC puts its status in the trailers (a trailers-only response has it in the headers, read there).
      if (this.grpcStatus === undefined) this.grpcStatus = grpcStatusOf(trailers);
      if (this.res.chunkedEncoding) {
        const t: Record<string, string> = {};
        for (let i = 0; i < trailers.length; i += 2) t[trailers[i]!] = trailers[i + 1]!;
        this.res.addTrailers(t);
      }
    }
    this.res.end();
    this.complete();
  }

  /**
   * The upstream failed after we started answering: never end the downstream cleanly (the client sees a reset
   * connection or stream, short of its Content-Length or without the last chunk). `protocolError`: the body broke
   * HTTP/1.1 framing (Envoy's UPE) rather than the connection closing or resetting (UR).
   */
  onResponseBroken(protocolError = false): void {
    if (this.finished) return;
    const end = protocolError ? END.upstreamProtocolErrorAfterResponse : END.upstreamResetAfterResponse;
    this.addFlag(end.flag);
    this.details = end.details;
    this.resetDownstream();
  }

  private resetDownstream(): void {
    this.res.destroy();
    this.complete();
  }

  downstreamGone(): void {
    if (this.finished) return;
    // The listener ended the stream for its stream idle timeout (408, or a reset once answering): Envoy's SI.
    const idle = this.res.streamIdleTimedOut;
    if (idle) {
      this.addFlag(END.streamIdleTimeout.flag);
      this.details = END.streamIdleTimeout.details;
    } else {
      this.addFlag(END.downstreamDisconnect.flag);
      this.details = this.details || END.downstreamDisconnect.details;
    }
    if (this.backoffTimer) { clearTimeout(this.backoffTimer); this.backoffTimer = undefined; }
    const a = this.current;
    if (a !== undefined && !a.done) {
      a.done = true;
      a.clearTimer();
      a.abort();
    }
    if (!this.responded) this.status = idle ? 408 : 0;
    this.complete();
  }

  localReply(err: LocalError, overloaded: boolean): void {
    if (this.finished) return;
    this.clearRouteTimer();
    this.addFlag(err.flag);
    this.details = err.details;
    this.status = err.status;
    if (!this.res.headersSent) {
      const body = err.body;
      const extra: string[] = ['x-remora-proxy-error', `${err.flag} ${err.details}`];
      if (overloaded) extra.push('x-envoy-overloaded', 'true');
      if (this.ctx.draining && this.plan.direction === 'inbound') extra.push('connection', 'close');
      // A gRPC client gets a gRPC error: 200, grpc-status (14 UNAVAILABLE, 4 DEADLINE_EXCEEDED …), grpc-message.
      const r = localReplyParts(this.req.headers, err.status, err.flag, body, err.details, extra);
      r.headers.push('content-length', String(r.body.length));
      this.status = r.status;
      if (r.grpcStatus !== undefined) this.grpcStatus = r.grpcStatus;
      this.res.writeHead(r.status, r.headers);
      this.res.end(r.body);
      this.bytesSent += r.body.length;
    } else {
      this.res.destroy();
    }
    this.complete();
  }

  addFlag(f: ResponseFlag | '-'): void {
    if (f === '-') return;
    this.flags = this.flags === '-' ? f : `${this.flags},${f}`;
  }

  private clearRouteTimer(): void {
    if (this.routeTimer !== undefined) { clearTimeout(this.routeTimer); this.routeTimer = undefined; }
  }

  private complete(): void {
    if (this.finished) return;
    this.finished = true;
    this.clearRouteTimer();
    if (this.backoffTimer) { clearTimeout(this.backoffTimer); this.backoffTimer = undefined; }
    if (this.admitted) { this.admitted = false; this.plan.cluster.release(); }
    if (this.retryHeld !== 0) { this.plan.cluster.endRetry(this.retryHeld === 2); this.retryHeld = 0; }
    // Ended before its body went out whole: its shadows are not sent (Envoy: no shadow for an incomplete request).
    if (this.shadows !== undefined && !this.shadows.settled) this.shadows.drop();
    if (this.body !== null && !Buffer.isBuffer(this.body) && !this.req.complete) this.req.resume();
    const p = this.plan;
    const def: ClusterDef = p.cluster.def;
    const rec = new ProxyRecord(p, this, def);
    this.ctx.observer.record(rec);
    if (this.span !== undefined) {
      this.current?.span?.end(this.status || undefined, this.flags);
      this.span.end(rec);
    }
  }
}

const NO_PICK = {};
/** x-envoy-attempt-count values for the usual tries, built once. */
const ATTEMPT_COUNTS = Array.from({ length: 16 }, (_, i) => String(i));

function onResponseClose(this: DownstreamResponse): void {
  const ex = (this as unknown as Record<symbol, Exchange | undefined>)[kExchange];
  if (ex !== undefined && !ex.finished) ex.downstreamGone();
}
function onRouteTimeout(ex: Exchange): void { ex.onRouteTimeout(); }
function onBackoffDone(ex: Exchange): void { (ex as unknown as { tryOnce(): void }).tryOnce(); }
function onAttemptTimeout(a: Attempt): void { a.onTimeout(); }

/** The upstream handler of one try. */
class Attempt implements UpstreamHandler {
  reused = false;
  span: ClientSpan | undefined;
  done = false;
  headersSeen = false;
  bodyFullySent = false;
  timer: NodeJS.Timeout | undefined;
  private abortFn: ((err?: Error) => void) | undefined;
  private resumeFn: (() => void) | undefined;

  constructor(readonly ex: Exchange, readonly ep: Endpoint, readonly n: number, readonly startedAt: number) {}

  clearTimer(): void {
    if (this.timer !== undefined) { clearTimeout(this.timer); this.timer = undefined; }
  }

  abort(): void {
    this.clearTimer();
    this.done = true;
    if (this.abortFn) {
      const f = this.abortFn;
      this.abortFn = undefined;
      try { f(new Error('aborted by proxy')); } catch { /* already finished */ }
    }
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abortFn = abort;
    if (this.done) abort(new Error('aborted by proxy'));
  }

  /** The upstream said 100 Continue: the client, which waits for it (Expect: 100-continue), is told. */
  onContinue(): void {
    if (!this.done) this.ex.res.sendContinue();
  }

  onRequestSent(): void {
    this.bodyFullySent = true;
    // A streamed body went out whole: its shadows leave now.
    const shadows = this.ex.shadows;
    if (shadows !== undefined && !shadows.settled) shadows.end();
  }

  onBodySent(chunk: Buffer): void {
    const ex = this.ex;
    if (ex.body !== null && !Buffer.isBuffer(ex.body)) {
      ex.bytesReceived += chunk.length;
      const copy = ex.copy;
      if (copy !== undefined) {
        if (ex.bytesReceived <= ex.ctx.retryBufferBytes) copy.push(chunk);
        else {
          ex.copy = undefined; // over the retry buffer: this request will not be retried
          ex.bufferAbandoned(true);
        }
      }
      const shadows = ex.shadows;
      if (shadows !== undefined && !shadows.settled && !shadows.chunk(chunk)) ex.bufferAbandoned(false);
    }
  }

  onHeaders(status: number, raw: string[], resume: () => void): boolean {
    if (this.done) return false;
    this.headersSeen = true;
    this.clearTimer();
    this.resumeFn = resume;
    return this.ex.onResponseHeaders(this, status, raw);
  }

  /** 101 to an upgrade request: the upstream connection is ours (the pool let it go). */
  onUpgrade(_status: number, raw: string[], socket: Socket, head: Buffer): void {
    if (this.done) { socket.destroy(); return; }
    this.done = true;
    this.headersSeen = true;
    this.clearTimer();
    this.ex.onResponseUpgrade(this, raw, socket, head);
  }

  onData(chunk: Buffer): boolean {
    if (this.done) return false;
    const ok = this.ex.onResponseData(chunk);
    if (!ok) this.ex.res.once('drain', this.resume);
    return ok;
  }

  private resume = (): void => {
    this.resumeFn?.();
  };

  onComplete(trailers: string[] | null): void {
    if (this.done) return;
    this.done = true;
    this.clearTimer();
    this.ex.onResponseEnd(trailers);
  }

  onError(err: Error): void {
    if (this.done) return;
    this.done = true;
    this.clearTimer();
    const code = (err as NodeJS.ErrnoException).code ?? '';
    const protocol = code === 'UND_ERR_UPGRADE' ? 'upgrade' : code.startsWith('HPE_') ? 'parse' : false;
    const outcome = classify(err);
    if (outcome.kind !== 'connect-failure' && !LOCAL_CODES.has(code)) this.ex.upstreamReset(protocol !== false);
    if (this.headersSeen) {
      this.ex.onResponseBroken(protocol !== false);
      return;
    }
    this.ex.onAttemptFailed(this, outcome, false, protocol);
  }

  onTimeout(): void {
    this.timer = undefined;
    if (this.done) return;
    const headers = this.headersSeen;
    this.abort();
    if (headers) {
      this.ex.addFlag(FLAG.upstreamTimeout);
      this.ex.onResponseBroken();
    } else {
      this.ex.onAttemptFailed(this, { kind: 'timeout' }, true);
    }
  }
}


function removeContentLength(headers: string[]): void {
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    const n = headers[i]!;
    if (n.length === 14 && n.toLowerCase() === 'content-length') headers.splice(i, 2);
  }
}

function queryOf(path: string): string {
  const q = path.indexOf('?');
  return q < 0 ? '' : path.slice(q + 1);
}

/** Service name and namespace of a cluster host, computed once per host (not per request). */
const serviceIds = new Map<string, { name: string; namespace: string | undefined }>();
function serviceId(host: string): { name: string; namespace: string | undefined } {
  let id = serviceIds.get(host);
  if (id === undefined) {
    const parts = host.split('.');
    id = { name: parts[0] ?? host, namespace: parts.length >= 3 && parts[2] === 'svc' ? parts[1] : undefined };
    if (serviceIds.size > 100_000) serviceIds.clear();
    serviceIds.set(host, id);
  }
  return id;
}

/**
 * The RequestRecord of a forwarded request. A class (one hidden class for every record) whose response-header
 * object is built only when a consumer asks for it (access-log %RESP()%, tracing), not on every request.
 */
class ProxyRecord implements RequestRecord {
  readonly direction: 'outbound' | 'inbound';
  readonly startTime: number;
  /** durationMs, flags, details and the byte counts are completed at close for a tunnel (TunnelRecord). */
  durationMs: number;
  readonly method: string;
  readonly path: string;
  readonly protocol: string;
  readonly authority: string;
  readonly requestId: string;
  readonly status: number;
  flags: string;
  details: string;
  bytesReceived: number;
  bytesSent: number;
  readonly upstreamServiceTimeMs: number | undefined;
  readonly upstreamHost: string | undefined;
  readonly upstreamCluster: string;
  readonly attempts: number;
  readonly routeName: string | undefined;
  readonly peer: PeerIdentity | undefined;
  readonly downstreamRemoteAddress: string;
  readonly downstreamLocalAddress: string;
  readonly destinationService: string;
  readonly destinationServiceName: string;
  readonly destinationServiceNamespace: string | undefined;
  readonly destinationVersion: string | undefined;
  readonly grpcStatus: number | undefined;
  readonly requestHeaders: Readonly<Record<string, string | string[] | undefined>>;
  private readonly rawResponseHeaders: string[] | undefined;
  private responseHeaderObject: Record<string, string> | undefined;

  constructor(p: ForwardPlan, ex: Exchange, def: ClusterDef) {
    const host = p.serviceHost ?? def.host;
    const id = serviceId(host);
    this.direction = p.direction;
    this.startTime = p.startTime;
    this.durationMs = performance.now() - p.startHr;
    this.method = p.method;
    this.path = p.originalPath;
    this.protocol = ex.req.httpVersion === '1.1' ? 'HTTP/1.1' : ex.req.httpVersion === '2.0' ? 'HTTP/2' : 'HTTP/1.0';
    this.authority = p.authority;
    this.requestId = p.requestId;
    this.status = ex.status;
    this.flags = ex.flags;
    this.details = ex.details;
    this.bytesReceived = ex.bytesReceived;
    this.bytesSent = ex.bytesSent;
    this.upstreamServiceTimeMs = ex.serviceTimeMs;
    this.upstreamHost = ex.upstreamHost;
    this.upstreamCluster = def.name;
    this.attempts = ex.attempts;
    this.routeName = p.routeName;
    this.peer = p.peer;
    this.downstreamRemoteAddress = ex.req.remoteKey;
    this.downstreamLocalAddress = p.local;
    this.destinationService = host;
    this.destinationServiceName = id.name;
    this.destinationServiceNamespace = id.namespace;
    this.destinationVersion = def.subset || undefined;
    this.grpcStatus = ex.grpcStatus;
    this.requestHeaders = ex.req.headers;
    this.rawResponseHeaders = ex.responseHeaders;
  }

  get responseHeaders(): Record<string, string> | undefined {
    const h = this.rawResponseHeaders;
    if (h === undefined) return undefined;
    if (this.responseHeaderObject === undefined) {
      const o: Record<string, string> = {};
      for (let i = 0; i < h.length; i += 2) o[h[i]!.toLowerCase()] = h[i + 1]!;
      this.responseHeaderObject = o;
    }
    return this.responseHeaderObject;
  }
}

/**
 * The record of an upgraded request, made once when its tunnel closes: status 101, the duration from the request's
 * start, the tunnel's bytes both ways, and a flag when it did not end by both sides closing. It also returns the
 * admission slot and ends the trace span. What it holds was built at the switch (no route, no snapshot).
 */
class TunnelRecord implements PipeOwner {
  constructor(
    private readonly rec: ProxyRecord,
    private readonly startHr: number,
    private readonly admitted: ClusterRuntime | undefined,
    private readonly span: ServerSpan | undefined,
    private readonly observer: Observer,
    private readonly tunnels: Tunnels,
  ) {}

  pipeClosed(t: BytePipe): void {
    const rec = this.rec;
    rec.durationMs = performance.now() - this.startHr;
    rec.bytesReceived += t.bytesUp;
    rec.bytesSent += t.bytesDown;
    const end = TUNNEL_ENDS[t.end];
    if (end !== undefined) {
      rec.flags = rec.flags === '-' ? end.flag : `${rec.flags},${end.flag}`;
      rec.details = end.details;
    }
    this.tunnels.active[rec.direction]--;
    this.admitted?.release();
    this.observer.record(rec);
    this.span?.end(rec);
  }
}

/** How a tunnel that did not end cleanly is recorded (Envoy's flags: stream idle timeout, upstream reset, downstream disconnect). */
const TUNNEL_ENDS: Partial<Record<PipeEnd, End>> = {
  idle_timeout: END.streamIdleTimeout,
  upstream_error: END.upstreamResetAfterResponse,
  downstream_error: END.downstreamDisconnect,
};

export type { HeaderOps };
export { classify };
