/** `remora explain` for Service-bound routes: which route, rule and backend, and why that rule ranks where it does. */
import { describe, expect, it } from 'vitest';
import { meshSnapshot, NS } from './support.js';
import { explainRequest, formatExplanation } from '../../../src/routing/explain.js';

describe('explain with Gateway API routes', () => {
  const snap = meshSnapshot(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: ${NS}}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 80}]
  rules:
  - name: api
    matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: echo-v1, port: 80, weight: 3}, {name: gone, port: 80, weight: 1}]
  - backendRefs: [{name: echo-v2, port: 80}]
`);

  it('names the route, rule and backends, the precedence, and the 500 share of an unresolved backend', () => {
    const e = explainRequest(snap, { method: 'GET', url: `http://echo.${NS}/api/cart`, headers: {} });
    expect(e.host.gatewayRoutes).toBe(`HTTPRoute/${NS}/shop`);
    expect(e.route).toBe('shop.api');
    expect(e.routes[0]!.rank).toBe(`HTTPRoute/${NS}/shop rules[0] (api) matches[0], producer route on port 80; ranked by PathPrefix path "/api", 0 header and 0 query match(es)`);
    expect(e.outcome).toBe(`forwarded to outbound|80||echo-v1.${NS}.svc.cluster.local (75.0%), answered 500 (25.0%)`);
    const text = formatExplanation(e);
    expect(text).toContain(`via HTTPRoute/${NS}/shop`);
    expect(text).toContain('dest:     (unresolved backendRef): weight 1 (25.0%) → answered 500');
  });

  it('a port no route binds shows Istio default route and why', () => {
    const e = explainRequest(snap, { method: 'GET', url: `http://echo.${NS}:8080/api`, headers: {} });
    expect(e.route).toBe('default');
    expect(e.routes.at(-1)!.rank).toBe("Istio's default route for ports 8080, 443, 9090, 7070, which no route binds");
  });
});
