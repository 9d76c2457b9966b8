/**
 * What a listener hands the forwarder for one request: the plan it decided (route, destination, cluster, rewritten
 * target, retry policy, timeout) and the context shared by every request of the listener. Types only.
 */
import type { RetryPolicy, ClusterRuntime } from '../model.js';
import type { CompiledDestination, CompiledRoute } from '../routing/route.js';
import type { ClusterManager } from '../upstream/cluster-manager.js';
import type { Observer } from './observer.js';
import type { ProxyTracing } from '../telemetry/tracing-api.js';
import type { PeerIdentity } from '../security/mtls.js';
import type { ShadowTap } from './mirror.js';
import type { Tunnels } from './tunnel.js';

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
