/**
 * HTTPRoute features beyond the conformance suite, through the CLI with real upstreams: retries (GEP-1731: codes,
 * attempts, a minimum backoff), timeouts (request, backendRequest), CORS (GEP-1767), RequestMirror with a fraction
 * (GEP-3171), method matching, URLRewrite hostname, ResponseHeaderModifier.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { CLI, startProxy, waitFor, type RunningProxy } from '../../support/proxy-harness.js';
import { FakeUpstream } from '../../support/fake-upstream.js';

const NS = 'shop';
/** A Service; with `port`, an EndpointSlice on 127.0.0.1:port too (the parent Service `api` needs none). */
function svc(name: string, port?: number): string {
  const head = `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ${NS}}
spec: {ports: [{name: http, port: 80}]}
`;
  return port === undefined ? head : `${head}---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${name}-1, namespace: ${NS}, labels: {kubernetes.io/service-name: ${name}}}
addressType: IPv4
endpoints: [{addresses: [127.0.0.1]}]
ports: [{name: http, port: ${port}}]
`;
}

describe.skipIf(!existsSync(CLI))('HTTPRoute extended features through the CLI', () => {
  let api: FakeUpstream;
  let shadow: FakeUpstream;
  let proxy: RunningProxy;
  let failNext = 0;
  beforeAll(async () => {
    api = new FakeUpstream('api');
    api.behave((req, res) => {
      if (req.url?.startsWith('/slow')) { setTimeout(() => { if (!res.destroyed) res.end('late'); }, 1500); return 'handled'; }
      if (req.url?.startsWith('/flaky') && failNext > 0) { failNext--; res.writeHead(502).end('bad gateway'); return 'handled'; }
      return undefined;
    });
    await api.start();
    shadow = await new FakeUpstream('shadow').start();
    const routes = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api, namespace: ${NS}}
spec:
  parentRefs: [{group: "", kind: Service, name: api}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /flaky}}]
    retry: {codes: [502], attempts: 3, backoff: 200ms}
    backendRefs: [{name: api-backend, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /slow}}]
    timeouts: {request: 300ms}
    backendRefs: [{name: api-backend, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /cors}}]
    filters:
    - type: CORS
      cors: {allowOrigins: ["https://*.example.com"], allowMethods: ["*"], allowHeaders: ["*"], exposeHeaders: ["*"], allowCredentials: true}
    backendRefs: [{name: api-backend, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /mirror}}]
    filters: [{type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 80}, fraction: {numerator: 1, denominator: 4}}}]
    backendRefs: [{name: api-backend, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /write}, method: POST}]
    filters:
    - {type: URLRewrite, urlRewrite: {hostname: writer.internal}}
    - {type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: x-route, value: write}], remove: [x-upstream-id]}}
    backendRefs: [{name: api-backend, port: 80}]
`;
    proxy = await startProxy({ 'mesh.yaml': `${svc('api')}---\n${svc('api-backend', api.port)}---\n${svc('shadow', shadow.port)}`, 'routes.yaml': routes }, ['--namespace', NS, '--resolv-conf', '']);
  }, 20_000);
  afterAll(async () => {
    await proxy?.stop();
    await api?.close();
    await shadow?.close();
  });
  const call = (path: string, opts: { method?: string; headers?: Record<string, string> } = {}) => proxy.get(path, { host: 'api', ...opts.headers }, opts.method ?? 'GET');

  it('retry: the listed codes are retried up to attempts, never sooner than backoff', async () => {
    failNext = 2;
    const before = api.requests.length;
    const t0 = Date.now();
    const r = await call('/flaky/1');
    expect(r.status).toBe(200);
    expect(api.requests.length - before).toBe(3);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
    failNext = 5;
    const r2 = await call('/flaky/2');
    expect(r2.status).toBe(502);
    failNext = 0;
  });

  it('timeouts.request ends a slow call with 504', async () => {
    const r = await call('/slow');
    expect(r.status).toBe(504);
    expect(r.headers['x-remora-proxy-error']).toBe('UT upstream_response_timeout');
  });

  it('CORS: wildcard origins; with credentials the preflight echoes the requested method and headers, never *', async () => {
    const pre = await call('/cors/x', { method: 'OPTIONS', headers: { origin: 'https://app.eu.example.com', 'access-control-request-method': 'PATCH', 'access-control-request-headers': 'x-token' } });
    expect(pre.status).toBe(200);
    expect(pre.headers).toMatchObject({
      'access-control-allow-origin': 'https://app.eu.example.com', 'access-control-allow-methods': 'PATCH', 'access-control-allow-headers': 'x-token',
      'access-control-allow-credentials': 'true', 'access-control-max-age': '5',
    });
    expect(pre.headers['access-control-expose-headers']).toBeUndefined();
    const denied = await call('/cors/x', { method: 'OPTIONS', headers: { origin: 'https://example.org', 'access-control-request-method': 'GET' } });
    expect(denied.headers['access-control-allow-origin']).toBeUndefined();
    const actual = await call('/cors/x', { headers: { origin: 'https://a.example.com' } });
    expect(actual.status).toBe(200);
    expect(actual.headers['access-control-allow-origin']).toBe('https://a.example.com');
  });

  it('RequestMirror with a fraction mirrors about that share; responses of the shadow are ignored', async () => {
    const before = shadow.requests.length;
    for (let i = 0; i < 400; i++) expect((await call(`/mirror/${i}`)).status).toBe(200);
    await waitFor(() => shadow.requests.length - before >= 60, 3000).catch(() => undefined);
    const n = shadow.requests.length - before;
    expect(n).toBeGreaterThan(60);
    expect(n).toBeLessThan(140);
    expect(shadow.requests.at(-1)!.headers.host).toBe('api-shadow');
  });

  it('method match, URLRewrite hostname, ResponseHeaderModifier', async () => {
    expect((await call('/write')).status).toBe(404);
    const r = await call('/write', { method: 'POST' });
    expect(r.status).toBe(200);
    expect(r.json().headers.host).toBe('writer.internal');
    expect(r.headers['x-route']).toBe('write');
    expect(r.headers['x-upstream-id']).toBeUndefined();
  });
});
