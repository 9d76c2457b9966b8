/**
 * Kubernetes API source: list + watch (informers, ./k8s-watch.ts) of Services, EndpointSlices, Pods, Namespaces,
 * NetworkPolicies and Istio CRDs; keeps a trimmed cache and publishes a debounced 'change'.
 * Never blocks callers: current() always returns the last complete state, whatever the API server does.
 */
import { EventEmitter } from 'node:events';
import type { KubernetesObject, V1EndpointSlice, V1Pod, V1Service } from '@kubernetes/client-node';
import type { Resource } from '../config/resource.js';
import type { ServiceDef } from '../model.js';
import { servicesFromKubernetes, SERVICE_NAME_LABEL } from './k8s-mapping.js';
import { clientNodeKubeConfig, loadApiAccess, type KubeEnv } from './kubeconfig.js';
import { egressScope, selectSidecar, type EgressScope } from './sidecar-scope.js';
import { DEFAULT_ROOT_NAMESPACE } from '../authz/authorization-policy.js';
import { ApiClient, describe, Informer, KubernetesApiError, type ListResult, type Obj as WireObj } from './k8s-watch.js';

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
/** The kinds a workload's Sidecar scope narrows (k8s-source.ts KubernetesSource.inScope). */
const SCOPED_ROLES: ReadonlySet<Role> = new Set<Role>(['service', 'endpointslice', 'pod']);

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

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

// === trimming: keep only what the mapping, the compiler and authz need (memory grows with the cluster) ===

type Obj = KubernetesObject & Record<string, unknown>;

/**
 * One copy of each namespace, label key and value, phase, protocol and port name across the cache: JSON.parse gives
 * every occurrence its own string, and 50,000 Pods repeat them all (a namespace, `app: web`, `pod-template-hash`).
 * Bounded: past 100,000 distinct strings it starts over (sharing is a saving, never a meaning).
 */
const interned = new Map<string, string>();
function intern<T extends string | undefined>(s: T): T {
  if (s === undefined || s.length > 128) return s;
  const i = interned.get(s);
  if (i !== undefined) return i as T;
  if (interned.size >= 100_000) interned.clear();
  interned.set(s, s);
  return s;
}

/** One (read-only) object per distinct label set: the Pods of a ReplicaSet carry the same labels. Bounded too. */
const labelSets = new Map<string, Record<string, string>>();
function internLabels(l: Record<string, string>): Record<string, string> {
  const parts: string[] = [];
  for (const k in l) parts.push(k, l[k]!);
  const key = parts.join('\0'); // flat: a key built with += would keep its tree of concatenations

  const known = labelSets.get(key);
  if (known !== undefined) return known;
  const out: Record<string, string> = {};
  for (const k in l) out[intern(k)] = intern(l[k]!);
  if (labelSets.size >= 50_000) labelSets.clear();
  labelSets.set(key, out);
  return out;
}

/** The few EndpointSlice condition combinations k8s-mapping reads, one object each. */
const CONDITIONS = new Map<string, Readonly<{ ready?: boolean; terminating?: boolean }>>();
function conditionsOf(c: { ready?: boolean | null; terminating?: boolean | null }): Readonly<{ ready?: boolean; terminating?: boolean }> {
  const ready = typeof c.ready === 'boolean' ? c.ready : undefined;
  const terminating = typeof c.terminating === 'boolean' ? c.terminating : undefined;
  const key = `${ready}|${terminating}`;
  let o = CONDITIONS.get(key);
  if (o === undefined) {
    o = Object.freeze({ ...(ready !== undefined ? { ready } : {}), ...(terminating !== undefined ? { terminating } : {}) });
    CONDITIONS.set(key, o);
  }
  return o;
}

function trimMeta(m: Record<string, unknown> | undefined, keepAnnotations: boolean, keepLabels = true): Record<string, unknown> {
  const meta = (m ?? {}) as { name?: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string>; resourceVersion?: string };
  const out: Record<string, unknown> = { name: meta.name, resourceVersion: meta.resourceVersion };
  if (meta.namespace !== undefined) out.namespace = intern(meta.namespace);
  if (meta.labels && keepLabels) out.labels = internLabels(meta.labels);
  if (keepAnnotations && meta.annotations) {
    const { [LAST_APPLIED]: _drop, ...rest } = meta.annotations;
    if (Object.keys(rest).length > 0) out.annotations = rest;
  }
  return out;
}

/** `podContainers`: keep a Pod's named container ports (only this workload's own Pod needs them). */
function trimObject(role: Role, obj: Obj, podContainers = true): Obj {
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
      const m = trimMeta(meta, false, false);
      const svc = s.metadata?.labels?.[SERVICE_NAME_LABEL];
      m.labels = svc ? { [SERVICE_NAME_LABEL]: intern(svc) } : {};
      return {
        metadata: m,
        addressType: intern(s.addressType),
        ports: (s.ports ?? []).map((p) => ({ name: intern(p.name), port: p.port, protocol: intern(p.protocol) })),
        endpoints: (s.endpoints ?? []).map((e) => {
          // What k8s-mapping reads: the addresses, readiness (ready, terminating), hostname and the pod it is.
          const c = e.conditions;
          const out: Record<string, unknown> = { addresses: e.addresses };
          if (c !== undefined) out.conditions = conditionsOf(c);
          if (e.hostname !== undefined) out.hostname = e.hostname;
          if (e.targetRef) out.targetRef = { kind: intern(e.targetRef.kind), name: e.targetRef.name };
          return out;
        }),
      } as unknown as Obj;
    }
    case 'pod': {
      const p = obj as V1Pod;
      // Named container ports only (NetworkPolicy's named ports resolve through them); podIPs only when it says more
      // than podIP (dual-stack).
      const containers = (podContainers ? p.spec?.containers ?? [] : [])
        .map((c) => ({ name: intern(c.name), ports: (c.ports ?? []).filter((cp) => cp.name).map((cp) => ({ name: intern(cp.name), containerPort: cp.containerPort, protocol: intern(cp.protocol) })) }))
        .filter((c) => c.ports.length > 0);
      const ips = p.status?.podIPs;
      const status: Record<string, unknown> = { podIP: p.status?.podIP, phase: intern(p.status?.phase) };
      if (ips && (ips.length !== 1 || ips[0]?.ip !== p.status?.podIP)) status.podIPs = ips.map((x) => ({ ip: x.ip }));
      // The service account: the identity its sidecar presents (outbound mTLS checks it; absent = `default`).
      const spec: Record<string, unknown> = {};
      if (p.spec?.serviceAccountName) spec.serviceAccountName = intern(p.spec.serviceAccountName);
      if (containers.length > 0) spec.containers = containers;
      return (Object.keys(spec).length > 0 ? { metadata: trimMeta(meta, false), spec, status } : { metadata: trimMeta(meta, false), status }) as unknown as Obj;
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

class Watcher {
  informer?: Informer;
  version?: string;
  path?: string;
  /** Initial list done (or the optional kind is absent). */
  synced = false;
  absent = false;
  healthy = false;
  brokenSince?: number;
  private attempt = 0;
  private timer?: NodeJS.Timeout;
  private primed?: ListResult;
  private lastLogged?: string;
  private closed = false;
  /** Out of the scope: serves its objects until its successors have listed, then stops. */
  retired = false;

  constructor(
    readonly spec: KindSpec,
    readonly namespace: string | undefined,
    private readonly src: KubernetesSource,
  ) {}

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

  /** The object as cached, or undefined when the workload's Sidecar scope leaves it out. */
  trim(obj: Obj): Obj | undefined {
    const t = trimObject(this.spec.role, obj, this.spec.role !== 'pod' || this.src.podContainersIn((obj.metadata as { namespace?: string } | undefined)?.namespace));
    return this.src.inScope(this.spec.role, t) ? t : undefined;
  }

  list(): Iterable<Obj> {
    return this.informer && !this.absent ? (this.informer.objects.values() as Iterable<Obj>) : [];
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
        const list = await this.src.api!.listAll(this.basePath(version), this.src.opts.pageSize, (o) => this.trim(o as Obj) as WireObj | undefined);
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
    this.informer?.stop();
    const informer = new Informer(this.src.api!, this.path!, {
      keep: (o) => this.trim(o as Obj) as WireObj | undefined,
      onChange: () => this.src.changed(),
      onHealthy: () => this.markHealthy(),
    }, { pageSize: this.src.opts.pageSize, minWatchIntervalMs: this.src.opts.minWatchIntervalMs, now: this.src.opts.now, rand: this.src.opts.rand });
    this.informer = informer;
    const primed = this.primed;
    this.primed = undefined;
    await this.run(informer, primed);
  }

  /** Start (or resume) the informer; its first failure goes to onError, which restarts it after the backoff. */
  private async run(informer: Informer, primed?: ListResult): Promise<void> {
    const { failed } = await informer.start(primed);
    failed.catch((err: unknown) => {
      if (this.informer === informer) this.onError(err);
    });
  }

  /** Counts of the informer (lists, watches, bookmarks, 410s), for docs/scale.md's measurements. */
  counts(): { lists: number; watches: number; bookmarks: number; gone: number } | undefined {
    return this.informer?.counts;
  }

  /** Relist on the next start (a scope change): objects left out before may be kept now. */
  rescope(): void {
    if (this.informer === undefined || this.absent) return;
    const informer = this.informer;
    informer.stop();
    informer.reset();
    void this.run(informer).catch((err: unknown) => this.onError(err));
  }

  private onError(err: unknown): void {
    if (this.src.closed || this.closed) return;
    const status = err instanceof KubernetesApiError ? err.statusCode : (err as { statusCode?: number } | undefined)?.statusCode;
    if (status === 404 && this.spec.optional && this.informer) {
      // The CRD was uninstalled: its objects are gone; probe for it (any version) again later.
      const informer = this.informer;
      this.informer = undefined;
      informer.stop();
      this.becomeAbsent(`no longer served (${describe(err)})`);
      return;
    }
    this.markBroken(err);
    // The informer does not retry by itself. Restarting resumes the watch from the last resourceVersion
    // (or relists, when the failure was the list itself or the version expired).
    this.schedule(this.src.backoff(this.attempt++), async () => {
      if (this.informer) await this.run(this.informer);
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
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.informer?.stop();
  }
}

// === the source ===

export class KubernetesSource extends EventEmitter {
  readonly opts: Required<Omit<KubernetesSourceOptions, 'kubeconfig' | 'namespaces' | 'log' | 'env' | 'workload'>> & Pick<KubernetesSourceOptions, 'kubeconfig' | 'namespaces' | 'env' | 'workload'>;
  /** What the workload's Sidecar lets it reach (undefined: everything is cached). */
  private scope: { egress: EgressScope; podNamespaces: ReadonlySet<string> | undefined; key: string; sidecar: string } | undefined;
  private readonly logFn: LogFn;
  /** The API server's client, once start() has read the kubeconfig. */
  api: ApiClient | undefined;
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
      const next = this.computeScope();
      if (next?.key !== this.scope?.key) {
        // The reach changed: relist what is filtered by it (objects left out before may be needed now).
        this.scope = next;
        this.log('info', next ? `kubernetes: Sidecar ${next.sidecar} changed the reach; relisting Services, EndpointSlices and Pods` : 'kubernetes: no Sidecar scope any more; relisting Services, EndpointSlices and Pods');
        this.applyScope();
      }
      this.recompute();
      this.emit('change');
    }, this.opts.debounceMs);
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

  private recompute(): void {
    const services: V1Service[] = [];
    const slices: V1EndpointSlice[] = [];
    const pods: V1Pod[] = [];
    const namespaceLabels = new Map<string, Record<string, string>>();
    const resources: Resource[] = [];
    // While a scope change hands a kind over from one set of watchers to another, an object may be in both: once.
    const seen = new Set<string>();
    for (const w of this.watchers) {
      const dedupe = SCOPED_ROLES.has(w.spec.role);
      for (const obj of w.list()) {
        if (dedupe) {
          const k = `${w.spec.kind}/${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
          if (seen.has(k)) continue;
          seen.add(k);
        }
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
