/**
 * Request mirroring (VirtualService `mirror` / `mirrors[]`, Envoy's request_mirror_policies) through the policy core:
 * each shadow is admitted by the mirror cluster's circuit breakers, balanced over its healthy endpoints, reported to
 * its outlier detection and counted in its Envoy cluster stats, goes over HTTP/2 where that cluster speaks it, and
 * carries the request body when the body fits `--mirror-body-bytes`. Fire and forget: nothing of a shadow reaches the
 * client, and a shadow never delays or fails the primary (it leaves after the primary's first try was dispatched).
 */
import type { AttemptOutcome, ClusterRuntime, Endpoint } from '../model.js';
import type { CompiledRoute } from '../routing/route.js';
import { destinationPort } from '../routing/route.js';
import type { ClusterManager } from '../upstream/cluster-manager.js';
import type { UpstreamHandler } from '../upstream/h1-pool.js';
import type { ClusterCounters, Observer } from './observer.js';
import { classify, grpcStatusOf, LOCAL_CODES } from './attempt-outcome.js';

/**
 * Longest a shadow may take when its route has no timeout (ms). Envoy gives a shadow the route's timeout and nothing
 * else, so under Istio's default (no route timeout) a shadow that never answers would hold a connection and a slot of
 * the mirror cluster's circuit breaker for as long as the mirror keeps it; Remora bounds it.
 */
export const DEFAULT_MIRROR_TIMEOUT_MS = 10_000;

/** What shadows need of the proxy: the clusters and their pools, the counters, a clock, randomness for percentages. */
export interface MirrorEnv {
  clusters: ClusterManager;
  observer: Observer;
  now: () => number;
  rand: () => number;
  /** `--mirror-body-bytes`: the largest request body a shadow carries; a larger request is not mirrored. */
  mirrorBodyBytes?: number | undefined;
  /** `--retry-buffer-bytes`: the default of mirrorBodyBytes (Envoy has one buffer limit for retries and shadows). */
  retryBufferBytes: number;
}

/**
 * The forwarder's side of a request's shadows: it tells them the body as it goes to the primary, and they leave when
 * the whole body is known (Envoy sends shadows once the request is complete), or are dropped.
 */
export interface ShadowTap {
  /** Sent or dropped: nothing more to tell. */
  readonly settled: boolean;
  /** The largest body the shadows carry (bytes). */
  readonly maxBody: number;
  /** The whole body is known (null: the request has none): send. False when it is over `maxBody` (dropped). */
  send(body: Buffer | null): boolean;
  /** A chunk of a streamed body, as it went to the primary. False when the body just went over `maxBody` (dropped). */
  chunk(c: Buffer): boolean;
  /** The streamed body ended: send with what was kept. */
  end(): void;
  /** The request ended without a whole body, or without an upstream request of its own: nothing is sent. */
  drop(): void;
}

/** One shadow to send once the body is known: the mirror cluster and the request head (Host with `-shadow`). */
interface ShadowTarget {
  rt: ClusterRuntime;
  headers: string[];
}

/**
 * The shadows a request gets on `route`, each mirror drawn against its percentage, or undefined (none drawn, or an
 * upgrade: Envoy does not shadow upgrades or CONNECT). `headers` is the primary's upstream head before any per-try
 * header; each shadow gets its own copy with `-shadow` appended to the Host's name.
 */
export function shadowsFor(
  env: MirrorEnv, route: CompiledRoute, method: string, path: string, headers: readonly string[], host: string,
  port: number, explicitPort: number, clientH2: boolean, upgrade: boolean, timeoutMs: number,
): Shadows | undefined {
  if (upgrade) return undefined;
  let targets: ShadowTarget[] | undefined;
  for (const m of route.mirrors) {
    if (m.percent < 100 && env.rand() * 100 >= m.percent) continue;
    const d = m.destination;
    const def = d.clusters.get(destinationPort(d, port, explicitPort));
    if (def === undefined) continue;
    (targets ??= []).push({ rt: env.clusters.runtime(def), headers: shadowHeaders(headers, host) });
  }
  if (targets === undefined) return undefined;
  return new Shadows(env, targets, method, path, clientH2, timeoutMs > 0 ? timeoutMs : DEFAULT_MIRROR_TIMEOUT_MS);
}

/**
 * A copy of `headers` whose Host is `<name>-shadow[:port]` (Envoy's shadow host suffix), without `Expect`: a shadow
 * sends its whole body at once (the client's expectation is the primary's to answer).
 */
export function shadowHeaders(headers: readonly string[], host: string): string[] {
  const h: string[] = [];
  const name = hostName(host);
  const shadow = `${name}-shadow${host.slice(name.length)}`;
  for (let i = 0; i < headers.length; i += 2) {
    const n = headers[i]!;
    if (n.length === 6 && n.toLowerCase() === 'expect') continue;
    h.push(n, n.length === 4 && n.toLowerCase() === 'host' ? shadow : headers[i + 1]!);
  }
  return h;
}

function hostName(authority: string): string {
  if (authority.startsWith('[')) return authority.slice(0, authority.indexOf(']') + 1);
  const c = authority.lastIndexOf(':');
  return c < 0 ? authority : authority.slice(0, c);
}

const EMPTY = Buffer.alloc(0);

/** The shadows of one request, waiting for its body (see ShadowTap). */
export class Shadows implements ShadowTap {
  settled = false;
  readonly maxBody: number;
  private chunks: Buffer[] | undefined;
  private size = 0;

  constructor(
    private readonly env: MirrorEnv, private readonly targets: readonly ShadowTarget[], private readonly method: string,
    private readonly path: string, private readonly clientH2: boolean, private readonly timeoutMs: number,
  ) {
    this.maxBody = env.mirrorBodyBytes ?? env.retryBufferBytes;
  }

  send(body: Buffer | null): boolean {
    if (this.settled) return true;
    this.settled = true;
    this.chunks = undefined;
    if (body !== null && body.length > this.maxBody) return false;
    for (const t of this.targets) new Shadow(this.env, t.rt, this.timeoutMs).send(this.method, this.path, t.headers, body, this.clientH2);
    return true;
  }

  chunk(c: Buffer): boolean {
    if (this.settled) return true;
    this.size += c.length;
    if (this.size > this.maxBody) {
      this.drop();
      return false;
    }
    (this.chunks ??= []).push(c);
    return true;
  }

  end(): void {
    if (this.settled) return;
    const c = this.chunks;
    this.send(c === undefined ? EMPTY : c.length === 1 ? c[0]! : Buffer.concat(c, this.size));
  }

  drop(): void {
    this.settled = true;
    this.chunks = undefined;
  }
}

const NO_PICK = {};

function onShadowTimeout(s: Shadow): void {
  s.onTimeout();
}

/**
 * One shadow request: one try (shadows are not retried), its answer read and dropped. What it came to is reported as
 * any try's is — outlier detection and the balancer's load of the mirror endpoint, the mirror cluster's Envoy
 * counters (`upstream_rq_total`, `upstream_rq_<code>`, `upstream_rq_timeout`, `upstream_rq_pending_overflow`,
 * `upstream_cx_connect_fail`, `upstream_rq_rx_reset`) — and, as in Envoy, never as a downstream request: no
 * `istio_requests_total`, no access-log line (the mirror's own sidecar reports it as it serves it).
 */
class Shadow implements UpstreamHandler {
  reused?: boolean;
  private readonly counters: ClusterCounters;
  private ep: Endpoint | undefined;
  private startedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private abortFn: ((err?: Error) => void) | undefined;
  private admitted = false;
  private headersSeen = false;
  private done = false;

  constructor(private readonly env: MirrorEnv, private readonly rt: ClusterRuntime, private readonly timeoutMs: number) {
    this.counters = env.observer.counters(rt.def.name);
  }

  send(method: string, path: string, headers: readonly string[], body: Buffer | null, clientH2: boolean): void {
    const rt = this.rt;
    if (rt.admit() !== 'ok') {
      // The mirror cluster's circuit breaker is open: the shadow is not sent (Envoy: upstream_rq_pending_overflow).
      this.counters.upstream_rq_pending_overflow++;
      return;
    }
    this.admitted = true;
    const now = this.env.now();
    const ep = rt.pick(NO_PICK, now);
    if (ep === undefined) { this.finish(); return; }
    this.ep = ep;
    this.startedAt = now;
    rt.attemptStarted(ep, now);
    this.counters.upstream_rq_total++;
    this.timer = setTimeout(onShadowTimeout, this.timeoutMs, this);
    this.timer.unref();
    try {
      this.env.clusters.httpPool(rt.def, ep, clientH2, false).dispatch({ method, path, headers, body }, this);
    } catch (err) {
      this.onError(err as Error);
    }
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abortFn = abort;
    if (this.done) abort(new Error('shadow ended'));
  }

  onHeaders(status: number, raw: string[]): boolean {
    if (this.done) return false;
    this.headersSeen = true;
    const outcome: AttemptOutcome = { kind: 'response', status };
    if (status === 200 || status >= 400) {
      const g = grpcStatusOf(raw);
      if (g !== undefined) (outcome as { grpcStatus?: number }).grpcStatus = g;
    }
    this.report(outcome);
    this.counters.response?.(status);
    return true;
  }

  /** The body is read and dropped, as fast as it comes. */
  onData(): boolean {
    return true;
  }

  onComplete(): void {
    if (!this.done) this.finish();
  }

  onError(err: Error): void {
    if (this.done) return;
    const code = (err as NodeJS.ErrnoException).code ?? '';
    const outcome = classify(err);
    if (!this.headersSeen) this.report(outcome);
    const c = this.counters;
    if (outcome.kind === 'connect-failure') c.upstream_cx_connect_fail++;
    else if (!LOCAL_CODES.has(code)) {
      c.upstream_rq_rx_reset++;
      if (code === 'UND_ERR_UPGRADE' || code.startsWith('HPE_')) c.upstream_cx_protocol_error++;
      else c.upstream_cx_destroy_remote_with_active_rq++;
    }
    this.finish();
  }

  onTimeout(): void {
    this.timer = undefined;
    if (this.done) return;
    this.counters.upstream_rq_timeout++;
    if (!this.headersSeen) this.report({ kind: 'timeout' });
    this.finish();
    const abort = this.abortFn;
    this.abortFn = undefined;
    if (abort !== undefined) {
      try { abort(new Error('shadow timed out')); } catch { /* already finished */ }
    }
  }

  private report(outcome: AttemptOutcome): void {
    const ep = this.ep;
    if (ep === undefined) return;
    const now = this.env.now();
    this.rt.attemptFinished(ep, outcome, now - this.startedAt, now);
  }

  private finish(): void {
    this.done = true;
    if (this.timer !== undefined) { clearTimeout(this.timer); this.timer = undefined; }
    if (this.admitted) { this.admitted = false; this.rt.release(); }
  }
}
