/**
 * Matching and precedence of HTTPRoute/GRPCRoute rules compiled into the route model, without sockets: the request
 * tables of the upstream MESH-HTTP tests (MeshHTTPRouteMatching, MeshHTTPRouteQueryParamMatching, MeshTrafficSplit,
 * MeshHTTPRouteNamedRule) and the spec's ordering rules (Exact, longest PathPrefix, method, headers, query
 * parameters, oldest route, namespace/name, rule order).
 */
import { describe, expect, it } from 'vitest';
import { meshSnapshot, route, NS } from './support.js';
import { pathHasPrefix, compilePathPrefix, testStringMatch } from '../../../src/routing/string-match.js';
import { replacePrefixMatch } from '../../../src/routing/route.js';

const ECHO = `echo.${NS}`;

describe('PathPrefix is segment-wise (HTTPPathMatch)', () => {
  it('matches whole segments and ignores a trailing slash in the prefix', () => {
    for (const prefix of ['/abc', '/abc/']) {
      const m = compilePathPrefix(prefix);
      expect(['/abc', '/abc/', '/abc/def'].map((p) => testStringMatch(m, p))).toEqual([true, true, true]);
      expect(['/abcd', '/ab', '/'].map((p) => testStringMatch(m, p))).toEqual([false, false, false]);
    }
    expect(pathHasPrefix('/anything', '')).toBe(true);
  });

  it('ReplacePrefixMatch follows the table of HTTPPathModifier', () => {
    const table: Array<[string, string, string, string]> = [
      ['/foo/bar', '/foo', '/xyz', '/xyz/bar'], ['/foo/bar', '/foo', '/xyz/', '/xyz/bar'], ['/foo/bar', '/foo/', '/xyz', '/xyz/bar'],
      ['/foo/bar', '/foo/', '/xyz/', '/xyz/bar'], ['/foo', '/foo', '/xyz', '/xyz'], ['/foo/', '/foo', '/xyz', '/xyz/'],
      ['/foo/bar', '/foo', '', '/bar'], ['/foo/', '/foo', '', '/'], ['/foo', '/foo', '', '/'], ['/foo/', '/foo', '/', '/'], ['/foo', '/foo', '/', '/'],
    ];
    for (const [path, prefix, replacement, want] of table) {
      expect(replacePrefixMatch(path, { prefix: compilePathPrefix(prefix).value, replacement }), `${path} ${prefix} ${replacement}`).toBe(want);
    }
  });
});

describe('MeshHTTPRouteMatching', () => {
  const snap = meshSnapshot(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: mesh-matching, namespace: ${NS}}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /}}, {headers: [{name: version, value: one}]}]
    backendRefs: [{name: echo-v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /v2}}, {headers: [{name: version, value: two}]}]
    backendRefs: [{name: echo-v2, port: 8080}]
`);
  it.each([
    ['/', {}, 'echo-v1'], ['/example', {}, 'echo-v1'], ['/', { Version: 'one' }, 'echo-v1'], ['/v2', {}, 'echo-v2'],
    ['/v2/example', {}, 'echo-v2'], ['/', { Version: 'two' }, 'echo-v2'], ['/v2/', {}, 'echo-v2'], ['/v2example', {}, 'echo-v1'],
    ['/foo/v2/example', {}, 'echo-v1'],
  ] as const)('%s %j → %s', (path, headers, backend) => {
    expect(route(snap, ECHO, path, { headers }).backend).toBe(backend);
  });
});

describe('MeshHTTPRouteQueryParamMatching', () => {
  const snap = meshSnapshot(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: mesh-query-param-matching, namespace: ${NS}}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 80}]
  rules:
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
`);
  it.each([
    ['/?animal=whale', {}, 'echo-v1'], ['/?animal=dolphin', {}, 'echo-v2'], ['/?animal=whale&otherparam=irrelevant', {}, 'echo-v1'],
    ['/?animal=dolphin&color=yellow', {}, 'echo-v2'], ['/?color=blue', {}, undefined], ['/?animal=dog', {}, undefined],
    ['/?animal=whaledolphin', {}, undefined], ['/', {}, undefined], ['/path1?animal=whale', {}, 'echo-v1'],
    ['/?animal=whale', { version: 'one' }, 'echo-v2'], ['/path3?animal=shark', {}, 'echo-v1'], ['/path4?animal=kraken', { version: 'three' }, 'echo-v1'],
    ['/?animal=shark', {}, undefined], ['/path4?animal=kraken', {}, undefined], ['/path5?animal=hydra', {}, 'echo-v1'],
  ] as const)('%s %j → %s (undefined: no rule, 404)', (path, headers, backend) => {
    expect(route(snap, ECHO, path, { headers }).backend).toBe(backend);
  });
});

describe('precedence across rules and routes', () => {
  it('Exact beats any prefix; longer prefix first; then method, headers, query parameters', () => {
    const snap = meshSnapshot(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: a, namespace: ${NS}}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}, queryParams: [{name: q, value: "1"}]}]
    backendRefs: [{name: echo-v1, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /api}, headers: [{name: h, value: "1"}]}]
    backendRefs: [{name: echo-v2, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /api}, method: POST}]
    backendRefs: [{name: echo, port: 80}]
  - matches: [{path: {type: Exact, value: /api/v1}}]
    backendRefs: [{name: echo-v2, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /api/v1}}]
    backendRefs: [{name: echo-v1, port: 80}]
`);
    expect(route(snap, ECHO, '/api/v1').backend).toBe('echo-v2');
    expect(route(snap, ECHO, '/api/v1/x').backend).toBe('echo-v1');
    expect(route(snap, ECHO, '/api?q=1', { method: 'POST', headers: { h: '1' } }).backend).toBe('echo');
    expect(route(snap, ECHO, '/api?q=1', { headers: { h: '1' } }).backend).toBe('echo-v2');
    expect(route(snap, ECHO, '/api?q=1').backend).toBe('echo-v1');
  });

  it('ties across routes go to the oldest creationTimestamp, then namespace/name; within a route to the first rule', () => {
    const two = (aTime: string, bTime: string): string => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: b-route, namespace: ${NS}, creationTimestamp: "${bTime}"}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - backendRefs: [{name: echo-v2, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: a-route, namespace: ${NS}, creationTimestamp: "${aTime}"}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - backendRefs: [{name: echo-v1, port: 80}]
  - backendRefs: [{name: echo-v2, port: 80}]
`;
    expect(route(meshSnapshot(two('2025-01-02T00:00:00Z', '2025-01-01T00:00:00Z')), ECHO, '/').backend).toBe('echo-v2');
    expect(route(meshSnapshot(two('2025-01-01T00:00:00Z', '2025-01-02T00:00:00Z')), ECHO, '/').backend).toBe('echo-v1');
    // Same time: a-route before b-route by name, and its first rule wins.
    const same = meshSnapshot(two('2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z'));
    expect(route(same, ECHO, '/')).toMatchObject({ backend: 'echo-v1', route: { name: 'a-route.0' } });
  });

  it('MeshTrafficSplit: Exact paths to two backends; other paths of a bound port get no route (404)', () => {
    const snap = meshSnapshot(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: mesh-split, namespace: ${NS}}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
  rules:
  - matches: [{path: {type: Exact, value: /v1}}]
    backendRefs: [{name: echo-v1, port: 80}]
  - matches: [{path: {type: Exact, value: /v2}}]
    backendRefs: [{name: echo-v2, port: 80}]
`);
    expect(route(snap, ECHO, '/v1').backend).toBe('echo-v1');
    expect(route(snap, ECHO, '/v2').backend).toBe('echo-v2');
    expect(route(snap, ECHO, '/v1/x').route).toBeUndefined();
    expect(route(snap, ECHO, '/v1', { port: 8080 }).backend).toBe('echo-v1');
  });

  it('MeshHTTPRouteNamedRule: a rule name names the compiled route', () => {
    const snap = meshSnapshot(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: mesh-http-named-rules, namespace: ${NS}}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 80}]
  rules:
  - name: named-rule
    matches: [{path: {type: PathPrefix, value: /named}}]
    backendRefs: [{name: echo-v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /unnamed}}]
    backendRefs: [{name: echo-v2, port: 8080}]
`);
    expect(route(snap, ECHO, '/named')).toMatchObject({ backend: 'echo-v1', route: { name: 'mesh-http-named-rules.named-rule' } });
    expect(route(snap, ECHO, '/unnamed')).toMatchObject({ backend: 'echo-v2', route: { name: 'mesh-http-named-rules.1' } });
  });

  it('GRPCRoute: service/method matches, most specific first; unmatched calls on the bound port get no route', () => {
    const snap = meshSnapshot(`apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: ${NS}}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 7070}]
  rules:
  - matches: [{method: {service: pkg.Echo}}]
    backendRefs: [{name: echo-v1, port: 7070}]
  - matches: [{method: {service: pkg.Echo, method: Ping}}]
    backendRefs: [{name: echo-v2, port: 7070}]
  - matches: [{method: {method: Health}}]
    backendRefs: [{name: echo, port: 7070}]
  - matches: [{method: {type: RegularExpression, service: "pkg\\\\.Admin.*"}, headers: [{name: x-admin, value: "yes"}]}]
    backendRefs: [{name: echo-v2, port: 7070}]
`);
    const call = (path: string, headers: Record<string, string> = {}) => route(snap, ECHO, path, { port: 7070, method: 'POST', headers: { 'content-type': 'application/grpc', ...headers } }).backend;
    expect(call('/pkg.Echo/Ping')).toBe('echo-v2');
    expect(call('/pkg.Echo/Other')).toBe('echo-v1');
    expect(call('/other.Svc/Health')).toBe('echo');
    expect(call('/pkg.AdminV2/Do', { 'x-admin': 'yes' })).toBe('echo-v2');
    expect(call('/pkg.AdminV2/Do')).toBeUndefined();
    // Port 80 is bound by no route: Istio's default route.
    expect(route(snap, ECHO, '/anything').backend).toBe('echo');
  });
});
