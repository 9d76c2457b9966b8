/**
 * Dark launch: `remora rollout --mirror 50` first mirrors half of the requests to the canary with weight 0 — the
 * callers get only the stable's answers — and checks the canary on the shadows, which the canary's own sidecar
 * reports (reporter="destination"); then it shifts weight as usual. Two sidecars: the caller's, and the canary's
 * (inbound in front of the v2 app), both scraped.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { CLI, startProxy, waitFor } from '../../support/proxy-harness.js';
import { App, HOST, Load, mesh, rollout, VS_YAML } from './support.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => { while (cleanups.length > 0) await cleanups.pop()!(); });

describe.skipIf(!existsSync(CLI))('remora rollout --mirror', () => {
  it('mirrors with weight 0 (callers see only v1), checks the canary on its own sidecar\'s reports of the shadows, then promotes', async () => {
    const v1 = await new App('v1').start();
    const v2 = await new App('v2').start();
    cleanups.push(() => v1.close(), () => v2.close());
    const canarySidecar = await startProxy({ 'empty.yaml': '' }, ['--app-port', String(v2.port), '--labels', 'app=reviews,version=v2']);
    cleanups.push(() => canarySidecar.stop());
    const proxy = await startProxy({ 'mesh.yaml': mesh(v1.port, canarySidecar.info.inbound), 'reviews-vs.yaml': VS_YAML });
    cleanups.push(() => proxy.stop());
    const load = new Load(proxy.info.outbound, HOST, 250).start();
    cleanups.push(() => load.stop());
    await waitFor(() => load.count('v1') >= 20, 5000);
    const vsFile = join(proxy.dir, 'reviews-vs.yaml');

    const p = rollout(['--vs', 'reviews', '--stable', 'v1', '--canary', 'v2', '--config', vsFile, '--mirror', '50', '--steps', '50,100', '--interval', '2s',
      '--min-requests', '20', '--stats', `http://127.0.0.1:${proxy.info.stats},http://127.0.0.1:${canarySidecar.info.stats}`]);
    cleanups.push(() => p.kill());
    await p.waitForLine(/step 1\/3 \| v1\/v2 100\/0 mirror 50% \| start/, 10_000);
    const during = parseAllDocuments(readFileSync(vsFile, 'utf8'))[0]!.toJS() as { spec: { http: Array<Record<string, unknown>> } };
    expect(during.spec.http[0]).toMatchObject({ name: 'main', mirror: { host: 'reviews', subset: 'v2' }, mirrorPercentage: { value: 50 }, route: [{ destination: { host: 'reviews', subset: 'v1' }, weight: 100 }] });
    const advanced = await p.waitForLine(/step 1\/3 \| v1\/v2 100\/0 mirror 50% \| v1 ok 100\.00% p99 \S+ n=\d+ \| v2 ok 100\.00% p99 \S+ n=(\d+) \| advance: checks passed, next weight 50%/, 15_000);
    const shadows = Number(/v2 ok \S+ p99 \S+ n=(\d+)/.exec(advanced.line)![1]);
    expect(shadows).toBeGreaterThanOrEqual(20);
    // While mirroring, every caller got v1's answer; the canary saw the shadows.
    expect(load.count('v2', 0, advanced.t)).toBe(0);
    expect(v2.served).toBeGreaterThanOrEqual(shadows);
    expect(await p.exit(20_000), `${p.stdout}\n${p.stderr}`).toBe(0);
    await load.stop();
    expect(load.errors()).toEqual([]);
    const after = readFileSync(vsFile, 'utf8');
    const vs = parseAllDocuments(after)[0]!.toJS() as { spec: { http: Array<{ route: unknown[] }> } };
    expect(vs.spec.http).toEqual([{ name: 'main', route: [{ destination: { host: 'reviews', subset: 'v2' }, weight: 100 }] }]);
    console.log(`[rollout mirror] ${shadows} shadow requests checked on the canary's sidecar; ${load.outcomes.length} requests, 0 errors`);
  }, 60_000);
});
