/**
 * A ValidationState fed by groups of resources (one group per file, then one per other source, in input order):
 * each call hands every group's current list, and only the groups whose list is not the same array as last time are
 * compared, resource by resource (by identity), so unchanged files cost nothing but a look at their array. In a
 * changed group only the resources that came or went are checked (a file parsed again keeps the Resource objects of
 * its unchanged documents, parse.ts), and of the kept ones those with a problem that names their line (they may have
 * moved). The problems are validateResources' for the concatenation of the groups, in order. Pure.
 */
import type { ConfigError, Resource } from '../resource.js';
import { DEFAULT_CLUSTER_DOMAIN } from '../hosts.js';
import { ValidationState } from './state.js';

export interface ResourceGroup {
  /** Unique among the groups of one call (a file name, a source name). */
  readonly key: string;
  readonly resources: readonly Resource[];
}

/**
 * A resource's place, one number: its group's slot × SPAN + its index in the group (a small integer for most, stored
 * in the map as is; an object per resource cost ~37 bytes more, of the validation state's ~220 per resource).
 */
const SPAN = 2 ** 26;

export class GroupedValidation {
  private state: ValidationState;
  private readonly clusterDomain: string;
  /** Each group's list as last handed in. */
  private groups = new Map<string, readonly Resource[]>();
  /** Group ranks of the current call. */
  private rank = new Map<string, number>();
  /** Each present group's slot (a small number, reused when its group goes), and each slot's rank. */
  private slots = new Map<string, number>();
  private slotRank: number[] = [];
  private freeSlots: number[] = [];
  /** Each present resource's place: slot × SPAN + index. */
  private readonly where = new Map<Resource, number>();
  /**
   * Resources checked again in the last call (removed, added, and kept ones with a problem that names their line):
   * 0 when nothing changed.
   */
  lastTouched = 0;
  /** Times the state was started again from nothing (rebuild: asked for, or groups reordered). */
  rebuilds = 0;

  constructor(opts: { clusterDomain?: string } = {}) {
    this.clusterDomain = opts.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN;
    this.state = this.fresh();
  }

  private fresh(): ValidationState {
    return new ValidationState({ clusterDomain: this.clusterDomain, order: (a, b) => this.compare(a, b) });
  }

  private compare(a: Resource, b: Resource): number {
    const wa = this.where.get(a)!;
    const wb = this.where.get(b)!;
    const sa = Math.floor(wa / SPAN);
    const sb = Math.floor(wb / SPAN);
    return sa === sb ? wa - wb : this.slotRank[sa]! - this.slotRank[sb]!;
  }

  private slotOf(key: string): number {
    let s = this.slots.get(key);
    if (s === undefined) {
      s = this.freeSlots.pop() ?? this.slots.size;
      this.slots.set(key, s);
    }
    return s;
  }

  private static place(slot: number, index: number): number {
    if (index >= SPAN) throw new Error('GroupedValidation: a group of more than 2^26 resources');
    return slot * SPAN + index;
  }

  /**
   * Bring the state to `groups` and return every problem, as validateResources(groups' resources concatenated)
   * would. Groups' relative order must not change between calls for the groups present in both (files are listed
   * sorted; sources keep their place); a group may come or go anywhere.
   */
  update(groups: readonly ResourceGroup[]): ConfigError[] {
    const next = new Map<string, readonly Resource[]>();
    const rank = new Map<string, number>();
    groups.forEach((g, i) => { next.set(g.key, g.resources); rank.set(g.key, i); });
    if (next.size !== groups.length) throw new Error('GroupedValidation: two groups with one key');
    // The groups present before and after must keep their relative order (else the state's indexes, sorted by the old
    // order, would disagree with the new one): otherwise start again from nothing.
    let last = -1;
    for (const g of groups) {
      const r = this.rank.get(g.key);
      if (r === undefined) continue;
      if (r < last) return this.rebuild(groups);
      last = r;
    }
    const removed: Resource[] = [];
    const added: Array<[Resource, number, string]> = [];
    const moved: Array<[Resource, number]> = [];
    /** Kept resources of changed groups: they may stand on other lines (a document above them grew or shrank). */
    const kept: Resource[] = [];
    for (const [k, old] of this.groups) {
      const now = next.get(k);
      if (now === old) continue;
      if (now === undefined) { for (const r of old) removed.push(r); continue; }
      const keep = new Set(now);
      for (const r of old) if (!keep.has(r)) removed.push(r);
    }
    for (const g of groups) {
      const old = this.groups.get(g.key);
      if (old === g.resources) continue;
      const had = old === undefined ? undefined : new Set(old);
      let prev = -1;
      for (let i = 0; i < g.resources.length; i++) {
        const r = g.resources[i]!;
        if (had !== undefined && had.has(r)) {
          const at = this.where.get(r)! % SPAN;
          // A kept resource must keep its place among the kept ones (as resources of a source sorted by name do).
          if (at < prev) return this.rebuild(groups);
          prev = at;
          if (at !== i) moved.push([r, i]);
          kept.push(r);
        } else added.push([r, i, g.key]);
      }
    }
    // Removal is ordered by the old places, addition by the new ones; both agree on whatever stays.
    // One re-check for the whole change (ValidationState.begin): a DestinationRule replaced is not checked missing.
    const dirty = this.state.begin();
    this.state.take(removed, dirty);
    for (const r of removed) this.where.delete(r);
    for (const k of this.groups.keys()) {
      if (next.has(k)) continue;
      this.freeSlots.push(this.slots.get(k)!);
      this.slots.delete(k);
    }
    this.rank = rank;
    for (const [k, i] of rank) this.slotRank[this.slotOf(k)] = i;
    for (const [r, index] of moved) this.where.set(r, GroupedValidation.place(Math.floor(this.where.get(r)! / SPAN), index));
    for (const [r, index, group] of added) this.where.set(r, GroupedValidation.place(this.slots.get(group)!, index));
    // A kept resource of a changed group whose problems name its line (few: an accepted config has no errors) is
    // taken out and in again, its checks and those naming it run again, in case its document moved; the others keep
    // their problems as they are (they do not depend on the line).
    const again: Resource[] = [];
    for (const r of kept) if (this.state.placed(r)) again.push(r);
    this.state.take(again, dirty);
    this.state.put(again.concat(added.map((a) => a[0])), dirty);
    this.state.finish(dirty);
    this.groups = next;
    this.lastTouched = removed.length + added.length + again.length;
    return this.state.problems();
  }

  /** Start again from nothing: every resource validated anew (the reference path, and the fallback). */
  rebuild(groups: readonly ResourceGroup[]): ConfigError[] {
    this.rebuilds++;
    this.state = this.fresh();
    this.where.clear();
    this.rank = new Map();
    this.groups = new Map();
    this.slots = new Map();
    this.slotRank = [];
    this.freeSlots = [];
    let touched = 0;
    const all: Resource[] = [];
    groups.forEach((g, gi) => {
      this.rank.set(g.key, gi);
      this.groups.set(g.key, g.resources);
      const slot = this.slotOf(g.key);
      this.slotRank[slot] = gi;
      g.resources.forEach((r, index) => { if (!this.where.has(r)) { this.where.set(r, GroupedValidation.place(slot, index)); all.push(r); } });
      touched += g.resources.length;
    });
    this.state.update([], all);
    this.lastTouched = touched;
    return this.state.problems();
  }
}
