/**
 * The Kubernetes list/watch protocol, on node:http(s): paginated lists (`limit`/`continue`), watches from a
 * resourceVersion with bookmarks (newline-delimited JSON events), and one informer per kind and namespace scope that
 * keeps a cache of trimmed objects. A dropped watch resumes from the last resourceVersion (a bookmark's included);
 * only `410 Gone` (as an ERROR event in a 200 stream, or an HTTP 410) clears it and relists. One state machine: the
 * owner (k8s-source.ts) decides the backoff after an error and calls start() again.
 */
import http from 'node:http';
import https from 'node:https';
import type { ApiAccess } from './kubeconfig.js';

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

export type Obj = { apiVersion?: string; kind?: string; metadata?: { name?: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string> } & Record<string, unknown> } & Record<string, unknown>;

/** What a list returns: the kept (trimmed) items and the list's resourceVersion. */
export interface ListResult {
  items: Obj[];
  resourceVersion: string;
}

export function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: string }).code;
    return code && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}

/** Requests to one API server: JSON GETs and watch streams. Counts what it received (docs/scale.md). */
export class ApiClient {
  /** Bytes of response bodies received: lists (and other GETs) and watch streams. */
  readonly received = { listBytes: 0, watchBytes: 0, watchEvents: 0 };

  constructor(
    readonly access: ApiAccess,
    private readonly requestTimeoutMs: number,
  ) {}

  get server(): string {
    return this.access.server;
  }

  private async request(path: string, query: Record<string, string>): Promise<{ req: http.ClientRequest; res: Promise<http.IncomingMessage> }> {
    const url = new URL(this.access.server + path);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    const o = await this.access.options();
    const mod = url.protocol === 'https:' ? https : http;
    const req = mod.get(url, { ...o, headers: { ...(o.headers ?? {}), accept: 'application/json' } });
    const res = new Promise<http.IncomingMessage>((resolve, reject) => {
      req.once('response', resolve);
      req.once('error', (e) => reject(new KubernetesApiError(`cannot reach the Kubernetes API server at ${this.access.server} (GET ${path}): ${describe(e)}`)));
    });
    return { req, res };
  }

  /** GET a JSON document; a non-2xx answer rejects with its status and the Status message. */
  async getJson(path: string, query: Record<string, string> = {}): Promise<unknown> {
    const { req, res: pending } = await this.request(path, query);
    req.setTimeout(this.requestTimeoutMs, () => req.destroy(new Error(`timed out after ${this.requestTimeoutMs} ms`)));
    const res = await pending;
    const text = await new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (e) => reject(new KubernetesApiError(`GET ${path}: ${describe(e)}`)));
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });
    this.received.listBytes += Buffer.byteLength(text);
    const code = res.statusCode ?? 0;
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    if (code >= 200 && code < 300 && body !== undefined) return body;
    throw statusError(`GET ${path}`, code, body);
  }

  /**
   * GET a full list, following `continue` pages, each item passed through `keep` (trimmed, or dropped when it gives
   * undefined); an expired continue token (410) restarts the list once.
   */
  async listAll(path: string, pageSize: number, keep: (o: Obj) => Obj | undefined): Promise<ListResult> {
    for (let restart = 0; ; restart++) {
      const items: Obj[] = [];
      let cont: string | undefined;
      let resourceVersion = '';
      try {
        do {
          const query: Record<string, string> = { limit: String(pageSize) };
          if (cont) query.continue = cont;
          const page = (await this.getJson(path, query)) as { items?: Obj[]; metadata?: { resourceVersion?: string; continue?: string; _continue?: string } };
          for (const it of page.items ?? []) {
            const k = keep(it);
            if (k !== undefined) items.push(k);
          }
          resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
          cont = page.metadata?.continue ?? page.metadata?._continue;
        } while (cont);
        return { items, resourceVersion };
      } catch (err) {
        if (restart === 0 && cont && err instanceof KubernetesApiError && err.statusCode === 410) continue;
        throw err;
      }
    }
  }

  /**
   * Open a watch: `onEvent` gets each event (type, object) in order, and ends the watch by returning false. Resolves
   * with a handle once the server answered 200; `ended` resolves when the stream ends cleanly (the server's timeout,
   * `abort()`, or onEvent's false), rejects on a broken one.
   */
  async watch(path: string, query: Record<string, string>, onEvent: (type: string, object: Obj) => boolean | void): Promise<{ ended: Promise<void>; abort: () => void }> {
    const { req, res: pending } = await this.request(path, { ...query, watch: 'true' });
    req.on('socket', (s) => s.setKeepAlive(true, 30_000));
    const res = await pending;
    const code = res.statusCode ?? 0;
    if (code !== 200) {
      const text = await new Promise<string>((resolve) => {
        let t = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (t += c));
        res.on('end', () => resolve(t));
        res.on('error', () => resolve(t));
      });
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        body = undefined;
      }
      throw statusError(`watch ${path}`, code, body);
    }
    let aborted = false;
    const ended = new Promise<void>((resolve, reject) => {
      let partial = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        this.received.watchBytes += Buffer.byteLength(chunk);
        let text = partial + chunk;
        let nl: number;
        while ((nl = text.indexOf('\n')) >= 0) {
          const line = text.slice(0, nl);
          text = text.slice(nl + 1);
          if (line.trim() === '') continue;
          let ev: { type?: string; object?: Obj };
          try {
            ev = JSON.parse(line) as typeof ev;
          } catch {
            continue; // not JSON: skipped, as client-go skips what it cannot decode
          }
          this.received.watchEvents++;
          if (typeof ev.type === 'string' && ev.object !== undefined && onEvent(ev.type, ev.object) === false) {
            aborted = true;
            req.destroy();
            resolve();
          }
          if (aborted) return;
        }
        partial = text;
      });
      res.on('end', () => resolve());
      res.on('aborted', () => (aborted ? resolve() : reject(new KubernetesApiError(`watch ${path}: the connection was cut`))));
      res.on('error', (e) => (aborted ? resolve() : reject(new KubernetesApiError(`watch ${path}: ${describe(e)}`))));
      res.on('close', () => (aborted || res.complete ? resolve() : reject(new KubernetesApiError(`watch ${path}: the connection was cut`))));
    });
    return {
      ended,
      abort: () => {
        aborted = true;
        req.destroy();
      },
    };
  }
}

function statusError(what: string, code: number, body: unknown): KubernetesApiError {
  const status = body as { message?: string; reason?: string } | undefined;
  return new KubernetesApiError(`${what}: ${code} ${http.STATUS_CODES[code] ?? ''}${status?.message ? `: ${status.message}` : ''}`, code, status?.reason);
}

export interface InformerHooks {
  /** The object as cached, or undefined when it is not kept (trimmed objects; a scope may drop some). */
  keep(o: Obj): Obj | undefined;
  /** The cache changed (an object added, changed or removed, or a relist). */
  onChange(): void;
  /** One object of the cache set (or removed: undefined) by a watch event; called before onChange. */
  onObject?(key: string, obj: Obj | undefined): void;
  /** The cache was replaced by a list; called before onChange. */
  onReset?(): void;
  /** A list succeeded, a watch was opened, or an event arrived. */
  onHealthy(): void;
}

export interface InformerOptions {
  pageSize: number;
  /** Consecutive watches are spaced by at least this long (a server that ends streams at once is no hot loop). */
  minWatchIntervalMs: number;
  now: () => number;
  rand: () => number;
}

/** namespace/name, one flat string (a template literal would be a tree of concatenations kept as the cache key). */
const keyOf = (o: Obj): string => [o.metadata?.namespace ?? '', o.metadata?.name ?? ''].join('/');

/**
 * A list + watch of one path with its cache. start() resolves once the first list is in (or, resumed, once the watch
 * is open) and keeps watching in the background; a failure of the list or the watch is returned by `failed` (a
 * promise per start) and ends the loop: the owner waits its backoff and calls start() again, which resumes from the
 * last resourceVersion, or relists when it was cleared (410 Gone).
 */
export class Informer {
  readonly objects = new Map<string, Obj>();
  resourceVersion = '';
  /** Lists made (the first one included), watches opened, bookmarks seen: docs/scale.md's counts. */
  readonly counts = { lists: 0, watches: 0, bookmarks: 0, gone: 0 };
  private current: { abort: () => void } | undefined;
  private stopped = false;
  private lastWatchAt = -Infinity;
  private generation = 0;

  constructor(
    private readonly api: ApiClient,
    readonly path: string,
    private readonly hooks: InformerHooks,
    private readonly opts: InformerOptions,
  ) {}

  /**
   * Lists (when there is no resourceVersion to resume from, using `primed` when given) and opens the watch loop.
   * Resolves when the list is in; `failed` rejects with the first error of this run (and never resolves otherwise).
   */
  async start(primed?: ListResult): Promise<{ failed: Promise<never> }> {
    this.stopped = false;
    const gen = ++this.generation;
    if (this.resourceVersion === '') await this.relist(primed);
    let fail: (e: unknown) => void = () => {};
    const failed = new Promise<never>((_, reject) => (fail = reject));
    failed.catch(() => {}); // the owner may not be listening yet
    void this.loop(gen).catch((e: unknown) => {
      if (gen === this.generation && !this.stopped) fail(e);
    });
    return { failed };
  }

  /** Stop watching; the cache and resourceVersion stay (start() resumes). */
  stop(): void {
    this.stopped = true;
    this.generation++;
    this.current?.abort();
    this.current = undefined;
  }

  /** Forget the resourceVersion: the next start() relists (a scope change: objects dropped before may be kept now). */
  reset(): void {
    this.resourceVersion = '';
  }

  private async relist(primed?: ListResult): Promise<void> {
    const list = primed ?? (await this.api.listAll(this.path, this.opts.pageSize, (o) => this.hooks.keep(o)));
    this.counts.lists++;
    // An object listed again at the resourceVersion cached is the object cached (same version, same content): what is
    // built from it downstream is kept, so a relist after 410 Gone costs in proportion to what changed meanwhile.
    const before = new Map(this.objects);
    this.objects.clear();
    for (const o of list.items) {
      const key = keyOf(o);
      const prev = before.get(key);
      const rv = o.metadata?.resourceVersion;
      this.objects.set(key, prev !== undefined && rv !== undefined && rv !== '' && prev.metadata?.resourceVersion === rv ? prev : o);
    }
    this.resourceVersion = list.resourceVersion;
    this.hooks.onHealthy();
    this.hooks.onReset?.();
    this.hooks.onChange();
  }

  private async loop(gen: number): Promise<void> {
    while (!this.stopped && gen === this.generation) {
      if (this.resourceVersion === '') await this.relist();
      const wait = this.lastWatchAt + this.opts.minWatchIntervalMs - this.opts.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait).unref());
      if (this.stopped || gen !== this.generation) return;
      this.lastWatchAt = this.opts.now();
      // The server ends a watch after timeoutSeconds (client-go asks for 5–10 min, at random): connections rotate.
      const timeoutSeconds = String(300 + Math.floor(this.opts.rand() * 300));
      const w = await this.api.watch(this.path, { resourceVersion: this.resourceVersion, allowWatchBookmarks: 'true', timeoutSeconds }, (type, obj) => {
        if (gen !== this.generation) return;
        this.hooks.onHealthy();
        if (type === 'ERROR') {
          const status = obj as { code?: number; message?: string };
          if (status.code === 410) {
            this.counts.gone++;
            this.resourceVersion = '';
            return false; // the stream ends; the loop relists
          }
          return;
        }
        const rv = obj.metadata?.resourceVersion;
        if (type === 'BOOKMARK') {
          this.counts.bookmarks++;
        } else if (type === 'ADDED' || type === 'MODIFIED') {
          const key = keyOf(obj);
          const prev = this.objects.get(key);
          const kept = this.hooks.keep(obj);
          if (kept === undefined) {
            if (prev !== undefined) {
              this.objects.delete(key);
              this.hooks.onObject?.(key, undefined);
              this.hooks.onChange();
            }
          } else if (prev === undefined || prev.metadata?.resourceVersion !== kept.metadata?.resourceVersion || rv === undefined) {
            this.objects.set(key, kept);
            this.hooks.onObject?.(key, kept);
            this.hooks.onChange();
          }
        } else if (type === 'DELETED') {
          const key = keyOf(obj);
          if (this.objects.delete(key)) {
            this.hooks.onObject?.(key, undefined);
            this.hooks.onChange();
          }
        }
        if (rv !== undefined && rv !== '') this.resourceVersion = rv;
      }).catch((e: unknown) => {
        // HTTP 410 on the watch request itself (some servers and proxies answer so): relist.
        if (e instanceof KubernetesApiError && e.statusCode === 410) {
          this.counts.gone++;
          this.resourceVersion = '';
          return undefined;
        }
        throw e;
      });
      if (w === undefined) continue;
      this.counts.watches++;
      this.hooks.onHealthy();
      this.current = w;
      await w.ended;
      this.current = undefined;
    }
  }
}
