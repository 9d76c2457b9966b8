/**
 * `remora run --concurrency 2` through the real CLI: both workers serve the shared port, the one admin endpoint
 * aggregates them (metrics sum, clusters, config agreement), a reload applies in both, a killed worker is
 * replaced, SIGTERM drains both and exits 0, an invalid config fails start-up once; --concurrency 1 forks nothing.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { get as httpGet } from 'node:http';
import { fakeUpstream, type FakeUpstream } from '../../support/fake-upstream.js';
import { startProxy, waitFor, type RunningProxy } from '../../support/proxy-harness.js';

const cleanups: Array<() => Promise<unknown> | void> = [];
afterEach(async () => { while (cleanups.length) await cleanups.pop()!(); });

async function upstream(id: string): Promise<FakeUpstream> {
  const u = await fakeUpstream(id);
  cleanups.push(() => u.close());
  return u;
}
async function proxy(files: Record<string, string>, args: string[] = []): Promise<RunningProxy> {
  const p = await startProxy(files, ['--concurrency', '2', ...args]);
  cleanups.push(() => p.stop());
  // Workers are children of the primary: make sure none outlives a failed test.
  cleanups.push(async () => {
    const w = await workers(p).catch(() => undefined);
    for (const x of w?.workers ?? []) if (x.pid) { try { process.kill(x.pid, 'SIGKILL'); } catch { /* gone */ } }
  });
  return p;
}

const se = (port: number, host = 'svc.example.com'): string => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc, namespace: default}
spec:
  hosts: [${host}]
  ports: [{number: 80, name: http}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: ${port}}}]
`;

/** One request on its own connection (no keep-alive), so each one is accepted anew and can land on either worker. */
function oneShot(port: number, path: string, host = 'svc.example.com'): Promise<{ status: number; body: string; upstream: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = httpGet({ host: '127.0.0.1', port, path, agent: false, headers: { host, connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, upstream: res.headers['x-upstream-id'] as string | undefined }));
    });
    req.on('error', reject);
  });
}

interface WorkerInfo { id: number; pid: number | null; ready: boolean; restarts: number; requests: number | null; config: { version: number | null; hash: string | null } }
async function workers(p: RunningProxy): Promise<{ concurrency: number; restarts: number; workers: WorkerInfo[] }> {
  return JSON.parse((await p.admin('/workers')).body) as { concurrency: number; restarts: number; workers: WorkerInfo[] };
}
function istioRequests(prom: string): number {
  let n = 0;
  for (const l of prom.split('\n')) if (l.startsWith('istio_requests_total{')) n += Number(l.slice(l.lastIndexOf(' ') + 1));
  return n;
}
function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

describe('--concurrency 2', () => {
  it('both workers serve the shared port; one admin endpoint sums their metrics and clusters', async () => {
    const u = await upstream('u');
    const p = await proxy({ 'se.yaml': se(u.port) });
    expect(p.info).toMatchObject({ workers: 2, pid: p.child.pid });
    const w0 = await workers(p);
    expect(w0.workers.map((w) => w.ready)).toEqual([true, true]);
    expect(new Set(w0.workers.map((w) => w.pid)).size).toBe(2);
    expect(w0.workers.every((w) => w.pid !== p.child.pid)).toBe(true);
    const K = 40;
    for (let i = 0; i < K; i++) expect((await oneShot(p.info.outbound, `/r/${i}`)).status).toBe(200);
    const w = await workers(p);
    // Each worker accepted some of the connections (round-robin hand-off) and the counts add up to K.
    for (const x of w.workers) expect(x.requests).toBeGreaterThan(0);
    expect(w.workers.reduce((n, x) => n + (x.requests ?? 0), 0)).toBe(K);
    const prom = await (await fetch(`http://127.0.0.1:${p.info.stats}/stats/prometheus`)).text();
    expect(istioRequests(prom)).toBe(K);
    expect(prom).toMatch(/^istio_request_duration_milliseconds_count\{.*\} 40$/m);
    expect(prom).toMatch(/^envoy_cluster_upstream_rq_total\{cluster_name="outbound\|80\|\|svc\.example\.com"\} 40$/m);
    // Shared state is not multiplied by the number of workers.
    expect(prom).toMatch(/^envoy_cluster_membership_total\{cluster_name="outbound\|80\|\|svc\.example\.com"\} 1$/m);
    expect(prom).toMatch(/^remora_workers 2$/m);
    expect((await p.admin('/clusters')).body).toContain('outbound|80||svc.example.com::127.0.0.1:' + u.port + '::rq_total::40\n');
    expect(await p.admin('/ready')).toEqual({ status: 200, body: 'LIVE\n' });
    expect((await fetch(`http://127.0.0.1:${p.info.health}/healthz/ready`)).status).toBe(200);
    // Each worker has its own upstream pool: the upstream saw at least one connection from each.
    expect(u.connections).toBeGreaterThanOrEqual(2);
    // Counters reset in every worker.
    expect((await p.admin('/reset_counters', 'POST')).status).toBe(200);
    expect(istioRequests((await p.admin('/stats/prometheus')).body)).toBe(0);
  });

  it('a config reload applies in both workers; an invalid one is rejected by both and the last good config keeps serving', async () => {
    const a = await upstream('a');
    const b = await upstream('b');
    const p = await proxy({ 'se.yaml': se(a.port) });
    expect((await oneShot(p.info.outbound, '/')).upstream).toBe('a');
    const before = JSON.parse((await p.admin('/config_dump')).body) as { hash: string };
    p.writeConfig('se.yaml', se(b.port));
    await waitFor(async () => {
      const d = JSON.parse((await p.admin('/config_dump')).body) as { consistent: boolean; workers: Array<{ hash: string }> };
      return d.consistent && d.workers.length === 2 && d.workers.every((w) => w.hash !== before.hash);
    }, 5000);
    for (let i = 0; i < 10; i++) expect((await oneShot(p.info.outbound, `/after/${i}`)).upstream).toBe('b');
    const w = await workers(p);
    for (const x of w.workers) expect(x.requests).toBeGreaterThan(0);
    expect((await p.admin('/ready')).status).toBe(200);

    p.writeConfig('bad.yaml', 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: bad, namespace: default}\nspec:\n  hosts: []\n  http: [{route: [{destination: {}}]}]\n');
    await waitFor(async () => {
      const d = JSON.parse((await p.admin('/config_dump')).body) as { workers: Array<{ lastError: unknown }> };
      return d.workers.every((x) => x.lastError !== null);
    }, 5000);
    const prom = (await p.admin('/stats/prometheus')).body;
    expect(prom).toMatch(/^remora_config_reload_failures_total [1-9]\d*$/m);
    for (let i = 0; i < 6; i++) expect((await oneShot(p.info.outbound, `/still/${i}`)).upstream).toBe('b');
  });

  it('a killed worker is restarted (logged) and serves again; the sidecar stays one endpoint', async () => {
    const u = await upstream('u');
    const p = await proxy({ 'se.yaml': se(u.port) }, ['--log-level', 'info']);
    const before = await workers(p);
    const victim = before.workers[0]!.pid!;
    process.kill(victim, 'SIGKILL');
    await waitFor(async () => {
      const w = await workers(p);
      return w.workers[0]!.ready && w.workers[0]!.pid !== victim && w.restarts === 1;
    }, 5000);
    expect(alive(victim)).toBe(false);
    expect(p.stderr).toMatch(/worker 1 \(pid \d+\) exited with SIGKILL; restarting in 250 ms/);
    expect((await p.admin('/ready')).status).toBe(200);
    for (let i = 0; i < 10; i++) expect((await oneShot(p.info.outbound, `/x/${i}`)).status).toBe(200);
    const w = await workers(p);
    for (const x of w.workers) expect(x.requests).toBeGreaterThan(0);
    expect((await p.admin('/stats/prometheus')).body).toMatch(/^remora_worker_restarts_total 1$/m);
  });

  it('SIGTERM drains both workers: in-flight requests on both finish, then every process exits and the primary exits 0', async () => {
    const u = await upstream('slow');
    u.latency(600);
    const p = await proxy({ 'se.yaml': se(u.port) }, ['--drain-seconds', '5']);
    const pids = (await workers(p)).workers.map((w) => w.pid!);
    const inflight = Array.from({ length: 6 }, (_, i) => oneShot(p.info.outbound, `/slow/${i}`));
    await waitFor(() => u.requests.length >= 6, 5000);
    p.child.kill('SIGTERM');
    await waitFor(async () => (await p.admin('/ready').catch(() => ({ status: 0 }))).status !== 200, 2000, 5);
    const done = await Promise.all(inflight);
    expect(done.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(await p.exited).toBe(0);
    for (const pid of pids) await waitFor(() => !alive(pid), 2000);
  });

  it('/quitquitquit drains every worker and exits 0', async () => {
    const u = await upstream('u');
    const p = await proxy({ 'se.yaml': se(u.port) });
    const pids = (await workers(p)).workers.map((w) => w.pid!);
    expect((await p.admin('/quitquitquit', 'POST')).status).toBe(200);
    expect(await p.exited).toBe(0);
    for (const pid of pids) await waitFor(() => !alive(pid), 2000);
  });

  it('an invalid config at start fails once with the validation errors and exit 1', async () => {
    const err = await startProxy({ 'bad.yaml': 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: bad, namespace: default}\nspec:\n  hosts: []\n' }, ['--concurrency', '2']).then(
      () => undefined,
      (e: Error & { code?: number; stderr?: string }) => e,
    );
    expect(err?.code).toBe(1);
    expect(err?.stderr?.match(/invalid configuration, not starting/g)).toHaveLength(1);
  });
});

describe('--concurrency 1 (default)', () => {
  it('stays one process: no workers field in the ready line, no /workers endpoint', async () => {
    const u = await upstream('u');
    const p = await startProxy({ 'se.yaml': se(u.port) });
    cleanups.push(() => p.stop());
    expect(p.info).not.toHaveProperty('workers');
    expect((await p.admin('/workers')).status).toBe(404);
    expect((await oneShot(p.info.outbound, '/')).status).toBe(200);
  });
});
