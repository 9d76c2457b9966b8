/**
 * Writes Gateway API route status (`status.parents[]` entries of controllerName remora.io/mesh-controller) from
 * the API watch, as ONE writer for the cluster: only the holder of a coordination.k8s.io Lease writes (lease.ts),
 * and only what differs from the status the watch shows, so sidecars never race on it. Entries of other
 * controllers are kept; each write carries the route's resourceVersion (a conflict waits for the next event).
 */
import type { Resource } from '../config/resource.js';
import { objectName } from '../config/resource.js';
import type { ServiceDef } from '../model.js';
import { validateResources } from '../config/validate.js';
import { dropInvalidRules } from './api-errors.js';
import { gatewayRoutes } from './mesh.js';
import { routeStatuses, type Condition, type RouteParentStatus } from './status.js';
import type { KubeApi } from './kube-api.js';
import { KubeApiError } from './kube-api.js';
import { LeaseElector } from './lease.js';
import { CONTROLLER_NAME, GATEWAY_GROUP } from './types.js';

const PLURAL: Record<string, string> = { HTTPRoute: 'httproutes', GRPCRoute: 'grpcroutes', TCPRoute: 'tcproutes', TLSRoute: 'tlsroutes' };

export interface StatusWriterOptions {
  api: KubeApi;
  identity: string;
  clusterDomain: string;
  /** Where the Lease lives, and its name (default remora-gateway-status). */
  leaseNamespace: string;
  leaseName?: string;
  leaseDurationMs?: number;
  leaseRenewMs?: number;
  leaseRetryMs?: number;
  now?: () => number;
  log(level: 'info' | 'warn', msg: string): void;
}

export interface WatchState { resources: readonly Resource[]; services: readonly ServiceDef[] }

function sameParent(a: RouteParentStatus['parentRef'], b: RouteParentStatus['parentRef']): boolean {
  return (a.group ?? GATEWAY_GROUP) === (b.group ?? GATEWAY_GROUP) && (a.kind ?? 'Gateway') === (b.kind ?? 'Gateway') && a.name === b.name
    && (a.namespace ?? '') === (b.namespace ?? '') && (a.sectionName ?? '') === (b.sectionName ?? '') && (a.port ?? 0) === (b.port ?? 0);
}

function sameCondition(a: Condition, b: Condition | undefined): boolean {
  return b !== undefined && a.status === b.status && a.reason === b.reason && a.message === b.message && a.observedGeneration === b.observedGeneration;
}

/**
 * The `status.parents` to write, or undefined when the current one already says it: ours replaced (a condition that
 * did not change keeps its lastTransitionTime), everyone else's kept.
 */
export function nextParents(current: readonly RouteParentStatus[], desired: readonly RouteParentStatus[], nowIso: string): RouteParentStatus[] | undefined {
  const ours = current.filter((p) => p.controllerName === CONTROLLER_NAME);
  const others = current.filter((p) => p.controllerName !== CONTROLLER_NAME);
  let changed = ours.length !== desired.length;
  const merged = desired.map((d) => {
    const prev = ours.find((p) => sameParent(p.parentRef, d.parentRef));
    if (prev === undefined) changed = true;
    const conditions = d.conditions.map((c) => {
      const old = prev?.conditions.find((x) => x.type === c.type);
      if (!sameCondition(c, old)) changed = true;
      const keepTime = old !== undefined && old.status === c.status && old.lastTransitionTime !== undefined;
      return { ...c, lastTransitionTime: keepTime ? old.lastTransitionTime! : nowIso };
    });
    if (prev !== undefined && prev.conditions.length !== conditions.length) changed = true;
    return { ...d, conditions };
  });
  return changed ? [...others, ...merged] : undefined;
}

export class GatewayStatusWriter {
  private readonly elector: LeaseElector;
  private latest: WatchState | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  /** Writes made (for /config_dump and tests). */
  writes = 0;

  constructor(private readonly o: StatusWriterOptions) {
    this.elector = new LeaseElector({
      api: o.api,
      namespace: o.leaseNamespace,
      name: o.leaseName ?? 'remora-gateway-status',
      identity: o.identity,
      ...(o.leaseDurationMs !== undefined ? { durationMs: o.leaseDurationMs } : {}),
      ...(o.leaseRenewMs !== undefined ? { renewMs: o.leaseRenewMs } : {}),
      ...(o.leaseRetryMs !== undefined ? { retryMs: o.leaseRetryMs } : {}),
      ...(o.now !== undefined ? { now: o.now } : {}),
      onChange: (leading) => { if (leading) this.kick(); },
      log: o.log,
    });
  }

  get leading(): boolean {
    return this.elector.leading;
  }

  start(): void {
    this.elector.start();
  }

  async stop(): Promise<void> {
    await this.elector.stop();
  }

  /** The watch's latest state; written when this process holds the lease. */
  update(state: WatchState): void {
    this.latest = state;
    this.kick();
  }

  private kick(): void {
    if (!this.elector.leading || this.latest === undefined) return;
    if (this.running) { this.again = true; return; }
    this.running = (async () => {
      do {
        this.again = false;
        await this.reconcile(this.latest!);
      } while (this.again && this.elector.leading);
    })().finally(() => { this.running = undefined; });
  }

  private async reconcile(state: WatchState): Promise<void> {
    let routes = gatewayRoutes(state.resources);
    if (routes.length === 0) return;
    let problems = validateResources(routes, { clusterDomain: this.o.clusterDomain });
    const pruned = dropInvalidRules(routes, problems);
    if (pruned !== undefined) {
      routes = pruned.resources;
      problems = validateResources(routes, { clusterDomain: this.o.clusterDomain });
    }
    const statuses = routeStatuses({
      routes, errors: problems, byHost: new Map(state.services.map((s) => [s.hostname, s])), clusterDomain: this.o.clusterDomain,
      ...(pruned !== undefined ? { dropped: pruned.dropped } : {}),
    });
    const nowIso = new Date((this.o.now ?? Date.now)()).toISOString().replace(/\.\d{3}Z$/, 'Z');
    for (const [r, desired] of statuses) {
      if (!this.elector.leading) return;
      const current = ((r.raw.status as { parents?: RouteParentStatus[] } | undefined)?.parents) ?? [];
      const parents = nextParents(current, desired, nowIso);
      if (parents === undefined) continue;
      const path = `/apis/${r.apiVersion}/namespaces/${r.metadata.namespace}/${PLURAL[r.kind]}/${r.metadata.name}/status`;
      try {
        await this.o.api.patch(path, { metadata: { resourceVersion: r.metadata.resourceVersion }, status: { parents } }, 'application/merge-patch+json');
        this.writes++;
      } catch (err) {
        // 409: the route changed meanwhile; its watch event brings the new version and another round.
        if (!(err instanceof KubeApiError && (err.statusCode === 409 || err.statusCode === 404))) this.o.log('warn', `gateway status: ${objectName(r)}: ${(err as Error).message}`);
      }
    }
  }
}
