/**
 * The admin API of a live `remora run`: JSON shapes of /config_dump, /clusters, /server_info, /listeners, /stats,
 * /debug/route; POST-only mutating endpoints (405 on GET); /logging levels; a rejected reload in /config_dump.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { request } from 'undici';
import { fakeUpstream, type FakeUpstream } from '../../support/fake-upstream.js';
import { startProxy, waitFor, type RunningProxy } from '../../support/proxy-harness.js';
import { serviceEntry } from './support.js';

const V1 = 'outbound|9080|v1|reviews.default.svc.cluster.local';

let up: FakeUpstream;
let proxy: RunningProxy;

beforeAll(async () => {
  up = await fakeUpstream('reviews');
  const mesh = [
    serviceEntry('reviews', 9080, [{ port: up.port, labels: { version: 'v1' } }]),
    `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
`,
    `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - name: jason
    match: [{headers: {end-user: {exact: jason}}}]
    timeout: 2s
    route: [{destination: {host: reviews, subset: v1}}]
  - name: rest
    route: [{destination: {host: reviews, subset: v1}}]
`,
  ].join('---\n');
  proxy = await startProxy({ 'mesh.yaml': mesh }, ['--labels', 'app=productpage,version=v1']);
  for (let i = 0; i < 3; i++) expect((await proxy.get(`/x/${i}`, { host: 'reviews:9080' })).status).toBe(200);
});

afterAll(async () => {
  await proxy?.stop();
  await up?.close();
});

async function getJson(path: string): Promise<any> {
  const r = await request(`http://127.0.0.1:${proxy.info.admin}${path}`);
  expect(r.statusCode, path).toBe(200);
  expect(r.headers['content-type'], path).toBe('application/json');
  return r.body.json();
}

describe('admin JSON shapes', () => {
  it('/config_dump: version, hash, last reload, resources and clusters', async () => {
    const d = await getJson('/config_dump');
    expect(d).toMatchObject({ version: 1, hash: expect.any(String), reloads: expect.any(Number), reloadFailures: 0, lastError: null, warnings: [] });
    expect(Date.parse(d.lastReloadTime)).not.toBeNaN();
    // Where the last build's time went, in whole ms.
    expect(d.lastBuildMs).toEqual({ wait: expect.any(Number), read: expect.any(Number), validate: expect.any(Number), hash: expect.any(Number), compile: expect.any(Number), apply: expect.any(Number) });
    for (const v of Object.values(d.lastBuildMs as Record<string, number>)) expect(Number.isInteger(v) && v >= 0).toBe(true);
    expect(d.ports).toMatchObject({ outbound: proxy.info.outbound, admin: proxy.info.admin, stats: proxy.info.stats, health: proxy.info.health });
    expect(d.resources.map((r: { kind: string; metadata: { name: string } }) => `${r.kind}/${r.metadata.name}`).sort()).toEqual(['DestinationRule/reviews', 'ServiceEntry/reviews', 'VirtualService/reviews']);
    expect(d.resources.find((r: { kind: string }) => r.kind === 'VirtualService').spec.http[0].name).toBe('jason');
    expect(d.clusters).toContainEqual({ name: V1, resolution: 'STATIC', lb: expect.any(String), endpoints: [`127.0.0.1:${up.port}`] });
  });

  it('/clusters?format=json: endpoints with health flags, ejections and request counts; text form too', async () => {
    const c = await getJson('/clusters?format=json');
    const v1 = c.clusters.find((x: { name: string }) => x.name === V1);
    expect(v1).toMatchObject({ activeRequests: 0, pendingRequests: 0, activeRetries: 0, ejectionsActive: 0 });
    expect(v1.endpoints).toEqual([
      expect.objectContaining({
        key: `127.0.0.1:${up.port}`, address: '127.0.0.1', port: up.port, weight: 1, labels: { version: 'v1' }, healthy: true,
        healthFlags: [], ejections: 0, activeRequests: 0, totalRequests: 3, successRequests: 3, errorRequests: 0,
      }),
    ]);
    const text = await proxy.admin('/clusters');
    expect(text.body).toContain(`${V1}::127.0.0.1:${up.port}::health_flags::healthy\n`);
    expect(text.body).toContain(`${V1}::127.0.0.1:${up.port}::rq_total::3\n`);
  });

  it('/memory: Envoy field names over the V8 heap, and each heap space', async () => {
    const m = await getJson('/memory') as { allocated: string; heap_size: string; total_physical_bytes: string; heap_spaces: Array<{ name: string; used: number; physical: number }> };
    expect(Number(m.allocated)).toBeGreaterThan(0);
    expect(Number(m.heap_size)).toBeGreaterThanOrEqual(Number(m.allocated));
    expect(Number(m.total_physical_bytes)).toBeGreaterThan(Number(m.allocated));
    expect(m.heap_spaces.map((x) => x.name)).toContain('old_space');
  });

  it('/server_info and /listeners?format=json', async () => {
    const s = await getJson('/server_info');
    expect(s).toMatchObject({ version: expect.stringMatching(/^\d+\.\d+\.\d+/), state: 'LIVE', uptime_current_epoch: expect.stringMatching(/^\d+s$/) });
    expect(s.node).toMatchObject({ id: expect.stringContaining('.default'), metadata: { NAMESPACE: 'default', LABELS: { app: 'productpage', version: 'v1' } } });
    expect(s.command_line_options).toMatchObject({ namespace: 'default', traceSampling: 1 });
    const l = await getJson('/listeners?format=json');
    expect(l).toEqual(expect.arrayContaining([
      { name: 'outbound', address: expect.any(String), port: proxy.info.outbound },
      { name: 'admin', address: '127.0.0.1', port: proxy.info.admin },
      { name: 'stats', address: expect.any(String), port: proxy.info.stats },
    ]));
    expect((await proxy.admin('/listeners')).body).toContain(`admin::127.0.0.1:${proxy.info.admin}\n`);
  });

  it('/stats?format=json: name/value pairs matching the text and Prometheus forms', async () => {
    const j = await getJson('/stats?format=json');
    expect(Array.isArray(j.stats)).toBe(true);
    for (const s of j.stats) expect(typeof s.value).toBe('number');
    const total = j.stats.find((s: { name: string }) => s.name === `envoy_cluster_upstream_rq_total{cluster_name="${V1}"}`);
    expect(total?.value).toBe(3);
    const text = (await proxy.admin('/stats')).body;
    expect(text).toContain(`envoy_cluster_upstream_rq_total{cluster_name="${V1}"} 3\n`);
    expect(text).not.toContain('# TYPE');
    expect((await proxy.admin('/stats?format=prometheus')).body).toContain('# TYPE istio_requests_total counter');
  });

  it('/debug/route explains the live config', async () => {
    const e = await getJson('/debug/route?host=reviews:9080&path=/x&method=GET&header=end-user:jason');
    expect(e).toMatchObject({ configVersion: 1, route: 'jason', host: { matched: 'reviews.default.svc.cluster.local', virtualService: 'VirtualService/default/reviews' } });
    expect(e.destinations[0]).toMatchObject({ host: 'reviews.default.svc.cluster.local', subset: 'v1', cluster: V1, endpoints: [expect.stringMatching(new RegExp(`^127\\.0\\.0\\.1:${up.port}\\b`))] });
    expect(e.routes[0]).toMatchObject({ name: 'jason', matched: true });
    const other = await getJson('/debug/route?host=reviews:9080&path=/x');
    expect(other.route).toBe('rest');
    expect(other.routes[0]).toMatchObject({ name: 'jason', matched: false });
    expect((await proxy.admin('/debug/route?host=reviews:9080&format=text')).body).toContain('rest');
    expect((await proxy.admin('/debug/route')).status).toBe(400);
  });
});

describe('admin mutations', () => {
  it('POST /logging?level=debug sets the level; an unknown level is 400; GET is 405', async () => {
    const r = await proxy.admin('/logging?level=debug', 'POST');
    expect(r).toEqual({ status: 200, body: 'active level: debug\n' });
    expect((await proxy.admin('/logging?level=loud', 'POST')).status).toBe(400);
    expect((await proxy.admin('/logging', 'POST')).body).toBe('active level: debug\n');
    expect((await proxy.admin('/logging?level=warn', 'POST')).body).toBe('active level: warn\n');
    expect((await proxy.admin('/logging?level=debug')).status).toBe(405);
  });

  it('mutating endpoints answer 405 with Allow: POST on GET, and do nothing', async () => {
    for (const p of ['/reset_counters', '/quitquitquit', '/drain_listeners', '/healthcheck/fail', '/healthcheck/ok', '/logging']) {
      const r = await request(`http://127.0.0.1:${proxy.info.admin}${p}`);
      expect(r.statusCode, p).toBe(405);
      expect(r.headers.allow, p).toBe('POST');
      await r.body.dump();
    }
    expect((await proxy.admin('/ready')).body).toBe('LIVE\n');
    expect((await proxy.get('/after', { host: 'reviews:9080' })).status).toBe(200);
    // Read-only endpoints are GET-only.
    expect((await proxy.admin('/config_dump', 'POST')).status).toBe(405);
    expect((await proxy.admin('/no/such/endpoint')).status).toBe(404);
  });

  it('POST /reset_counters zeroes the cluster counters shown in /stats?format=json', async () => {
    expect((await proxy.admin('/reset_counters', 'POST')).status).toBe(200);
    const j = await getJson('/stats?format=json');
    expect(j.stats.find((s: { name: string }) => s.name === `envoy_cluster_upstream_rq_total{cluster_name="${V1}"}`)?.value).toBe(0);
  });

  it('a rejected reload shows in /config_dump (lastError) while the last good config stays active', async () => {
    proxy.writeConfig('broken.yaml', 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: broken, namespace: default}\nspec:\n  hosts: [reviews]\n  http: [{route: [{destination: {host: reviews}, weight: -5}]}]\n');
    await waitFor(async () => JSON.parse((await proxy.admin('/config_dump')).body).reloadFailures > 0, 10_000, 100);
    const d = await getJson('/config_dump');
    expect(d.version).toBe(1);
    expect(Date.parse(d.lastError.time)).not.toBeNaN();
    expect(d.lastError.errors.join('\n')).toContain('broken');
    expect((await proxy.get('/still', { host: 'reviews:9080' })).status).toBe(200);
  });
});
