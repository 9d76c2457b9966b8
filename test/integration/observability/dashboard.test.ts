/**
 * The admin dashboard (`GET /`) against a live proxy with traffic: its JSON model (`/debug/dashboard`,
 * `/debug/routes`) and the page rendered by headless Chromium (DOM dump + a screenshot in test-results/), showing
 * the routes, a weight split, per-cluster success rates and an endpoint ejected by outlier detection.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { fakeUpstream, type FakeUpstream } from '../../support/fake-upstream.js';
import { REPO, startProxy, waitFor, type RunningProxy } from '../../support/proxy-harness.js';
import { serviceEntry } from './support.js';
import type { DashboardModel } from '../../../src/admin/dashboard.js';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
if (!CHROMIUM) console.warn('SKIPPED dashboard rendering: chromium not found (Debian package `chromium`, installed by .ci/run)');

const RATINGS = 'outbound|9080||ratings.default.svc.cluster.local';

let v1: FakeUpstream;
let v2: FakeUpstream;
let good: FakeUpstream;
let bad: FakeUpstream;
let proxy: RunningProxy;
let ratingsSent = 0;

const config = (): string =>
  [
    serviceEntry('reviews', 9080, [{ port: v1.port, labels: { version: 'v1' } }, { port: v2.port, labels: { version: 'v2' } }]),
    serviceEntry('ratings', 9080, [{ port: good.port }, { port: bad.port }]),
    `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
`,
    `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - name: canary
    route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v2}, weight: 20}
`,
    // Two consecutive 5xx eject the failing endpoint for a minute (longer than the test), whatever the share.
    `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 60s, maxEjectionPercent: 100}
`,
  ].join('---\n');

beforeAll(async () => {
  v1 = await fakeUpstream('v1');
  v2 = await fakeUpstream('v2');
  good = await fakeUpstream('good');
  bad = await fakeUpstream('bad');
  bad.behave((_req, res) => { res.writeHead(500).end('boom'); return 'handled'; });
  proxy = await startProxy({ 'mesh.yaml': config() });
  for (let i = 0; i < 100; i++) await proxy.get(`/r/${i}`, { host: 'reviews:9080' });
  // The balancer spreads requests over good and bad; bad answers 500 until its second consecutive 5xx ejects it.
  // Send until that happened (bounded), then a few more that can only reach good.
  while (bad.requests.length < 2 && ratingsSent < 200) await proxy.get(`/s/${ratingsSent++}`, { host: 'ratings:9080' });
  for (let i = 0; i < 4; i++) await proxy.get(`/s/${ratingsSent++}`, { host: 'ratings:9080' });
});

afterAll(async () => {
  await proxy?.stop();
  await Promise.all([v1?.close(), v2?.close(), good?.close(), bad?.close()]);
});

describe('dashboard model', () => {
  it('/debug/dashboard: routes with configured and observed weight split, cluster success and latency, ejected endpoint', async () => {
    const r = await proxy.admin('/debug/dashboard');
    expect(r.status).toBe(200);
    const m = JSON.parse(r.body) as DashboardModel;
    expect(m.server).toMatchObject({ state: 'LIVE', configVersion: 1 });
    const canary = m.routes.find((x) => x.name === 'canary')!;
    expect(canary.hosts).toEqual(['reviews.default.svc.cluster.local']);
    expect(canary.origin).toBe('VirtualService/default/reviews');
    expect(canary.requests).toBe(100);
    expect(canary.destinations.map((d) => [d.subset, d.weight, d.configuredShare])).toEqual([['v1', 80, 0.8], ['v2', 20, 0.2]]);
    const [d1, d2] = canary.destinations;
    expect(d1!.requests + d2!.requests).toBe(100);
    expect(d1!.requests).toBe(v1.requests.length);
    expect(d1!.observedShare).toBeCloseTo(v1.requests.length / 100, 5);
    // 100 draws at 80 %: far outside [55, 98] would mean the split is broken (p < 1e-7).
    expect(d1!.requests).toBeGreaterThan(55);
    expect(d1!.requests).toBeLessThan(98);
    // The registry host without a VirtualService shows Istio's default route once it has traffic.
    const ratingsRoute = m.routes.find((x) => x.hosts.includes('ratings.default.svc.cluster.local'))!;
    expect(ratingsRoute).toMatchObject({ name: 'default', requests: ratingsSent, match: '*' });
    expect(ratingsRoute.destinations[0]).toMatchObject({ weight: 100, configuredShare: 1, observedShare: 1, clusters: [RATINGS] });

    const rc = m.clusters.find((c) => c.name === RATINGS)!;
    // Default retries (connect-failure, refused-stream, unavailable, cancelled, retriable-status-codes) do not retry 500.
    expect(rc.requests).toBe(ratingsSent);
    expect(rc.success).toBe(ratingsSent - 2);
    expect(rc.successRate).toBeCloseTo((ratingsSent - 2) / ratingsSent, 5);
    expect(rc.p50Ms).toBeGreaterThan(0);
    expect(rc.p99Ms).toBeGreaterThanOrEqual(rc.p50Ms!);
    expect(rc).toMatchObject({ endpoints: 2, healthyEndpoints: 1, ejectionsActive: 1 });
    expect(bad.requests).toHaveLength(2);
    expect(m.ejected).toEqual([
      { cluster: RATINGS, endpoint: `127.0.0.1:${bad.port}`, healthFlags: ['failed_outlier_check'], ejections: 1, remainingMs: expect.any(Number) },
    ]);
    expect(m.ejected[0]!.remainingMs).toBeGreaterThan(30_000);
    expect(m.clusters.find((c) => c.name === 'outbound|9080|v1|reviews.default.svc.cluster.local')).toMatchObject({ successRate: 1, requests: v1.requests.length });
  });

  it('/debug/routes lists VirtualService routes even without traffic, and GET / serves the HTML page', async () => {
    const routes = JSON.parse((await proxy.admin('/debug/routes')).body) as { version: number; routes: Array<{ name: string }> };
    expect(routes.version).toBe(1);
    expect(routes.routes.map((x) => x.name)).toContain('canary');
    const page = await proxy.admin('/');
    expect(page.status).toBe(200);
    expect(page.body).toMatch(/^<!doctype html>/);
    // Self-contained: no external scripts, styles or images.
    expect(page.body).not.toMatch(/<(script|link|img)[^>]+(src|href)=["']?(https?:)?\/\//i);
    const help = await proxy.admin('/help');
    expect(help.body).toContain('GET /debug/dashboard');
    expect(help.body).toContain('POST /quitquitquit');
  });
});

/** Run headless Chromium with the given extra args against the admin page; bounded in time, killed by PID. */
function chromium(args: string[], timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
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

describe.skipIf(!CHROMIUM)('dashboard in headless Chromium', () => {
  it('renders routes, the weight split and the ejected endpoint (DOM dump)', async () => {
    const r = await chromium(['--dump-dom']);
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const dom = r.stdout;
    expect(dom).toContain('data-route="canary"');
    expect(dom).toMatch(/data-dest="reviews\.default\.svc\.cluster\.local · v1"/);
    expect(dom).toMatch(/data-dest="reviews\.default\.svc\.cluster\.local · v2"/);
    // The weight split as text: configured → observed.
    const share1 = Math.round((v1.requests.length / 100) * 1000) / 10;
    expect(dom).toContain(`80% → ${share1}%`);
    expect(dom).toContain(`data-ejected="127.0.0.1:${bad.port}"`);
    expect(dom).toContain('failed_outlier_check');
    expect(dom).toContain(`data-cluster="${RATINGS}"`);
    expect(dom).toContain('>LIVE<');
    // The error banner stayed empty (it gets the fetch error text when /debug/dashboard fails).
    expect(dom).toMatch(/<section id="error"( style="display: none;")?><\/section>/);
  });

  it('takes a screenshot into test-results/dashboard.png', async () => {
    const dir = join(REPO, 'test-results');
    mkdirSync(dir, { recursive: true });
    const png = join(dir, 'dashboard.png');
    rmSync(png, { force: true });
    const r = await chromium([`--screenshot=${png}`]);
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    await waitFor(() => existsSync(png), 5000);
    expect(statSync(png).size).toBeGreaterThan(10_000);
    console.log(`dashboard screenshot: ${png}`);
  });
});

