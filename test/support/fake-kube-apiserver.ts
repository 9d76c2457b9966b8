/**
 * A fake Kubernetes API server on 127.0.0.1:0 that speaks the real list/watch protocol (JSON lists with
 * metadata.resourceVersion, chunked newline-delimited watch events, BOOKMARKs, 410 Expired on compacted
 * history, API discovery), plus a test API to mutate objects and inject failures. Counts what it sends (bytes of lists
 * and watch events, per watch too) for the scale measurements of docs/scale.md, and holds a cluster of 10,000
 * Services and 50,000 Pods (objects are served by shallow copy; a stored object is replaced, never mutated).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';

type Obj = { apiVersion?: string; kind?: string; metadata?: Record<string, unknown> & { name?: string; namespace?: string; resourceVersion?: string }; [k: string]: unknown };

interface ResourceType {
  group: string; // '' = core
  versions: string[];
  plural: string;
  kind: string;
  namespaced: boolean;
  /** Built-in types omit kind/apiVersion on list items (the real server does); CRD lists carry them. */
  crd: boolean;
}

export interface FakeKubeApiServerOptions {
  /** Versions served for networking.istio.io (default v1, v1beta1, v1alpha3). */
  istioNetworkingVersions?: string[];
  /** Versions served for security.istio.io (default v1, v1beta1). */
  istioSecurityVersions?: string[];
  /** Interval of BOOKMARK events on watches that asked for them (ms; default 0 = only on sendBookmarks()). */
  bookmarkIntervalMs?: number;
  /** How a too-old watch resourceVersion is answered: 'event' (what the real server does: 200 + ERROR event 410) or 'http' (HTTP 410). */
  goneMode?: 'event' | 'http';
}

interface HistoryEvent {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  typeKey: string;
  object: Obj;
}

interface ActiveWatch {
  typeKey: string;
  version: string;
  namespace?: string;
  bookmarks: boolean;
  res: ServerResponse;
  timer?: NodeJS.Timeout;
  /** Bytes and events written on this watch. */
  bytes: number;
  events: number;
}

/** What the server has sent since it started (or since resetStats()). */
export interface FakeApiServerStats {
  listRequests: number;
  /** Bytes of list (and get) response bodies. */
  listBytes: number;
  watchRequests: number;
  /** Bytes and events written on watch streams (ADDED/MODIFIED/DELETED/BOOKMARK/ERROR lines). */
  watchBytes: number;
  watchEvents: number;
}

export interface RequestLogEntry {
  method: string;
  path: string;
  query: Record<string, string>;
  status: number;
  /** PATCH only: the request's Content-Type and body as sent. */
  contentType?: string;
  body?: string;
}

function builtinTypes(istioNet: string[], istioSec: string[]): ResourceType[] {
  const t = (group: string, versions: string[], plural: string, kind: string, namespaced = true, crd = false): ResourceType => ({
    group, versions, plural, kind, namespaced, crd,
  });
  return [
    t('', ['v1'], 'services', 'Service'),
    t('', ['v1'], 'pods', 'Pod'),
    t('', ['v1'], 'namespaces', 'Namespace', false),
    t('discovery.k8s.io', ['v1'], 'endpointslices', 'EndpointSlice'),
    t('networking.k8s.io', ['v1'], 'networkpolicies', 'NetworkPolicy'),
    t('networking.istio.io', istioNet, 'virtualservices', 'VirtualService', true, true),
    t('networking.istio.io', istioNet, 'destinationrules', 'DestinationRule', true, true),
    t('networking.istio.io', istioNet, 'serviceentries', 'ServiceEntry', true, true),
    t('networking.istio.io', istioNet, 'workloadentries', 'WorkloadEntry', true, true),
    t('networking.istio.io', istioNet, 'sidecars', 'Sidecar', true, true),
    t('security.istio.io', istioSec, 'authorizationpolicies', 'AuthorizationPolicy', true, true),
    t('security.istio.io', istioSec, 'requestauthentications', 'RequestAuthentication', true, true),
    t('security.istio.io', istioSec, 'peerauthentications', 'PeerAuthentication', true, true),
    // Gateway API routes (the mesh profile) and the Lease the status writer is elected with.
    t('gateway.networking.k8s.io', ['v1', 'v1beta1'], 'httproutes', 'HTTPRoute', true, true),
    t('gateway.networking.k8s.io', ['v1'], 'grpcroutes', 'GRPCRoute', true, true),
    t('gateway.networking.k8s.io', ['v1alpha2'], 'tcproutes', 'TCPRoute', true, true),
    t('gateway.networking.k8s.io', ['v1alpha2'], 'tlsroutes', 'TLSRoute', true, true),
    t('coordination.k8s.io', ['v1'], 'leases', 'Lease'),
  ].filter((r) => r.versions.length > 0);
}

const typeKeyOf = (r: Pick<ResourceType, 'group' | 'plural'>): string => `${r.group}/${r.plural}`;

export class FakeKubeApiServer {
  private readonly server: Server;
  private readonly types: ResourceType[];
  private readonly store = new Map<string, Map<string, Obj>>();
  private readonly history: HistoryEvent[] = [];
  private readonly watches = new Set<ActiveWatch>();
  private readonly sockets = new Set<Socket>();
  private rv = 100;
  /** Watches from a resourceVersion older than this get 410 Expired (etcd compaction). */
  private compactedRv = 0;
  private failing = 0;
  private readonly continues = new Map<string, { rv: number; items: Obj[]; offset: number }>();
  private failStatus = 500;
  private readonly opts: Required<FakeKubeApiServerOptions>;
  readonly requests: RequestLogEntry[] = [];
  readonly stats: FakeApiServerStats = { listRequests: 0, listBytes: 0, watchRequests: 0, watchBytes: 0, watchEvents: 0 };
  /** Keep the request log (a scale run with millions of requests can turn it off). */
  logRequests = true;
  port = 0;

  constructor(opts: FakeKubeApiServerOptions = {}) {
    this.opts = {
      istioNetworkingVersions: opts.istioNetworkingVersions ?? ['v1', 'v1beta1', 'v1alpha3'],
      istioSecurityVersions: opts.istioSecurityVersions ?? ['v1', 'v1beta1'],
      bookmarkIntervalMs: opts.bookmarkIntervalMs ?? 0,
      goneMode: opts.goneMode ?? 'event',
    };
    this.types = builtinTypes(this.opts.istioNetworkingVersions, this.opts.istioSecurityVersions);
    for (const t of this.types) this.store.set(typeKeyOf(t), new Map());
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async close(): Promise<void> {
    for (const w of this.watches) this.endWatch(w, true);
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // === test API ===

  /** Current resourceVersion (etcd revision) of the whole store. */
  get resourceVersion(): number {
    return this.rv;
  }

  /** Create or replace an object (ADDED or MODIFIED). Returns the stored object with its new resourceVersion. */
  apply(obj: Obj): Obj {
    return structuredClone(this.put(obj));
  }

  /** apply() for many objects (a scale test's cluster), without copies handed back. Returns the last resourceVersion. */
  applyAll(objs: Iterable<Obj>): number {
    for (const o of objs) this.put(o);
    return this.rv;
  }

  private put(obj: Obj): Obj {
    const type = this.typeForObject(obj);
    const name = obj.metadata?.name;
    if (!name) throw new Error('apply: metadata.name is required');
    const namespace = type.namespaced ? (obj.metadata?.namespace ?? 'default') : undefined;
    const store = this.store.get(typeKeyOf(type))!;
    const key = `${namespace ?? ''}/${name}`;
    const prev = store.get(key);
    const rv = ++this.rv;
    const stored: Obj = structuredClone(obj);
    // metadata.generation counts changes of everything but metadata and status, as the real server does.
    const body = (o: Obj | undefined): string => JSON.stringify(Object.fromEntries(Object.entries(o ?? {}).filter(([k]) => k !== 'metadata' && k !== 'status' && k !== 'apiVersion' && k !== 'kind')));
    const prevGen = typeof prev?.metadata?.generation === 'number' ? (prev.metadata.generation as number) : 0;
    stored.metadata = {
      ...stored.metadata,
      name,
      ...(namespace !== undefined ? { namespace } : {}),
      uid: (prev?.metadata?.uid as string | undefined) ?? `uid-${rv}`,
      resourceVersion: String(rv),
      generation: prev === undefined ? 1 : body(prev) === body(stored) ? prevGen || 1 : (prevGen || 1) + 1,
      creationTimestamp: (prev?.metadata?.creationTimestamp as string | undefined) ?? (stored.metadata?.creationTimestamp as string | undefined) ?? '2025-01-01T00:00:00Z',
    };
    store.set(key, stored);
    this.record({ rv, type: prev ? 'MODIFIED' : 'ADDED', typeKey: typeKeyOf(type), object: stored });
    return stored;
  }

  /** Delete by kind (e.g. 'Service'), namespace and name. Returns false when it did not exist. */
  delete(kind: string, namespace: string, name: string): boolean {
    const type = this.types.find((t) => t.kind === kind);
    if (!type) throw new Error(`delete: unknown kind ${kind}`);
    const store = this.store.get(typeKeyOf(type))!;
    const key = `${type.namespaced ? namespace : ''}/${name}`;
    const prev = store.get(key);
    if (!prev) return false;
    store.delete(key);
    const rv = ++this.rv;
    // The DELETED event carries the last state with the deletion's resourceVersion.
    const obj: Obj = { ...structuredClone(prev), metadata: { ...prev.metadata, resourceVersion: String(rv) } };
    this.record({ rv, type: 'DELETED', typeKey: typeKeyOf(type), object: obj });
    return true;
  }

  /** Zero the counters of `stats`. */
  resetStats(): void {
    for (const k of Object.keys(this.stats) as Array<keyof FakeApiServerStats>) this.stats[k] = 0;
  }

  /** Bytes and events written so far on each open watch (one entry per watch). */
  watchTraffic(): Array<{ typeKey: string; namespace?: string; bytes: number; events: number }> {
    return [...this.watches].map((w) => ({ typeKey: w.typeKey, ...(w.namespace !== undefined ? { namespace: w.namespace } : {}), bytes: w.bytes, events: w.events }));
  }

  /** End every open watch cleanly, as the real server does at a watch's timeout: clients re-watch from their RV. */
  endWatches(): number {
    const n = this.watches.size;
    for (const w of [...this.watches]) this.endWatch(w, false, true);
    return n;
  }

  /** Cut every open watch connection mid-stream (socket destroyed, no clean end of the chunked body). */
  dropWatches(): number {
    const n = this.watches.size;
    for (const w of [...this.watches]) this.endWatch(w, true);
    return n;
  }

  /** Forget the history up to now: a watch resuming from any older resourceVersion gets 410 Expired. */
  compactHistory(): void {
    this.compactedRv = this.rv;
    this.history.length = 0;
    this.continues.clear();
  }

  /** The next `n` requests (lists, watches, discovery) answer `status` (default 500) with a Status object. */
  setFailing(n: number, status = 500): void {
    this.failing = n;
    this.failStatus = status;
  }

  /** Send a BOOKMARK with the current resourceVersion to every watch that allowed bookmarks. */
  sendBookmarks(): void {
    for (const w of this.watches) if (w.bookmarks) this.sendBookmark(w);
  }

  /** Stop serving a resource type (a CRD uninstalled, or every version of it): 404 from now on, its watches end. */
  unserve(group: string, plural: string): void {
    const type = this.types.find((t) => t.group === group && t.plural === plural);
    if (!type) throw new Error(`unserve: unknown ${group}/${plural}`);
    type.versions = [];
    for (const w of [...this.watches]) if (w.typeKey === typeKeyOf(type)) this.endWatch(w, false, true);
  }

  /** Serve a resource type (again) at `versions`: a CRD installed after the client started. */
  serve(group: string, plural: string, versions: string[]): void {
    const type = this.types.find((t) => t.group === group && t.plural === plural);
    if (!type) throw new Error(`serve: unknown ${group}/${plural}`);
    type.versions = [...versions];
  }

  get openWatches(): number {
    return this.watches.size;
  }

  /** Requests whose path starts with `prefix` (and that were watches, when `watch` is given). */
  countRequests(prefix: string, watch?: boolean): number {
    return this.requests.filter(
      (r) => r.path.startsWith(prefix) && (watch === undefined || (r.query.watch === 'true' || r.query.watch === '1') === watch),
    ).length;
  }

  // === HTTP ===

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const query = Object.fromEntries(url.searchParams.entries());
    const entry: RequestLogEntry = { method: req.method ?? 'GET', path: url.pathname, query, status: 0 };
    if (this.logRequests) this.requests.push(entry);
    const send = (status: number, body: unknown): void => {
      entry.status = status;
      const text = JSON.stringify(body);
      this.stats.listRequests++;
      this.stats.listBytes += Buffer.byteLength(text);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (this.failing > 0) {
      this.failing--;
      send(this.failStatus, status(this.failStatus, 'InternalError', 'injected failure'));
      return;
    }
    if (req.method === 'PATCH') {
      this.patch(req, url.pathname, query, entry, send);
      return;
    }
    if (req.method === 'POST') {
      this.create(req, url.pathname, entry, send);
      return;
    }
    if (req.method !== 'GET') {
      send(405, status(405, 'MethodNotAllowed', 'the fake API server only reads, creates and patches over HTTP; use apply()'));
      return;
    }
    const discovery = this.discovery(url.pathname);
    if (discovery !== undefined) {
      send(200, discovery);
      return;
    }
    const route = this.route(url.pathname);
    if (!route) {
      send(404, status(404, 'NotFound', 'the server could not find the requested resource'));
      return;
    }
    const { type, version, namespace, name } = route;
    if (route.status === true) {
      send(405, status(405, 'MethodNotAllowed', 'the fake API server patches the status subresource; read the object itself'));
      return;
    }
    const watch = query.watch === 'true' || query.watch === '1';
    if (name !== undefined && !watch) {
      const obj = this.store.get(typeKeyOf(type))!.get(`${namespace ?? ''}/${name}`);
      if (!obj) send(404, status(404, 'NotFound', `${type.plural} "${name}" not found`));
      else send(200, this.present(obj, type, version, true));
      return;
    }
    if (!watch) {
      // Paginated lists (`limit` + `continue`) are served from a snapshot taken at the first page, so every page
      // is consistent at one resourceVersion; a continue token older than the compaction answers 410 Expired.
      let snapshot: { rv: number; items: Obj[] };
      let offset = 0;
      if (query.continue) {
        const page = this.continues.get(query.continue);
        if (!page || page.rv < this.compactedRv) {
          send(410, status(410, 'Expired', 'The provided continue parameter is too old to display a consistent list result.'));
          return;
        }
        snapshot = page;
        offset = page.offset;
      } else {
        snapshot = {
          rv: this.rv,
          items: [...this.store.get(typeKeyOf(type))!.values()]
            .filter((o) => namespace === undefined || o.metadata?.namespace === namespace)
            .sort((a, b) => `${a.metadata?.namespace}/${a.metadata?.name}`.localeCompare(`${b.metadata?.namespace}/${b.metadata?.name}`))
            .map((o) => this.present(o, type, version, type.crd)),
        };
      }
      const limit = Number(query.limit);
      const end = Number.isInteger(limit) && limit > 0 ? Math.min(snapshot.items.length, offset + limit) : snapshot.items.length;
      const metadata: Record<string, unknown> = { resourceVersion: String(snapshot.rv) };
      if (end < snapshot.items.length) {
        const token = Buffer.from(`${snapshot.rv}:${end}:${this.continues.size}`).toString('base64url');
        this.continues.set(token, { ...snapshot, offset: end });
        metadata.continue = token;
        metadata.remainingItemCount = snapshot.items.length - end;
      }
      send(200, {
        kind: `${type.kind}List`,
        apiVersion: apiVersionOf(type.group, version),
        metadata,
        items: snapshot.items.slice(offset, end),
      });
      return;
    }
    this.startWatch(req, res, entry, type, version, namespace, query);
  }

  /**
   * PATCH of one object: server-side apply (`application/apply-patch+yaml`; `fieldManager` required; maps merged,
   * lists replaced whole as atomic lists — Istio's CRDs declare no list-type, so theirs are; a
   * `metadata.resourceVersion` in the patch is a precondition, 409 Conflict when stale; a missing object is
   * created) or JSON merge patch (`application/merge-patch+json`, RFC 7386: null deletes; 404 when missing).
   * Managed fields are not tracked (no conflicts between field managers).
   */
  private patch(req: IncomingMessage, path: string, query: Record<string, string>, entry: RequestLogEntry, send: (status: number, body: unknown) => void): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const contentType = String(req.headers['content-type'] ?? '').split(';')[0]!.trim();
      entry.contentType = contentType;
      entry.body = body;
      const route = this.route(path);
      if (!route || route.name === undefined) {
        send(404, status(404, 'NotFound', 'the server could not find the requested resource'));
        return;
      }
      const { type, version, namespace, name } = route;
      const store = this.store.get(typeKeyOf(type))!;
      const prev = store.get(`${namespace ?? ''}/${name}`);
      let patch: Obj;
      try {
        patch = (contentType === 'application/apply-patch+yaml' ? parseYaml(body) : JSON.parse(body)) as Obj;
      } catch (err) {
        send(400, status(400, 'BadRequest', `cannot parse the patch: ${(err as Error).message}`));
        return;
      }
      if (!patch || typeof patch !== 'object' || Array.isArray(patch)) {
        send(400, status(400, 'BadRequest', 'the patch is not an object'));
        return;
      }
      let next: Obj;
      if (contentType === 'application/apply-patch+yaml') {
        if (!query.fieldManager) {
          send(400, status(400, 'BadRequest', 'PATCH, fieldManager: Required value: is required for apply patch'));
          return;
        }
        if (patch.kind !== type.kind || patch.metadata?.name !== name) {
          send(400, status(400, 'BadRequest', 'the apply patch must carry the object\'s apiVersion, kind and metadata.name'));
          return;
        }
        const wantRv = patch.metadata?.resourceVersion;
        if (wantRv !== undefined && wantRv !== prev?.metadata?.resourceVersion) {
          send(409, status(409, 'Conflict', `Operation cannot be fulfilled on ${type.plural} "${name}": the object has been modified; please apply your changes to the latest version and try again`));
          return;
        }
        const { resourceVersion: _rv, ...meta } = patch.metadata ?? {};
        next = applyMerge(prev ? structuredClone(prev) : {}, { ...patch, metadata: meta }) as Obj;
      } else if (contentType === 'application/merge-patch+json') {
        if (!prev) {
          send(404, status(404, 'NotFound', `${type.plural} "${name}" not found`));
          return;
        }
        // A metadata.resourceVersion in a merge patch is a precondition (optimistic concurrency), as on the real server.
        const wantRv = patch.metadata?.resourceVersion;
        if (wantRv !== undefined && wantRv !== prev.metadata?.resourceVersion) {
          send(409, status(409, 'Conflict', `Operation cannot be fulfilled on ${type.plural} "${name}": the object has been modified; please apply your changes to the latest version and try again`));
          return;
        }
        if (route.status === true) {
          // The status subresource: only status changes; spec and metadata stay as they are.
          next = structuredClone(prev);
          if (patch.status !== undefined) next.status = mergePatch(prev.status, patch.status);
        } else next = mergePatch(structuredClone(prev), patch) as Obj;
        if (next.metadata) next.metadata = { ...next.metadata, resourceVersion: prev.metadata?.resourceVersion };
      } else {
        send(415, status(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml`));
        return;
      }
      next.apiVersion = apiVersionOf(type.group, version);
      next.kind = type.kind;
      next.metadata = { ...next.metadata, name, ...(namespace !== undefined ? { namespace } : {}) };
      send(200, this.present(this.apply(next), type, version, true));
    });
  }

  /** POST to a collection: create the object; 409 AlreadyExists when it is there. */
  private create(req: IncomingMessage, path: string, entry: RequestLogEntry, send: (status: number, body: unknown) => void): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      entry.contentType = String(req.headers['content-type'] ?? '');
      entry.body = body;
      const route = this.route(path);
      if (!route || route.name !== undefined) {
        send(405, status(405, 'MethodNotAllowed', 'POST goes to a collection'));
        return;
      }
      let obj: Obj;
      try {
        obj = JSON.parse(body) as Obj;
      } catch (err) {
        send(400, status(400, 'BadRequest', `cannot parse the object: ${(err as Error).message}`));
        return;
      }
      const name = obj.metadata?.name;
      if (!name) {
        send(422, status(422, 'Invalid', 'metadata.name: Required value'));
        return;
      }
      const { type, version, namespace } = route;
      if (this.store.get(typeKeyOf(type))!.has(`${namespace ?? ''}/${name}`)) {
        send(409, status(409, 'AlreadyExists', `${type.plural} "${name}" already exists`));
        return;
      }
      obj.apiVersion = apiVersionOf(type.group, version);
      obj.kind = type.kind;
      obj.metadata = { ...obj.metadata, name, ...(namespace !== undefined ? { namespace } : {}) };
      send(201, this.present(this.apply(obj), type, version, true));
    });
  }

  private startWatch(
    _req: IncomingMessage,
    res: ServerResponse,
    entry: RequestLogEntry,
    type: ResourceType,
    version: string,
    namespace: string | undefined,
    query: Record<string, string>,
  ): void {
    const rvParam = query.resourceVersion ?? '';
    const fromRv = rvParam === '' || rvParam === '0' ? undefined : Number(rvParam);
    if (fromRv !== undefined && (!Number.isFinite(fromRv) || fromRv < this.compactedRv)) {
      const gone = status(410, 'Expired', `too old resource version: ${rvParam} (${this.compactedRv})`);
      if (this.opts.goneMode === 'http') {
        entry.status = 410;
        res.writeHead(410, { 'content-type': 'application/json' });
        res.end(JSON.stringify(gone));
      } else {
        // What kube-apiserver does: the watch is accepted, then a single ERROR event, then the stream ends.
        entry.status = 200;
        res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
        res.end(JSON.stringify({ type: 'ERROR', object: gone }) + '\n');
      }
      return;
    }
    entry.status = 200;
    this.stats.watchRequests++;
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    const w: ActiveWatch = { typeKey: typeKeyOf(type), version, bookmarks: query.allowWatchBookmarks === 'true', res, bytes: 0, events: 0 };
    if (namespace !== undefined) w.namespace = namespace;
    this.watches.add(w);
    res.on('close', () => this.endWatch(w, false));
    const matches = (o: Obj): boolean => namespace === undefined || o.metadata?.namespace === namespace;
    if (fromRv === undefined) {
      // resourceVersion unset/"0": synthetic ADDED events for the current state, then live events.
      for (const o of this.store.get(w.typeKey)!.values()) if (matches(o)) this.writeEvent(w, 'ADDED', o);
    } else {
      for (const ev of this.history) {
        if (ev.rv > fromRv && ev.typeKey === w.typeKey && matches(ev.object)) this.writeEvent(w, ev.type, ev.object);
      }
    }
    if (this.opts.bookmarkIntervalMs > 0 && w.bookmarks) {
      w.timer = setInterval(() => this.sendBookmark(w), this.opts.bookmarkIntervalMs);
      w.timer.unref();
    }
    const timeoutSeconds = Number(query.timeoutSeconds);
    if (Number.isFinite(timeoutSeconds) && timeoutSeconds > 0) {
      // The real server ends a watch cleanly after timeoutSeconds; the client re-watches from its last RV.
      const t = setTimeout(() => this.endWatch(w, false, true), timeoutSeconds * 1000);
      t.unref();
      res.on('close', () => clearTimeout(t));
    }
  }

  private endWatch(w: ActiveWatch, abrupt: boolean, graceful = false): void {
    if (!this.watches.delete(w)) return;
    if (w.timer) clearInterval(w.timer);
    if (abrupt) w.res.socket?.destroy();
    else if (graceful) w.res.end();
  }

  private sendBookmark(w: ActiveWatch): void {
    const type = this.types.find((t) => typeKeyOf(t) === w.typeKey)!;
    this.writeRaw(w, {
      type: 'BOOKMARK',
      object: { kind: type.kind, apiVersion: apiVersionOf(type.group, w.version), metadata: { resourceVersion: String(this.rv) } },
    });
  }

  private writeEvent(w: ActiveWatch, type: HistoryEvent['type'], obj: Obj): void {
    const rt = this.types.find((t) => typeKeyOf(t) === w.typeKey)!;
    this.writeRaw(w, { type, object: this.present(obj, rt, w.version, true) });
  }

  private writeRaw(w: ActiveWatch, event: unknown): void {
    if (w.res.writableEnded || w.res.destroyed) return;
    const line = JSON.stringify(event) + '\n';
    const n = Buffer.byteLength(line);
    w.bytes += n;
    w.events++;
    this.stats.watchBytes += n;
    this.stats.watchEvents++;
    w.res.write(line);
  }

  private record(ev: HistoryEvent): void {
    this.history.push(ev);
    for (const w of this.watches) {
      if (w.typeKey === ev.typeKey && (w.namespace === undefined || ev.object.metadata?.namespace === w.namespace)) {
        this.writeEvent(w, ev.type, ev.object);
      }
    }
  }

  /**
   * Objects are stored version-agnostic (like CRD conversion with identical schemas); apiVersion follows the request.
   * A shallow copy: stored objects are replaced on every change, never mutated, and what is presented is serialized.
   */
  private present(obj: Obj, type: ResourceType, version: string, withTypeMeta: boolean): Obj {
    const { apiVersion: _v, kind: _k, ...rest } = obj;
    return withTypeMeta ? { apiVersion: apiVersionOf(type.group, version), kind: type.kind, ...rest } : rest;
  }

  private typeForObject(obj: Obj): ResourceType {
    const [group, version] = obj.apiVersion?.includes('/') ? obj.apiVersion.split('/') : ['', obj.apiVersion];
    const type = this.types.find((t) => t.kind === obj.kind && t.group === group);
    if (!type) throw new Error(`apply: unknown type ${obj.apiVersion} ${obj.kind}`);
    if (version && !['v1', 'v1beta1', 'v1alpha3', 'v1alpha2'].includes(version)) throw new Error(`apply: unknown version ${version}`);
    return type;
  }

  private route(path: string): { type: ResourceType; version: string; namespace?: string; name?: string; status?: boolean } | undefined {
    const seg = path.split('/').filter((s) => s !== '');
    let group: string;
    let version: string | undefined;
    let rest: string[];
    if (seg[0] === 'api') {
      group = '';
      version = seg[1];
      rest = seg.slice(2);
    } else if (seg[0] === 'apis') {
      group = seg[1] ?? '';
      version = seg[2];
      rest = seg.slice(3);
    } else return undefined;
    if (!version) return undefined;
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const [plural, name, extra] = rest;
    // `…/name/status`: the status subresource (PATCH only).
    if (!plural || (extra !== undefined && !(extra === 'status' && rest.length === 3))) return undefined;
    const type = this.types.find((t) => t.group === group && t.plural === plural && t.versions.includes(version));
    if (!type || (namespace !== undefined && !type.namespaced)) return undefined;
    const r: { type: ResourceType; version: string; namespace?: string; name?: string; status?: boolean } = { type, version };
    if (namespace !== undefined) r.namespace = namespace;
    if (name !== undefined) r.name = name;
    if (extra === 'status') r.status = true;
    return r;
  }

  /** `/api`, `/api/v1`, `/apis`, `/apis/{group}`, `/apis/{group}/{version}`: the discovery documents. */
  private discovery(path: string): unknown {
    const seg = path.split('/').filter((s) => s !== '');
    const groups = new Map<string, string[]>();
    for (const t of this.types) {
      if (t.group === '') continue;
      const vs = groups.get(t.group) ?? [];
      for (const v of t.versions) if (!vs.includes(v)) vs.push(v);
      groups.set(t.group, vs);
    }
    const groupDoc = (g: string, vs: string[]): unknown => ({
      kind: 'APIGroup',
      apiVersion: 'v1',
      name: g,
      versions: vs.map((v) => ({ groupVersion: `${g}/${v}`, version: v })),
      preferredVersion: { groupVersion: `${g}/${vs[0]}`, version: vs[0] },
    });
    const resourceList = (g: string, v: string): unknown => ({
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: apiVersionOf(g, v),
      resources: this.types
        .filter((t) => t.group === g && t.versions.includes(v))
        .map((t) => ({ name: t.plural, singularName: '', namespaced: t.namespaced, kind: t.kind, verbs: ['get', 'list', 'watch', 'patch'] })),
    });
    if (seg[0] === 'api' && seg.length === 1) return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] };
    if (seg[0] === 'api' && seg.length === 2 && seg[1] === 'v1') return resourceList('', 'v1');
    if (seg[0] === 'apis' && seg.length === 1) {
      return { kind: 'APIGroupList', apiVersion: 'v1', groups: [...groups].map(([g, vs]) => groupDoc(g, vs)) };
    }
    if (seg[0] === 'apis' && seg.length === 2) {
      const vs = groups.get(seg[1]!);
      return vs ? groupDoc(seg[1]!, vs) : undefined;
    }
    if (seg[0] === 'apis' && seg.length === 3) {
      const vs = groups.get(seg[1]!);
      return vs?.includes(seg[2]!) ? resourceList(seg[1]!, seg[2]!) : undefined;
    }
    return undefined;
  }
}

/** Server-side apply's merge, without managed fields: maps merge key by key, everything else (lists too) is replaced. */
function applyMerge(into: unknown, patch: unknown): unknown {
  if (!isPlainObject(into) || !isPlainObject(patch)) return structuredClone(patch);
  const out: Record<string, unknown> = { ...into };
  for (const [k, v] of Object.entries(patch)) out[k] = k in out ? applyMerge(out[k], v) : structuredClone(v);
  return out;
}

/** RFC 7386 JSON merge patch. */
function mergePatch(into: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return structuredClone(patch);
  const out: Record<string, unknown> = isPlainObject(into) ? { ...into } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function apiVersionOf(group: string, version: string): string {
  return group === '' ? version : `${group}/${version}`;
}

function status(code: number, reason: string, message: string): unknown {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

/**
 * Write a kubeconfig pointing at `serverUrl` without auth. client-node refuses plain http unless
 * `insecure-skip-tls-verify` is set, so it is. Returns the path and a cleanup function.
 */
export function writeKubeconfig(serverUrl: string, namespace = 'default'): { path: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'remora-kubeconfig-'));
  const path = join(dir, 'config');
  writeFileSync(
    path,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: fake',
      '  cluster:',
      `    server: ${serverUrl}`,
      '    insecure-skip-tls-verify: true',
      'users:',
      '- name: fake',
      '  user: {}',
      'contexts:',
      '- name: fake',
      '  context:',
      '    cluster: fake',
      '    user: fake',
      `    namespace: ${namespace}`,
      'current-context: fake',
      '',
    ].join('\n'),
  );
  return { path, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
