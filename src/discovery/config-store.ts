/**
 * Holds the current Snapshot. Sources (files, Kubernetes, environment, DNS) feed inputs; every change
 * is validated and compiled into a new snapshot that replaces the old one in a single assignment.
 * A change that fails validation is rejected whole: the last good snapshot keeps serving.
 */
import { EventEmitter } from 'node:events';
import { createHash } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { ConfigError, Resource } from '../config/resource.js';
import { formatError } from '../config/resource.js';
import { loadConfig, settleParseCache, unsettled, SETTLE_AFTER_MS, type ParseCache } from '../config/load.js';
import { validateResources } from '../config/validate.js';
import { GroupedValidation, type ResourceGroup } from '../config/validate/groups.js';
import { compile, type CompileOptions } from '../config/compile.js';
import { compileDelta, deltaKinds, type DeltaKind } from '../config/compile-delta.js';
import type { Snapshot } from '../config/snapshot.js';
import type { ServiceDef } from '../model.js';
import { scopeInputs, selectSidecar } from './sidecar-scope.js';
import { dropInvalidRules } from '../gateway/api-errors.js';

export interface StoreOptions {
  paths: readonly string[];
  namespace: string;
  clusterDomain: string;
  labels: Readonly<Record<string, string>>;
  outboundTrafficPolicy: 'ALLOW_ANY' | 'REGISTRY_ONLY';
  /** The pod resolver's search path (/etc/resolv.conf), for short names the registry lacks. */
  search?: { domains: readonly string[]; ndots: number };
  /** DNS refresh interval for resolution: DNS hosts (ms). */
  dnsRefreshMs?: number;
  log: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
}

export interface ExternalInput {
  resources: readonly Resource[];
  services: readonly ServiceDef[];
}

/**
 * Where the last accepted build's time went (ms): from the first file event to the start of reading (`wait`: the
 * watcher's gathering of one change's events, and a build already running), reading and parsing the files (`read`;
 * both 0 when only a non-file source changed), validating, hashing the inputs (the snapshot's `hash`), compiling the
 * snapshot, and applying it (`apply`: the update listeners: cluster runtimes, pools, policies, metrics). In the ready
 * line, /config_dump and the "config version N applied" log line.
 */
export interface BuildTimings { wait: number; read: number; validate: number; hash: number; compile: number; apply: number }

export class ConfigStore extends EventEmitter {
  current: Snapshot | undefined;
  lastError: { at: number; errors: string[] } | undefined;
  lastBuild: BuildTimings | undefined;
  lastReloadAt = 0;
  reloads = 0;
  reloadFailures = 0;
  private fileResources: Resource[] = [];
  /** The files' resources, one group per file in order (the parse cache's arrays: unchanged files keep theirs). */
  private fileGroups: ResourceGroup[] = [];
  private fileDigest = '';
  /** Files' parse results by name: a reload parses only the files whose text changed. */
  private readonly parseCache: ParseCache = new Map();
  /** Validation kept across builds: a build re-checks only the resources of groups that changed (validate/groups.ts). */
  readonly validation: GroupedValidation;
  /** Per external source, its resources as the validation last saw them (an object with the same resourceVersion is the one it has). */
  private externalSeen = new Map<string, { list: readonly Resource[]; byKey: Map<string, Resource> }>();
  /** Set to validate and compile every build from nothing (the reference path). */
  incremental = true;
  /** The inputs of the current snapshot's compilation, for a build that changes only some VirtualServices. */
  private compiled: { snapshot: Snapshot; resources: readonly Resource[]; services: readonly ServiceDef[]; dnsVersion: number; outbound: string; scoped: boolean } | undefined;
  private dnsVersion = 0;
  /** Builds compiled from the previous snapshot (compile-delta.ts) and from nothing. */
  compiles: { delta: 0, full: 0, byKind: Partial<Record<DeltaKind, number>> } = { delta: 0, full: 0, byKind: {} };
  private external = new Map<string, ExternalInput>();
  private dns = new Map<string, readonly string[]>();
  private dnsTimer: NodeJS.Timeout | undefined;
  private version = 0;
  private reloading: Promise<boolean> | undefined;
  private again = false;
  /** When the earliest file change not yet read was seen (performance.now()). */
  private pendingSince: number | undefined;
  private loggedWarnings = new Set<string>();
  /** File reads that failed for lack of descriptors or memory (EMFILE, ENFILE, ENOMEM), retried, never a rejection. */
  transientReadFailures = 0;
  private transientSince = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private settleTimer: NodeJS.Timeout | undefined;

  constructor(readonly opts: StoreOptions) {
    super();
    this.validation = new GroupedValidation({ clusterDomain: opts.clusterDomain });
  }

  /** Load files and compile. Returns false (and keeps the previous snapshot) when the config is invalid. */
  async reloadFiles(force = false, since = performance.now()): Promise<boolean> {
    // A change seen while a build runs is read after it: its wait counts from when it was seen.
    if (this.pendingSince === undefined || since < this.pendingSince) this.pendingSince = since;
    if (this.reloading) { this.again = true; return this.reloading; }
    this.reloading = (async () => {
      let ok = true;
      do {
        this.again = false;
        const from = this.pendingSince ?? performance.now();
        this.pendingSince = undefined;
        ok = await this.reloadFilesOnce(force, from);
      } while (this.again);
      return ok;
    })();
    try { return await this.reloading; } finally { this.reloading = undefined; }
  }

  private async reloadFilesOnce(force: boolean, since: number): Promise<boolean> {
    const t0 = performance.now();
    const loaded = await loadConfig(this.opts.paths, this.opts.namespace, this.parseCache);
    const readMs = performance.now() - t0;
    const waitMs = Math.max(0, t0 - since);
    if (loaded.errors.length > 0) {
      loaded.undo?.(); // not adopted: the resources in use keep the lines of the text they were read from (load.ts)
      // Out of file descriptors or memory (a connection flood past ulimit -n) says nothing about the configuration:
      // not a rejection (no failure counted, no error logged per attempt); the files are read again a second later.
      if (this.current !== undefined && loaded.errors.every((e) => TRANSIENT_READ.test(e.message))) return this.retryLater(loaded.errors);
      return this.reject(loaded.errors);
    }
    this.transientSince = 0;
    const digest = loaded.digest;
    if (!force && digest === this.fileDigest && this.current) return true;
    const prevResources = this.fileResources;
    const prevGroups = this.fileGroups;
    const prevDigest = this.fileDigest;
    this.fileResources = loaded.resources;
    this.fileGroups = loaded.files.map((f) => ({ key: `file:${f}`, resources: this.parseCache.get(f)?.resources ?? [] }));
    this.fileDigest = digest;
    if (!this.rebuild(readMs, waitMs)) {
      loaded.undo?.();
      this.fileResources = prevResources;
      this.fileGroups = prevGroups;
      this.fileDigest = prevDigest;
      return false;
    }
    this.scheduleSettle();
    return true;
  }

  /**
   * Files read just after they changed are read again by every reload until they are settled (load.ts,
   * settleParseCache): that is done once they have aged, between reloads, instead of by the next edit.
   */
  private scheduleSettle(): void {
    if (this.settleTimer !== undefined || this.stopped || !unsettled(this.parseCache)) return;
    this.settleTimer = setTimeout(() => {
      if (this.reloading !== undefined) { this.settleTimer = undefined; this.scheduleSettle(); return; }
      void settleParseCache(this.parseCache).then((left) => {
        this.settleTimer = undefined;
        if (left > 0) this.scheduleSettle();
      }, () => { this.settleTimer = undefined; });
    }, SETTLE_AFTER_MS + 100);
    this.settleTimer.unref();
  }

  /** Replace the input of a non-file source (Kubernetes, environment) and recompile. */
  setExternal(name: string, input: ExternalInput): boolean {
    const prev = this.external.get(name);
    this.external.set(name, input);
    if (!this.rebuild()) {
      if (prev) this.external.set(name, prev); else this.external.delete(name);
      return false;
    }
    return true;
  }

  /** Record a non-file source's input without building (the next build includes it): to start from several inputs at once. */
  seedExternal(name: string, input: ExternalInput): void {
    this.external.set(name, input);
  }

  /** The files' resources then each source's (the files' own list as is when no other source has any: not copied). */
  private allResources(): readonly Resource[] {
    let n = 0;
    for (const e of this.external.values()) n += e.resources.length;
    if (n === 0) return this.fileResources;
    const all = [...this.fileResources];
    for (const e of this.external.values()) for (const r of e.resources) all.push(r);
    return all;
  }

  /** The Sidecar objects among the inputs, each file's and source's list filtered once (kept by the list's identity). */
  private sidecarCandidates(): Resource[] {
    const out: Resource[] = [];
    for (const g of this.fileGroups) for (const r of sidecarsOf(g.resources)) out.push(r);
    for (const e of this.external.values()) for (const r of sidecarsOf(e.resources)) out.push(r);
    return out;
  }

  /**
   * The inputs as groups for the validation: each file, then each external source. An external object with the same
   * kind, name and resourceVersion as one seen before is that object (the API server's contract: same version, same
   * content), so a watch event re-checks only the objects it changed.
   */
  private validationGroups(): ResourceGroup[] {
    const groups = [...this.fileGroups];
    const seen = new Map<string, { list: readonly Resource[]; byKey: Map<string, Resource> }>();
    for (const [name, e] of this.external) {
      const prev = this.externalSeen.get(name);
      let list: readonly Resource[];
      if (prev !== undefined && prev.list.length === e.resources.length && prev.list.every((r, i) => r === e.resources[i])) {
        list = prev.list;
        seen.set(name, prev);
      } else {
        const byKey = new Map<string, Resource>();
        const out: Resource[] = [];
        let same = prev !== undefined && prev.list.length === e.resources.length;
        for (let i = 0; i < e.resources.length; i++) {
          const r = e.resources[i]!;
          const rv = r.metadata.resourceVersion;
          const key = rv ? `${r.apiVersion}/${r.kind}/${r.metadata.namespace}/${r.metadata.name}@${rv}` : undefined;
          const old = key === undefined ? undefined : prev?.byKey.get(key);
          const use = old ?? r;
          if (key !== undefined && !byKey.has(key)) byKey.set(key, use);
          if (same && prev!.list[i] !== use) same = false;
          out.push(use);
        }
        list = same ? prev!.list : out;
        seen.set(name, { list, byKey: same ? prev!.byKey : byKey });
      }
      groups.push({ key: `source:${name}`, resources: list });
    }
    this.externalSeen = seen;
    return groups;
  }

  /** Validate all inputs: incrementally from the last build's state, or (`incremental` off, or on a failure) anew. */
  private validateAll(): ConfigError[] {
    const groups = this.validationGroups();
    if (!this.incremental) return this.validation.rebuild(groups);
    try {
      return this.validation.update(groups);
    } catch (err) {
      this.opts.log('warn', `incremental validation failed, validating everything: ${(err as Error).message}`);
      return this.validation.rebuild(groups);
    }
  }

  /** `readMs`, `waitMs`: how long reading the files took and what came before, when a file change led to this build. */
  private rebuild(readMs = 0, waitMs = 0): boolean {
    const t0 = performance.now();
    let resources = this.allResources();
    let problems = this.validateAll();
    // A Gateway API route from the API server with only some rules invalid keeps the others (src/gateway/api-errors.ts).
    const pruned = dropInvalidRules(resources, problems);
    if (pruned !== undefined) {
      for (const [name, rules] of pruned.dropped) this.opts.log('warn', `${name}: dropping invalid ${rules.map((i) => `rules[${i}]`).join(', ')} (the rest of the route applies)`);
      resources = pruned.resources;
      problems = validateResources(resources, { clusterDomain: this.opts.clusterDomain });
    }
    // Objects from the API server were already accepted by it: an invalid one is skipped (and logged) rather than
    // freezing every other update. File objects reject the whole change, so nothing half-applied is ever served.
    const badCluster = new Set(problems.filter((p) => p.severity !== 'warning' && p.file === 'kubernetes').map((p) => p.object));
    if (badCluster.size > 0) {
      for (const p of problems) if (p.file === 'kubernetes' && p.severity !== 'warning') this.opts.log('warn', `ignoring invalid object from the API server: ${formatError(p)}`);
      resources = resources.filter((r) => !(r.source.file === 'kubernetes' && badCluster.has(`${r.kind}/${r.metadata.namespace}/${r.metadata.name}`)));
      problems = validateResources(resources, { clusterDomain: this.opts.clusterDomain });
    }
    const errors = problems.filter((p) => p.severity !== 'warning');
    const warnings = problems.filter((w) => w.severity === 'warning').map(formatError);
    if (errors.length > 0) return this.reject(errors);
    let extraServices: ServiceDef[] = [];
    for (const e of this.external.values()) extraServices.push(...e.services);
    // Istio Sidecar egress scoping, for every source alike: only what this workload can reach is compiled, and the
    // Sidecar's outboundTrafficPolicy overrides --outbound-traffic-policy (as Istio's overrides meshConfig).
    let outboundTrafficPolicy = this.opts.outboundTrafficPolicy;
    let sidecars = this.sidecarCandidates();
    if (sidecars.length > 0 && badCluster.size > 0) { const kept = new Set(resources); sidecars = sidecars.filter((r) => kept.has(r)); }
    const sidecar = selectSidecar(sidecars, { namespace: this.opts.namespace, labels: this.opts.labels });
    const scopeWarnings: string[] = [];
    if (sidecar !== undefined) {
      const scoped = scopeInputs({ resources, services: extraServices }, sidecar, this.opts.namespace, { clusterDomain: this.opts.clusterDomain });
      resources = [...scoped.resources];
      extraServices = [...scoped.services];
      outboundTrafficPolicy = scoped.outboundTrafficPolicy ?? outboundTrafficPolicy;
      scopeWarnings.push(...scoped.warnings);
    }
    const now = Date.now();
    const t1 = performance.now();
    const hash = this.hashOf();
    const th = performance.now();
    let snap: Snapshot;
    try {
      const copts: CompileOptions = {
        namespace: this.opts.namespace,
        clusterDomain: this.opts.clusterDomain,
        labels: this.opts.labels,
        outboundTrafficPolicy,
        extraServices,
        ...(this.opts.search ? { search: this.opts.search } : {}),
        dns: this.dns,
        version: this.version + 1,
        hash,
        now,
      };
      const c = this.compiled;
      // Registry entries of other sources are compared by identity and place (compile-delta-registry.ts).
      const delta = this.incremental && c !== undefined && c.snapshot === this.current && !c.scoped && sidecar === undefined && c.dnsVersion === this.dnsVersion
        && c.outbound === outboundTrafficPolicy
        ? compileDelta(c.snapshot, c.resources, resources, copts, c.services) : undefined;
      if (delta !== undefined) {
        snap = delta;
        this.compiles.delta++;
        for (const k of deltaKinds(delta)) this.compiles.byKind[k] = (this.compiles.byKind[k] ?? 0) + 1;
      } else { snap = compile(resources, copts); this.compiles.full++; }
      this.compiled = { snapshot: snap, resources, services: extraServices, dnsVersion: this.dnsVersion, outbound: outboundTrafficPolicy, scoped: sidecar !== undefined };
    } catch (err) {
      this.compiled = undefined;
      return this.reject([{ file: '', line: 0, object: '', field: '', message: `compile failed: ${(err as Error).stack ?? String(err)}` }]);
    }
    const t2 = performance.now();
    const timings: BuildTimings = { wait: Math.round(waitMs), read: Math.round(readMs), validate: Math.round(t1 - t0), hash: Math.round(th - t1), compile: Math.round(t2 - th), apply: 0 };
    this.version++;
    // Log a warning when it appears, not on every rebuild (watch events rebuild often).
    const seen = new Set([...warnings, ...scopeWarnings, ...snap.warnings]);
    for (const w of seen) if (!this.loggedWarnings.has(w)) this.opts.log('warn', w);
    this.loggedWarnings = seen;
    const prev = this.current;
    this.current = snap;
    this.lastReloadAt = now;
    this.reloads++;
    this.lastError = undefined;
    this.emit('update', snap, prev);
    timings.apply = Math.round(performance.now() - t2);
    this.lastBuild = timings;
    this.opts.log('info', `config version ${snap.version} applied`, { hash: snap.hash, resources: snap.resources.length, clusters: snap.clusters.size, ms: timings });
    this.scheduleDns(snap);
    return true;
  }

  /**
   * The snapshot's hash, of its inputs: the files' digest (each file's SHA-256), each other source's objects (API
   * objects by kind, name and resourceVersion) and registry entries, and the DNS answers. What the build derives from
   * them (Sidecar scoping, rules dropped) follows from the inputs. Each source's part is kept by the identity of its
   * arrays, so a file edit hashes no object and a watch event hashes its source's list once.
   */
  private hashOf(): string {
    const h = createHash('sha256');
    h.update(this.fileDigest);
    for (const [name, e] of [...this.external].sort((a, b) => (a[0] < b[0] ? -1 : 1))) h.update(`\0${name}\0`).update(resourcesDigest(e.resources)).update(servicesDigest(e.services));
    for (const [k, v] of [...this.dns].sort()) h.update(`${k}=${v.join(',')}`);
    return h.digest('hex').slice(0, 16);
  }

  private retryLater(errors: ConfigError[]): false {
    this.transientReadFailures++;
    if (this.transientSince === 0) {
      this.transientSince = Date.now();
      this.opts.log('warn', `cannot read the configuration now (${errors.map(formatError).join('; ')}); keeping version ${this.current?.version}, retrying every second`);
    }
    if (this.retryTimer === undefined && !this.stopped) {
      this.retryTimer = setTimeout(() => { this.retryTimer = undefined; if (!this.stopped) void this.reloadFiles(); }, 1000);
      this.retryTimer.unref();
    }
    return false;
  }

  private reject(errors: ConfigError[]): false {
    const lines = errors.map(formatError);
    // The same failure seen again with nothing applied in between (a deleted file is reported by the watch event and
    // again by the poll, a ..data swap by several events) is one rejected change: counted and logged once.
    const prev = this.lastError;
    if (prev !== undefined && prev.at >= this.lastReloadAt && prev.errors.length === lines.length && prev.errors.every((l, i) => l === lines[i])) return false;
    this.reloadFailures++;
    this.lastError = { at: Date.now(), errors: lines };
    this.opts.log('error', `config rejected${this.current ? ', keeping version ' + this.current.version : ''}: ${lines.length} problem(s)`, { errors: lines });
    this.emit('rejected', lines);
    return false;
  }

  // === DNS for resolution: DNS ServiceEntries ===

  /** The names DNS ServiceEntries resolve (kept by the registry list's identity: an edit that kept it scans nothing). */
  private dnsNames(snap: Snapshot): string[] {
    return dnsNamesOf(snap.services);
  }

  private scheduleDns(snap: Snapshot): void {
    if (this.dnsTimer) return;
    const names = this.dnsNames(snap);
    if (names.length === 0) return;
    // The first resolution runs at once; later ones refresh in the background.
    this.dnsTimer = setTimeout(() => { void this.refreshDns(); }, 0);
    this.dnsTimer.unref();
  }

  async refreshDns(): Promise<void> {
    this.dnsTimer = undefined;
    const snap = this.current;
    if (!snap) return;
    const names = this.dnsNames(snap);
    let changed = false;
    await Promise.all(names.map(async (n) => {
      try {
        const res = await lookup(n, { all: true });
        const ips = [...new Set(res.map((r) => r.address))].sort();
        const prev = this.dns.get(n);
        if (!prev || prev.join() !== ips.join()) { this.dns.set(n, ips); changed = true; this.dnsVersion++; }
      } catch (err) {
        this.opts.log('warn', `DNS lookup of ${n} failed: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    }));
    for (const k of [...this.dns.keys()]) if (!names.includes(k)) { this.dns.delete(k); changed = true; this.dnsVersion++; }
    if (changed) this.rebuild();
    if (names.length > 0 && !this.stopped) {
      this.dnsTimer = setTimeout(() => { void this.refreshDns(); }, this.opts.dnsRefreshMs ?? 5000);
      this.dnsTimer.unref();
    }
  }

  private stopped = false;
  stop(): void {
    this.stopped = true;
    if (this.dnsTimer) clearTimeout(this.dnsTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.settleTimer) clearTimeout(this.settleTimer);
  }
}

/**
 * `derive` memoized by the identity of its argument (an input list, a ServiceDef): a source that did not change keeps
 * its arrays and objects, so a build derives again only from what it replaced.
 */
function byIdentity<K extends object, V>(derive: (key: K) => V): (key: K) => V {
  const memo = new WeakMap<K, V>();
  return (key) => {
    let v = memo.get(key);
    if (v === undefined) { v = derive(key); memo.set(key, v); }
    return v;
  };
}

const NO_SIDECARS: readonly Resource[] = [];

/** The Sidecar objects of one input list. */
const sidecarsOf = byIdentity((list: readonly Resource[]): readonly Resource[] => {
  const found = list.filter((r) => r.kind === 'Sidecar');
  return found.length === 0 ? NO_SIDECARS : found;
});

/** The names DNS ServiceEntries resolve, of one registry list. */
const dnsNamesOf = byIdentity((list: readonly ServiceDef[]): string[] => {
  const names = new Set<string>();
  for (let i = 0; i < list.length; i++) {
    const s = list[i]!;
    if (s.resolution !== 'DNS') continue;
    for (const w of s.workloads) if (!isIP(w.address) && !w.address.startsWith('unix://')) names.add(w.address);
  }
  return [...names];
});

/** An API object is its kind, name and resourceVersion (same version, same content); one without a version, its spec. */
const resourcesDigest = byIdentity((list: readonly Resource[]): string => {
  const h = createHash('sha256');
  for (const r of list) h.update(`${r.apiVersion}/${r.kind}/${r.metadata.namespace}/${r.metadata.name}@${r.metadata.resourceVersion ?? JSON.stringify(r.spec)}\0`);
  return h.digest('base64');
});

/** Per registry entry, its digest by identity: an API watch event that replaced one entry hashes that one alone. */
const serviceDigest = byIdentity((s: ServiceDef): string => createHash('sha256').update(JSON.stringify(s)).digest('base64'));

const servicesDigest = byIdentity((list: readonly ServiceDef[]): string => {
  const h = createHash('sha256');
  for (const s of list) h.update(serviceDigest(s));
  return h.digest('base64');
});

/** load.ts's messages for a read that failed for want of resources rather than because of the files. */
const TRANSIENT_READ = /^cannot (read|list): (EMFILE|ENFILE|ENOMEM)$/;
