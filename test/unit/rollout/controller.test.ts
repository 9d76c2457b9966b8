/** The rollout loop against an in-memory VirtualService, scripted metrics and a fake clock: no sockets, no timers. */
import { describe, expect, it } from 'vitest';
import { command, Rollout, RolloutError, type Clock, type RolloutOptions, type TickEvent } from '../../../src/rollout/controller.js';
import { ConflictError, type Loaded, type Target } from '../../../src/rollout/target.js';
import { VsEditor } from '../../../src/rollout/vs-edit.js';
import { ANNOTATION, parseState, lockStatus, type Command, type RolloutState } from '../../../src/rollout/state.js';
import type { MetricSource, Windows } from '../../../src/rollout/metrics-source.js';
import { buildPlan } from '../../../src/rollout/plan.js';
import type { Window } from '../../../src/rollout/analysis.js';

class MemTarget implements Target {
  readonly description = 'memory';
  obj: Record<string, any> = {
    apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'reviews', namespace: 'default' },
    spec: { hosts: ['reviews'], http: [{ name: 'main', route: [{ destination: { host: 'reviews', subset: 'v1' } }] }] },
  };
  rv = 1;
  writes: Array<{ weights: Array<[string, number]>; state: RolloutState }> = [];
  cmd: Command | undefined;
  conflictOnce = false;
  async read(): Promise<Loaded> {
    const editor = VsEditor.fromObject(structuredClone(this.obj));
    return { editor, state: parseState(editor.annotation(ANNOTATION)), version: String(this.rv) };
  }
  async write(l: Loaded, s: RolloutState): Promise<void> {
    if (this.conflictOnce) { this.conflictOnce = false; this.rv++; throw new ConflictError('changed'); }
    if (l.version !== String(this.rv)) throw new ConflictError('changed');
    l.editor.setAnnotation(ANNOTATION, JSON.stringify(s));
    this.obj = l.editor.toObject();
    this.rv++;
    this.writes.push({ weights: this.weights(), state: s });
  }
  weights(): Array<[string, number]> {
    const main = (this.obj.spec.http as Array<{ name?: string; route: Array<{ destination: { subset: string }; weight?: number }> }>).find((r) => r.name === 'main')!;
    return main.route.map((d) => [d.destination.subset, d.weight ?? 100]);
  }
  async readCommand(): Promise<Command | undefined> { return this.cmd; }
  async writeCommand(c: Command | undefined): Promise<void> { this.cmd = c; }
}

class FakeClock implements Clock {
  t = Date.UTC(2026, 11, 4, 12, 0, 0);
  onSleep: ((t: number) => void) | undefined;
  now(): number { return this.t; }
  async sleep(ms: number): Promise<void> { this.t += ms; this.onSleep?.(this.t); }
}

const w = (requests: number, failures = 0): Window => ({ requests, failures, buckets: [[5, requests], [Infinity, requests]] });

/** Windows per collect() call, from a function of the canary weight at that moment. */
class ScriptSource implements MetricSource {
  readonly description = 'script';
  calls = 0;
  constructor(private readonly target: MemTarget, private readonly f: (canaryWeight: number, call: number) => Windows) {}
  async begin(): Promise<void> {}
  async collect(): Promise<Windows> {
    const cw = this.target.weights().find(([s]) => s === 'v2')?.[1] ?? 0;
    return this.f(cw, this.calls++);
  }
}

const OPTS: RolloutOptions = {
  virtualService: 'reviews', namespace: 'default', stable: 'v1', canary: 'v2', steps: buildPlan({ steps: [10, 50, 100] }),
  intervalMs: 60_000, criteria: { maxErrorRate: 0.01, maxP99Ms: 300, minRequests: 100 }, threshold: 1, maxHolds: 3,
};

describe('Rollout', () => {
  it('healthy canary: 10 → 50 → promoted; one destination at 100 after; lock released', async () => {
    const t = new MemTarget();
    const clock = new FakeClock();
    const events: TickEvent[] = [];
    const r = new Rollout(t, new ScriptSource(t, (cw) => ({ stable: w(10 * (100 - cw)), canary: w(10 * cw) })), clock, (e) => events.push(e), 'me');
    const res = await r.run(OPTS);
    expect(res.phase).toBe('Promoted');
    expect(t.writes.map((x) => x.weights)).toEqual([[['v1', 90], ['v2', 10]], [['v1', 50], ['v2', 50]], [['v2', 100]]]);
    expect(events.map((e) => e.action ?? e.kind)).toEqual(['start', 'advance', 'promote']);
    expect(res.state).toMatchObject({ phase: 'Promoted', lock: null, canaryWeight: 100 });
    expect(clock.t - Date.UTC(2026, 11, 4, 12, 0, 0)).toBe(2 * 60_000);
  });

  it('a breach rolls back at once to the stable subset alone, and says why', async () => {
    const t = new MemTarget();
    const r = new Rollout(t, new ScriptSource(t, (cw) => ({ stable: w(1000), canary: w(10 * cw, cw >= 50 ? 40 : 0) })), new FakeClock(), () => {}, 'me');
    const res = await r.run(OPTS);
    expect(res.phase).toBe('RolledBack');
    expect(t.weights()).toEqual([['v1', 100]]);
    expect(res.state.message).toMatch(/rolled back to v1: canary error rate 8% > 1% \(40\/500\)/);
    expect(res.state.lastCheck).toMatchObject({ canaryWeight: 50, verdict: 'fail', action: 'rollback' });
  });

  it('threshold 2 tolerates one failed check', async () => {
    const t = new MemTarget();
    const r = new Rollout(t, new ScriptSource(t, (cw, call) => ({ stable: w(1000), canary: w(10 * cw, call === 0 ? 50 : 0) })), new FakeClock(), () => {}, 'me');
    expect((await r.run({ ...OPTS, threshold: 2 })).phase).toBe('Promoted');
  });

  it('too little traffic: held at the first step, then not promoted', async () => {
    const t = new MemTarget();
    const r = new Rollout(t, new ScriptSource(t, () => ({ stable: w(900), canary: w(20) })), new FakeClock(), () => {}, 'me');
    const res = await r.run(OPTS);
    expect(res.phase).toBe('RolledBack');
    expect(res.state.message).toMatch(/not promoted: too little traffic: 20 canary requests < 100 in 3 consecutive checks/);
    expect(t.writes.map((x) => x.state.stepIndex)).toEqual([0, 0, 0, 0]);
  });

  it('a second runner refuses while the lock is fresh; a stale lock is taken over and the rollout resumes at its step', async () => {
    const t = new MemTarget();
    const clock = new FakeClock();
    const first = new Rollout(t, new ScriptSource(t, (cw) => ({ stable: w(1000), canary: w(10 * cw) })), clock, () => {}, 'first');
    // Stop the first runner after its first step, as a killed process would: the lock stays behind.
    let steps = 0;
    const p = first.run(OPTS);
    clock.onSleep = () => { if (t.weights().some(([s, x]) => s === 'v2' && x === 50) && steps++ === 0) first.stop('test'); };
    await p;
    // A stopped runner releases the lock; simulate a crash instead by putting a fresh foreign lock back.
    const l = await t.read();
    const s = l.state!;
    expect(s).toMatchObject({ phase: 'Progressing', stepIndex: 1, lock: null });
    s.lock = { owner: 'crashed', heartbeatAt: new Date(clock.t).toISOString(), ttlMs: 180_000 };
    await t.write(l, s);
    const second = new Rollout(t, new ScriptSource(t, (cw) => ({ stable: w(1000), canary: w(10 * cw) })), clock, () => {}, 'second');
    await expect(second.run(OPTS)).rejects.toThrow(/another rollout of default\/reviews is running \(crashed/);
    expect(lockStatus((await t.read()).state, 'second', clock.t)).toBe('held');
    clock.t += 180_001;
    expect(lockStatus((await t.read()).state, 'second', clock.t)).toBe('stale');
    const res = await second.run(OPTS);
    expect(res.phase).toBe('Promoted');
    expect(res.state.history.map((h) => h.action)).toEqual(['start', 'advance', 'resume', 'promote']);
  });

  it('abort from another process: the runner sees the request during its wait and rolls back', async () => {
    const t = new MemTarget();
    const clock = new FakeClock();
    clock.onSleep = (now) => { if (now - Date.UTC(2026, 11, 4, 12, 0, 0) >= 30_000 && !t.cmd && t.writes.length === 1) t.cmd = { action: 'abort', at: '', by: 'ops', reason: 'pager' }; };
    const r = new Rollout(t, new ScriptSource(t, (cw) => ({ stable: w(1000), canary: w(10 * cw) })), clock, () => {}, 'me');
    const res = await r.run(OPTS);
    expect(res.phase).toBe('Aborted');
    expect(res.state.message).toBe('aborted by ops: pager; v1 serves 100 %');
    expect(t.weights()).toEqual([['v1', 100]]);
    expect(t.cmd).toBeUndefined();
  });

  it('promote/abort without a live runner act directly; an ended rollout refuses', async () => {
    const t = new MemTarget();
    const clock = new FakeClock();
    const r = new Rollout(t, new ScriptSource(t, () => ({ stable: w(1000), canary: w(100) })), clock, () => {}, 'me');
    r.stop('test');
    await r.run(OPTS);
    const s = await command(t, 'promote', 'ops', undefined, clock);
    expect(s.phase).toBe('Promoted');
    expect(t.weights()).toEqual([['v2', 100]]);
    await expect(command(t, 'abort', 'ops', undefined, clock)).rejects.toThrow(/already ended: Promoted/);
  });

  it('retries a write after a concurrent change (conflict)', async () => {
    const t = new MemTarget();
    t.conflictOnce = true;
    const r = new Rollout(t, new ScriptSource(t, (cw) => ({ stable: w(1000), canary: w(10 * cw) })), new FakeClock(), () => {}, 'me');
    expect((await r.run(OPTS)).phase).toBe('Promoted');
  });

  it('metrics that cannot be read hold the step (never promote); transient write failures are retried', async () => {
    const t = new MemTarget();
    let failWrites = 2;
    const write = t.write.bind(t);
    t.write = async (l, st) => {
      if (st.lastCheck && failWrites-- > 0) throw new Error('apiserver: 503');
      return write(l, st);
    };
    const source: MetricSource = { description: 'down', begin: async () => {}, collect: async () => { throw new Error('connect ECONNREFUSED 127.0.0.1:9090'); } };
    const res = await new Rollout(t, source, new FakeClock(), () => {}, 'me').run({ ...OPTS, maxHolds: 2 });
    expect(res.phase).toBe('RolledBack');
    expect(res.state.message).toMatch(/not promoted: metrics unavailable \(connect ECONNREFUSED 127\.0\.0\.1:9090\) in 2 consecutive checks/);
    expect(t.weights()).toEqual([['v1', 100]]);
  });

  it('refuses to start when the canary already has everything, or with other subsets in flight', async () => {
    const t = new MemTarget();
    t.obj.spec.http[0].route = [{ destination: { host: 'reviews', subset: 'v2' }, weight: 100 }];
    await expect(new Rollout(t, undefined, new FakeClock(), () => {}, 'me').run(OPTS)).rejects.toBeInstanceOf(RolloutError);
  });
});
