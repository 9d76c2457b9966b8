/**
 * Living in a pod, through the real CLI: inbound forwarding and header hygiene, SIGTERM drain under load
 * (no in-flight request lost, ready flips first, outbound keeps serving, exit 0), /quitquitquit,
 * app probe forwarding on the health port, --exit-on-app-exit, and `remora wait`.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { request, Agent } from 'undici';
import { fakeUpstream, type FakeUpstream } from '../../support/fake-upstream.js';
import { CLI, startProxy, waitFor, type RunningProxy } from '../../support/proxy-harness.js';
import { selfSignedCert } from '../../support/tls.js';

const cleanups: Array<() => Promise<unknown> | void> = [];
afterEach(async () => { while (cleanups.length) await cleanups.pop()!(); });

async function app(id: string): Promise<FakeUpstream> {
  const u = await fakeUpstream(id);
  cleanups.push(() => u.close());
  return u;
}
async function proxyWith(files: Record<string, string>, args: string[], env?: NodeJS.ProcessEnv): Promise<RunningProxy> {
  const p = await startProxy(files, args, env ? { env } : {});
  cleanups.push(() => p.stop());
  return p;
}
const seFor = (u: FakeUpstream): string => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: other, namespace: default}
spec:
  hosts: [other.default.svc.cluster.local]
  ports: [{number: 80, name: http}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: ${u.port}}}]
`;

async function inbound(p: RunningProxy, path: string, headers: Record<string, string> = {}, dispatcher?: Agent): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  const r = await request(`http://127.0.0.1:${p.info.inbound}${path}`, { headers: { host: 'reviews:9080', ...headers }, ...(dispatcher ? { dispatcher } : {}) });
  return { status: r.statusCode, headers: r.headers, body: await r.body.text() };
}

describe('inbound listener', () => {
  it('forwards to the app, strips peer x-envoy-* headers, keeps/creates x-request-id', async () => {
    const a = await app('app');
    const p = await proxyWith({}, ['--app-port', String(a.port)]);
    const r = await inbound(p, '/in?x=1', { 'x-envoy-max-retries': '5', 'x-envoy-upstream-rq-timeout-ms': '1', 'x-request-id': 'abc' });
    expect(r.status).toBe(200);
    const seen = a.requests.at(-1)!;
    expect(seen.url).toBe('/in?x=1');
    expect(seen.headers['x-envoy-max-retries']).toBeUndefined();
    expect(seen.headers['x-envoy-upstream-rq-timeout-ms']).toBeUndefined();
    expect(seen.headers['x-request-id']).toBe('abc');
  });

  it('unreachable app: 503 UF', async () => {
    const a = await app('gone');
    const port = a.port;
    await a.close();
    const p = await proxyWith({}, ['--app-port', String(port)]);
    const r = await inbound(p, '/');
    expect(r.status).toBe(503);
    expect(String(r.headers['x-remora-proxy-error'])).toMatch(/^UF/);
  });
});

describe('shutdown', () => {
  it('SIGTERM under load: ready flips first, in-flight requests finish, outbound keeps working, new inbound refused, exit 0', async () => {
    const a = await app('app');
    a.latency(800);
    const other = await app('other');
    const p = await proxyWith({ 'se.yaml': seFor(other) }, ['--app-port', String(a.port), '--drain-seconds', '10']);
    const agent = new Agent({ connections: 50 });
    cleanups.push(() => agent.close());
    // A steady stream of slow inbound requests.
    const inflight: Array<Promise<number>> = [];
    for (let i = 0; i < 20; i++) inflight.push(inbound(p, `/slow/${i}`, {}, agent).then((r) => r.status, () => -1));
    await waitFor(() => a.requests.length >= 20, 5000);
    const t0 = Date.now();
    p.child.kill('SIGTERM');
    await waitFor(async () => (await p.admin('/ready').catch(() => ({ status: 0 }))).status === 503, 2000, 5);
    const readyFlipMs = Date.now() - t0;
    expect(readyFlipMs).toBeLessThan(1000);
    // Outbound still serves the app while it drains.
    const out = await p.get('/', { host: 'other' });
    expect(out.status).toBe(200);
    // New inbound connections are refused.
    const fresh = new Agent();
    cleanups.push(() => fresh.close());
    await expect(inbound(p, '/new', {}, fresh)).rejects.toThrow();
    const statuses = await Promise.all(inflight);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    const code = await p.exited;
    expect(code).toBe(0);
  });

  it('POST /quitquitquit drains and exits', async () => {
    const p = await proxyWith({}, []);
    const t0 = Date.now();
    const r = await p.admin('/quitquitquit', 'POST');
    expect(r.status).toBe(200);
    expect(await p.exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('--exit-on-app-exit: exits after the app port stops listening', async () => {
    const a = await fakeUpstream('job');
    const p = await proxyWith({}, ['--app-port', String(a.port), '--exit-on-app-exit-seconds', '1']);
    await waitFor(() => a.connections > 0, { what: "the watcher's probe at the app" }); // the watcher sees the app up
    await a.close();
    expect(await Promise.race([p.exited, new Promise((r) => setTimeout(() => r('timeout'), 6000))])).toBe(0);
  });
});

describe('probes and readiness', () => {
  it('forwards rewritten app probes on the health port; /healthz/ready is 200', async () => {
    const a = await app('app');
    a.behave((req, res) => {
      if (req.url === '/health') { res.writeHead(204); res.end(); return 'handled'; }
      if (req.url === '/sick') { res.writeHead(500); res.end(); return 'handled'; }
      return undefined;
    });
    const probers = JSON.stringify({
      '/app-health/app/readyz': { httpGet: { path: '/health', port: a.port, scheme: 'HTTP' }, timeoutSeconds: 1 },
      '/app-health/app/livez': { httpGet: { path: '/sick', port: a.port, scheme: 'HTTP' }, timeoutSeconds: 1 },
    });
    const p = await proxyWith({}, ['--app-port', String(a.port)], { REMORA_APP_PROBERS: probers });
    const h = async (path: string): Promise<number> => (await request(`http://127.0.0.1:${p.info.health}${path}`)).statusCode;
    expect(await h('/healthz/ready')).toBe(200);
    expect(await h('/app-health/app/readyz')).toBe(204);
    expect(await h('/app-health/app/livez')).toBe(500);
    expect(await h('/app-health/other/readyz')).toBe(404);
  });

  it('forwards an HTTPS app probe (scheme HTTPS, certificate not verified, as kubelet does)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'remora-probe-tls-'));
    const { key, cert } = selfSignedCert(dir, 'app', { cn: 'app' });
    const tls = createHttpsServer({ key, cert }, (req, res) => {
      res.writeHead(req.url === '/ready' ? 204 : 503);
      res.end();
    });
    rmSync(dir, { recursive: true, force: true });
    await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
    try {
      const port = (tls.address() as AddressInfo).port;
      const probers = JSON.stringify({
        '/app-health/app/startupz': { httpGet: { path: '/ready', port, scheme: 'HTTPS' }, timeoutSeconds: 1 },
        '/app-health/app/livez': { httpGet: { path: '/other', port, scheme: 'HTTPS' }, timeoutSeconds: 1 },
      });
      const p = await proxyWith({}, [], { REMORA_APP_PROBERS: probers });
      const h = async (path: string): Promise<number> => (await request(`http://127.0.0.1:${p.info.health}${path}`)).statusCode;
      expect(await h('/app-health/app/startupz')).toBe(204);
      expect(await h('/app-health/app/livez')).toBe(503);
    } finally {
      tls.closeAllConnections();
      await new Promise((r) => tls.close(r));
    }
  });

  it('`remora wait` returns once the sidecar is ready', async () => {
    const p = await proxyWith({}, []);
    const r = await promisify(execFile)(process.execPath, [CLI, 'wait', '--url', `http://127.0.0.1:${p.info.health}/healthz/ready`, '--timeout', '5s']);
    expect(r.stderr).not.toMatch(/timed out/);
  });

  it('starts with an empty config directory (optional ConfigMap) and reports the startup time', async () => {
    const p = await proxyWith({}, []);
    expect((await p.admin('/ready')).status).toBe(200);
    const m = /remora ready (\{.*\})/.exec(p.stdout);
    const ready = JSON.parse(m![1]!) as { startupMs: number; configMs: Record<string, number> };
    expect(ready.startupMs).toBeGreaterThanOrEqual(0);
    // The first config build's split is part of startupMs (each part rounded to the ms).
    expect(Object.keys(ready.configMs).sort()).toEqual(['apply', 'compile', 'hash', 'read', 'validate', 'wait']);
    expect(ready.configMs.wait).toBe(0);
    expect(Object.values(ready.configMs).reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(ready.startupMs + 3);
  });
});
