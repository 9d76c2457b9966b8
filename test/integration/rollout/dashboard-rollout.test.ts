/**
 * The admin dashboard of the sidecar during a rollout: its model (`/debug/dashboard` → routes[].rollout, read from
 * the VirtualService annotation the rollout writes) and the page rendered by headless Chromium (DOM dump and a
 * screenshot in test-results/dashboard-rollout.png). Skipped without Chromium for the rendering part.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI, REPO, startProxy, waitFor, type RunningProxy } from '../../support/proxy-harness.js';
import { App, HOST, Load, mesh, rollout, VS_YAML } from './support.js';
import type { DashboardModel } from '../../../src/admin/dashboard.js';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
if (!CHROMIUM) console.warn('SKIPPED rollout dashboard rendering: chromium not found (Debian package `chromium`, installed by .ci/run)');

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => { while (cleanups.length > 0) await cleanups.pop()!(); });

function chromium(proxy: RunningProxy, args: string[], timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const profile = mkdtempSync(join(tmpdir(), 'remora-chromium-'));
  const child = spawn(CHROMIUM!, [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage', `--user-data-dir=${profile}`, '--window-size=1280,900',
    '--virtual-time-budget=3000', ...args, `http://127.0.0.1:${proxy.info.admin}/`,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  return new Promise((resolve) => {
    const timer = setTimeout(() => { if (child.pid) process.kill(child.pid, 'SIGKILL'); }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      rmSync(profile, { recursive: true, force: true });
      resolve({ code, stdout, stderr });
    });
  });
}

describe.skipIf(!existsSync(CLI))('the sidecar dashboard during a rollout', () => {
  it('shows the rollout beside the route split (model, and the page in Chromium)', async () => {
    const v1 = await new App('v1').start();
    const v2 = await new App('v2').start();
    cleanups.push(() => v1.close(), () => v2.close());
    const proxy = await startProxy({ 'mesh.yaml': mesh(v1.port, v2.port), 'reviews-vs.yaml': VS_YAML });
    cleanups.push(() => proxy.stop());
    const load = new Load(proxy.info.outbound, HOST, 100).start();
    cleanups.push(() => load.stop());
    const vsFile = join(proxy.dir, 'reviews-vs.yaml');
    const p = rollout(['--vs', 'reviews', '--stable', 'v1', '--canary', 'v2', '--config', vsFile, '--steps', '10,100', '--interval', '60s',
      '--stats', `http://127.0.0.1:${proxy.info.stats}/stats/prometheus`]);
    cleanups.push(() => p.kill());
    await p.waitForLine(/start:/, 10_000);
    let model: DashboardModel | undefined;
    await waitFor(async () => {
      model = JSON.parse((await proxy.admin('/debug/dashboard')).body) as DashboardModel;
      return model.routes.find((r) => r.name === 'main')?.rollout !== undefined;
    }, 5000, 50);
    const main = model!.routes.find((r) => r.name === 'main')!;
    expect(main.rollout).toMatchObject({ phase: 'Progressing', stable: 'v1', canary: 'v2', step: 1, steps: 2, canaryWeight: 10, live: true });
    expect(main.destinations.map((d) => [d.subset, d.weight])).toEqual([['v1', 90], ['v2', 10]]);

    if (CHROMIUM) {
      const r = await chromium(proxy, ['--dump-dom']);
      expect(r.code, r.stderr.slice(-2000)).toBe(0);
      expect(r.stdout).toContain('data-rollout="Progressing"');
      expect(r.stdout).toContain('rollout v1 → v2 · Progressing · step 1/2 · canary 10%');
      expect(r.stdout).toMatch(/<section id="error"( style="display: none;")?><\/section>/);
      const dir = join(REPO, 'test-results');
      mkdirSync(dir, { recursive: true });
      const png = join(dir, 'dashboard-rollout.png');
      rmSync(png, { force: true });
      const s = await chromium(proxy, [`--screenshot=${png}`]);
      expect(s.code, s.stderr.slice(-2000)).toBe(0);
      await waitFor(() => existsSync(png), 5000);
      expect(statSync(png).size).toBeGreaterThan(10_000);
    }
    const abort = rollout(['abort', '--vs', 'reviews', '--config', vsFile]);
    cleanups.push(() => abort.kill());
    expect(await abort.exit(15_000), abort.stderr).toBe(1);
    expect(await p.exit(10_000)).toBe(1);
    await waitFor(async () => {
      const m = JSON.parse((await proxy.admin('/debug/dashboard')).body) as DashboardModel;
      return m.routes.find((r) => r.name === 'main')?.rollout?.phase === 'Aborted';
    }, 5000, 50);
    await load.stop();
    expect(load.errors()).toEqual([]);
  }, 90_000);
});
