/**
 * ServiceEntry behaviour through the real CLI (ISTIO-SEMANTICS §3 scenario 17): endpoint weights, subsets over
 * endpoint labels, DNS resolution of `localhost`, and REGISTRY_ONLY vs ALLOW_ANY for unknown hosts.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Agent } from 'undici';
import { fakeUpstream, type FakeUpstream } from '../../support/fake-upstream.js';
import { startProxy, type RunningProxy } from '../../support/proxy-harness.js';
import { call, client, pool, serviceEntry } from './helpers.js';

let a: FakeUpstream;
let b: FakeUpstream;
let proxy: RunningProxy;
let strict: RunningProxy;
let http: Agent;

function config(): string {
  return [
    serviceEntry('weighted', [{ port: a.port, weight: 3, labels: { v: 'a' } }, { port: b.port, weight: 1 }]),
    `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: weighted, namespace: default}
spec:
  host: weighted
  subsets: [{name: a, labels: {v: a}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: weighted, namespace: default}
spec:
  hosts: [weighted]
  http:
  - match: [{uri: {prefix: /subset}}]
    route: [{destination: {host: weighted, subset: a}}]
  - route: [{destination: {host: weighted}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: bydns, namespace: default}
spec:
  hosts: [bydns.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
  endpoints: [{address: localhost, ports: {http: ${a.port}}}]
`,
  ].join('---\n');
}

beforeAll(async () => {
  a = await fakeUpstream('a');
  b = await fakeUpstream('b');
  proxy = await startProxy({ 'mesh.yaml': config() });
  strict = await startProxy({ 'mesh.yaml': config() }, ['--outbound-traffic-policy', 'REGISTRY_ONLY']);
  http = client();
});

afterAll(async () => {
  await http?.close();
  await proxy?.stop();
  await strict?.stop();
  await Promise.all([a, b].map((u) => u?.close()));
});

describe('scenario 17: ServiceEntry', () => {
  it('STATIC endpoint weights 3:1 split 75/25', async () => {
    const a0 = a.requests.length;
    const n = 2000;
    const res = await pool(n, 1, () => call(proxy, http, '/w', { host: 'weighted' }));
    expect(res.every((r) => r.status === 200)).toBe(true);
    const share = (a.requests.length - a0) / n;
    // 75 ± 3 % (σ ≈ 1 % at n = 2,000)
    expect(share).toBeGreaterThan(0.72);
    expect(share).toBeLessThan(0.78);
  });

  it('a subset selects the labelled endpoint only', async () => {
    const res = await pool(20, 4, () => call(proxy, http, '/subset', { host: 'weighted' }));
    for (const r of res) expect(JSON.parse(r.body).id).toBe('a');
  });

  it('resolution DNS: endpoint address localhost', async () => {
    const r = await call(proxy, http, '/d', { host: 'bydns.example.com' });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).id).toBe('a');
  });

  it('an unknown host: passthrough under ALLOW_ANY, 502 under REGISTRY_ONLY', async () => {
    const r = await call(proxy, http, '/u', { host: `127.0.0.1:${b.port}` });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).id).toBe('b');
    const b0 = b.requests.length;
    const r2 = await call(strict, http, '/u', { host: `127.0.0.1:${b.port}` });
    expect(r2.status).toBe(502);
    expect(b.requests.length).toBe(b0);
    // Registered hosts still work under REGISTRY_ONLY.
    expect((await call(strict, http, '/w', { host: 'weighted' })).status).toBe(200);
  });

  it('REGISTRY_ONLY refusals are BlackHoleCluster requests in the metrics, whatever the Host (bounded labels, as Istio)', async () => {
    for (const h of ['made-up-1.example', 'made-up-2.example:8080']) expect((await call(strict, http, '/x', { host: h })).status).toBe(502);
    const body = (await strict.admin('/stats/prometheus')).body;
    const lines = body.split('\n').filter((l) => l.startsWith('istio_requests_total{') && l.includes('response_code="502"'));
    expect(lines.length).toBe(1);
    expect(lines[0]).toMatch(/destination_service="unknown"/);
    expect(lines[0]).toMatch(/destination_service_name="BlackHoleCluster"/);
    expect(body).not.toMatch(/made-up-/);
  });
});
