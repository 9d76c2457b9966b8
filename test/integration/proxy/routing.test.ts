/**
 * The routing core through the real CLI: `remora run` with Istio YAML, real fake upstreams, a real client.
 * Conformance scenarios from ISTIO-SEMANTICS.md §3 (4, 5, 6, 7, 17) and the failure flags of issue 2.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { connect } from 'node:net';
import { fakeUpstream, type FakeUpstream } from '../../support/fake-upstream.js';
import { startProxy, type RunningProxy } from '../../support/proxy-harness.js';

let v1: FakeUpstream;
let v2: FakeUpstream;
let svc2: FakeUpstream;
let proxy: RunningProxy;

const config = (): string => `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: ${v1.port}}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {http: ${v2.port}}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc2, namespace: default}
spec:
  hosts: [svc2.default.svc.cluster.local]
  ports: [{number: 80, name: http}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: ${svc2.port}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dead, namespace: default}
spec:
  hosts: [dead.default.svc.cluster.local]
  ports: [{number: 80, name: http}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: 1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - name: old
    match: [{uri: {prefix: /old}}]
    rewrite: {uri: /new, authority: svc2}
    route: [{destination: {host: svc2}}]
  - name: moved
    match: [{uri: {exact: /moved}}]
    redirect: {uri: /v2}
  - name: moved308
    match: [{uri: {exact: /moved308}}]
    redirect: {uri: /v3, authority: example.com, redirectCode: 308}
  - name: down
    match: [{uri: {exact: /down}}]
    directResponse: {status: 503, body: {string: down}}
  - name: headers
    match: [{uri: {prefix: /headers}}]
    headers:
      request:
        set: {x-set: route}
        add: {x-added: one}
        remove: [x-remove-me]
      response:
        set: {x-resp: set-by-route}
    route:
    - destination: {host: reviews, subset: v1}
      headers:
        request: {set: {x-dest: v1}}
        response: {add: {x-dest-resp: yes}}
  - name: slow
    match: [{uri: {prefix: /slow}}]
    timeout: 300ms
    route: [{destination: {host: reviews, subset: v1}}]
  - name: none
    match: [{uri: {prefix: /nohealthy}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - name: v2
    match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - name: default
    route: [{destination: {host: reviews, subset: v1}}]
`;

beforeAll(async () => {
  v1 = await fakeUpstream('v1');
  v2 = await fakeUpstream('v2');
  svc2 = await fakeUpstream('svc2');
  v1.behave((req, res) => {
    if (req.url?.startsWith('/slow')) {
      setTimeout(() => { if (!res.destroyed) { res.writeHead(200); res.end('late'); } }, 2000);
      return 'handled';
    }
    return undefined;
  });
  proxy = await startProxy({ 'mesh.yaml': config() });
});

afterAll(async () => {
  await proxy?.stop();
  await Promise.all([v1?.close(), v2?.close(), svc2?.close()]);
});

describe('forwarding', () => {
  it('routes by Host in origin form and by authority in absolute form', async () => {
    const r = await proxy.get('/hello', { host: 'reviews:9080' });
    expect(r.status).toBe(200);
    expect(r.json().id).toBe('v1');
    const r2 = await proxy.get('/hello', { host: 'reviews.default.svc.cluster.local:9080', 'end-user': 'jason' });
    expect(r2.json().id).toBe('v2');
    const abs = await rawRequest(proxy.info.outbound, 'GET http://reviews.default:9080/abs?q=1 HTTP/1.1\r\nHost: ignored\r\nConnection: close\r\n\r\n');
    expect(abs).toMatch(/^HTTP\/1.1 200/);
    expect(abs).toContain('"url":"/abs?q=1"');
    expect(abs).toContain('"id":"v1"');
  });

  it('generates x-request-id, keeps a supplied one, strips hop-by-hop headers, preserves header case', async () => {
    const before = v1.requests.length;
    await rawRequest(proxy.info.outbound, 'GET /case HTTP/1.1\r\nHost: reviews:9080\r\nX-Custom-Case: 1\r\nConnection: close, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: x\r\nTE: trailers\r\n\r\n');
    const seen = v1.requests[before]!;
    expect(seen.headers['x-request-id']).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(seen.rawHeaders).toContain('X-Custom-Case');
    expect(seen.headers['x-hop']).toBeUndefined();
    expect(seen.headers['keep-alive']).toBeUndefined();
    expect(seen.headers['proxy-authorization']).toBeUndefined();
    expect(seen.headers.te).toBe('trailers');
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen.headers['x-forwarded-proto']).toBe('http');
    expect(seen.headers['x-envoy-attempt-count']).toBe('1');
    const r = await proxy.get('/id', { host: 'reviews:9080', 'x-request-id': 'my-id-1' });
    expect(r.json().headers['x-request-id']).toBe('my-id-1');
    expect(r.headers['x-envoy-upstream-service-time']).toMatch(/^\d+$/);
  });

  it('streams request and response bodies', async () => {
    const body = 'x'.repeat(200_000); // above the retry buffer: streamed, not buffered
    const r = await proxy.get('/upload', { host: 'reviews:9080', 'content-type': 'text/plain' }, 'POST', body);
    expect(r.status).toBe(200);
    expect(r.json().body.length).toBe(200_000);
  });
});

describe('route actions', () => {
  it('rewrite: prefix /old → /new, authority svc2, x-envoy-original-path (scenario 4)', async () => {
    const r = await proxy.get('/old/x?q=1', { host: 'reviews:9080' });
    const j = r.json();
    expect(j.id).toBe('svc2');
    expect(j.url).toBe('/new/x?q=1');
    expect(j.headers.host).toBe('svc2');
    expect(j.headers['x-envoy-original-path']).toBe('/old/x?q=1');
  });

  it('redirect and direct response (scenario 5)', async () => {
    const n = v1.requests.length + v2.requests.length;
    const r = await proxy.get('/moved', { host: 'reviews:9080' });
    expect(r.status).toBe(301);
    expect(r.headers.location).toBe('http://reviews:9080/v2');
    const r2 = await proxy.get('/moved308', { host: 'reviews:9080' });
    expect(r2.status).toBe(308);
    expect(r2.headers.location).toBe('http://example.com/v3');
    const d = await proxy.get('/down', { host: 'reviews:9080' });
    expect(d.status).toBe(503);
    expect(d.body).toBe('down');
    expect(v1.requests.length + v2.requests.length).toBe(n);
  });

  it('header operations at route and destination level (scenario 6)', async () => {
    const r = await proxy.get('/headers', { host: 'reviews:9080', 'x-remove-me': '1', 'x-added': 'zero' });
    const h = r.json().headers;
    expect(h['x-set']).toBe('route');
    expect(h['x-added']).toBe('zero, one');
    expect(h['x-remove-me']).toBeUndefined();
    expect(h['x-dest']).toBe('v1');
    expect(r.headers['x-resp']).toBe('set-by-route');
    expect(r.headers['x-dest-resp']).toBe('yes');
  });

  it('route timeout: 504 UT with Envoy body (scenario 7)', async () => {
    const t0 = Date.now();
    const r = await proxy.get('/slow', { host: 'reviews:9080' });
    const ms = Date.now() - t0;
    expect(r.status).toBe(504);
    expect(r.body).toBe('upstream request timeout');
    expect(r.headers['x-remora-proxy-error']).toContain('UT');
    expect(ms).toBeGreaterThanOrEqual(280);
    expect(ms).toBeLessThan(1500);
  });
});

describe('failures answer like Envoy', () => {
  it('unknown host: passthrough under ALLOW_ANY', async () => {
    const r = await proxy.get('/pt', { host: `127.0.0.1:${svc2.port}` });
    expect(r.status).toBe(200);
    expect(r.json().id).toBe('svc2');
  });
  it('subset with no endpoints: 503 UH', async () => {
    const r = await proxy.get('/nohealthy', { host: 'reviews:9080' });
    expect(r.status).toBe(503);
    expect(r.headers['x-remora-proxy-error']).toMatch(/^UH /);
  });
  it('connection refused: 503 UF (after Istio default retries)', async () => {
    const r = await proxy.get('/', { host: 'dead' });
    expect(r.status).toBe(503);
    expect(r.headers['x-remora-proxy-error']).toMatch(/^UF/);
  });
  it('a port the service does not have: 503 NC', async () => {
    const r = await proxy.get('/', { host: 'svc2:8080' });
    expect(r.status).toBe(503);
    expect(r.headers['x-remora-proxy-error']).toMatch(/^NC /);
  });
  it('malformed target and duplicate Host: 400', async () => {
    const dup = await rawRequest(proxy.info.outbound, 'GET / HTTP/1.1\r\nHost: reviews\r\nHost: evil\r\nConnection: close\r\n\r\n');
    expect(dup).toMatch(/^HTTP\/1.1 400/);
    const te = await rawRequest(proxy.info.outbound, 'POST / HTTP/1.1\r\nHost: reviews:9080\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n0\r\n\r\n');
    expect(te).toMatch(/^HTTP\/1.1 (501|400)/);
  });
  it('framing and header errors are answered with Connection: close and the connection closed; nothing pipelined behind them is served', async () => {
    const before = v1.requests.length + v2.requests.length;
    const next = 'GET /after HTTP/1.1\r\nHost: reviews:9080\r\n\r\n';
    for (const [head, status] of [
      ['POST / HTTP/1.1\r\nHost: reviews:9080\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n', 501],
      ['GET / HTTP/1.1\r\nHost: reviews:9080\r\nHost: other\r\n\r\n', 400],
      ['POST / HTTP/1.1\r\nHost: reviews:9080\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n', 400],
    ] as const) {
      const t0 = Date.now();
      const out = await rawRequest(proxy.info.outbound, head + next);
      expect(out, head).toMatch(new RegExp(`^HTTP/1.1 ${status} `));
      expect(out.toLowerCase(), head).toContain('connection: close');
      expect(out.match(/HTTP\/1\.1 \d{3}/g), head).toHaveLength(1); // the pipelined GET was not served
      expect(Date.now() - t0, head).toBeLessThan(2000); // closed by the proxy, not by the client's timeout
    }
    // The two header-level errors are answered before any upstream is involved.
    expect(v1.requests.length + v2.requests.length - before).toBeLessThanOrEqual(1);
  });
});

describe('admin API', () => {
  it('/ready is LIVE, /config_dump has version and hash, /clusters lists endpoints', async () => {
    const r = await proxy.admin('/ready');
    expect(r.status).toBe(200);
    expect(r.body.trim()).toBe('LIVE');
    const dump = JSON.parse((await proxy.admin('/config_dump')).body);
    expect(dump.version).toBe(1);
    expect(dump.hash).toMatch(/^[0-9a-f]{16}$/);
    expect(dump.resources.map((x: { kind: string }) => x.kind)).toContain('VirtualService');
    const clusters = (await proxy.admin('/clusters')).body;
    expect(clusters).toContain(`outbound|9080|v1|reviews.default.svc.cluster.local::127.0.0.1:${v1.port}::health_flags::healthy`);
    const q = await proxy.admin('/quitquitquit');
    expect(q.status).toBe(405);
  });
});

function rawRequest(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.write(text));
    let out = '';
    s.on('data', (d) => { out += d.toString(); });
    s.on('end', () => resolve(out));
    s.on('error', reject);
    s.setTimeout(5000, () => { s.destroy(); resolve(out); });
  });
}
