/**
 * Fault injection and CORS through the real CLI (ISTIO-SEMANTICS §3 scenario 11): aborts answered locally
 * with FI and never sent upstream, delays with DI, CORS preflight answered by the proxy.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Agent } from 'undici';
import { fakeUpstream, type FakeUpstream } from '../../support/fake-upstream.js';
import { startProxy, waitFor, type RunningProxy } from '../../support/proxy-harness.js';
import { call, client, pool, serviceEntry } from './helpers.js';

let up: FakeUpstream;
let proxy: RunningProxy;
let http: Agent;
let logDir: string;

function config(): string {
  return `${serviceEntry('faulty', [{ port: up.port }])}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: faulty, namespace: default}
spec:
  hosts: [faulty]
  http:
  - name: abort
    match: [{uri: {prefix: /abort}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 50}}}
    route: [{destination: {host: faulty}}]
  - name: grpc-abort
    match: [{uri: {prefix: /grpc}}]
    fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}
    route: [{destination: {host: faulty}}]
  - name: delay
    match: [{uri: {prefix: /delay}}]
    fault: {delay: {fixedDelay: 200ms, percentage: {value: 100}}}
    route: [{destination: {host: faulty}}]
  - name: cors
    match: [{uri: {prefix: /cors}}]
    corsPolicy:
      allowOrigins: [{exact: "https://app.example.com"}, {regex: "https://.*\\\\.trusted\\\\.io"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-custom]
      exposeHeaders: [x-upstream-id]
      maxAge: 24h
      allowCredentials: true
    route: [{destination: {host: faulty}}]
`;
}

beforeAll(async () => {
  up = await fakeUpstream('faulty');
  logDir = mkdtempSync(join(tmpdir(), 'remora-faults-'));
  proxy = await startProxy({ 'mesh.yaml': config() }, ['--access-log', join(logDir, 'access.log'), '--access-log-format', 'json']);
  http = client();
});

afterAll(async () => {
  await http?.close();
  await proxy?.stop();
  await up?.close();
  rmSync(logDir, { recursive: true, force: true });
});

function logLines(): Array<Record<string, unknown>> {
  let text = '';
  try { text = readFileSync(join(logDir, 'access.log'), 'utf8'); } catch { return []; }
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('scenario 11: faults', () => {
  it('abort 50% over 2,000 requests: ~1,000 local 503 FI, the upstream sees exactly the rest', async () => {
    const before = up.requests.length;
    const n = 2000;
    const res = await pool(n, 16, () => call(proxy, http, '/abort', { host: 'faulty' }));
    const aborted = res.filter((r) => r.status === 503);
    const ok = res.filter((r) => r.status === 200);
    expect(aborted.length + ok.length).toBe(n);
    // 50 ± 3 % (σ ≈ 1.1 % at n = 2,000: a > 2.5σ margin)
    expect(aborted.length / n).toBeGreaterThan(0.47);
    expect(aborted.length / n).toBeLessThan(0.53);
    for (const r of aborted.slice(0, 20)) {
      expect(r.headers['x-remora-proxy-error']).toMatch(/^FI /);
      expect(r.body).toBe('fault filter abort');
    }
    expect(up.requests.length - before).toBe(ok.length);
  });

  it('gRPC abort: 200 with grpc-status 14, nothing sent upstream', async () => {
    const before = up.requests.length;
    const r = await call(proxy, http, '/grpc', { host: 'faulty', 'content-type': 'application/grpc' });
    expect(r.status).toBe(200);
    expect(r.headers['grpc-status']).toBe('14');
    expect(up.requests.length).toBe(before);
  });

  it('delay 200ms 100%: every request takes ≥ 200 ms and is logged with DI', async () => {
    const res = await pool(10, 5, (i) => call(proxy, http, '/delay', { host: 'faulty', 'x-request-id': `delay-${i}` }));
    for (const r of res) {
      expect(r.status).toBe(200);
      expect(r.ms).toBeGreaterThanOrEqual(195); // timer granularity
      expect(r.ms).toBeLessThan(2000);
    }
    await waitFor(() => logLines().filter((l) => String(l.request_id).startsWith('delay-')).length === 10, 3000);
    for (const l of logLines().filter((x) => String(x.request_id).startsWith('delay-'))) expect(String(l.response_flags)).toContain('DI');
  });
});

describe('corsPolicy', () => {
  it('answers an allowed preflight locally, with the policy headers', async () => {
    const before = up.requests.length;
    const r = await call(proxy, http, '/cors/x', {
      host: 'faulty', origin: 'https://app.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-custom',
    }, 'OPTIONS');
    expect(r.status).toBe(200);
    expect(r.headers['access-control-allow-origin']).toBe('https://app.example.com');
    expect(r.headers['access-control-allow-methods']).toBe('GET,POST');
    expect(r.headers['access-control-allow-headers']).toBe('x-custom');
    expect(r.headers['access-control-max-age']).toBe('86400');
    expect(r.headers['access-control-allow-credentials']).toBe('true');
    expect(up.requests.length).toBe(before);
  });

  it('the actual request goes upstream and its response carries access-control-allow-origin (regex origin too)', async () => {
    const r = await call(proxy, http, '/cors/x', { host: 'faulty', origin: 'https://a.trusted.io' });
    expect(r.status).toBe(200);
    expect(r.headers['access-control-allow-origin']).toBe('https://a.trusted.io');
    expect(r.headers['access-control-expose-headers']).toBe('x-upstream-id');
    const other = await call(proxy, http, '/cors/x', { host: 'faulty', origin: 'https://evil.example' });
    expect(other.status).toBe(200);
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('a preflight from a disallowed origin gets no allow-origin header', async () => {
    const r = await call(proxy, http, '/cors/x', { host: 'faulty', origin: 'https://evil.example', 'access-control-request-method': 'GET' }, 'OPTIONS');
    expect(r.headers['access-control-allow-origin']).toBeUndefined();
  });
});
