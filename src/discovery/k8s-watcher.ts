/**
 * One list/watch of one kind in one namespace scope for the Kubernetes source: finds the served version, keeps an
 * informer (./k8s-watch.ts) running over trimmed objects, restarts it with backoff after errors, treats an absent
 * optional kind as empty and probes for it again later.
 */
import { describe, Informer, KubernetesApiError, type ApiClient, type ListResult, type Obj as WireObj } from './k8s-watch.js';
import type { KindSpec, Role } from './k8s-kinds.js';
import { trimObject, type Obj } from './k8s-trim.js';

/** What a Watcher needs of the source that owns it (KubernetesSource). */
export interface WatcherHost {
  readonly opts: {
    readonly now: () => number;
    readonly rand: () => number;
    readonly pageSize: number;
    readonly reprobeMs: number;
    readonly minWatchIntervalMs: number;
  };
  readonly closed: boolean;
  readonly api: ApiClient | undefined;
  log(level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>): void;
  backoff(attempt: number): number;
  changed(): void;
  /** One object of this watcher's cache set (or removed: undefined) by a watch event. */
  objectChanged(w: Watcher, key: string, obj: Obj | undefined): void;
  /** This watcher's cache was replaced as a whole (a list, the kind gone absent). */
  resync(w: Watcher): void;
  inScope(role: Role, o: Obj): boolean;
  podContainersIn(namespace: string | undefined): boolean;
}

export class Watcher {
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
    private readonly src: WatcherHost,
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

  /** The cache's objects by key (`namespace/name`). */
  entries(): Iterable<[string, Obj]> {
    return this.informer && !this.absent ? (this.informer.objects.entries() as Iterable<[string, Obj]>) : [];
  }

  /** The cached object of a key, if any. */
  get(key: string): Obj | undefined {
    return this.informer && !this.absent ? (this.informer.objects.get(key) as Obj | undefined) : undefined;
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
    if (wasPresent) {
      this.src.resync(this);
      this.src.changed();
    }
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
      onObject: (key, obj) => this.src.objectChanged(this, key, obj as Obj | undefined),
      onReset: () => this.src.resync(this),
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
