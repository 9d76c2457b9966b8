/**
 * Mirroring through the real CLI (ISTIO-SEMANTICS §3 scenario 12): the share mirrored, the `-shadow` Host, and a
 * slow, hanging or failing shadow never touching the primary response. Shadows go through the policy core: the mirror
 * cluster's circuit breaker and outlier detection, its Envoy cluster stats (and no istio_requests_total, as Envoy),
 * the route's timeout, HTTP/2 where the mirror speaks it, and request bodies up to --mirror-body-bytes.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Agent } from 'undici';
import { fakeUpstream, type FakeH2Upstream, type FakeUpstream } from '../../support/fake-upstream.js';
import { startProxy, type RunningProxy } from '../../support/proxy-harness.js';
import { waitFor, waitForStable } from '../../support/wait-for.js';
import { call, client, clusterStat, pool, serviceEntry } from './helpers.js';

let primary: FakeUpstream;
let shadow: FakeUpstream;
let sleepy: FakeUpstream; // answers after 5 s
let stuck: FakeUpstream; // never answers
let failing: FakeUpstream; // 500
let limited: FakeUpstream; // never answers; its cluster admits one request at a time
let ejectable: FakeUpstream; // 500; its cluster ejects after 2 consecutive 5xx
let h2: FakeH2Upstream; // speaks HTTP/2 only (prior knowledge)
let proxy: RunningProxy;
let http: Agent;

const vs = (name: string, mirror: string, pct: number, extra = ''): string => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${name}, namespace: default}
spec:
  hosts: [${name}]
  http:
  - route: [{destination: {host: primary}}]
    mirror: {host: ${mirror}}
    mirrorPercentage: {value: ${pct}}
${extra}`;

const dr = (host: string, traffic: string): string => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ${host}, namespace: default}
spec:
  host: ${host}
  trafficPolicy: ${traffic}
`;

/** A ServiceEntry whose port is declared HTTP2: Remora speaks HTTP/2 to it. */
const h2Entry = (name: string, port: number): string => serviceEntry(name, [{ port }]).replace('name: http, protocol: HTTP', 'name: http2, protocol: HTTP2').replace('ports: {http:', 'ports: {http2:');

function config(): string {
  return [
    serviceEntry('primary', [{ port: primary.port }]),
    serviceEntry('shadow', [{ port: shadow.port }]),
    serviceEntry('sleepy', [{ port: sleepy.port }]),
    serviceEntry('stuck', [{ port: stuck.port }]),
    serviceEntry('failing', [{ port: failing.port }]),
    serviceEntry('limited', [{ port: limited.port }]),
    serviceEntry('ejectable', [{ port: ejectable.port }]),
    h2Entry('h2shadow', h2.port),
    vs('quarter', 'shadow', 25),
    vs('full', 'shadow', 100),
    vs('slowmirror', 'sleepy', 100),
    vs('stuckmirror', 'stuck', 100),
    vs('failmirror', 'failing', 100),
    vs('limitedmirror', 'limited', 100),
    vs('ejectmirror', 'ejectable', 100),
    vs('h2mirror', 'h2shadow', 100),
    vs('timedmirror', 'stuck', 100, '    timeout: 300ms\n'),
    dr('limited', '{connectionPool: {http: {http2MaxRequests: 1}}}'),
    dr('ejectable', '{outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100}}'),
  ].join('---\n');
}

beforeAll(async () => {
  primary = await fakeUpstream().id('primary').start();
  shadow = await fakeUpstream().id('shadow').start();
  sleepy = await fakeUpstream().id('sleepy').latency(5000).start();
  stuck = await fakeUpstream().id('stuck').hang().start();
  failing = await fakeUpstream().id('failing').route('/*', 500, 'shadow broke').start();
  limited = await fakeUpstream().id('limited').hang().start();
  ejectable = await fakeUpstream().id('ejectable').route('/*', 500, 'bad').start();
  h2 = await fakeUpstream().id('h2').http2().start();
  proxy = await startProxy({ 'mesh.yaml': config() }, ['--mirror-body-bytes', '100000']);
  http = client();
});

afterAll(async () => {
  await http?.close();
  await proxy?.stop();
  await Promise.all([primary, shadow, sleepy, stuck, failing, limited, ejectable, h2].map((u) => u?.close()));
});

describe('scenario 12: mirror', () => {
  it('mirrorPercentage 25: every request reaches the primary, ~25% reach the shadow with a -shadow Host', async () => {
    const p0 = primary.requests.length;
    const s0 = shadow.requests.length;
    const n = 1000;
    const res = await pool(n, 16, (i) => call(proxy, http, `/m/${i}`, { host: 'quarter' }));
    expect(res.every((r) => r.status === 200)).toBe(true);
    expect(primary.requests.length - p0).toBe(n);
    // Fire and forget: let the last shadows land.
    const seen = (await waitForStable(() => shadow.requests.length, { stableForMs: 300 })) - s0;
    const share = seen / n;
    // 25 ± 4 % (σ ≈ 1.4 % at n = 1,000)
    expect(share).toBeGreaterThan(0.21);
    expect(share).toBeLessThan(0.29);
    for (const s of shadow.requests.slice(s0)) expect(s.headers.host).toBe('quarter-shadow');
  });

  for (const [name, host, label] of [['5 s shadow', 'slowmirror', 'sleepy'], ['hanging shadow', 'stuckmirror', 'stuck'], ['failing shadow', 'failmirror', 'failing']] as const) {
    it(`a ${name} leaves the client's status and latency unchanged`, async () => {
      const target = label === 'sleepy' ? sleepy : label === 'stuck' ? stuck : failing;
      const s0 = target.requests.length;
      const res = await pool(20, 4, () => call(proxy, http, '/x', { host }));
      for (const r of res) {
        expect(r.status).toBe(200);
        expect(JSON.parse(r.body).id).toBe('primary');
        expect(r.ms).toBeLessThan(500); // the shadow takes ≥ 5 s or forever
      }
      await waitFor(() => target.requests.length - s0 === 20, 3000);
    });
  }
});

describe('shadows carry request bodies up to --mirror-body-bytes', () => {
  it('a POST with a small body: the shadow gets the same body (was: bodies never mirrored)', async () => {
    const s0 = shadow.requests.length;
    const r = await call(proxy, http, '/orders', { host: 'full', 'content-type': 'application/json' }, 'POST', '{"item":42}');
    expect(r.status).toBe(200);
    await waitFor(() => shadow.requests.length === s0 + 1, { what: 'the shadow' });
    const s = shadow.requests[s0]!;
    expect(s).toMatchObject({ method: 'POST', url: '/orders', body: '{"item":42}' });
    expect(s.headers.host).toBe('full-shadow');
  });

  it('a 90 kB body (streamed past the 64 KiB retry buffer, within the mirror bound): mirrored whole', async () => {
    const s0 = shadow.requests.length;
    const body = 'b'.repeat(90_000);
    const r = await call(proxy, http, '/upload', { host: 'full' }, 'PUT', body);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).body).toBe(body);
    await waitFor(() => shadow.requests.length === s0 + 1, { what: 'the shadow' });
    expect(shadow.requests[s0]!.body).toBe(body);
  });

  it('a body over --mirror-body-bytes: the primary gets it, no shadow, retry_or_shadow_abandoned counted', async () => {
    const s0 = shadow.requests.length;
    const a0 = await clusterStat(proxy, 'retry_or_shadow_abandoned', 'primary');
    const body = 'c'.repeat(150_000);
    const r = await call(proxy, http, '/too-big', { host: 'full' }, 'PUT', body);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).body.length).toBe(150_000);
    expect(await clusterStat(proxy, 'retry_or_shadow_abandoned', 'primary')).toBe(a0 + 1);
    // A small request after it is mirrored: the big one never arrived.
    await call(proxy, http, '/after', { host: 'full' });
    await waitFor(() => shadow.requests.length === s0 + 1, { what: 'the next shadow' });
    expect(shadow.requests[s0]!.url).toBe('/after');
  });
});

describe('shadows go through the policy core', () => {
  it('HTTP/2 where the mirror cluster speaks it (was: always HTTP/1)', async () => {
    const s0 = h2.requests.length;
    const r = await call(proxy, http, '/over-h2', { host: 'h2mirror' }, 'POST', 'h2 body');
    expect(r.status).toBe(200);
    await waitFor(() => h2.requests.length === s0 + 1, { what: 'the HTTP/2 shadow' });
    expect(h2.requests[s0]).toMatchObject({ method: 'POST', url: '/over-h2', body: 'h2 body' });
    expect(h2.requests[s0]!.headers.host).toBe('h2mirror-shadow');
  });

  it("the mirror cluster's circuit breaker admits the shadows (http2MaxRequests 1 to a hanging mirror)", async () => {
    const l0 = limited.requests.length;
    const o0 = await clusterStat(proxy, 'upstream_rq_pending_overflow', 'limited');
    const res = await pool(5, 5, (i) => call(proxy, http, `/l/${i}`, { host: 'limitedmirror' }));
    expect(res.every((r) => r.status === 200)).toBe(true);
    await waitFor(async () => (await clusterStat(proxy, 'upstream_rq_pending_overflow', 'limited')) - o0 === 4, { what: 'four overflows' });
    await waitForStable(() => limited.requests.length, { stableForMs: 300 });
    expect(limited.requests.length - l0).toBe(1);
  });

  it("shadows are counted in the mirror cluster's Envoy stats, never in istio_requests_total", async () => {
    const t0 = await clusterStat(proxy, 'upstream_rq_total', 'failing');
    const res = await pool(6, 3, () => call(proxy, http, '/count', { host: 'failmirror' }));
    expect(res.every((r) => r.status === 200)).toBe(true);
    await waitFor(async () => (await clusterStat(proxy, 'upstream_rq_total', 'failing')) - t0 === 6, { what: 'six shadows counted' });
    const prom = (await proxy.admin('/stats/prometheus')).body;
    expect(prom).toMatch(/envoy_cluster_upstream_rq\{response_code="500",cluster_name="outbound\|80\|\|failing\.default\.svc\.cluster\.local"\} \d+/);
    expect(prom).not.toMatch(/istio_requests_total\{[^}]*destination_service="failing\.default\.svc\.cluster\.local"/);
  });

  it("a failing shadow is reported to the mirror cluster's outlier detection: its endpoint is ejected", async () => {
    const res = await pool(4, 1, () => call(proxy, http, '/e', { host: 'ejectmirror' }));
    expect(res.every((r) => r.status === 200)).toBe(true);
    await waitFor(async () => (await clusterStat(proxy, 'outlier_detection_ejections_active', 'ejectable')) === 1, { what: 'the ejection' });
  });

  it("a shadow ends at the route's timeout (300 ms), counted as upstream_rq_timeout of the mirror cluster", async () => {
    const t0 = await clusterStat(proxy, 'upstream_rq_timeout', 'stuck');
    const r = await call(proxy, http, '/timed', { host: 'timedmirror' });
    expect(r.status).toBe(200);
    // Well before the 10 s bound a shadow gets when its route has no timeout.
    await waitFor(async () => (await clusterStat(proxy, 'upstream_rq_timeout', 'stuck')) === t0 + 1, { timeoutMs: 3000, what: 'the shadow timeout' });
  });
});
