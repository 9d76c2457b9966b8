/**
 * Every test of the upstream Gateway API mesh conformance profiles MESH-HTTP and MESH-GRPC (core, extended and
 * provisional; conformance/tests/mesh in kubernetes-sigs/gateway-api), rewritten against Remora's CLI: real echo
 * pods on loopback, a client sidecar per namespace, routes from config files and from the fake API server's watch.
 * Each case is "eventually consistent" as upstream's. MeshClusterIPMatching (MeshFrontendHostname) needs a
 * captured connection to a ClusterIP: cluster-ip.test.ts, in network namespaces.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { CLI } from '../../support/proxy-harness.js';
import { CONSUMER_NS, eventually, NS, startMesh, type Client, type MeshEnv, type Response } from './mesh-env.js';

const route = (kind: string, name: string, spec: string, ns = NS): string => `apiVersion: gateway.networking.k8s.io/v1
kind: ${kind}
metadata: {name: ${name}, namespace: ${ns}}
spec:
${spec}`;
const parent = (name: string, port?: number): string => `  parentRefs: [{group: "", kind: Service, name: ${name}${port !== undefined ? `, port: ${port}` : ''}}]\n`;

function backend(res: Response, pod: string): void {
  expect(res.status, res.body).toBe(200);
  expect(res.echoed?.pod.startsWith(pod), `expected ${pod}, got ${res.echoed?.pod}`).toBe(true);
}

function redirect(res: Response, want: { status: number; host?: string; port?: string; scheme?: string; path?: string }): void {
  expect(res.status).toBe(want.status);
  const loc = new URL(String(res.headers.location));
  if (want.host !== undefined) expect(loc.hostname).toBe(want.host);
  // No port expected: the scheme's default, written or not (the upstream rule).
  expect(loc.port).toBe(want.port ?? '');
  expect(loc.protocol).toBe(`${want.scheme ?? 'http'}:`);
  if (want.path !== undefined) expect(loc.pathname).toBe(want.path);
}

describe.skipIf(!existsSync(CLI)).each(['files', 'api'] as const)('mesh conformance through the CLI (routes from %s)', (source) => {
  let mesh: MeshEnv;
  let c: Client;
  beforeAll(async () => {
    mesh = await startMesh(source);
    c = await mesh.client(NS);
  }, 30_000);
  afterAll(async () => { await mesh?.close(); });

  const ok = (host: string, path: string, pod: string, headers?: Record<string, string>) =>
    eventually(async () => { const r = await c.request(host, path, { headers }); backend(r, pod); return r; });

  it('MeshBasic: a mesh client reaches a mesh server with no configuration', async () => {
    await mesh.setRoutes('');
    const r = await ok('echo', '/', 'echo-v');
    expect(r.echoed!.headers['x-request-id']).toBeDefined();
  });

  it('MeshHTTPRouteSimpleSameNamespace: a route in the Service namespace attaches to it', async () => {
    await mesh.setRoutes(route('HTTPRoute', 'gateway-conformance-mesh-test', `${parent('echo', 80)}  rules:
  - backendRefs: [{name: echo-v1, port: 8080}]
`));
    for (let i = 0; i < 10; i++) await ok('echo', '/', 'echo-v1');
  });

  it('MeshFrontend: rules apply to the parent Service only, never to calls to its pod IP', async () => {
    await mesh.setRoutes(route('HTTPRoute', 'mesh-split-v1', `${parent('echo-v2')}  rules:
  - filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: X-Header-Set, value: set}]}}]
    backendRefs: [{name: echo-v2, port: 80}]
`));
    const r = await ok('echo-v2', '/', 'echo-v2');
    expect(r.headers['x-header-set']).toBe('set');
    const pod = await ok(`${mesh.pods.v2.ip}:${mesh.pods.v2.httpPort}`, '/', 'echo-v2');
    expect(pod.headers['x-header-set']).toBeUndefined();
  });

  it('MeshPorts: parentRef.port limits a route to that port', async () => {
    await mesh.setRoutes([
      route('HTTPRoute', 'mesh-split-v1', `${parent('echo-v1', 80)}  rules:
  - filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: X-Header-Set, value: v1}]}}]
    backendRefs: [{name: echo-v1, port: 80}]
`),
      route('HTTPRoute', 'mesh-split-v2', `${parent('echo-v2')}  rules:
  - filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: X-Header-Set, value: v2}]}}]
    backendRefs: [{name: echo-v2, port: 80}]
`)].join('---\n'));
    expect((await ok('echo-v1', '/', 'echo-v1')).headers['x-header-set']).toBe('v1');
    expect((await ok('echo-v1:8080', '/', 'echo-v1')).headers['x-header-set']).toBeUndefined();
    expect((await ok('echo-v2', '/', 'echo-v2')).headers['x-header-set']).toBe('v2');
    expect((await ok('echo-v2:8080', '/', 'echo-v2')).headers['x-header-set']).toBe('v2');
  });

  it('MeshTrafficSplit: Exact paths split one Service between two versions', async () => {
    await mesh.setRoutes(route('HTTPRoute', 'mesh-split', `${parent('echo')}  rules:
  - matches: [{path: {type: Exact, value: /v1}}]
    backendRefs: [{name: echo-v1, port: 80}]
  - matches: [{path: {type: Exact, value: /v2}}]
    backendRefs: [{name: echo-v2, port: 80}]
`));
    await ok('echo', '/v1', 'echo-v1');
    await ok('echo', '/v2', 'echo-v2');
  });

  it('MeshHTTPRouteMatching: path and header matches, PathPrefix by whole segments', async () => {
    await mesh.setRoutes(route('HTTPRoute', 'mesh-matching', `${parent('echo', 80)}  rules:
  - matches: [{path: {type: PathPrefix, value: /}}, {headers: [{name: version, value: one}]}]
    backendRefs: [{name: echo-v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /v2}}, {headers: [{name: version, value: two}]}]
    backendRefs: [{name: echo-v2, port: 8080}]
`));
    const cases: Array<[string, Record<string, string> | undefined, string]> = [
      ['/', undefined, 'echo-v1'], ['/example', undefined, 'echo-v1'], ['/', { Version: 'one' }, 'echo-v1'], ['/v2', undefined, 'echo-v2'],
      ['/v2/example', undefined, 'echo-v2'], ['/', { Version: 'two' }, 'echo-v2'], ['/v2/', undefined, 'echo-v2'],
      ['/v2example', undefined, 'echo-v1'], ['/foo/v2/example', undefined, 'echo-v1'],
    ];
    for (const [path, headers, pod] of cases) await ok('echo', path, pod, headers);
  });

  it('MeshHTTPRouteQueryParamMatching: query parameters, combined with path and headers, with precedence', async () => {
    await mesh.setRoutes(route('HTTPRoute', 'mesh-query-param-matching', `${parent('echo', 80)}  rules:
  - matches: [{queryParams: [{name: animal, value: whale}]}]
    backendRefs: [{name: echo-v1, port: 8080}]
  - matches: [{queryParams: [{name: animal, value: dolphin}]}]
    backendRefs: [{name: echo-v2, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /path1}, queryParams: [{name: animal, value: whale}]}]
    backendRefs: [{name: echo-v1, port: 8080}]
  - matches: [{headers: [{name: version, value: one}], queryParams: [{name: animal, value: whale}]}]
    backendRefs: [{name: echo-v2, port: 8080}]
  - matches:
    - {path: {type: PathPrefix, value: /path3}, queryParams: [{name: animal, value: shark}]}
    - {path: {type: PathPrefix, value: /path4}, headers: [{name: version, value: three}], queryParams: [{name: animal, value: kraken}]}
    backendRefs: [{name: echo-v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /path5}}]
    backendRefs: [{name: echo-v1, port: 8080}]
  - matches: [{queryParams: [{name: animal, value: hydra}]}]
    backendRefs: [{name: echo-v2, port: 8080}]
`));
    const routed: Array<[string, Record<string, string> | undefined, string]> = [
      ['/?animal=whale', undefined, 'echo-v1'], ['/?animal=dolphin', undefined, 'echo-v2'], ['/?animal=whale&otherparam=irrelevant', undefined, 'echo-v1'],
      ['/?animal=dolphin&color=yellow', undefined, 'echo-v2'], ['/path1?animal=whale', undefined, 'echo-v1'], ['/?animal=whale', { version: 'one' }, 'echo-v2'],
      ['/path3?animal=shark', undefined, 'echo-v1'], ['/path4?animal=kraken', { version: 'three' }, 'echo-v1'], ['/path5?animal=hydra', undefined, 'echo-v1'],
    ];
    for (const [path, headers, pod] of routed) await ok('echo', path, pod, headers);
    for (const path of ['/?color=blue', '/?animal=dog', '/?animal=whaledolphin', '/', '/?animal=shark', '/path4?animal=kraken']) {
      await eventually(async () => expect((await c.request('echo', path)).status).toBe(404));
    }
  });

  it('MeshHTTPRouteNamedRule: named and unnamed rules', async () => {
    await mesh.setRoutes(route('HTTPRoute', 'mesh-http-named-rules', `${parent('echo', 80)}  rules:
  - name: named-rule
    matches: [{path: {type: PathPrefix, value: /named}}]
    backendRefs: [{name: echo-v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /unnamed}}]
    backendRefs: [{name: echo-v2, port: 8080}]
`));
    expect((await ok('echo', '/named', 'echo-v1')).echoed!.path).toBe('/named');
    await ok('echo', '/unnamed', 'echo-v2');
  });

  it('MeshHTTPRouteRequestHeaderModifier and MeshHTTPRouteBackendRequestHeaderModifier: set, add, remove, case-insensitively', async () => {
    const modifiers: Array<[string, string]> = [
      ['/set', '{set: [{name: X-Header-Set, value: set-overwrites-values}]}'],
      ['/add', '{add: [{name: X-Header-Add, value: add-appends-values}]}'],
      ['/remove', '{remove: [X-Header-Remove]}'],
      ['/multiple', '{set: [{name: X-Header-Set-1, value: header-set-1}, {name: X-Header-Set-2, value: header-set-2}], add: [{name: X-Header-Add-1, value: header-add-1}, {name: X-Header-Add-2, value: header-add-2}, {name: X-Header-Add-3, value: header-add-3}], remove: [X-Header-Remove-1, X-Header-Remove-2]}'],
      ['/case-insensitivity', '{set: [{name: X-Header-Set, value: header-set}], add: [{name: X-Header-Add, value: header-add}], remove: [X-Header-Remove]}'],
    ];
    const ruleLevel = modifiers.map(([p, m]) => `  - matches: [{path: {type: PathPrefix, value: ${p}}}]
    filters: [{type: RequestHeaderModifier, requestHeaderModifier: ${m}}]
    backendRefs: [{name: echo-v1, port: 8080}]
`).join('');
    const backendLevel = modifiers.map(([p, m]) => `  - matches: [{path: {type: PathPrefix, value: ${p}}}]
    backendRefs: [{name: echo-v1, port: 8080, filters: [{type: RequestHeaderModifier, requestHeaderModifier: ${m}}]}]
`).join('');
    for (const rules of [ruleLevel, backendLevel]) {
      await mesh.setRoutes(route('HTTPRoute', 'mesh-request-header-modifier', `${parent('echo', 80)}  rules:\n${rules}`));
      const seen = async (path: string, headers: Record<string, string>) => (await ok('echo', path, 'echo-v1', headers)).echoed!.headers;
      expect(await seen('/set', { 'Some-Other-Header': 'val' })).toMatchObject({ 'some-other-header': 'val', 'x-header-set': 'set-overwrites-values' });
      expect(await seen('/set', { 'Some-Other-Header': 'val', 'X-Header-Set': 'some-other-value' })).toMatchObject({ 'x-header-set': 'set-overwrites-values' });
      expect(await seen('/add', { 'Some-Other-Header': 'val' })).toMatchObject({ 'x-header-add': 'add-appends-values' });
      expect(await seen('/add', { 'X-Header-Add': 'some-other-value' })).toMatchObject({ 'x-header-add': 'some-other-value,add-appends-values' });
      expect(await seen('/remove', { 'X-Header-Remove': 'val' })).not.toHaveProperty('x-header-remove');
      const multiple = await seen('/multiple', { 'X-Header-Set-2': 'set-val-2', 'X-Header-Add-2': 'add-val-2', 'X-Header-Remove-2': 'remove-val-2', 'Another-Header': 'another-header-val' });
      expect(multiple).toMatchObject({
        'x-header-set-1': 'header-set-1', 'x-header-set-2': 'header-set-2', 'x-header-add-1': 'header-add-1', 'x-header-add-2': 'add-val-2,header-add-2',
        'x-header-add-3': 'header-add-3', 'another-header': 'another-header-val',
      });
      expect(multiple).not.toHaveProperty('x-header-remove-1');
      expect(multiple).not.toHaveProperty('x-header-remove-2');
      const ci = await seen('/case-insensitivity', { 'x-header-set': 'original-val-set', 'x-header-add': 'original-val-add', 'x-header-remove': 'original-val-remove', 'Another-Header': 'another-header-val' });
      expect(ci).toMatchObject({ 'x-header-set': 'header-set', 'x-header-add': 'original-val-add,header-add', 'another-header': 'another-header-val' });
      expect(ci).not.toHaveProperty('x-header-remove');
    }
  });

  it('MeshHTTPRouteRewritePath: ReplacePrefixMatch and ReplaceFullPath, with header edits', async () => {
    const headerEdits = '{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-Header-Set, value: set-overwrites-values}], add: [{name: X-Header-Add, value: header-val-1}, {name: X-Header-Add-Append, value: header-val-2}], remove: [X-Header-Remove]}}';
    await mesh.setRoutes(route('HTTPRoute', 'mesh-rewrite-path', `${parent('echo', 80)}  rules:
  - matches: [{path: {type: PathPrefix, value: /prefix/one}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /one}}}]
    backendRefs: [{name: echo-v1, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /strip-prefix}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}}]
    backendRefs: [{name: echo-v1, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /full/one}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /one}}}]
    backendRefs: [{name: echo-v1, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /full/rewrite-path-and-modify-headers}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /test}}}, ${headerEdits}]
    backendRefs: [{name: echo-v1, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /prefix/rewrite-path-and-modify-headers}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /prefix}}}, ${headerEdits}]
    backendRefs: [{name: echo-v1, port: 80}]
`));
    const path = async (p: string, h?: Record<string, string>) => (await ok('echo', p, 'echo-v1', h)).echoed!;
    expect((await path('/prefix/one/two')).path).toBe('/one/two');
    expect((await path('/strip-prefix/three')).path).toBe('/three');
    expect((await path('/strip-prefix')).path).toBe('/');
    expect((await path('/full/one/two')).path).toBe('/one');
    const edits = { 'X-Header-Remove': 'remove-val', 'X-Header-Add-Append': 'append-val-1', 'X-Header-Set': 'set-val' };
    for (const [p, want] of [['/full/rewrite-path-and-modify-headers/test', '/test'], ['/prefix/rewrite-path-and-modify-headers/one', '/prefix/one']] as const) {
      const e = await path(p, edits);
      expect(e.path).toBe(want);
      expect(e.headers).toMatchObject({ 'x-header-add': 'header-val-1', 'x-header-add-append': 'append-val-1,header-val-2', 'x-header-set': 'set-overwrites-values' });
      expect(e.headers).not.toHaveProperty('x-header-remove');
    }
  });

  it('MeshHTTPRouteRedirectHostAndStatus, 303/307/308 redirects', async () => {
    await mesh.setRoutes(route('HTTPRoute', 'mesh-redirects', `${parent('echo', 80)}  rules:
  - matches: [{path: {type: PathPrefix, value: /hostname-redirect}}]
    filters: [{type: RequestRedirect, requestRedirect: {hostname: example.org}}]
  - matches: [{path: {type: PathPrefix, value: /host-and-status}}]
    filters: [{type: RequestRedirect, requestRedirect: {statusCode: 301, hostname: example.org}}]
  - matches: [{path: {type: PathPrefix, value: /redirect}}]
    filters: [{type: RequestRedirect, requestRedirect: {statusCode: 303}}]
  - matches: [{path: {type: PathPrefix, value: /temporary}}]
    filters: [{type: RequestRedirect, requestRedirect: {statusCode: 307}}]
  - matches: [{path: {type: PathPrefix, value: /permanent}}]
    filters: [{type: RequestRedirect, requestRedirect: {statusCode: 308}}]
`));
    const r = (p: string) => eventually(async () => { const x = await c.request('echo', p); expect(x.status).toBeGreaterThanOrEqual(300); return x; });
    redirect(await r('/hostname-redirect'), { status: 302, host: 'example.org', path: '/hostname-redirect' });
    redirect(await r('/host-and-status'), { status: 301, host: 'example.org' });
    redirect(await r('/redirect'), { status: 303, host: 'echo', path: '/redirect' });
    redirect(await r('/temporary'), { status: 307, host: 'echo', path: '/temporary' });
    redirect(await r('/permanent'), { status: 308, host: 'echo', path: '/permanent' });
  });

  it('MeshHTTPRouteSchemeRedirect, MeshHTTPRouteRedirectPort, MeshHTTPRouteRedirectPath', async () => {
    const rd = (p: string, spec: string) => `  - matches: [{path: {type: PathPrefix, value: ${p}}}]\n    filters: [{type: RequestRedirect, requestRedirect: ${spec}}]\n`;
    await mesh.setRoutes(route('HTTPRoute', 'mesh-redirect-all', `${parent('echo', 80)}  rules:
${rd('/scheme', '{scheme: https}')}${rd('/scheme-and-host', '{hostname: example.org, scheme: https}')}${rd('/scheme-and-status', '{scheme: https, statusCode: 301}')}${rd('/scheme-and-host-and-status', '{scheme: https, statusCode: 302, hostname: example.org}')}${rd('/port', '{port: 8083}')}${rd('/port-and-host', '{hostname: example.org, port: 8083}')}${rd('/port-and-status', '{port: 8083, statusCode: 301}')}${rd('/port-and-host-and-status', '{port: 8083, hostname: example.org, statusCode: 302}')}${rd('/original-prefix', '{path: {type: ReplacePrefixMatch, replacePrefixMatch: /replacement-prefix}}')}${rd('/full', '{path: {type: ReplaceFullPath, replaceFullPath: /full-path-replacement}}')}${rd('/path-and-host', '{hostname: example.org, path: {type: ReplacePrefixMatch, replacePrefixMatch: /replacement-prefix}}')}${rd('/path-and-status', '{path: {type: ReplacePrefixMatch, replacePrefixMatch: /replacement-prefix}, statusCode: 301}')}${rd('/full-path-and-host', '{hostname: example.org, path: {type: ReplaceFullPath, replaceFullPath: /replacement-full}}')}${rd('/full-path-and-status', '{path: {type: ReplaceFullPath, replaceFullPath: /replacement-full}, statusCode: 301}')}`));
    const r = (p: string) => eventually(async () => { const x = await c.request('echo', p); expect(x.status).toBeGreaterThanOrEqual(300); return x; });
    redirect(await r('/scheme'), { status: 302, scheme: 'https', host: 'echo', path: '/scheme' });
    redirect(await r('/scheme-and-host'), { status: 302, scheme: 'https', host: 'example.org', path: '/scheme-and-host' });
    redirect(await r('/scheme-and-status'), { status: 301, scheme: 'https', path: '/scheme-and-status' });
    redirect(await r('/scheme-and-host-and-status'), { status: 302, scheme: 'https', host: 'example.org' });
    redirect(await r('/port'), { status: 302, port: '8083', path: '/port' });
    redirect(await r('/port-and-host'), { status: 302, host: 'example.org', port: '8083' });
    redirect(await r('/port-and-status'), { status: 301, port: '8083' });
    redirect(await r('/port-and-host-and-status'), { status: 302, host: 'example.org', port: '8083' });
    redirect(await r('/original-prefix/lemon'), { status: 302, path: '/replacement-prefix/lemon' });
    redirect(await r('/full/path/original'), { status: 302, path: '/full-path-replacement' });
    redirect(await r('/path-and-host'), { status: 302, host: 'example.org', path: '/replacement-prefix' });
    redirect(await r('/path-and-status'), { status: 301, path: '/replacement-prefix' });
    redirect(await r('/full-path-and-host'), { status: 302, host: 'example.org', path: '/replacement-full' });
    redirect(await r('/full-path-and-status'), { status: 301, path: '/replacement-full' });
  });

  it('MeshHTTPRouteWeight: 70/30 per request', async () => {
    await mesh.setRoutes(route('HTTPRoute', 'mesh-weighted-backends', `${parent('echo', 80)}  rules:
  - backendRefs: [{name: echo-v1, port: 8080, weight: 70}, {name: echo-v2, port: 8080, weight: 30}]
`));
    await eventually(async () => {
      const counts = { v1: 0, v2: 0 };
      for (let i = 0; i < 1000; i++) {
        const r = await c.request('echo', '/');
        expect(r.status).toBe(200);
        if (r.echoed!.pod.startsWith('echo-v1')) counts.v1++; else counts.v2++;
      }
      expect(Math.abs(counts.v1 / 1000 - 0.7)).toBeLessThan(0.06);
    }, 20_000);
  }, 40_000);

  it('MeshConsumerRoute: a consumer route changes calls from its namespace only', async () => {
    const consumer = await mesh.client(CONSUMER_NS);
    await mesh.setRoutes(route('HTTPRoute', 'mesh-echo-add-header', `  parentRefs: [{group: "", kind: Service, name: echo-v1, namespace: ${NS}}]
  rules:
  - filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: X-Header-Set, value: set}]}}]
    backendRefs: [{name: echo-v1, namespace: ${NS}, port: 80}]
`, CONSUMER_NS));
    const fromConsumer = await eventually(async () => { const r = await consumer.request(`echo-v1.${NS}`, '/'); backend(r, 'echo-v1-pod'); expect(r.headers['x-header-set']).toBe('set'); return r; });
    expect(fromConsumer.echoed!.pod).toBe('echo-v1-pod');
    const fromProducer = await ok(`echo-v1.${NS}`, '/', 'echo-v1-pod');
    expect(fromProducer.headers['x-header-set']).toBeUndefined();
  });

  it('MeshGRPCRouteRequestHeaderModifier: set, add, remove on gRPC calls', async () => {
    const rule = (value: string, mod: string, to: string) => `  - matches: [{headers: [{name: x-test-case, value: ${value}}]}]
    filters: [{type: RequestHeaderModifier, requestHeaderModifier: ${mod}}]
    backendRefs: [{name: ${to}, port: 7070}]
`;
    await mesh.setRoutes(route('GRPCRoute', 'grpc-request-header-modifier', `${parent('echo', 7070)}  rules:
${rule('set', '{set: [{name: x-header-set, value: set-overwrites-values}]}', 'echo-v1')}${rule('add', '{add: [{name: x-header-add, value: add-appends-values}]}', 'echo-v1')}${rule('remove', '{remove: [x-header-remove]}', 'echo-v1')}${rule('multi', '{set: [{name: x-header-set-1, value: header-set-1}, {name: x-header-set-2, value: header-set-2}], add: [{name: x-header-add-1, value: header-add-1}, {name: x-header-add-2, value: header-add-2}], remove: [x-header-remove-1, x-header-remove-2]}', 'echo-v2')}`));
    const call = (md: Record<string, string>, pod: string) => eventually(async () => {
      const r = await c.grpc('echo:7070', md);
      expect(r.code).toBe(0);
      expect(r.echoed!.pod.startsWith(pod)).toBe(true);
      return r.echoed!.headers;
    });
    expect(await call({ 'x-test-case': 'set', 'some-other-header': 'this-header-should-be-set', 'x-header-set': 'this-value-should-be-overwritten' }, 'echo-v1'))
      .toMatchObject({ 'x-test-case': 'set', 'some-other-header': 'this-header-should-be-set', 'x-header-set': 'set-overwrites-values' });
    expect(await call({ 'x-test-case': 'add', 'x-header-add': 'this-value-should-be-appended' }, 'echo-v1'))
      .toMatchObject({ 'x-header-add': 'this-value-should-be-appended,add-appends-values' });
    const removed = await call({ 'x-test-case': 'remove', 'x-header-remove': 'this-should-be-removed' }, 'echo-v1');
    expect(removed).not.toHaveProperty('x-header-remove');
    const multi = await call({ 'x-test-case': 'multi', 'x-header-set-2': 'set-header-2', 'x-header-add-2': 'add-header-2', 'x-header-remove-2': 'should-be-removed-2' }, 'echo-v2');
    expect(multi).toMatchObject({ 'x-header-set-1': 'header-set-1', 'x-header-set-2': 'header-set-2', 'x-header-add-1': 'header-add-1', 'x-header-add-2': 'add-header-2,header-add-2' });
    expect(multi).not.toHaveProperty('x-header-remove-1');
    expect(multi).not.toHaveProperty('x-header-remove-2');
  });

  it('MeshGRPCRouteWeight: 70/30 per call over one HTTP/2 connection; weight 0 is never chosen', async () => {
    await mesh.setRoutes(route('GRPCRoute', 'mesh-grpc-weighted-backends', `${parent('echo', 7070)}  rules:
  - backendRefs: [{name: echo-v1, port: 7070, weight: 70}, {name: echo-v2, port: 7070, weight: 30}, {name: echo-v3, port: 7070, weight: 0}]
`));
    await eventually(async () => {
      const counts = { v1: 0, v2: 0 };
      for (let i = 0; i < 1000; i++) {
        const r = await c.grpc('echo:7070');
        expect(r.code).toBe(0);
        if (r.echoed!.pod.startsWith('echo-v1')) counts.v1++; else counts.v2++;
      }
      expect(Math.abs(counts.v1 / 1000 - 0.7)).toBeLessThan(0.06);
    }, 20_000);
  }, 40_000);
});
