/**
 * The weights the rollout writes are the split the sidecar makes: for each step weight, the VirtualService file is
 * edited by the rollout's own editor, the sidecar reloads it, 10,000 requests go through, and the share of the
 * canary — from the sidecar's istio_requests_total (as the rollout reads it) and from the apps' own counts — is
 * within ±2 % of the weight, with 0 errors across the reloads.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Pool } from 'undici';
import { CLI, startProxy, waitFor } from '../../support/proxy-harness.js';
import { App, HOST, mesh, VS_YAML } from './support.js';
import { VsFile } from '../../../src/rollout/vs-edit.js';
import { StatsSource } from '../../../src/rollout/metrics-source.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => { while (cleanups.length > 0) await cleanups.pop()!(); });

const N = 10_000;

/** N requests, at most `parallel` in flight; returns the count of anything but a 200 from v1/v2. */
async function send(pool: Pool, n: number, parallel: number): Promise<{ v1: number; v2: number; errors: string[] }> {
  const out = { v1: 0, v2: 0, errors: [] as string[] };
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      next++;
      try {
        const r = await pool.request({ path: '/', method: 'GET', headers: { host: HOST } });
        const body = await r.body.text();
        if (r.statusCode === 200 && body === 'v1') out.v1++;
        else if (r.statusCode === 200 && body === 'v2') out.v2++;
        else out.errors.push(`${r.statusCode} ${body.slice(0, 60)}`);
      } catch (err) {
        out.errors.push((err as Error).message);
      }
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return out;
}

describe.skipIf(!existsSync(CLI))('weights → observed split', () => {
  it('10,000 requests per step weight: the canary share is within ±2 % of the weight, 0 errors', async () => {
    const v1 = await new App('v1').start();
    const v2 = await new App('v2').start();
    cleanups.push(() => v1.close(), () => v2.close());
    const proxy = await startProxy({ 'mesh.yaml': mesh(v1.port, v2.port), 'reviews-vs.yaml': VS_YAML });
    cleanups.push(() => proxy.stop());
    const vsFile = join(proxy.dir, 'reviews-vs.yaml');
    const pool = new Pool(proxy.url(), { connections: 16, keepAliveTimeout: 30_000 });
    cleanups.push(() => pool.close());
    const stats = new StatsSource([`http://127.0.0.1:${proxy.info.stats}/stats/prometheus`], { service: 'reviews.default.svc.cluster.local', stable: 'v1', canary: 'v2', reporter: 'source', app: 'reviews' });
    const report: string[] = [];
    for (const weight of [10, 30, 50]) {
      const f = new VsFile(readFileSync(vsFile, 'utf8'));
      f.find('reviews', 'default', 'default').setWeights('v1', 'v2', weight);
      writeFileSync(vsFile, f.toString());
      await waitFor(async () => {
        const m = JSON.parse((await proxy.admin('/debug/routes')).body) as { routes: Array<{ name: string; destinations: Array<{ subset: string; weight: number }> }> };
        return m.routes.find((r) => r.name === 'main')?.destinations.find((d) => d.subset === 'v2')?.weight === weight;
      }, 5000, 20);
      await stats.begin();
      const a1 = v1.served;
      const a2 = v2.served;
      const r = await send(pool, N, 32);
      const w = await stats.collect(0);
      expect(r.errors).toEqual([]);
      expect(r.v1 + r.v2).toBe(N);
      // The sidecar's own metrics, read the way the rollout reads them, count every request once.
      expect(w.stable.requests + w.canary.requests).toBe(N);
      expect(w.canary.requests).toBe(r.v2);
      expect(v2.served - a2).toBe(r.v2);
      expect(v1.served - a1).toBe(r.v1);
      const share = w.canary.requests / N;
      report.push(`${weight}% → ${(share * 100).toFixed(2)}% (error ${((share - weight / 100) * 100).toFixed(2)} points)`);
      expect(Math.abs(share - weight / 100)).toBeLessThanOrEqual(0.02);
    }
    console.log(`[rollout split] over ${N} requests per weight: ${report.join('; ')}`);
  }, 120_000);
});
