/**
 * The rollout loop: apply a step's weights, wait one interval, compare canary and stable, decide (advance, hold,
 * promote, roll back), write the weights and the state, repeat. I/O goes through a `Target` (the VirtualService),
 * a `MetricSource` and the injected clock, so the loop runs in unit tests against fakes.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { decide, evaluate, type CheckResult, type Criteria, type Window } from './analysis.js';
import type { MetricSource, Windows } from './metrics-source.js';
import type { Step } from './plan.js';
import { lockStatus, lockTtl, pushHistory, type Command, type Phase, type RolloutState } from './state.js';
import { ConflictError, type Loaded, type Target } from './target.js';

export interface RolloutOptions {
  virtualService: string;
  namespace: string;
  host?: string;
  stable: string;
  canary: string;
  steps: Step[];
  intervalMs: number;
  /** Prometheus window (ms); defaults to the interval. */
  windowMs?: number;
  criteria: Criteria;
  threshold: number;
  maxHolds: number;
  headerCanary?: { name: string; value: string };
}

export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const realClock: Clock = { now: () => Date.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)) };

export interface TickEvent {
  kind: 'start' | 'resume' | 'check' | 'step' | 'end' | 'info';
  state: RolloutState;
  check?: CheckResult;
  action?: string;
  message: string;
}

export class RolloutError extends Error {
  constructor(message: string, readonly exitCode = 2) {
    super(message);
    this.name = 'RolloutError';
  }
}

export function newOwner(): string {
  return `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** Apply the weights, mirror and header route of the state's current step (or of its final phase) to the editor. */
export function applyToEditor(l: Loaded, s: RolloutState): void {
  const e = l.editor;
  const host = s.host;
  const done = s.phase !== 'Progressing';
  e.setHeaderRoute(s.stable, s.canary, done ? undefined : s.headerCanary, host);
  const step = s.steps[s.stepIndex];
  e.setMirror(s.stable, s.canary, done ? 0 : (step?.mirrorPercent ?? 0), host);
  e.setWeights(s.stable, s.canary, s.canaryWeight, host);
}

export class Rollout {
  readonly owner: string;
  private stopped = false;
  private stopReason = '';

  constructor(
    private readonly target: Target,
    private readonly source: MetricSource | undefined,
    private readonly clock: Clock = realClock,
    private readonly emit: (e: TickEvent) => void = () => {},
    owner = newOwner(),
    /** How often a waiting runner looks for abort/promote requests (ms). */
    private readonly pollMs = 500,
  ) {
    this.owner = owner;
  }

  /** Stop after the current wait (SIGINT/SIGTERM): weights stay, the lock is released, a later run resumes. */
  stop(reason: string): void {
    this.stopped = true;
    this.stopReason = reason;
  }

  /**
   * Read, change and write the VirtualService and state, retrying on a concurrent change. `fn` gets the state as
   * read and returns the state to write (or throws). The lock is checked on every write.
   */
  private async mutate(fn: (l: Loaded, s: RolloutState | undefined) => RolloutState, acquire = false): Promise<RolloutState> {
    for (let attempt = 0; ; attempt++) {
      const l = await this.target.read();
      const ls = lockStatus(l.state, this.owner, this.clock.now());
      if (!acquire && ls !== 'mine') throw new RolloutError(`lost the rollout lock (now ${l.state?.lock ? `held by ${l.state.lock.owner}` : 'released'})`, 2);
      const next = fn(l, l.state);
      next.updatedAt = iso(this.clock.now());
      if (next.lock && next.lock.owner === this.owner) next.lock.heartbeatAt = next.updatedAt;
      try {
        await this.target.write(l, next);
        return next;
      } catch (err) {
        if (err instanceof ConflictError && attempt < 5) continue;
        // A transient failure (API server or file system) gets a few more tries, a second apart.
        if (!(err instanceof ConflictError) && attempt < 3) {
          await this.clock.sleep(1000);
          continue;
        }
        throw err;
      }
    }
  }

  /** Start (or resume) and drive the rollout to its end. Resolves to the final phase (or 'Progressing' when stopped). */
  async run(o: RolloutOptions): Promise<{ phase: Phase; state: RolloutState }> {
    let resumed = false;
    let state = await this.mutate((l, prev) => {
      const now = this.clock.now();
      const ls = lockStatus(prev, this.owner, now);
      if (prev && prev.phase === 'Progressing') {
        if (ls === 'held') {
          const age = Math.round((now - Date.parse(prev.lock!.heartbeatAt)) / 1000);
          throw new RolloutError(`another rollout of ${o.namespace}/${o.virtualService} is running (${prev.lock!.owner}, last seen ${age} s ago); use \`remora rollout status|abort|promote\``, 2);
        }
        if (prev.stable !== o.stable || prev.canary !== o.canary) {
          throw new RolloutError(`an unfinished rollout of ${o.namespace}/${o.virtualService} moves ${prev.stable} → ${prev.canary}; abort it first`, 2);
        }
        resumed = true;
        const s: RolloutState = { ...prev, lock: { owner: this.owner, heartbeatAt: iso(now), ttlMs: lockTtl(prev.intervalMs) } };
        s.message = `resumed at step ${s.stepIndex + 1}/${s.steps.length} (${ls === 'stale' ? 'the previous runner went silent' : 'the previous runner stopped'})`;
        pushHistory(s, iso(now), 'resume', s.message);
        applyToEditor(l, s);
        return s;
      }
      // A new rollout: the route must exist and hold only the two subsets (findRoute throws precisely otherwise).
      const ref = l.editor.findRoute(o.stable, o.canary, o.host);
      if (ref.canary === 100 && !ref.hasStable) throw new RolloutError(`${o.virtualService}: the route already sends 100 % to ${o.canary}; nothing to roll out`, 2);
      const first = o.steps[0]!;
      const s: RolloutState = {
        version: 1, virtualService: o.virtualService, namespace: o.namespace, stable: o.stable, canary: o.canary,
        steps: o.steps, stepIndex: 0, canaryWeight: first.canaryWeight, phase: 'Progressing',
        criteria: o.criteria, intervalMs: o.intervalMs, threshold: o.threshold, maxHolds: o.maxHolds,
        failedChecks: 0, heldChecks: 0, message: `step 1/${o.steps.length}: canary ${first.canaryWeight}%${first.mirrorPercent ? `, mirroring ${first.mirrorPercent}%` : ''}`,
        startedAt: iso(now), updatedAt: iso(now), stepStartedAt: iso(now),
        lock: { owner: this.owner, heartbeatAt: iso(now), ttlMs: lockTtl(o.intervalMs) }, history: [],
      };
      if (o.host !== undefined) s.host = o.host;
      if (o.headerCanary) s.headerCanary = o.headerCanary;
      pushHistory(s, iso(now), 'start', s.message);
      applyToEditor(l, s);
      return s;
    }, true);
    this.emit({ kind: resumed ? 'resume' : 'start', state, message: state.message });
    // A stale abort/promote request from an earlier run must not act on this one.
    if (!resumed) await this.target.writeCommand(undefined).catch(() => {});

    for (;;) {
      // A mirror step's canary gets shadows only: counted from the canary's own sidecar (metrics-source.ts).
      const mirror = (state.steps[state.stepIndex]?.mirrorPercent ?? 0) > 0;
      await this.source?.begin({ mirror });
      const cmd = await this.wait(state.intervalMs);
      if (cmd) return this.finishByCommand(cmd);
      if (this.stopped) {
        state = await this.mutate((_l, s) => {
          const n = { ...s!, lock: null, message: `stopped (${this.stopReason}) at step ${s!.stepIndex + 1}/${s!.steps.length}; run the same command again to resume` };
          return n;
        });
        this.emit({ kind: 'info', state, message: state.message });
        return { phase: 'Progressing', state };
      }
      const empty: Window = { requests: 0, failures: 0, buckets: [] };
      let windows: Windows = { stable: empty, canary: empty };
      let unavailable: string | undefined;
      try {
        if (this.source) windows = await this.source.collect(o.windowMs ?? state.intervalMs, { mirror });
      } catch (err) {
        unavailable = `metrics unavailable (${(err as Error).message.slice(0, 200)})`;
      }
      let check = evaluate(windows.canary, windows.stable, state.criteria);
      // No numbers is no evidence either way: the step holds, as with too little traffic, and never promotes.
      if (unavailable !== undefined) check = { ...check, verdict: 'insufficient', reasons: [unavailable] };
      const next = state.steps[state.stepIndex + 1];
      const d = decide(check, { stepIndex: state.stepIndex, nextWeight: next?.canaryWeight, failedChecks: state.failedChecks, heldChecks: state.heldChecks }, { threshold: state.threshold, maxHolds: state.maxHolds });
      state = await this.mutate((l, s) => {
        const now = iso(this.clock.now());
        const n: RolloutState = { ...s!, failedChecks: d.failedChecks, heldChecks: d.heldChecks, message: d.reason };
        n.lastCheck = { at: now, stepIndex: n.stepIndex, canaryWeight: n.canaryWeight, verdict: check.verdict, action: d.action, reason: d.reason, canary: check.canary, stable: check.stable };
        if (d.action === 'advance') {
          n.stepIndex++;
          n.canaryWeight = n.steps[n.stepIndex]!.canaryWeight;
          n.stepStartedAt = now;
        } else if (d.action === 'promote') {
          n.stepIndex = n.steps.length - 1;
          n.canaryWeight = 100;
          n.phase = 'Promoted';
          n.finishedAt = now;
          n.lock = null;
          n.message = `promoted: ${n.canary} serves 100 % (${d.reason})`;
        } else if (d.action === 'rollback') {
          n.canaryWeight = 0;
          n.phase = 'RolledBack';
          n.finishedAt = now;
          n.lock = null;
          n.message = `rolled back to ${n.stable}: ${d.reason}`;
        }
        pushHistory(n, now, d.action, n.message);
        applyToEditor(l, n);
        return n;
      });
      this.emit({ kind: state.phase === 'Progressing' ? (d.action === 'advance' ? 'step' : 'check') : 'end', state, check, action: d.action, message: state.message });
      if (state.phase !== 'Progressing') return { phase: state.phase, state };
    }
  }

  /** Wait `ms`, looking for abort/promote requests and a stop; returns a request if one came. */
  private async wait(ms: number): Promise<Command | undefined> {
    const end = this.clock.now() + ms;
    for (;;) {
      const cmd = await this.target.readCommand().catch(() => undefined);
      if (cmd) return cmd;
      const left = end - this.clock.now();
      if (left <= 0 || this.stopped) return undefined;
      await this.clock.sleep(Math.min(this.pollMs, left));
    }
  }

  private async finishByCommand(cmd: Command): Promise<{ phase: Phase; state: RolloutState }> {
    const state = await this.mutate((l, s) => finish(l, s!, cmd, this.clock.now()));
    await this.target.writeCommand(undefined).catch(() => {});
    this.emit({ kind: 'end', state, action: cmd.action, message: state.message });
    return { phase: state.phase, state };
  }
}

/** End a rollout by request: abort = back to 0 % canary, promote = 100 %. */
export function finish(l: Loaded, s: RolloutState, cmd: Command, nowMs: number): RolloutState {
  const now = iso(nowMs);
  const n: RolloutState = { ...s, lock: null, finishedAt: now, failedChecks: 0, heldChecks: 0 };
  if (cmd.action === 'abort') {
    n.canaryWeight = 0;
    n.phase = 'Aborted';
    n.message = `aborted by ${cmd.by}${cmd.reason ? `: ${cmd.reason}` : ''}; ${n.stable} serves 100 %`;
  } else {
    n.canaryWeight = 100;
    n.stepIndex = n.steps.length - 1;
    n.phase = 'Promoted';
    n.message = `promoted by ${cmd.by}${cmd.reason ? `: ${cmd.reason}` : ''}; ${n.canary} serves 100 %`;
  }
  pushHistory(n, now, cmd.action, n.message);
  applyToEditor(l, n);
  return n;
}

/**
 * `remora rollout abort|promote` from another process: with a live runner, leave it a request and wait until it
 * acted; with none (stopped or crashed), act directly. Returns the final state.
 */
export async function command(target: Target, action: 'abort' | 'promote', by: string, reason?: string, clock: Clock = realClock, waitMs = 15_000): Promise<RolloutState> {
  const l = await target.read();
  const s = l.state;
  if (!s) throw new RolloutError('no rollout recorded on this VirtualService', 2);
  if (s.phase !== 'Progressing') throw new RolloutError(`the rollout already ended: ${s.phase} (${s.message})`, 2);
  const cmd: Command = { action, at: iso(clock.now()), by };
  if (reason) cmd.reason = reason;
  if (lockStatus(s, by, clock.now()) === 'held') {
    await target.writeCommand(cmd);
    const end = clock.now() + waitMs;
    while (clock.now() < end) {
      await clock.sleep(200);
      const now = (await target.read()).state;
      if (now && now.phase !== 'Progressing') return now;
    }
    throw new RolloutError(`the running rollout (${s.lock!.owner}) did not act on the ${action} request within ${Math.round(waitMs / 1000)} s; it stays queued`, 2);
  }
  for (let attempt = 0; ; attempt++) {
    const cur = attempt === 0 ? l : await target.read();
    if (!cur.state || cur.state.phase !== 'Progressing') throw new RolloutError('the rollout ended meanwhile', 2);
    const next = finish(cur, cur.state, cmd, clock.now());
    next.updatedAt = iso(clock.now());
    try {
      await target.write(cur, next);
      return next;
    } catch (err) {
      if (err instanceof ConflictError && attempt < 5) continue;
      throw err;
    }
  }
}
