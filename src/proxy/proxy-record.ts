/**
 * The records of forwarded requests: one RequestRecord per request (ProxyRecord, read by metrics, the access log and
 * tracing), and for an upgraded request the one made when its tunnel closes (TunnelRecord). Hot path: one record per
 * request, one hidden class for all of them; the response-header object is built only when a consumer asks.
 */
import { performance } from 'node:perf_hooks';
import type { ClusterDef, ClusterRuntime, RequestRecord } from '../model.js';
import type { DownstreamRequest } from './downstream.js';
import type { ForwardPlan } from './forward-plan.js';
import type { Observer } from './observer.js';
import type { BytePipe, PipeEnd, PipeOwner } from './byte-pipe.js';
import type { Tunnels } from './tunnel.js';
import type { ServerSpan } from '../telemetry/tracing-api.js';
import type { PeerIdentity } from '../security/mtls.js';
import { END, type End } from '../errors.js';

/** What a record reads of its request's exchange (./exchange.ts) when it is made. */
export interface RecordSource {
  readonly req: DownstreamRequest;
  readonly status: number;
  readonly flags: string;
  readonly details: string;
  readonly bytesReceived: number;
  readonly bytesSent: number;
  readonly serviceTimeMs: number | undefined;
  readonly upstreamHost: string | undefined;
  readonly attempts: number;
  readonly grpcStatus: number | undefined;
  readonly responseHeaders: string[] | undefined;
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
export class ProxyRecord implements RequestRecord {
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

  constructor(p: ForwardPlan, ex: RecordSource, def: ClusterDef) {
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
export class TunnelRecord implements PipeOwner {
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
