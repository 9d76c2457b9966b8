/**
 * Circuit breaking and outlier detection through the real CLI (ISTIO-SEMANTICS §3 scenarios 13 and 14):
 * pool overflow answered at once with UO and counted; a failing host ejected, visible on /clusters, and back
 * after its ejection time (times shrunk: interval 200 ms, baseEjectionTime 1 s).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Agent } from 'undici';
import { fakeUpstream, type FakeUpstream } from '../../support/fake-upstream.js';
import { startProxy, waitFor, type RunningProxy } from '../../support/proxy-harness.js';
import { call, client, clusterStat, pool, serviceEntry } from './helpers.js';

let slow: FakeUpstream; // 1 s
let a: FakeUpstream;
let b: FakeUpstream;
let c: FakeUpstream; // always 500
let d: FakeUpstream; // 500 (second bad host)
let proxy: RunningProxy;
let http: Agent;

function config(): string {
  return [
    serviceEntry('narrow', [{ port: slow.port }]),
    serviceEntry('fewrq', [{ port: slow.port }]),
    serviceEntry('trio', [{ port: a.port }, { port: b.port }, { port: c.port }]),
    serviceEntry('halfbad', [{ port: a.port }, { port: c.port }, { port: d.port }]),
    `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: narrow, namespace: default}
spec:
  host: narrow
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: fewrq, namespace: default}
spec:
  host: fewrq
  trafficPolicy: {connectionPool: {http: {http2MaxRequests: 2}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: trio, namespace: default}
spec:
  host: trio
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 3, interval: 200ms, baseEjectionTime: 1s, maxEjectionPercent: 100}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: halfbad, namespace: default}
spec:
  host: halfbad
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 3, interval: 200ms, baseEjectionTime: 5s, maxEjectionPercent: 50}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: trio, namespace: default}
spec:
  hosts: [trio]
  http: [{retries: {attempts: 0}, route: [{destination: {host: trio}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: halfbad, namespace: default}
spec:
  hosts: [halfbad]
  http: [{retries: {attempts: 0}, route: [{destination: {host: halfbad}}]}]
`,
  ].join('---\n');
}

beforeAll(async () => {
  slow = (await fakeUpstream('slow')).latency(1000);
  a = await fakeUpstream('A');
  b = await fakeUpstream('B');
  c = (await fakeUpstream('C')).behave((_q, res) => { res.writeHead(500); res.end('C'); return 'handled'; });
  d = (await fakeUpstream('D')).behave((_q, res) => { res.writeHead(500); res.end('D'); return 'handled'; });
  proxy = await startProxy({ 'mesh.yaml': config() });
  http = client();
});

afterAll(async () => {
  await http?.close();
  await proxy?.stop();
  await Promise.all([slow, a, b, c, d].map((u) => u?.close()));
});

describe('scenario 13: pool overflow', () => {
  it('maxConnections 1 + http1MaxPendingRequests 1, 10 concurrent: 2 succeed, 8 get 503 UO at once', async () => {
    const before = await clusterStat(proxy, 'upstream_rq_pending_overflow', 'narrow');
    const res = await Promise.all(Array.from({ length: 10 }, () => call(proxy, http, '/x', { host: 'narrow' })));
    const ok = res.filter((r) => r.status === 200);
    const over = res.filter((r) => r.status === 503);
    expect(ok.length).toBe(2);
    expect(over.length).toBe(8);
    for (const r of over) {
      expect(r.headers['x-envoy-overloaded']).toBe('true');
      expect(r.headers['x-remora-proxy-error']).toMatch(/^UO /);
      expect(r.ms).toBeLessThan(500); // the admitted ones take ≥ 1 s
    }
    // The second admitted request waited for the single connection.
    expect(Math.max(...ok.map((r) => r.ms))).toBeGreaterThanOrEqual(1900);
    expect(slow.connections).toBe(1);
    expect(await clusterStat(proxy, 'upstream_rq_pending_overflow', 'narrow') - before).toBe(8);
  });
});

describe('http2MaxRequests (concurrent requests, HTTP/1 too)', () => {
  it('http2MaxRequests 2, 6 concurrent: 2 succeed, 4 get 503 UO, counted as upstream_rq_pending_overflow (Envoy)', async () => {
    const before = await clusterStat(proxy, 'upstream_rq_pending_overflow', 'fewrq');
    const res = await Promise.all(Array.from({ length: 6 }, () => call(proxy, http, '/x', { host: 'fewrq' })));
    expect(res.filter((r) => r.status === 200).length).toBe(2);
    const over = res.filter((r) => r.status === 503);
    expect(over.length).toBe(4);
    for (const r of over) expect(r.headers['x-envoy-overloaded']).toBe('true');
    expect(await clusterStat(proxy, 'upstream_rq_pending_overflow', 'fewrq') - before).toBe(4);
  });
});

interface ClusterJson { clusters: Array<{ name: string; endpoints: Array<{ key: string; healthy: boolean; healthFlags: string[]; ejections: number }> }> }

async function endpointsOf(name: string): Promise<ClusterJson['clusters'][number]['endpoints']> {
  const j = JSON.parse((await proxy.admin('/clusters?format=json')).body) as ClusterJson;
  return j.clusters.find((x) => x.name === `outbound|80||${name}.default.svc.cluster.local`)!.endpoints;
}

describe('scenario 14: outlier detection', () => {
  it('C (always 500) is ejected after 3 errors, gets no traffic while ejected, shows failed_outlier_check, and returns', async () => {
    const cKey = `127.0.0.1:${c.port}`;
    // Round robin: C gets every third request, so 3 errors after ~9 requests.
    for (let i = 0; i < 12; i++) await call(proxy, http, '/x', { host: 'trio' });
    const text = (await proxy.admin('/clusters')).body;
    expect(text).toContain(`outbound|80||trio.default.svc.cluster.local::${cKey}::health_flags::/failed_outlier_check`);
    const ejectedAt = performance.now();
    const c0 = c.requests.length;
    const res = await pool(60, 4, () => call(proxy, http, '/x', { host: 'trio' }));
    const during = performance.now() - ejectedAt;
    expect(during).toBeLessThan(950); // all of these ran inside the 1 s ejection
    expect(res.every((r) => r.status === 200)).toBe(true);
    expect(c.requests.length - c0).toBe(0);
    const eps = await endpointsOf('trio');
    expect(eps.find((e) => e.key === cKey)!.ejections).toBe(1);
    // Back after baseEjectionTime (1 s) at the next interval sweep: C receives traffic again.
    await waitFor(async () => (await endpointsOf('trio')).find((e) => e.key === cKey)!.healthy, { what: 'C back from ejection' });
    const c1 = c.requests.length;
    await pool(9, 1, () => call(proxy, http, '/x', { host: 'trio' }));
    expect(c.requests.length - c1).toBeGreaterThan(0);
  });

  it('maxEjectionPercent 50 with two bad hosts of three: at most one is ejected', async () => {
    for (let i = 0; i < 30; i++) await call(proxy, http, '/x', { host: 'halfbad' });
    const eps = await endpointsOf('halfbad');
    expect(eps.filter((e) => !e.healthy).length).toBe(1);
    expect(await clusterStat(proxy, 'outlier_detection_ejections_active', 'halfbad')).toBe(1);
  });
});
