/**
 * Validation kept up to date as resources come and go: each resource is validated alone when it arrives, and the
 * checks across resources (duplicates, subsets, delegates, hosts claimed twice, identities) are indexed by the key
 * they share — a DestinationRule re-checks only the references to its host. The problems are the same, in the same
 * order, as validating the whole set at once (validateResources is this state, filled in one step). Pure.
 */
import { errorAt, type ConfigError, type Resource } from '../resource.js';
import { DEFAULT_CLUSTER_DOMAIN, expandHost, hostCovers } from '../hosts.js';
import { identityHosts, identitySelector, serviceEntryIdentityWarnings } from '../../security/identity-check.js';
import { validateOne } from './one.js';
import { claimedHosts, drSubsets, duplicateKey, subsetRefHosts, subsetRefs, vsFacts } from './cross-checks.js';
import { OrderedIndex, fewAdd, fewLast, fewList, fewRemove, type Few, type Order } from './ordered-index.js';

/** A problem with what orders it among the others (file, line, then the order the checks meet it in). */
interface Problem {
  readonly e: ConfigError;
  /** The resource it is located in. */
  readonly at: Resource;
  /** 0: the resource alone (and duplicates), 1: subsets, 2: delegates, 3: hostless, 4: hosts claimed twice, 5: identities. */
  readonly phase: number;
  /** The resource whose check produced it (its place in the input orders problems of one line). */
  readonly gen: Resource;
  readonly k: number;
}

const NONE: readonly Problem[] = [];

export interface ValidationStateOptions {
  clusterDomain?: string;
  /** The input order of resources (files in order, then other sources): ties on a line are reported in it. */
  order: Order;
}

/** What the checks across resources index per expanded host (one object per host, not one map per check). */
interface HostFacts {
  /** DestinationRules that count for subsets (the first of their key) with this exact host. */
  drs: Few;
  /** Every DestinationRule naming the host (identities: the last one written counts). */
  idDrs: Few;
  /** Mesh VirtualServices with a subset reference to the host. */
  refs: Few;
  /** ServiceEntries with the host (identities). */
  ses: Few;
  /** Mesh VirtualServices claiming the host, any namespace (two of one namespace get a warning). */
  claims: Few;
}

type HostField = keyof HostFacts;

export class ValidationState {
  private readonly clusterDomain: string;
  private readonly order: Order;
  private readonly present = new Set<Resource>();
  /** Problem lists by slot; a slot is keyed by the resource (or group key) whose check produced it. */
  private readonly own = new Map<Resource, readonly Problem[]>();
  private readonly dupErrors = new Map<Resource, readonly Problem[]>();
  private readonly subsetErrors = new Map<Resource, readonly Problem[]>();
  private readonly delegateErrors = new Map<Resource, readonly Problem[]>();
  private readonly hostlessErrors = new Map<Resource, readonly Problem[]>();
  private readonly claimWarnings = new Map<string, readonly Problem[]>();
  private readonly identityWarnings = new Map<Resource, readonly Problem[]>();
  /** Error-severity problems located in each resource (only those with some). */
  private readonly errorsIn = new Map<Resource, number>();
  private errors = 0;

  private readonly hosts = new Map<string, HostFacts>();
  /** Duplicates: kind → namespace → name → the resources of that key, in order (names and namespaces are the resources' own strings). */
  private readonly names = new Map<string, Map<string, Map<string, Few>>>();
  private readonly drWildcards: OrderedIndex<string>;
  private readonly effectiveDr = new Set<Resource>();
  /** Delegate target `ns/name` → the roots naming it. */
  private readonly rootsByTarget: OrderedIndex<string>;
  /** ServiceEntries by their selector's first label (`ns\0` for an empty selector); WorkloadEntries by namespace and label. */
  private readonly seBySelector: OrderedIndex<string>;
  private readonly weByNs: OrderedIndex<string>;
  private readonly weByLabel: OrderedIndex<string>;

  constructor(opts: ValidationStateOptions) {
    this.clusterDomain = opts.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN;
    this.order = opts.order;
    this.drWildcards = new OrderedIndex<string>(this.order);
    this.rootsByTarget = new OrderedIndex<string>(this.order);
    this.seBySelector = new OrderedIndex<string>(this.order);
    this.weByNs = new OrderedIndex<string>(this.order);
    this.weByLabel = new OrderedIndex<string>(this.order);
  }

  /** Number of error-severity problems (a file input with any is rejected). */
  get errorCount(): number {
    return this.errors;
  }

  has(r: Resource): boolean {
    return this.present.has(r);
  }

  /** The resources some error is located in. */
  withErrors(): IterableIterator<Resource> {
    return this.errorsIn.keys();
  }

  /**
   * Whether some problem's text depends on the line `r` stands at: one located in it, or one naming its line (the first
   * of duplicates, the owner of a host claimed twice, a WorkloadEntry an identity warning points at). A resource moved
   * to other lines of its file (a document above it grew) without any keeps every problem as it is; one with some
   * must be taken out and in again.
   */
  placed(r: Resource): boolean {
    if (!this.present.has(r)) return false;
    // Asked of every kept resource of an edited file (1,500 at 50,000 services): no list allocated per call.
    if (this.own.has(r) || this.dupErrors.has(r) || this.subsetErrors.has(r) || this.delegateErrors.has(r) || this.hostlessErrors.has(r) || this.identityWarnings.has(r)) return true;
    if (duplicateKey(r) !== undefined && this.named(r.kind, r.metadata.namespace, r.metadata.name).length > 1) return true;
    const facts = vsFacts(r);
    if (facts !== undefined) {
      const ns = r.metadata.namespace;
      for (const h of claimedHosts(r, facts, this.clusterDomain)) {
        let n = 0;
        for (const v of this.hostList(h, 'claims')) if (v.metadata.namespace === ns && ++n > 1) return true;
      }
    }
    return r.kind === 'WorkloadEntry' && this.identityWarnings.size > 0;
  }

  /** Take `removed` out and `added` in, and re-check what they take part in. */
  update(removed: Iterable<Resource>, added: Iterable<Resource>): void {
    const dirty = this.begin();
    this.take(removed, dirty);
    this.put(added, dirty);
    this.finish(dirty);
  }

  /**
   * update() in steps, with one re-check at the end (finish): what a removal leaves dirty is checked against the state
   * after the additions too. A DestinationRule edited is its old object taken out and its new one put in; checked in
   * between, every VirtualService using its subsets would get a transient "subset not defined" error, each locating
   * its line (a YAML parse of the file) for nothing: 15 of a 50,000-service edit's 20 ms of validation.
   */
  begin(): Dirty {
    return new Dirty();
  }

  take(removed: Iterable<Resource>, dirty: Dirty): void {
    for (const r of removed) {
      if (!this.present.has(r)) continue;
      this.present.delete(r);
      // The problems it produced go with it; those it caused in others are re-checked (dirty).
      for (const m of [this.own, this.dupErrors, this.subsetErrors, this.delegateErrors, this.hostlessErrors, this.identityWarnings]) this.setSlot(m, r, NONE);
      this.index(r, false, dirty);
    }
  }

  put(added: Iterable<Resource>, dirty: Dirty): void {
    for (const r of added) {
      if (this.present.has(r)) continue;
      this.present.add(r);
      const own = validateOne(r);
      this.setSlot(this.own, r, own.length === 0 ? NONE : own.map((e, k) => ({ e, at: r, phase: 0, gen: r, k })));
      this.index(r, true, dirty);
    }
  }

  finish(dirty: Dirty): void {
    this.recheck(dirty);
  }

  /** Every problem, ordered by file and line (ties in the order the checks meet them), as validateResources gives. */
  problems(): ConfigError[] {
    const all: Problem[] = [];
    for (const m of [this.own, this.dupErrors, this.subsetErrors, this.delegateErrors, this.hostlessErrors, this.identityWarnings]) for (const l of m.values()) all.push(...l);
    for (const l of this.claimWarnings.values()) all.push(...l);
    all.sort((a, b) => {
      const fa = a.e.file;
      const fb = b.e.file;
      if (fa !== fb) return fa < fb ? -1 : 1;
      return a.e.line - b.e.line || a.phase - b.phase || (a.gen === b.gen ? 0 : this.order(a.gen, b.gen)) || a.k - b.k;
    });
    return all.map((p) => p.e);
  }

  // === indexes ===

  private hostFacts(h: string): HostFacts {
    let f = this.hosts.get(h);
    if (f === undefined) {
      f = { drs: undefined, idDrs: undefined, refs: undefined, ses: undefined, claims: undefined };
      this.hosts.set(h, f);
    }
    return f;
  }

  private hostList(h: string, field: HostField): readonly Resource[] {
    return fewList(this.hosts.get(h)?.[field]);
  }

  private putHost(h: string, field: HostField, r: Resource, add: boolean): void {
    if (add) {
      const f = this.hostFacts(h);
      f[field] = fewAdd(f[field], r, this.order);
      return;
    }
    const f = this.hosts.get(h);
    if (f === undefined) return;
    f[field] = fewRemove(f[field], r);
    if (f.drs === undefined && f.idDrs === undefined && f.refs === undefined && f.ses === undefined && f.claims === undefined) this.hosts.delete(h);
  }

  private named(kind: string, ns: string, name: string): readonly Resource[] {
    return fewList(this.names.get(kind)?.get(ns)?.get(name));
  }

  private putName(r: Resource, add: boolean): void {
    const { kind } = r;
    const { namespace: ns, name } = r.metadata;
    let byNs = this.names.get(kind);
    if (byNs === undefined) {
      if (!add) return;
      byNs = new Map();
      this.names.set(kind, byNs);
    }
    let byName = byNs.get(ns);
    if (byName === undefined) {
      if (!add) return;
      byName = new Map();
      byNs.set(ns, byName);
    }
    const v = add ? fewAdd(byName.get(name), r, this.order) : fewRemove(byName.get(name), r);
    if (v !== undefined) byName.set(name, v);
    else {
      byName.delete(name);
      if (byName.size === 0) byNs.delete(ns);
    }
  }

  private index(r: Resource, add: boolean, dirty: Dirty): void {
    const cd = this.clusterDomain;
    if (duplicateKey(r) !== undefined) {
      this.putName(r, add);
      dirty.dup.set(`${r.kind}\0${r.metadata.namespace}\0${r.metadata.name}`, r);
    }
    if (!add && this.effectiveDr.has(r)) this.setEffectiveDr(r, false, dirty);
    const facts = vsFacts(r);
    if (facts !== undefined) {
      const name = `${r.metadata.namespace}/${r.metadata.name}`;
      for (const d of new Set(facts.delegates.map((x) => `${x.namespace}/${x.name}`))) {
        if (add) this.rootsByTarget.add(d, r); else this.rootsByTarget.remove(d, r);
        dirty.hostless.add(d);
      }
      // Roots naming this one see it come or go; it re-checks its own delegates and whether someone names it.
      for (const root of this.rootsByTarget.get(name)) dirty.delegates.add(root);
      if (add) {
        dirty.delegates.add(r);
        dirty.hostlessVs.add(r);
      }
      dirty.hostless.add(name);
      for (const h of subsetRefHosts(r, facts, cd)) this.putHost(h, 'refs', r, add);
      if (add) dirty.subsets.add(r);
      for (const h of claimedHosts(r, facts, cd)) {
        this.putHost(h, 'claims', r, add);
        dirty.claims.add(`${r.metadata.namespace}\n${h}`);
      }
    }
    switch (r.kind) {
      case 'DestinationRule': {
        const host = r.spec.host;
        if (typeof host === 'string') {
          const h = expandHost(host, r.metadata.namespace, cd);
          this.putHost(h, 'idDrs', r, add);
          for (const se of this.hostList(h, 'ses')) dirty.identity.add(se);
        }
        break;
      }
      case 'ServiceEntry': {
        for (const h of new Set(identityHosts(r, cd))) this.putHost(h, 'ses', r, add);
        const sel = identitySelector(r);
        if (sel !== undefined) {
          if (add) this.seBySelector.add(selectorKey(r.metadata.namespace, sel), r); else this.seBySelector.remove(selectorKey(r.metadata.namespace, sel), r);
        }
        if (add) dirty.identity.add(r);
        break;
      }
      case 'WorkloadEntry': {
        const ns = r.metadata.namespace;
        if (add) this.weByNs.add(ns, r); else this.weByNs.remove(ns, r);
        const labels = weLabels(r);
        for (const k in labels) {
          const key = labelKey(ns, k, labels[k]);
          if (add) this.weByLabel.add(key, r); else this.weByLabel.remove(key, r);
          // The ServiceEntries whose selector may pick it: by their selector's first label, or an empty selector.
          for (const se of this.seBySelector.get(key)) dirty.identity.add(se);
        }
        for (const se of this.seBySelector.get(`${ns}\0`)) dirty.identity.add(se);
        break;
      }
    }
  }

  // === checks ===

  private recheck(dirty: Dirty): void {
    // Duplicates first: which DestinationRule of a key counts decides subsets.
    for (const r of dirty.dup.values()) this.checkDuplicates(r, dirty);
    for (const vs of dirty.subsets) if (this.present.has(vs)) this.checkSubsets(vs);
    for (const key of dirty.hostless) {
      const slash = key.indexOf('/');
      for (const vs of this.named('VirtualService', key.slice(0, slash), key.slice(slash + 1))) dirty.hostlessVs.add(vs);
    }
    for (const vs of dirty.hostlessVs) if (this.present.has(vs)) this.checkHostless(vs);
    for (const vs of dirty.delegates) if (this.present.has(vs)) this.checkDelegates(vs);
    for (const key of dirty.claims) this.checkClaims(key);
    for (const se of dirty.identity) if (this.present.has(se)) this.checkIdentity(se);
  }

  private checkDuplicates(any: Resource, dirty: Dirty): void {
    const members = this.named(any.kind, any.metadata.namespace, any.metadata.name);
    const first = members[0];
    const key = `${any.kind}/${any.metadata.namespace}/${any.metadata.name}`;
    for (let i = 1; i < members.length; i++) {
      const r = members[i]!;
      // Right after the resource's own problems, as the whole-set pass reports it.
      const k = this.own.get(r)?.length ?? 0;
      this.setSlot(this.dupErrors, r, [{ e: errorAt(r, ['metadata', 'name'], `duplicate ${key}: already defined at ${first!.source.file}:${first!.source.line}`), at: r, phase: 0, gen: r, k }]);
      if (this.effectiveDr.has(r)) this.setEffectiveDr(r, false, dirty);
    }
    if (first === undefined) return;
    this.setSlot(this.dupErrors, first, NONE);
    // The DestinationRule that counts for subsets is the first of its key.
    if (first.kind === 'DestinationRule' && !this.effectiveDr.has(first)) this.setEffectiveDr(first, true, dirty);
  }

  private setEffectiveDr(dr: Resource, on: boolean, dirty: Dirty): void {
    if (on) this.effectiveDr.add(dr); else this.effectiveDr.delete(dr);
    const info = drSubsets(dr, this.clusterDomain);
    if (info === undefined) return;
    if (info.host.startsWith('*')) {
      if (on) this.drWildcards.add('', dr); else this.drWildcards.remove('', dr);
      // A wildcard rule may cover any referenced host (rare: a scan of the hosts).
      for (const [h, f] of this.hosts) if (f.refs !== undefined && hostCovers(info.host, h)) for (const vs of fewList(f.refs)) dirty.subsets.add(vs);
    } else {
      this.putHost(info.host, 'drs', dr, on);
      for (const vs of this.hostList(info.host, 'refs')) dirty.subsets.add(vs);
    }
  }

  private subsetsFor(h: string): { found: boolean; subsets: Set<string> } {
    const exact = this.hostList(h, 'drs');
    if (exact.length > 0) {
      const set = new Set<string>();
      for (const dr of exact) for (const n of drSubsets(dr, this.clusterDomain)!.subsets) set.add(n);
      return { found: true, subsets: set };
    }
    // Istio applies the most specific wildcard rule (the first of equally specific ones).
    let best: { host: string; dr: Resource } | undefined;
    for (const dr of this.drWildcards.get('')) {
      const info = drSubsets(dr, this.clusterDomain)!;
      if (hostCovers(info.host, h) && (!best || info.host.length > best.host.length)) best = { host: info.host, dr };
    }
    return best ? { found: true, subsets: new Set(drSubsets(best.dr, this.clusterDomain)!.subsets) } : { found: false, subsets: new Set() };
  }

  private checkSubsets(vs: Resource): void {
    const facts = vsFacts(vs)!;
    const out: Problem[] = [];
    for (const ref of subsetRefs(vs, facts)) {
      if (ref.host.includes('*')) continue;
      const h = expandHost(ref.host, vs.metadata.namespace, this.clusterDomain);
      const { found, subsets } = this.subsetsFor(h);
      let e: ConfigError | undefined;
      if (!found) e = errorAt(vs, [...ref.path, 'subset'], `subset ${ref.subset} is not defined: no DestinationRule for ${h}`);
      else if (!subsets.has(ref.subset)) e = errorAt(vs, [...ref.path, 'subset'], `subset ${ref.subset} is not defined by any DestinationRule for ${h} (defined: ${[...subsets].sort().join(', ') || 'none'})`);
      if (e !== undefined) out.push({ e, at: vs, phase: 1, gen: vs, k: out.length });
    }
    this.setSlot(this.subsetErrors, vs, out);
  }

  private checkDelegates(root: Resource): void {
    const facts = vsFacts(root)!;
    const out: Problem[] = [];
    for (const d of facts.delegates) {
      const key = `${d.namespace}/${d.name}`;
      // Of several VirtualServices of one name (a duplicate, itself an error), the last one written is the target.
      const targets = this.named('VirtualService', d.namespace, d.name);
      const target = targets[targets.length - 1];
      let e: ConfigError | undefined;
      if (!target) e = errorAt(root, [...d.path, 'name'], `delegate VirtualService ${key} not found`);
      else if (vsFacts(target)!.hosts.length > 0) e = errorAt(root, [...d.path, 'name'], `VirtualService ${key} has hosts, so it cannot be a delegate`);
      if (e !== undefined) out.push({ e, at: root, phase: 2, gen: root, k: out.length });
    }
    this.setSlot(this.delegateErrors, root, out);
  }

  private checkHostless(vs: Resource): void {
    const facts = vsFacts(vs)!;
    const key = `${vs.metadata.namespace}/${vs.metadata.name}`;
    const missing = facts.hosts.length === 0 && this.rootsByTarget.get(key).length === 0;
    this.setSlot(this.hostlessErrors, vs, missing
      ? [{ e: errorAt(vs, ['spec', 'hosts'], 'hosts is required: only a delegate VirtualService may omit hosts, and no VirtualService delegates to this one'), at: vs, phase: 3, gen: vs, k: 0 }]
      : NONE);
  }

  private checkClaims(key: string): void {
    const nl = key.indexOf('\n');
    const ns = key.slice(0, nl);
    const host = key.slice(nl + 1);
    const claimants = this.hostList(host, 'claims').filter((v) => v.metadata.namespace === ns);
    const out: Problem[] = [];
    const owner = claimants[0];
    if (owner !== undefined && claimants.length > 1) {
      for (let c = 1; c < claimants.length; c++) {
        const v = claimants[c]!;
        vsFacts(v)!.hosts.forEach((h, i) => {
          if (expandHost(h, v.metadata.namespace, this.clusterDomain) !== host) return;
          out.push({
            e: errorAt(v, ['spec', 'hosts', i], `VirtualService ${owner.metadata.namespace}/${owner.metadata.name} (${owner.source.file}:${owner.source.line}) also defines host ${h}; Istio merges VirtualServices only on gateways, so for sidecars only one applies`, 'warning'),
            at: v, phase: 4, gen: v, k: i,
          });
        });
      }
    }
    this.setSlot(this.claimWarnings, key, out);
  }

  private checkIdentity(se: Resource): void {
    const ns = se.metadata.namespace;
    const sel = identitySelector(se);
    let entries: readonly Resource[] = [];
    if (sel !== undefined) {
      let first: string | undefined;
      for (const k in sel) { first = k; break; }
      entries = first === undefined ? this.weByNs.get(ns) : this.weByLabel.get(labelKey(ns, first, sel[first]));
    }
    const found = serviceEntryIdentityWarnings(se, (h) => fewLast(this.hosts.get(h)?.idDrs), entries, this.clusterDomain);
    // Warnings only: where they are located counts for nothing but their order.
    this.setSlot(this.identityWarnings, se, found.map((e, k) => ({ e, at: se, phase: 5, gen: se, k })));
  }

  // === problem bookkeeping ===

  private setSlot<K>(m: Map<K, readonly Problem[]>, key: K, list: readonly Problem[]): void {
    const prev = m.get(key);
    if (prev === undefined && list.length === 0) return;
    if (prev !== undefined) for (const p of prev) if (p.e.severity !== 'warning') this.count(p.at, -1);
    if (list.length === 0) m.delete(key);
    else {
      m.set(key, list);
      for (const p of list) if (p.e.severity !== 'warning') this.count(p.at, 1);
    }
  }

  private count(r: Resource, d: number): void {
    this.errors += d;
    const n = (this.errorsIn.get(r) ?? 0) + d;
    if (n === 0) this.errorsIn.delete(r); else this.errorsIn.set(r, n);
  }
}

/** What one update leaves to re-check. */
export class Dirty {
  /** Duplicate keys to re-check, each with one resource of the key. */
  readonly dup = new Map<string, Resource>();
  readonly subsets = new Set<Resource>();
  readonly delegates = new Set<Resource>();
  /** `ns/name` of VirtualServices whose being named as a delegate may have changed. */
  readonly hostless = new Set<string>();
  /** VirtualServices to re-check for that (an unnamed one is not found by name). */
  readonly hostlessVs = new Set<Resource>();
  /** `ns\nhost` claims to re-check. */
  readonly claims = new Set<string>();
  readonly identity = new Set<Resource>();
}

function weLabels(r: Resource): Record<string, unknown> {
  const l = (r.spec as { labels?: unknown }).labels;
  return typeof l === 'object' && l !== null && !Array.isArray(l) ? (l as Record<string, unknown>) : {};
}

function labelKey(ns: string, k: string, v: unknown): string {
  return `${ns}\0${k}\0${String(v)}`;
}

/** A selector's index key: its first label (`ns\0` for an empty selector, which picks the whole namespace). */
function selectorKey(ns: string, sel: Record<string, unknown>): string {
  for (const k in sel) return labelKey(ns, k, sel[k]);
  return `${ns}\0`;
}
