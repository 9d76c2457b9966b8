/**
 * `remora rollout --prometheus`: a real Prometheus (the Debian package's /usr/bin/prometheus, started here on a
 * free loopback port with a temporary config and TSDB, scraping the sidecar's /stats/prometheus every second)
 * answers the rollout's PromQL; a healthy canary is promoted with 0 errors. Prometheus is stopped by its PID.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { CLI, startProxy, waitFor } from '../../support/proxy-harness.js';
import { App, HOST, Load, mesh, rollout, VS_YAML } from './support.js';

const PROMETHEUS = ['/usr/bin/prometheus', '/usr/local/bin/prometheus'].find((p) => existsSync(p) && spawnSync(p, ['--version']).status === 0);
if (!PROMETHEUS) console.warn('SKIPPED rollout against Prometheus: no prometheus binary (Debian package `prometheus`, installed by .ci/run)');

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => { while (cleanups.length > 0) await cleanups.pop()!(); });

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function startPrometheus(statsPort: number): Promise<{ url: string; child: ChildProcess; log: () => string }> {
  const dir = mkdtempSync(join(tmpdir(), 'remora-prom-'));
  writeFileSync(join(dir, 'prometheus.yml'), `global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}
scrape_configs:
- job_name: remora
  metrics_path: /stats/prometheus
  static_configs: [{targets: ['127.0.0.1:${statsPort}']}]
`);
  const port = await freePort();
  const child = spawn(PROMETHEUS!, [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (d: Buffer) => { log += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { log += d.toString(); });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => {
    try {
      const r = await request(`${url}/-/ready`);
      await r.body.text();
      return r.statusCode === 200;
    } catch {
      return false;
    }
  }, 20_000, 100);
  return { url, child, log: () => log };
}

async function promQuery(url: string, q: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> {
  const r = await request(`${url}/api/v1/query?query=${encodeURIComponent(q)}`);
  return ((await r.body.json()) as { data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } }).data.result;
}

describe.skipIf(!PROMETHEUS || !existsSync(CLI))('remora rollout --prometheus (a real Prometheus scraping the sidecar)', () => {
  it('promotes a healthy canary on PromQL over istio_requests_total and the duration buckets by destination_version', async () => {
    const v1 = await new App('v1').start();
    const v2 = await new App('v2').start();
    cleanups.push(() => v1.close(), () => v2.close());
    const proxy = await startProxy({ 'mesh.yaml': mesh(v1.port, v2.port), 'reviews-vs.yaml': VS_YAML });
    cleanups.push(() => proxy.stop());
    const prom = await startPrometheus(proxy.info.stats);
    const load = new Load(proxy.info.outbound, HOST, 250).start();
    cleanups.push(() => load.stop());
    // Prometheus has the sidecar's v1 series before the rollout starts.
    await waitFor(async () => (await promQuery(prom.url, 'istio_requests_total{destination_version="v1"}')).length > 0, 20_000, 250);

    const p = rollout(['--vs', 'reviews', '--stable', 'v1', '--canary', 'v2', '--config', join(proxy.dir, 'reviews-vs.yaml'), '--prometheus', prom.url,
      '--steps', '20,100', '--interval', '3s', '--min-requests', '20', '--max-error-rate', '1%', '--max-p99', '500ms']);
    cleanups.push(() => p.kill());
    const code = await p.exit(30_000);
    expect(code, `${p.stdout}\n${p.stderr}\n${prom.log()}`).toBe(0);
    expect(p.line(/metrics from Prometheus http:\/\/127\.0\.0\.1:\d+/)).toBeDefined();
    const promoted = p.line(/step 1\/2 \| v1\/v2 80\/20 \| v1 ok 100\.00% p99 \S+ n=(\d+) \| v2 ok 100\.00% p99 \S+ n=(\d+) \| promote:/);
    expect(promoted, p.stdout).toBeDefined();
    const [, n1, n2] = /n=(\d+) .* n=(\d+)/.exec(promoted!.line)!;
    expect(Number(n2)).toBeGreaterThanOrEqual(20);
    expect(Number(n1)).toBeGreaterThan(Number(n2)); // 80/20
    await load.stop();
    expect(load.errors()).toEqual([]);
    // Prometheus saw the canary's traffic under the labels the rollout queries.
    const v2Series = await promQuery(prom.url, 'sum(istio_requests_total{reporter="source",destination_service="reviews.default.svc.cluster.local",destination_version="v2"})');
    expect(Number(v2Series[0]?.value[1] ?? 0)).toBeGreaterThan(0);
    console.log(`[rollout prometheus] ${p.stdout.split('\n').filter((l) => l.includes('promote:')).join('')}`);
  }, 90_000);
});
