/**
 * One forwarded request from admission to its record: circuit breaking, the endpoint of each try, the retry loop
 * (decisions from ./retry-policy.ts, backoff, budgets, the keep-alive race's one re-send), the route timeout, the
 * response head and body back to the client, local replies, the switch to a tunnel on 101, and the record. Its tries
 * are ./attempt.ts's; the body modes and the entry point are ./forwarder.ts's. One cohesive state machine, hence one
 * file past 500 lines: admitted → trying ⇄ backing off → answering or tunnelled → finished, every transition a method
 * reading and writing the same Exchange fields; split, its states would only call each other across modules on the
 * hot path. Hot path: one Exchange per request; callbacks are methods, timers take the exchange as an argument (no
 * closures).
 */
import type { DownstreamRequest, DownstreamResponse } from './downstream.js';
import type { Readable } from 'node:stream';
import type { AttemptOutcome, ClusterDef, ResponseFlag } from '../model.js';
import { shouldRetry, backoffMs } from './retry-policy.js';
import { hashKeyFor } from '../upstream/hash-key.js';
import { applyHeaderOps, downstreamResponseHeaders, setHeader, upgradeResponseHeaders } from './headers.js';
import type { Socket } from 'node:net';
import { DEFAULT_TUNNEL_IDLE_TIMEOUT_MS, Tunnels } from './tunnel.js';
import { BytePipe } from './byte-pipe.js';
import { DETAILS, E, END, FLAG, type LocalError } from '../errors.js';
import { grpcStatusOf } from './attempt-outcome.js';
import { localReplyParts } from './grpc.js';
import type { ClusterCounters } from './observer.js';
import type { UpstreamPool, UpstreamRequest } from '../upstream/h1-pool.js';
import type { ServerSpan } from '../telemetry/tracing-api.js';
import type { ShadowTap } from './mirror.js';
import type { ForwardContext, ForwardPlan } from './forward-plan.js';
import { Attempt, onAttemptTimeout, type AttemptOwner } from './attempt.js';
import { ProxyRecord, TunnelRecord, type RecordSource } from './proxy-record.js';

let defaultTunnels: Tunnels | undefined;

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
const kExchange = Symbol('remora.exchange');

export class Exchange implements AttemptOwner, RecordSource {
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
    // 4xx too: retriable-4xx (409) and status codes listed in retryOn (429 …) are retried as Envoy does.
    if (status >= 400 || outcome.grpcStatus !== undefined) {
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
