/**
 * The rollout's state record and its lock. Kept as JSON in the VirtualService's `remora.io/rollout` annotation
 * (Kubernetes) or in a hidden file beside the config file (`.<file>.rollout.json`, which the config loader skips),
 * so a restarted `remora rollout` resumes where it was, and a second one for the same VirtualService refuses while
 * the first holds a fresh lock. Pure: no I/O.
 */
import type { Step } from './plan.js';
import type { Criteria, SubsetStats } from './analysis.js';

export const ANNOTATION = 'remora.io/rollout';
/** The `http[]` route the rollout adds in front of its route for `--header-canary` (removed when the rollout ends). */
export const HEADER_ROUTE_NAME = 'remora-rollout-header-canary';
/** abort/promote requests from another process (a separate key, so the runner's writes never overwrite them). */
export const COMMAND_ANNOTATION = 'remora.io/rollout-command';

export type Phase = 'Progressing' | 'Promoted' | 'RolledBack' | 'Aborted';

export interface CheckRecord {
  at: string;
  stepIndex: number;
  canaryWeight: number;
  verdict: string;
  action: string;
  reason: string;
  canary: SubsetStats;
  stable: SubsetStats;
}

export interface RolloutState {
  version: 1;
  virtualService: string;
  namespace: string;
  host?: string;
  stable: string;
  canary: string;
  steps: Step[];
  stepIndex: number;
  canaryWeight: number;
  phase: Phase;
  criteria: Criteria;
  intervalMs: number;
  threshold: number;
  maxHolds: number;
  headerCanary?: { name: string; value: string };
  failedChecks: number;
  heldChecks: number;
  lastCheck?: CheckRecord;
  /** The last decision in words (also the reason of a rollback or an abort). */
  message: string;
  startedAt: string;
  updatedAt: string;
  /** When the current step's weights were applied. */
  stepStartedAt: string;
  finishedAt?: string;
  /** Held while a `remora rollout` process drives the rollout; null once it ended. */
  lock: { owner: string; heartbeatAt: string; ttlMs: number } | null;
  /** The last decisions, newest last (bounded). */
  history: Array<{ at: string; stepIndex: number; canaryWeight: number; action: string; reason: string }>;
}

export const HISTORY_MAX = 30;

export interface Command {
  action: 'abort' | 'promote';
  at: string;
  by: string;
  reason?: string;
}

export function parseState(text: string | undefined): RolloutState | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new Error('rollout state is not JSON');
  }
  const s = v as Partial<RolloutState>;
  if (!s || typeof s !== 'object' || s.version !== 1 || typeof s.phase !== 'string' || !Array.isArray(s.steps)) throw new Error('rollout state: unknown format');
  return s as RolloutState;
}

export function parseCommand(text: string | undefined): Command | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  try {
    const c = JSON.parse(text) as Command;
    return c && (c.action === 'abort' || c.action === 'promote') ? c : undefined;
  } catch {
    return undefined;
  }
}

export type LockStatus = 'free' | 'mine' | 'held' | 'stale';

/** Who may drive the rollout now: `owner` holds it (mine), another holds it freshly (held), or nobody does. */
export function lockStatus(s: RolloutState | undefined, owner: string, now: number): LockStatus {
  const l = s?.lock;
  if (!l) return 'free';
  if (l.owner === owner) return 'mine';
  const age = now - Date.parse(l.heartbeatAt);
  return Number.isFinite(age) && age <= l.ttlMs ? 'held' : 'stale';
}

/** A lock lives for three intervals (at least 15 s): the runner renews it at every check and while it waits. */
export function lockTtl(intervalMs: number): number {
  return Math.max(15_000, 3 * intervalMs);
}

export function pushHistory(s: RolloutState, at: string, action: string, reason: string): void {
  s.history.push({ at, stepIndex: s.stepIndex, canaryWeight: s.canaryWeight, action, reason });
  if (s.history.length > HISTORY_MAX) s.history.splice(0, s.history.length - HISTORY_MAX);
}

/** The compact form the admin dashboard shows (read from the annotation of the VirtualService the sidecar has). */
export interface RolloutBadge {
  phase: Phase;
  stable: string;
  canary: string;
  step: number;
  steps: number;
  canaryWeight: number;
  message: string;
  updatedAt: string;
  live: boolean;
  canarySuccessRate: number | null;
  canaryP99Ms: number | null;
  stableSuccessRate: number | null;
  stableP99Ms: number | null;
}

export function badgeOf(s: RolloutState, now: number): RolloutBadge {
  return {
    phase: s.phase, stable: s.stable, canary: s.canary,
    step: s.stepIndex + 1, steps: s.steps.length, canaryWeight: s.canaryWeight,
    message: s.message, updatedAt: s.updatedAt,
    live: s.lock !== null && now - Date.parse(s.lock.heartbeatAt) <= s.lock.ttlMs,
    canarySuccessRate: s.lastCheck?.canary.successRate ?? null, canaryP99Ms: s.lastCheck?.canary.p99Ms ?? null,
    stableSuccessRate: s.lastCheck?.stable.successRate ?? null, stableP99Ms: s.lastCheck?.stable.p99Ms ?? null,
  };
}
