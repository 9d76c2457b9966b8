/**
 * Kubernetes API source: list + watch (client-node ListWatch informers) of Services, EndpointSlices, Pods,
 * Namespaces, NetworkPolicies and Istio CRDs; keeps a trimmed cache and publishes a debounced 'change'.
 * Never blocks callers: current() always returns the last complete state, whatever the API server does.
 */
import { EventEmitter } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import {
  KubeConfig,
  ListWatch,
  Watch,
  type KubernetesListObject,
  type KubernetesObject,
  type V1EndpointSlice,
  type V1Pod,
  type V1Service,
} from '@kubernetes/client-node';
import type { Resource } from '../config/resource.js';
import type { ServiceDef } from '../model.js';
import { servicesFromKubernetes, SERVICE_NAME_LABEL } from './k8s-mapping.js';

export type LogFn = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

export interface KubernetesSourceOptions {
  /** Path of a kubeconfig file; else `KUBECONFIG`, else in-cluster service account, else ~/.kube/config. */
  kubeconfig?: string;
  /** `--watch-namespaces`: watch only these namespaces (one watch per namespace and kind). Default: all. */
  namespaces?: string[];
  clusterDomain: string;
  log?: LogFn;
  /** Debounce of 'change' so that a burst of watch events compiles once (ms; default 50). */
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

type Role = 'service' | 'endpointslice' | 'pod' | 'namespace' | 'resource';

interface KindSpec {
  kind: string;
  group: string;
  /** Tried in order; the first one served is used (Istio CRDs: v1, then v1beta1, then v1alpha3). */
  versions: string[];
  plural: string;
  namespaced: boolean;
  role: Role;
  /** Absent (404 on every version, or 403) is not an error: the kind is simply empty. */
  optional: boolean;
}

const ISTIO_NET = ['v1', 'v1beta1', 'v1alpha3'];
const GATEWAY_API = 'gateway.networking.k8s.io';
const KINDS: KindSpec[] = [
  { kind: 'Service', group: '', versions: ['v1'], plural: 'services', namespaced: true, role: 'service', optional: false },
  { kind: 'EndpointSlice', group: 'discovery.k8s.io', versions: ['v1'], plural: 'endpointslices', namespaced: true, role: 'endpointslice', optional: false },
  { kind: 'Pod', group: '', versions: ['v1'], plural: 'pods', namespaced: true, role: 'pod', optional: false },
  // Cluster-scoped; a namespace-restricted Role cannot list it, hence optional (namespaceSelector then sees only the name label).
  { kind: 'Namespace', group: '', versions: ['v1'], plural: 'namespaces', namespaced: false, role: 'namespace', optional: true },
  { kind: 'VirtualService', group: 'networking.istio.io', versions: ISTIO_NET, plural: 'virtualservices', namespaced: true, role: 'resource', optional: true },
  { kind: 'DestinationRule', group: 'networking.istio.io', versions: ISTIO_NET, plural: 'destinationrules', namespaced: true, role: 'resource', optional: true },
  { kind: 'ServiceEntry', group: 'networking.istio.io', versions: ISTIO_NET, plural: 'serviceentries', namespaced: true, role: 'resource', optional: true },
  { kind: 'WorkloadEntry', group: 'networking.istio.io', versions: ISTIO_NET, plural: 'workloadentries', namespaced: true, role: 'resource', optional: true },
  { kind: 'Sidecar', group: 'networking.istio.io', versions: ISTIO_NET, plural: 'sidecars', namespaced: true, role: 'resource', optional: true },
  { kind: 'NetworkPolicy', group: 'networking.k8s.io', versions: ['v1'], plural: 'networkpolicies', namespaced: true, role: 'resource', optional: true },
  { kind: 'AuthorizationPolicy', group: 'security.istio.io', versions: ['v1', 'v1beta1'], plural: 'authorizationpolicies', namespaced: true, role: 'resource', optional: true },
  { kind: 'RequestAuthentication', group: 'security.istio.io', versions: ['v1', 'v1beta1'], plural: 'requestauthentications', namespaced: true, role: 'resource', optional: true },
  { kind: 'PeerAuthentication', group: 'security.istio.io', versions: ['v1', 'v1beta1'], plural: 'peerauthentications', namespaced: true, role: 'resource', optional: true },
  // Gateway API routes bound to Services (the mesh profile, src/gateway/).
  { kind: 'HTTPRoute', group: GATEWAY_API, versions: ['v1', 'v1beta1'], plural: 'httproutes', namespaced: true, role: 'resource', optional: true },
  { kind: 'GRPCRoute', group: GATEWAY_API, versions: ['v1', 'v1alpha2'], plural: 'grpcroutes', namespaced: true, role: 'resource', optional: true },
  { kind: 'TCPRoute', group: GATEWAY_API, versions: ['v1', 'v1alpha2'], plural: 'tcproutes', namespaced: true, role: 'resource', optional: true },
  { kind: 'TLSRoute', group: GATEWAY_API, versions: ['v1', 'v1alpha3', 'v1alpha2'], plural: 'tlsroutes', namespaced: true, role: 'resource', optional: true },
];

/** An API server answer other than 2xx, or a transport failure (statusCode undefined). */
export class KubernetesApiError extends Error {
  constructor(
    message: string,
    readonly statusCode?: number,
    readonly reason?: string,
  ) {
    super(message);
    this.name = 'KubernetesApiError';
  }
}

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

// === trimming: keep only what the mapping, the compiler and authz need (memory grows with the cluster) ===

type Obj = KubernetesObject & Record<string, unknown>;

function trimMeta(m: Record<string, unknown> | undefined, keepAnnotations: boolean): Record<string, unknown> {
  const meta = (m ?? {}) as { name?: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string>; resourceVersion?: string };
  const out: Record<string, unknown> = { name: meta.name, resourceVersion: meta.resourceVersion };
  if (meta.namespace !== undefined) out.namespace = meta.namespace;
  if (meta.labels) out.labels = meta.labels;
  if (keepAnnotations && meta.annotations) {
    const { [LAST_APPLIED]: _drop, ...rest } = meta.annotations;
    if (Object.keys(rest).length > 0) out.annotations = rest;
  }
  return out;
}

function trimObject(role: Role, obj: Obj): Obj {
  const meta = obj.metadata as Record<string, unknown> | undefined;
  switch (role) {
    case 'service': {
      const spec = (obj as V1Service).spec ?? {};
      return {
        metadata: trimMeta(meta, false),
        spec: { type: spec.type, clusterIP: spec.clusterIP, clusterIPs: spec.clusterIPs, ports: spec.ports, externalName: spec.externalName },
      } as Obj;
    }
    case 'endpointslice': {
      const s = obj as unknown as V1EndpointSlice;
      const m = trimMeta(meta, false);
      const svc = s.metadata?.labels?.[SERVICE_NAME_LABEL];
      m.labels = svc ? { [SERVICE_NAME_LABEL]: svc } : {};
      return {
        metadata: m,
        addressType: s.addressType,
        ports: s.ports,
        endpoints: (s.endpoints ?? []).map((e) => ({
          addresses: e.addresses,
          conditions: e.conditions,
          hostname: e.hostname,
          targetRef: e.targetRef ? { kind: e.targetRef.kind, name: e.targetRef.name } : undefined,
        })),
      } as unknown as Obj;
    }
    case 'pod': {
      const p = obj as V1Pod;
      return {
        metadata: trimMeta(meta, false),
        spec: {
          // The identity its sidecar presents (outbound mTLS checks it).
          serviceAccountName: p.spec?.serviceAccountName,
          containers: (p.spec?.containers ?? [])
            .filter((c) => c.ports && c.ports.length > 0)
            .map((c) => ({ name: c.name, ports: c.ports!.map((cp) => ({ name: cp.name, containerPort: cp.containerPort, protocol: cp.protocol })) })),
        },
        status: { podIP: p.status?.podIP, podIPs: p.status?.podIPs, phase: p.status?.phase },
      } as unknown as Obj;
    }
    case 'namespace':
      return { metadata: trimMeta(meta, false) } as Obj;
    case 'resource': {
      const out = { apiVersion: obj.apiVersion, kind: obj.kind, metadata: trimMeta(meta, true), spec: (obj as { spec?: unknown }).spec ?? {} } as Obj;
      // Gateway API routes: creation time (precedence ties), generation (observedGeneration) and status (what the
      // status writer compares with) are part of their meaning.
      if (obj.apiVersion?.startsWith(`${GATEWAY_API}/`)) {
        const m = meta as { creationTimestamp?: unknown; generation?: unknown } | undefined;
        const om = out.metadata as Record<string, unknown>;
        if (m?.creationTimestamp !== undefined) om.creationTimestamp = m.creationTimestamp;
        if (m?.generation !== undefined) om.generation = m.generation;
        if ((obj as { status?: unknown }).status !== undefined) out.status = (obj as { status?: unknown }).status;
      }
      return out;
    }
  }
}

// === one list/watch per kind and namespace scope ===

/** client-node's Watch, asking for bookmarks, trimming objects before the informer caches them, and reporting health. */
class TrimmingWatch extends Watch {
  private lastStart = 0;
  closed = false;
  constructor(
    kc: KubeConfig,
    private readonly owner: Watcher,
  ) {
    super(kc);
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: any, watchObj?: any) => void,
    done: (err: any) => void,
  ): Promise<AbortController> {
    // ListWatch re-watches immediately when a stream ends cleanly; a server (or proxy) that closes streams
    // right away would make that a hot loop, so space consecutive watches by minWatchIntervalMs.
    const since = this.owner.now() - this.lastStart;
    if (since < this.owner.minWatchIntervalMs) await this.owner.sleep(this.owner.minWatchIntervalMs - since);
    if (this.closed) return new AbortController();
    this.lastStart = this.owner.now();
    let ended = false;
    const controller = await super.watch(
      path,
      { ...queryParams, allowWatchBookmarks: true },
      (phase, obj, raw) => {
        this.owner.markHealthy();
        if (phase === 'ADDED' || phase === 'MODIFIED' || phase === 'DELETED') callback(phase, this.owner.trim(obj), raw);
        else callback(phase, obj, raw);
      },
      (err) => {
        ended = true;
        done(err);
      },
    );
    if (!ended && !this.closed) this.owner.markHealthy();
    return controller;
  }
}

class Watcher {
  informer?: ListWatch<Obj>;
  version?: string;
  path?: string;
  /** Initial list done (or the optional kind is absent). */
  synced = false;
  absent = false;
  healthy = false;
  brokenSince?: number;
  private attempt = 0;
  private timer?: NodeJS.Timeout;
  private primed?: KubernetesListObject<Obj>;
  private lastLogged?: string;
  private readonly watch: TrimmingWatch;
  readonly minWatchIntervalMs: number;

  constructor(
    readonly spec: KindSpec,
    readonly namespace: string | undefined,
    private readonly src: KubernetesSource,
    private readonly kc: KubeConfig,
  ) {
    this.watch = new TrimmingWatch(kc, this);
    this.minWatchIntervalMs = src.opts.minWatchIntervalMs;
  }

  get name(): string {
    return `${this.spec.kind}${this.namespace ? ` in ${this.namespace}` : ''}`;
  }

  now(): number {
    return this.src.opts.now();
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      t.unref();
    });
  }

  trim(obj: Obj): Obj {
    return trimObject(this.spec.role, obj);
  }

  list(): Obj[] {
    return this.informer && !this.absent ? [...this.informer.list()] : [];
  }

  markHealthy(): void {
    this.attempt = 0;
    if (this.healthy) return;
    this.healthy = true;
    this.brokenSince = undefined;
    if (this.lastLogged !== undefined) {
      this.src.log('info', `kubernetes: ${this.name}: watch recovered`);
      this.lastLogged = undefined;
    }
  }

  private markBroken(err: unknown): void {
    this.healthy = false;
    this.brokenSince ??= this.now();
    const msg = describe(err);
    // Log each distinct error once; a flapping server must not flood the log.
    if (msg !== this.lastLogged) {
      this.lastLogged = msg;
      this.src.log('warn', `kubernetes: ${this.name}: ${msg}; retrying with backoff, serving the last state`, {
        kind: this.spec.kind,
        namespace: this.namespace,
        statusCode: err instanceof KubernetesApiError ? err.statusCode : (err as { statusCode?: number })?.statusCode,
      });
    }
  }

  private basePath(version: string): string {
    const root = this.spec.group === '' ? `/api/${version}` : `/apis/${this.spec.group}/${version}`;
    return this.namespace ? `${root}/namespaces/${this.namespace}/${this.spec.plural}` : `${root}/${this.spec.plural}`;
  }

  /** First sync: find the served version (its list doubles as the informer's first list), then list + watch. */
  async init(deadline: number): Promise<void> {
    for (;;) {
      try {
        await this.probe();
        break;
      } catch (err) {
        if (this.src.closed) return;
        const status = err instanceof KubernetesApiError ? err.statusCode : undefined;
        if (status === 401 || status === 403 || this.now() >= deadline) throw err;
        this.markBroken(err);
        await this.sleep(this.src.backoff(this.attempt++));
      }
    }
    if (this.absent) return;
    await this.startInformer();
  }

  private async probe(): Promise<void> {
    for (const version of this.spec.versions) {
      try {
        const list = await this.src.listAll(this.basePath(version), this.spec.role);
        this.version = version;
        this.path = this.basePath(version);
        this.primed = list;
        this.absent = false;
        this.synced = true;
        return;
      } catch (err) {
        if (err instanceof KubernetesApiError && err.statusCode === 404) continue;
        if (err instanceof KubernetesApiError && err.statusCode === 403 && this.spec.optional) {
          this.becomeAbsent(`forbidden (${err.message}); RBAC needs get/list/watch on ${this.spec.plural}`);
          return;
        }
        throw err;
      }
    }
    if (!this.spec.optional) throw new KubernetesApiError(`${this.spec.kind}: no served version among ${this.spec.versions.join(', ')}`, 404);
    this.becomeAbsent(`not served (${this.spec.group}/${this.spec.versions.join('|')}/${this.spec.plural}: 404)`);
  }

  private becomeAbsent(why: string): void {
    const wasPresent = this.synced && !this.absent;
    this.absent = true;
    this.synced = true;
    this.healthy = true;
    this.brokenSince = undefined;
    if (this.lastLogged !== why) {
      this.lastLogged = why;
      this.src.log('info', `kubernetes: ${this.name}: ${why}; treated as empty, probing again in ${this.src.opts.reprobeMs} ms`);
    }
    if (wasPresent) this.src.changed();
    this.schedule(this.src.opts.reprobeMs, async () => {
      await this.probe();
      if (!this.absent) {
        this.lastLogged = undefined;
        await this.startInformer();
        this.src.changed();
      }
    });
  }

  private async startInformer(): Promise<void> {
    if (this.src.closed) return;
    if (this.informer) {
      await this.informer.stop();
      this.informer = undefined;
    }
    const listFn = async (): Promise<KubernetesListObject<Obj>> => {
      const primed = this.primed;
      this.primed = undefined;
      const list = primed ?? (await this.src.listAll(this.path!, this.spec.role));
      this.markHealthy();
      return list;
    };
    const informer = new ListWatch<Obj>(this.path!, this.watch, listFn, false);
    const onChange = (): void => this.src.changed();
    informer.on('add', onChange);
    informer.on('update', onChange);
    informer.on('delete', onChange);
    informer.on('error', (err) => this.onError(err));
    this.informer = informer;
    await informer.start();
  }

  private onError(err: unknown): void {
    if (this.src.closed || this.watch.closed) return;
    const status = err instanceof KubernetesApiError ? err.statusCode : (err as { statusCode?: number } | undefined)?.statusCode;
    if (status === 404 && this.spec.optional && this.informer) {
      // The CRD was uninstalled: its objects are gone; probe for it (any version) again later.
      const informer = this.informer;
      this.informer = undefined;
      void informer.stop();
      this.becomeAbsent(`no longer served (${describe(err)})`);
      return;
    }
    this.markBroken(err);
    // The informer does not retry by itself. Restarting resumes the watch from the last resourceVersion
    // (or relists, when the failure was the list itself or the version expired).
    this.schedule(this.src.backoff(this.attempt++), async () => {
      if (this.informer) await this.informer.start();
    });
  }

  private schedule(ms: number, fn: () => Promise<void>): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.src.closed) return;
      fn().catch((err) => {
        if (this.src.closed) return;
        if (this.absent) this.becomeAbsent(describe(err));
        else this.onError(err);
      });
    }, ms);
    this.timer.unref();
  }

  stop(): void {
    this.watch.closed = true;
    if (this.timer) clearTimeout(this.timer);
    void this.informer?.stop();
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: string }).code;
    return code && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}

// === the source ===

export class KubernetesSource extends EventEmitter {
  readonly opts: Required<Omit<KubernetesSourceOptions, 'kubeconfig' | 'namespaces' | 'log'>> & Pick<KubernetesSourceOptions, 'kubeconfig' | 'namespaces'>;
  private readonly logFn: LogFn;
  private readonly kc: KubeConfig;
  private readonly watchers: Watcher[] = [];
  private debounce?: NodeJS.Timeout;
  private started = false;
  /** Set once every initial list is in: before that, no partial state is ever computed or announced. */
  private synced = false;
  closed = false;
  private state: Omit<KubernetesState, 'syncedAt' | 'stalenessMs'> = { resources: [], services: [], pods: [], namespaceLabels: new Map() };

  constructor(opts: KubernetesSourceOptions) {
    super();
    this.opts = {
      kubeconfig: opts.kubeconfig,
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
    this.kc = loadKubeConfig(opts.kubeconfig);
    for (const spec of KINDS) {
      if (!spec.namespaced || !this.opts.namespaces) this.watchers.push(new Watcher(spec, undefined, this, this.kc));
      else for (const ns of this.opts.namespaces) this.watchers.push(new Watcher(spec, ns, this, this.kc));
    }
  }

  /** The kubeconfig in use (the Gateway API status writer talks to the same server with it). */
  get kubeConfig(): KubeConfig {
    return this.kc;
  }

  /** The API server URL in use (for logs and /config_dump). */
  get server(): string {
    return this.kc.getCurrentCluster()?.server ?? '';
  }

  /** Resolves after every initial list; rejects on auth errors at once, on other failures after initialSyncTimeoutMs. */
  async start(): Promise<void> {
    if (this.started) throw new Error('KubernetesSource already started');
    this.started = true;
    const deadline = this.opts.now() + this.opts.initialSyncTimeoutMs;
    try {
      await Promise.all(this.watchers.map((w) => w.init(deadline)));
    } catch (err) {
      this.stop();
      const msg = describe(err);
      throw new KubernetesApiError(`kubernetes: initial sync with ${this.server} failed: ${msg}`, err instanceof KubernetesApiError ? err.statusCode : undefined);
    }
    this.recompute();
    this.synced = true;
    this.log('info', `kubernetes: synced with ${this.server}`, {
      versions: Object.fromEntries(this.watchers.filter((w) => w.version).map((w) => [w.spec.kind, w.version])),
      services: this.state.services.length,
      resources: this.state.resources.length,
    });
  }

  stop(): void {
    this.closed = true;
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = undefined;
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

  changed(): void {
    if (this.closed || !this.synced) return;
    if (this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      if (this.closed) return;
      this.recompute();
      this.emit('change');
    }, this.opts.debounceMs);
  }

  private recompute(): void {
    const services: V1Service[] = [];
    const slices: V1EndpointSlice[] = [];
    const pods: V1Pod[] = [];
    const namespaceLabels = new Map<string, Record<string, string>>();
    const resources: Resource[] = [];
    for (const w of this.watchers) {
      for (const obj of w.list()) {
        switch (w.spec.role) {
          case 'service':
            services.push(obj as V1Service);
            break;
          case 'endpointslice':
            slices.push(obj as unknown as V1EndpointSlice);
            break;
          case 'pod':
            pods.push(obj as V1Pod);
            break;
          case 'namespace': {
            const name = obj.metadata?.name;
            if (name) namespaceLabels.set(name, { ...(obj.metadata?.labels ?? {}), 'kubernetes.io/metadata.name': name });
            break;
          }
          case 'resource':
            resources.push(toResource(obj, w.spec, w.version ?? w.spec.versions[0]!));
            break;
        }
      }
    }
    // Namespaces we see objects in but could not list (403): still match on the automatic name label.
    for (const p of pods) {
      const ns = p.metadata?.namespace;
      if (ns && !namespaceLabels.has(ns)) namespaceLabels.set(ns, { 'kubernetes.io/metadata.name': ns });
    }
    resources.sort((a, b) => `${a.kind}/${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.kind}/${b.metadata.namespace}/${b.metadata.name}`));
    this.state = {
      resources,
      services: servicesFromKubernetes({ services, endpointSlices: slices, pods }, { clusterDomain: this.opts.clusterDomain }),
      pods,
      namespaceLabels,
    };
  }

  /** GET a full list, following `continue` pages; an expired continue token (410) restarts the list once. */
  async listAll(path: string, role: Role): Promise<KubernetesListObject<Obj>> {
    for (let restart = 0; ; restart++) {
      const items: Obj[] = [];
      let cont: string | undefined;
      let resourceVersion = '';
      try {
        do {
          const query: Record<string, string> = { limit: String(this.opts.pageSize) };
          if (cont) query.continue = cont;
          const page = (await this.getJson(path, query)) as KubernetesListObject<Obj>;
          for (const it of page.items ?? []) items.push(trimObject(role, it));
          resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
          cont = page.metadata?._continue ?? (page.metadata as { continue?: string } | undefined)?.continue;
        } while (cont);
        return { metadata: { resourceVersion }, items };
      } catch (err) {
        if (restart === 0 && cont && err instanceof KubernetesApiError && err.statusCode === 410) continue;
        throw err;
      }
    }
  }

  private async getJson(path: string, query: Record<string, string>): Promise<unknown> {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new KubernetesApiError('kubeconfig has no current cluster');
    const url = new URL(cluster.server.replace(/\/+$/, '') + path);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    const reqOpts: https.RequestOptions = {};
    await this.kc.applyToHTTPSOptions(reqOpts);
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.get(url, { ...reqOpts, headers: { ...(reqOpts.headers ?? {}), accept: 'application/json' }, timeout: this.opts.requestTimeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (e) => reject(new KubernetesApiError(`GET ${path}: ${describe(e)}`)));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const code = res.statusCode ?? 0;
          let body: unknown;
          try {
            body = text ? JSON.parse(text) : undefined;
          } catch {
            body = undefined;
          }
          if (code >= 200 && code < 300 && body !== undefined) return resolve(body);
          const status = body as { message?: string; reason?: string } | undefined;
          reject(
            new KubernetesApiError(
              `GET ${path}: ${code} ${http.STATUS_CODES[code] ?? ''}${status?.message ? `: ${status.message}` : ''}`,
              code,
              status?.reason,
            ),
          );
        });
      });
      req.on('timeout', () => req.destroy(new Error(`timed out after ${this.opts.requestTimeoutMs} ms`)));
      req.on('error', (e) => reject(new KubernetesApiError(`cannot reach the Kubernetes API server at ${cluster.server} (GET ${path}): ${describe(e)}`)));
    });
  }
}

function toResource(obj: Obj, spec: KindSpec, version: string): Resource {
  const meta = (obj.metadata ?? {}) as { name?: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string>; resourceVersion?: string };
  const metadata: Resource['metadata'] = { name: meta.name ?? '', namespace: meta.namespace ?? 'default' };
  if (meta.labels) metadata.labels = meta.labels;
  if (meta.annotations) metadata.annotations = meta.annotations;
  if (meta.resourceVersion) metadata.resourceVersion = meta.resourceVersion;
  const s = (obj as { spec?: unknown }).spec;
  const apiVersion = obj.apiVersion ?? `${spec.group}/${version}`;
  const specObj = s && typeof s === 'object' ? (s as Record<string, unknown>) : {};
  // The validator checks the document as a whole (apiVersion, kind, metadata, spec), as it does for files.
  const rawMeta: Record<string, unknown> = { name: metadata.name, namespace: metadata.namespace };
  if (metadata.labels) rawMeta.labels = metadata.labels;
  if (metadata.annotations) rawMeta.annotations = metadata.annotations;
  const m = obj.metadata as { creationTimestamp?: unknown; generation?: unknown } | undefined;
  if (m?.creationTimestamp !== undefined) rawMeta.creationTimestamp = m.creationTimestamp;
  if (m?.generation !== undefined) rawMeta.generation = m.generation;
  const raw: Record<string, unknown> = { apiVersion, kind: spec.kind, metadata: rawMeta, spec: specObj };
  if ((obj as { status?: unknown }).status !== undefined) raw.status = (obj as { status?: unknown }).status;
  return {
    apiVersion,
    kind: spec.kind,
    metadata,
    spec: specObj,
    raw,
    source: { file: 'kubernetes', line: 0 },
    lineOf: () => 0,
  };
}

function loadKubeConfig(path: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else if (process.env.KUBECONFIG) kc.loadFromDefault();
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else kc.loadFromDefault();
  if (!kc.getCurrentCluster()) {
    throw new KubernetesApiError(
      `kubernetes: no cluster configured (${path ? `kubeconfig ${path}` : 'KUBECONFIG unset, not in a cluster, no ~/.kube/config'})`,
    );
  }
  return kc;
}
