/**
 * Kubernetes API source: list + watch (informers, ./k8s-watch.ts) of Services, EndpointSlices, Pods, Namespaces,
 * NetworkPolicies and Istio CRDs; keeps a trimmed cache and publishes a coalesced 'change'.
 * Never blocks callers: current() always returns the last complete state, whatever the API server does.
 * Each watch event updates the registry (./k8s-registry.ts) by its one object; a 'change' maps again only the
 * Services it touched, and every ServiceDef and Resource not touched is handed on as the same object, in place.
 * This module is the source itself (scope, state, debounce); the table of kinds is ./k8s-kinds.ts, the trimming
 * ./k8s-trim.ts, one kind's list/watch ./k8s-watcher.ts.
 */
import { EventEmitter } from 'node:events';
import type { V1EndpointSlice, V1Pod, V1Service } from '@kubernetes/client-node';
import type { Resource } from '../config/resource.js';
import type { ServiceDef } from '../model.js';
import { SERVICE_NAME_LABEL } from './k8s-mapping.js';
import { KubernetesRegistry } from './k8s-registry.js';
import { clientNodeKubeConfig, loadApiAccess, type KubeEnv } from './kubeconfig.js';
import { egressScope, selectSidecar, type EgressScope } from './sidecar-scope.js';
import { DEFAULT_ROOT_NAMESPACE } from '../authz/authorization-policy.js';
import { ApiClient, describe, KubernetesApiError } from './k8s-watch.js';
import { KINDS, SCOPED_ROLES, type Role } from './k8s-kinds.js';
import { toResource, type Obj } from './k8s-trim.js';
import { Watcher, type WatcherHost } from './k8s-watcher.js';

export { KubernetesApiError } from './k8s-watch.js';

export type LogFn = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

export interface KubernetesSourceOptions {
  /** Path of a kubeconfig file; else `KUBECONFIG`, else in-cluster service account, else ~/.kube/config. */
  kubeconfig?: string;
  /** KUBECONFIG, KUBERNETES_SERVICE_HOST/PORT and HOME, as the CLI read them (none: only `kubeconfig` is used). */
  env?: KubeEnv;
  /**
   * This workload: when a Sidecar from the API server applies to it, only the Services and EndpointSlices its egress
   * reaches (and Pods of those namespaces) are cached, so memory grows with the reach, not the cluster.
   */
  workload?: { namespace: string; labels: Readonly<Record<string, string>> };
  /** `--watch-namespaces`: watch only these namespaces (one watch per namespace and kind). Default: all. */
  namespaces?: string[];
  clusterDomain: string;
  log?: LogFn;
  /**
   * Least time between the end of one 'change' and the next (ms; default 50). The first event after a quiet period is
   * applied at once (on the event loop's next turn, with the events read with it); the events that arrive meanwhile,
   * or while a change is being applied, are applied together once this has passed: one change at a time, never a queue.
   */
  debounceMs?: number;
  /** Restart backoff after a list/watch error: initial and cap (ms; defaults 250 and 30000), doubled per failure, ±20 % jitter. */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** start() keeps retrying transient failures (5xx, connection errors) this long before rejecting (ms; default 15000). */
  initialSyncTimeoutMs?: number;
  /** An optional kind that is absent (CRD not installed, 403) is probed again after this long (ms; default 60000). */
  reprobeMs?: number;
  /** A watch that ends cleanly sooner than this after it started is re-opened only after the remainder (ms; default 1000). */
  minWatchIntervalMs?: number;
  /** Timeout of one list request (ms; default 30000). */
  requestTimeoutMs?: number;
  /** Page size of list requests (`limit`; default 500). */
  pageSize?: number;
  /** Injected for tests: wall clock (ms) and jitter source in [0,1). */
  now?: () => number;
  rand?: () => number;
}

/** The last complete state. Objects are frozen-by-convention: never mutate them. */
export interface KubernetesState {
  /** Istio CRDs, NetworkPolicies and AuthorizationPolicies as Resources (source `kubernetes`). */
  resources: Resource[];
  services: ServiceDef[];
  /** Trimmed pods (name, namespace, labels, IPs, container ports): peer IP → pod for NetworkPolicy. */
  pods: V1Pod[];
  /** Namespace → labels (always including `kubernetes.io/metadata.name`), for namespaceSelector. */
  namespaceLabels: Map<string, Record<string, string>>;
  /** Wall-clock ms when the state was last known to be current (now, when every watch is healthy). */
  syncedAt: number;
  /** 0 while every watch is connected; else ms since the first currently broken watch broke. */
  stalenessMs(now: number): number;
}

export class KubernetesSource extends EventEmitter implements WatcherHost {
  readonly opts: Required<Omit<KubernetesSourceOptions, 'kubeconfig' | 'namespaces' | 'log' | 'env' | 'workload'>> & Pick<KubernetesSourceOptions, 'kubeconfig' | 'namespaces' | 'env' | 'workload'>;
  /** What the workload's Sidecar lets it reach (undefined: everything is cached). */
  private scope: { egress: EgressScope; podNamespaces: ReadonlySet<string> | undefined; key: string; sidecar: string } | undefined;
  private readonly logFn: LogFn;
  /** The API server's client, once start() has read the kubeconfig. */
  api: ApiClient | undefined;
  private readonly watchers: Watcher[] = [];
  /** A 'change' is scheduled (cancel it). */
  private pending: (() => void) | undefined;
  /** performance.now() at the end of the last 'change'. */
  private lastChangeEnd = -Infinity;
  /** Services, EndpointSlices and Pods as merged over the watchers (the first watcher holding a key wins), mapped. */
  private readonly registry: KubernetesRegistry;
  /** Scoped kinds whose merged view is rebuilt from every watcher at the next change (a relist, a watcher gone). */
  private readonly resyncRoles = new Set<Role>();
  private resourcesDirty = true;
  private namespacesDirty = true;
  /** Each cached Istio/policy object's Resource (and sort key), made once per object. */
  private resourceOf = new WeakMap<Obj, { version: string; res: Resource; order: string }>();
  /** Changes published, and the time the last one took to compute its state (ms), for the bench and /config_dump. */
  readonly stats = { changes: 0, lastRecomputeMs: 0 };
  private started = false;
  /** Set once every initial list is in: before that, no partial state is ever computed or announced. */
  private synced = false;
  closed = false;
  private state: Omit<KubernetesState, 'syncedAt' | 'stalenessMs'> = { resources: [], services: [], pods: [], namespaceLabels: new Map() };

  constructor(opts: KubernetesSourceOptions) {
    super();
    this.opts = {
      kubeconfig: opts.kubeconfig,
      env: opts.env,
      workload: opts.workload,
      namespaces: opts.namespaces && opts.namespaces.length > 0 ? [...new Set(opts.namespaces)] : undefined,
      clusterDomain: opts.clusterDomain,
      debounceMs: opts.debounceMs ?? 50,
      backoffInitialMs: opts.backoffInitialMs ?? 250,
      backoffMaxMs: opts.backoffMaxMs ?? 30_000,
      initialSyncTimeoutMs: opts.initialSyncTimeoutMs ?? 15_000,
      reprobeMs: opts.reprobeMs ?? 60_000,
      minWatchIntervalMs: opts.minWatchIntervalMs ?? 1000,
      requestTimeoutMs: opts.requestTimeoutMs ?? 30_000,
      pageSize: opts.pageSize ?? 500,
      now: opts.now ?? Date.now,
      rand: opts.rand ?? Math.random,
    };
    this.logFn = opts.log ?? (() => {});
    this.registry = new KubernetesRegistry({ clusterDomain: this.opts.clusterDomain });
    // Services, EndpointSlices and Pods are watched once the Sidecar scope is known (start(), scopedWatchers()).
    for (const spec of KINDS) {
      if (SCOPED_ROLES.has(spec.role)) continue;
      if (!spec.namespaced || !this.opts.namespaces) this.watchers.push(new Watcher(spec, undefined, this));
      else for (const ns of this.opts.namespaces) this.watchers.push(new Watcher(spec, ns, this));
    }
  }

  /**
   * The namespaces a scoped kind is listed and watched in (undefined: cluster-wide): --watch-namespaces, narrowed by
   * the namespaces the workload's Sidecar names (for Pods, with the workload's own). Watching per namespace keeps
   * the rest of the cluster off the wire as well as out of memory.
   */
  private scopedNamespaces(role: Role): string[] | undefined {
    const base = this.opts.namespaces;
    const named = this.scope === undefined ? undefined : role === 'pod' ? this.scope.podNamespaces : this.scope.egress.namespaces;
    if (named === undefined) return base;
    return (base ?? [...named]).filter((n) => named.has(n)).sort();
  }

  /** The watchers of Services, EndpointSlices and Pods the current scope calls for. */
  private scopedWatchers(): Watcher[] {
    const out: Watcher[] = [];
    for (const spec of KINDS) {
      if (!SCOPED_ROLES.has(spec.role)) continue;
      const nss = this.scopedNamespaces(spec.role);
      if (nss === undefined) out.push(new Watcher(spec, undefined, this));
      else for (const ns of nss) out.push(new Watcher(spec, ns, this));
    }
    return out;
  }

  /**
   * A new scope: watchers of namespaces no longer reached stop (their objects go with them), new ones list and watch,
   * and the others relist (the hosts kept within a namespace may have changed).
   */
  private applyScope(): void {
    const want = this.scopedWatchers();
    const key = (w: Watcher): string => `${w.spec.kind}/${w.namespace ?? '*'}`;
    const have = new Map(this.watchers.filter((w) => SCOPED_ROLES.has(w.spec.role) && !w.retired).map((w) => [key(w), w]));
    const keep = new Set(want.map(key));
    const removed: Watcher[] = [];
    for (const [k, w] of have) {
      if (keep.has(k)) w.rescope();
      else {
        w.retired = true; // a later scope change treats it as gone already
        removed.push(w);
      }
    }
    // The watchers going away keep serving their objects until the new ones have listed: a service that stays in
    // reach never disappears in between.
    const deadline = this.opts.now() + this.opts.initialSyncTimeoutMs;
    const added = want.filter((w) => !have.has(key(w)));
    this.watchers.push(...added);
    void Promise.allSettled(added.map((w) => w.init(deadline).catch((err: unknown) => this.log('warn', `kubernetes: ${w.name}: ${describe(err)}`)))).then(() => {
      for (const w of removed) {
        w.stop();
        const i = this.watchers.indexOf(w);
        if (i >= 0) this.watchers.splice(i, 1);
        this.resync(w);
      }
      this.changed();
    });
  }

  /**
   * A @kubernetes/client-node KubeConfig for the same server (imported on this call), for writers that use client-node's
   * typed APIs; the watch itself never loads client-node (docs/kubernetes.md, "Credentials").
   */
  kubeConfig(): Promise<import('@kubernetes/client-node').KubeConfig> {
    return clientNodeKubeConfig(this.opts.kubeconfig, this.opts.env ?? {});
  }

  /** The API server URL in use (for logs and /config_dump; '' before start()). */
  get server(): string {
    return this.api?.server ?? '';
  }

  /** Resolves after every initial list; rejects on auth errors at once, on other failures after initialSyncTimeoutMs. */
  async start(): Promise<void> {
    if (this.started) throw new Error('KubernetesSource already started');
    this.started = true;
    this.api = new ApiClient(await loadApiAccess(this.opts.kubeconfig, this.opts.env ?? {}), this.opts.requestTimeoutMs);
    const deadline = this.opts.now() + this.opts.initialSyncTimeoutMs;
    try {
      // Istio's objects (a Sidecar among them) and Namespaces first: the Sidecar decides which Services, EndpointSlices
      // and Pods are worth keeping before they are listed.
      await Promise.all(this.watchers.map((w) => w.init(deadline)));
      this.scope = this.computeScope();
      const scoped = this.scopedWatchers();
      this.watchers.push(...scoped);
      await Promise.all(scoped.map((w) => w.init(deadline)));
    } catch (err) {
      this.stop();
      const msg = describe(err);
      throw new KubernetesApiError(`kubernetes: initial sync with ${this.server} failed: ${msg}`, err instanceof KubernetesApiError ? err.statusCode : undefined);
    }
    for (const role of SCOPED_ROLES) this.resyncRoles.add(role);
    this.recompute();
    this.synced = true;
    if (this.scope) this.log('info', `kubernetes: keeping what Sidecar ${this.scope.sidecar} reaches (${this.scope.egress.namespaces ? [...this.scope.egress.namespaces].join(', ') : 'hosts in any namespace'})`);
    this.log('info', `kubernetes: synced with ${this.server}`, {
      versions: Object.fromEntries(this.watchers.filter((w) => w.version).map((w) => [w.spec.kind, w.version])),
      services: this.state.services.length,
      resources: this.state.resources.length,
    });
  }

  stop(): void {
    this.closed = true;
    this.pending?.();
    this.pending = undefined;
    for (const w of this.watchers) w.stop();
  }

  current(): KubernetesState {
    const brokenSince = (): number | undefined => {
      let min: number | undefined;
      for (const w of this.watchers) if (!w.healthy && w.brokenSince !== undefined && (min === undefined || w.brokenSince < min)) min = w.brokenSince;
      return min;
    };
    const since = brokenSince();
    return {
      ...this.state,
      syncedAt: since ?? this.opts.now(),
      stalenessMs: (now: number) => {
        const b = brokenSince();
        return b === undefined ? 0 : Math.max(0, now - b);
      },
    };
  }

  /** Which version each kind is read at ('' = absent), for /config_dump. */
  versions(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const w of this.watchers) out[w.spec.kind] = w.absent ? '' : (w.version ?? '');
    return out;
  }

  // === internals used by Watcher ===

  log(level: Parameters<LogFn>[0], msg: string, fields?: Record<string, unknown>): void {
    this.logFn(level, msg, fields);
  }

  backoff(attempt: number): number {
    const base = Math.min(this.opts.backoffMaxMs, this.opts.backoffInitialMs * 2 ** Math.min(attempt, 30));
    return Math.round(base * (0.8 + 0.4 * this.opts.rand()));
  }

  /**
   * The cache changed: publish a 'change' at once when none was published for debounceMs, else when that has passed
   * (see KubernetesSourceOptions.debounceMs). At most one is scheduled: a burst is one change.
   */
  changed(): void {
    if (this.closed || !this.synced || this.pending) return;
    const wait = this.lastChangeEnd + this.opts.debounceMs - performance.now();
    if (wait <= 0) {
      // The next turn of the event loop: the other events read from the sockets with this one join it.
      const t = setImmediate(() => this.publish());
      this.pending = () => clearImmediate(t);
    } else {
      const t = setTimeout(() => this.publish(), wait);
      this.pending = () => clearTimeout(t);
    }
  }

  private publish(): void {
    this.pending = undefined;
    if (this.closed) return;
    if (this.resourcesDirty) {
      // Only Istio's kinds (a Sidecar among them) and policies decide the scope.
      const next = this.computeScope();
      if (next?.key !== this.scope?.key) {
        // The reach changed: relist what is filtered by it (objects left out before may be needed now).
        this.scope = next;
        this.log('info', next ? `kubernetes: Sidecar ${next.sidecar} changed the reach; relisting Services, EndpointSlices and Pods` : 'kubernetes: no Sidecar scope any more; relisting Services, EndpointSlices and Pods');
        this.applyScope();
      }
    }
    this.recompute();
    this.stats.changes++;
    this.emit('change');
    this.lastChangeEnd = performance.now();
  }

  /** A watch event set or removed one object of a watcher's cache: the merged view takes it (the first watcher holding the key wins). */
  objectChanged(w: Watcher, key: string, obj: Obj | undefined): void {
    const role = w.spec.role;
    if (role === 'resource') this.resourcesDirty = true;
    else if (role === 'namespace') this.namespacesDirty = true;
    else if (!this.resyncRoles.has(role)) {
      let held: Obj | undefined = obj;
      for (const x of this.watchers) {
        if (x.spec.role !== role) continue;
        held = x === w ? obj : x.get(key);
        if (held !== undefined) break;
      }
      this.registry.set(role, key, held as V1Service | V1EndpointSlice | V1Pod | undefined);
    }
  }

  /** A watcher's cache was replaced as a whole: its kind's merged view is rebuilt at the next change. */
  resync(w: Watcher): void {
    const role = w.spec.role;
    if (role === 'resource') this.resourcesDirty = true;
    else if (role === 'namespace') this.namespacesDirty = true;
    else this.resyncRoles.add(role);
  }

  /**
   * Whether a trimmed object is kept under the workload's Sidecar scope. Services and EndpointSlices: when the egress
   * reaches their host (the store's scopeInputs keeps no other). Pods (endpoint labels; peers of inbound policies):
   * those of the namespaces the egress names and of the workload's own, unless an AuthorizationPolicy or
   * NetworkPolicy could ask about a peer anywhere (one in the workload's or the root namespace): then all.
   */
  inScope(role: Role, o: Obj): boolean {
    const scope = this.scope;
    if (scope === undefined) return true;
    const ns = o.metadata?.namespace ?? '';
    switch (role) {
      case 'service':
        return scope.egress.visible(ns, `${o.metadata?.name ?? ''}.${ns}.svc.${this.opts.clusterDomain}`);
      case 'endpointslice': {
        const svc = o.metadata?.labels?.[SERVICE_NAME_LABEL];
        return svc !== undefined && scope.egress.visible(ns, `${svc}.${ns}.svc.${this.opts.clusterDomain}`);
      }
      case 'pod':
        return scope.podNamespaces === undefined || scope.podNamespaces.has(ns);
      default:
        return true;
    }
  }

  /**
   * Whether the Pods of a namespace keep their named container ports: they resolve a NetworkPolicy's named port for
   * this workload's own Pod, so only its namespace needs them (every namespace when the workload is not given).
   */
  podContainersIn(namespace: string | undefined): boolean {
    return this.opts.workload === undefined || namespace === this.opts.workload.namespace;
  }

  /** The scope of the Sidecar the API server holds for this workload (see inScope); undefined: keep everything. */
  private computeScope(): KubernetesSource['scope'] {
    const wl = this.opts.workload;
    if (wl === undefined) return undefined;
    const resources: Resource[] = [];
    let policyNear = false;
    for (const w of this.watchers) {
      if (w.spec.role !== 'resource') continue;
      for (const o of w.list()) {
        if (w.spec.kind === 'Sidecar') resources.push(toResource(o, w.spec, w.version ?? w.spec.versions[0]!));
        else if ((w.spec.kind === 'NetworkPolicy' || w.spec.kind === 'AuthorizationPolicy') && (o.metadata?.namespace === wl.namespace || o.metadata?.namespace === DEFAULT_ROOT_NAMESPACE)) policyNear = true;
      }
    }
    const sidecar = selectSidecar(resources, { namespace: wl.namespace, labels: wl.labels });
    const egress = egressScope(sidecar, wl.namespace);
    if (egress === undefined || sidecar === undefined) return undefined;
    const podNamespaces = policyNear || egress.namespaces === undefined ? undefined : new Set([...egress.namespaces, wl.namespace]);
    return { egress, podNamespaces, key: `${egress.key}|${podNamespaces ? [...podNamespaces].sort().join(',') : '*'}`, sidecar: `${sidecar.metadata.namespace}/${sidecar.metadata.name}` };
  }

  /** The objects of a scoped kind over every watcher, each key once (the first watcher holding it wins). */
  private *merged(role: Role): Generator<[string, V1Service | V1EndpointSlice | V1Pod]> {
    const seen = new Set<string>();
    for (const w of this.watchers) {
      if (w.spec.role !== role) continue;
      for (const [key, obj] of w.entries()) {
        if (seen.has(key)) continue;
        seen.add(key);
        yield [key, obj as unknown as V1Service];
      }
    }
  }

  private recompute(): void {
    const t0 = performance.now();
    for (const role of this.resyncRoles) this.registry.sync(role as 'service' | 'endpointslice' | 'pod', this.merged(role));
    this.resyncRoles.clear();
    const services = this.registry.services();
    const pods = this.registry.podsList();
    let { resources, namespaceLabels } = this.state;
    if (this.resourcesDirty) {
      this.resourcesDirty = false;
      const next: Array<{ res: Resource; order: string }> = [];
      for (const w of this.watchers) {
        if (w.spec.role !== 'resource') continue;
        const version = w.version ?? w.spec.versions[0]!;
        for (const obj of w.list()) {
          let r = this.resourceOf.get(obj);
          if (r === undefined || r.version !== version) {
            const res = toResource(obj, w.spec, version);
            r = { version, res, order: `${res.kind}/${res.metadata.namespace}/${res.metadata.name}` };
            this.resourceOf.set(obj, r);
          }
          next.push(r);
        }
      }
      next.sort((a, b) => a.order.localeCompare(b.order));
      // The same objects in the same order (an event that changed nothing kept): the same array.
      if (next.length !== resources.length || next.some((r, i) => r.res !== resources[i])) resources = next.map((r) => r.res);
    }
    if (this.namespacesDirty || pods !== this.state.pods) {
      this.namespacesDirty = false;
      namespaceLabels = new Map<string, Record<string, string>>();
      for (const w of this.watchers) {
        if (w.spec.role !== 'namespace') continue;
        for (const obj of w.list()) {
          const name = obj.metadata?.name;
          if (name) namespaceLabels.set(name, { ...(obj.metadata?.labels ?? {}), 'kubernetes.io/metadata.name': name });
        }
      }
      // Namespaces we see objects in but could not list (403): still match on the automatic name label.
      for (const p of pods) {
        const ns = p.metadata?.namespace;
        if (ns && !namespaceLabels.has(ns)) namespaceLabels.set(ns, { 'kubernetes.io/metadata.name': ns });
      }
    }
    this.state = { resources, services, pods, namespaceLabels };
    this.stats.lastRecomputeMs = performance.now() - t0;
  }
}
