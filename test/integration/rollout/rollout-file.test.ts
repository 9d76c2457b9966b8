/**
 * `remora rollout` end to end on loopback, file mode: two app versions behind `remora run` (dist/cli.js), a steady
 * open-loop load through its outbound port, and `remora rollout --config <the VirtualService file> --stats <its
 * /stats/prometheus>` as a child process. Short intervals keep each case to a few seconds.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { CLI, startProxy, waitFor, type RunningProxy } from '../../support/proxy-harness.js';
import { App, HOST, Load, mesh, rollout, VS_YAML, type RolloutProcess } from './support.js';
import { ANNOTATION, parseState } from '../../../src/rollout/state.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => { while (cleanups.length > 0) await cleanups.pop()!(); });

async function setup(rate: number): Promise<{ v1: App; v2: App; proxy: RunningProxy; load: Load; vsFile: string; stats: string }> {
  const v1 = await new App('v1').start();
  const v2 = await new App('v2').start();
  cleanups.push(() => v1.close(), () => v2.close());
  const proxy = await startProxy({ 'mesh.yaml': mesh(v1.port, v2.port), 'reviews-vs.yaml': VS_YAML });
  cleanups.push(() => proxy.stop());
  const load = new Load(proxy.info.outbound, HOST, rate).start();
  cleanups.push(() => load.stop());
  // Traffic flows (to v1 only) before the rollout starts.
  await waitFor(() => load.count('v1') >= 20, 5000);
  return { v1, v2, proxy, load, vsFile: join(proxy.dir, 'reviews-vs.yaml'), stats: `http://127.0.0.1:${proxy.info.stats}/stats/prometheus` };
}

function track(p: RolloutProcess): RolloutProcess {
  cleanups.push(() => p.kill());
  return p;
}

/** The rollout route's destinations as [subset, weight] in the file now. */
function routeOf(file: string): { route: Array<[string, number]>; text: string; state: ReturnType<typeof parseState> } {
  const text = readFileSync(file, 'utf8');
  const vs = parseAllDocuments(text)[0]!.toJS() as { metadata: { annotations?: Record<string, string> }; spec: { http: Array<{ name?: string; route: Array<{ destination: { subset: string }; weight?: number }> }> } };
  const main = vs.spec.http.find((r) => r.name === 'main')!;
  return { route: main.route.map((d) => [d.destination.subset, d.weight ?? 100]), text, state: parseState(vs.metadata.annotations?.[ANNOTATION]) };
}

const COMMON = ['--vs', 'reviews', '--stable', 'v1', '--canary', 'v2', '--max-error-rate', '1%', '--max-p99', '500ms'];

describe.skipIf(!existsSync(CLI))('remora rollout, file mode, sidecar stats', () => {
  it('a healthy canary is promoted through every step with 0 errors; the file is left with one destination at 100', async () => {
    const { load, vsFile, stats, v2 } = await setup(250);
    const p = track(rollout([...COMMON, '--config', vsFile, '--stats', stats, '--steps', '10,50,100', '--interval', '2s', '--min-requests', '20']));
    const code = await p.exit(30_000);
    expect(code, `${p.stdout}\n${p.stderr}`).toBe(0);
    expect(p.line(/step 1\/3 \| v1\/v2 90\/10 \| start/)).toBeDefined();
    expect(p.line(/step 1\/3 \| v1\/v2 90\/10 \| v1 ok 100\.00% p99 \S+ n=\d+ \| v2 ok 100\.00% p99 \S+ n=\d+ \| advance: checks passed, next weight 50%/), p.stdout).toBeDefined();
    expect(p.line(/step 2\/3 \| v1\/v2 50\/50 \| .* \| promote: promoted: v2 serves 100 %/), p.stdout).toBeDefined();
    const promotedAt = p.line(/promote:/)!.t;
    // Requests after the sidecar's reload (≤ 1.5 s) all reach v2.
    await new Promise((r) => setTimeout(r, 2000));
    await load.stop();
    expect(load.errors()).toEqual([]);
    expect(load.count('canary-fail')).toBe(0);
    expect(load.overflow).toBe(0);
    expect(load.count('v1', promotedAt + 1500)).toBe(0);
    expect(load.count('v2', promotedAt + 1500)).toBeGreaterThan(50);
    expect(v2.served).toBeGreaterThan(100);
    const f = routeOf(vsFile);
    expect(f.route).toEqual([['v2', 100]]);
    expect(f.text).toContain('# reviews: every request to v1 until the rollout moves it');
    expect(f.text).toContain('# the route the rollout moves');
    expect(f.state).toMatchObject({ phase: 'Promoted', lock: null, canaryWeight: 100, stepIndex: 2 });
    expect(f.state!.history.map((h) => h.action)).toEqual(['start', 'advance', 'promote']);
    console.log(`[rollout healthy] ${load.outcomes.length} requests, 0 errors\n${p.stdout}`);
  }, 60_000);

  it('a canary that starts failing at 30 % is rolled back within one interval; the weight changes cost no request', async () => {
    const { load, vsFile, stats, v2 } = await setup(250);
    const p = track(rollout([...COMMON, '--config', vsFile, '--stats', stats, '--steps', '10,30,100', '--interval', '2s', '--min-requests', '20']));
    // The canary breaks as soon as it gets 30 %.
    const at30 = await p.waitForLine(/advance: checks passed, next weight 30%/, 20_000);
    v2.failing = true;
    const code = await p.exit(20_000);
    expect(code, `${p.stdout}\n${p.stderr}`).toBe(1);
    const back = p.line(/step 2\/3 \| v1\/v2 70\/30 \| .* \| rollback: rolled back to v1: canary error rate \S+ > 1%/);
    expect(back, p.stdout).toBeDefined();
    const rollbackMs = back!.t - at30.t;
    // The check at the end of the 30 % step (one interval of 2 s after it began) decides; allow 1.5 s for scrapes and writes.
    expect(rollbackMs).toBeLessThan(2000 + 1500);
    await new Promise((r) => setTimeout(r, 2000));
    await load.stop();
    // Every failure is the canary's own 500; the weight changes themselves cost nothing.
    expect(load.errors()).toEqual([]);
    expect(load.count('canary-fail')).toBeGreaterThan(0);
    // After the rollback reached the sidecar (≤ 1.5 s), nothing goes to the canary any more.
    expect(load.count('canary-fail', back!.t + 1500)).toBe(0);
    expect(load.count('v2', back!.t + 1500)).toBe(0);
    expect(load.count('v1', back!.t + 1500)).toBeGreaterThan(50);
    const f = routeOf(vsFile);
    expect(f.route).toEqual([['v1', 100]]);
    expect(f.state).toMatchObject({ phase: 'RolledBack', canaryWeight: 0, lock: null });
    console.log(`[rollout failing] rolled back ${rollbackMs} ms after the 30 % step began (interval 2000 ms); canary 500s ${load.count('canary-fail')}, other errors 0 of ${load.outcomes.length}`);
  }, 60_000);

  it('too little traffic: the step holds and the canary is not promoted', async () => {
    const { load, vsFile, stats } = await setup(20);
    const p = track(rollout([...COMMON, '--config', vsFile, '--stats', stats, '--steps', '10,100', '--interval', '1s', '--min-requests', '50', '--max-holds', '2']));
    const code = await p.exit(20_000);
    expect(code, `${p.stdout}\n${p.stderr}`).toBe(1);
    expect(p.line(/hold: too little traffic: \d+ canary requests < 50 \(check 1\/2, holding\)/), p.stdout).toBeDefined();
    expect(p.line(/rollback: rolled back to v1: not promoted: too little traffic: \d+ canary requests < 50 in 2 consecutive checks/), p.stdout).toBeDefined();
    expect(p.line(/\| promote:/)).toBeUndefined();
    await load.stop();
    expect(load.errors()).toEqual([]);
    expect(routeOf(vsFile).route).toEqual([['v1', 100]]);
  }, 60_000);

  it('the state survives a restart: SIGTERM leaves the weights and releases the lock (exit 3), the same command resumes and promotes', async () => {
    const { load, vsFile, stats } = await setup(100);
    const args = [...COMMON, '--config', vsFile, '--stats', stats, '--steps', '10,100', '--interval', '2s', '--min-requests', '5'];
    const first = track(rollout(args));
    await first.waitForLine(/start:/, 10_000);
    first.child.kill('SIGTERM');
    expect(await first.exit(10_000), `${first.stdout}\n${first.stderr}`).toBe(3);
    expect(first.line(/info: stopped \(SIGTERM\) at step 1\/2; run the same command again to resume/), first.stdout).toBeDefined();
    const mid = routeOf(vsFile);
    expect(mid.route).toEqual([['v1', 90], ['v2', 10]]);
    expect(mid.state).toMatchObject({ phase: 'Progressing', stepIndex: 0, lock: null });
    const status = track(rollout(['status', '--vs', 'reviews', '--config', vsFile]));
    expect(await status.exit(10_000), status.stderr).toBe(0);
    expect(status.stdout, status.stderr).toMatch(/no runner: run the same `remora rollout` command to resume/);
    const second = track(rollout(args));
    expect(await second.exit(20_000), `${second.stdout}\n${second.stderr}`).toBe(0);
    expect(second.line(/step 1\/2 \| v1\/v2 90\/10 \| resume: resumed at step 1\/2 \(the previous runner stopped\)/), second.stdout).toBeDefined();
    const f = routeOf(vsFile);
    expect(f.route).toEqual([['v2', 100]]);
    expect(f.state!.history.map((h) => h.action)).toEqual(['start', 'resume', 'promote']);
    await load.stop();
    expect(load.errors()).toEqual([]);
  }, 60_000);

  it('status, a refused second rollout, abort from another process, and --help', async () => {
    const { load, vsFile, stats } = await setup(100);
    const p = track(rollout([...COMMON, '--config', vsFile, '--stats', stats, '--steps', '10,100', '--interval', '30s', '--min-requests', '5']));
    await p.waitForLine(/start:/, 10_000);
    const second = track(rollout([...COMMON, '--config', vsFile, '--stats', stats, '--steps', '10,100', '--interval', '2s']));
    expect(await second.exit(10_000), second.stderr).toBe(2);
    expect(second.stderr).toMatch(/another rollout of default\/reviews is running/);
    // --config may name the sidecar's config directory: the VirtualService's file is found in it.
    const status = track(rollout(['status', '--vs', 'reviews', '--config', dirname(vsFile)]));
    expect(await status.exit(10_000), status.stderr).toBe(0);
    expect(status.stdout).toMatch(/rollout default\/reviews: Progressing/);
    expect(status.stdout).toMatch(/step 1\/2 \(10, 100\), weights v1\/v2 90\/10/);
    const abort = track(rollout(['abort', '--vs', 'reviews', '--config', dirname(vsFile), '--reason', 'test']));
    expect(await abort.exit(15_000), `${abort.stdout}\n${abort.stderr}`).toBe(1);
    expect(abort.stdout, abort.stderr).toMatch(/Aborted/);
    expect(await p.exit(10_000)).toBe(1);
    expect(p.line(/abort: aborted by .*: test; v1 serves 100 %/), p.stdout).toBeDefined();
    expect(routeOf(vsFile).route).toEqual([['v1', 100]]);
    await load.stop();
    expect(load.errors()).toEqual([]);
    const help = track(rollout(['--help']));
    expect(await help.exit(10_000)).toBe(0);
    expect(help.stdout).toMatch(/usage: remora rollout/);
    const bad = track(rollout(['--vs', 'reviews', '--config', vsFile, '--stable', 'v1', '--canary', 'v2', '--steps', '50,10']));
    expect(await bad.exit(10_000)).toBe(2);
    expect(bad.stderr).toMatch(/steps must increase/);
  }, 60_000);
});
