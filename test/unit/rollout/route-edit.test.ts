/** HTTPRoute/GRPCRoute edits of a rollout: backendRef weights, a mirror filter, the header canary rule; comments kept. */
import { describe, expect, it } from 'vitest';
import { VsFile } from '../../../src/rollout/vs-edit.js';
import { GatewayRouteEditor } from '../../../src/rollout/route-edit.js';
import { accumulate, promQueries, type Selector, type Totals } from '../../../src/rollout/metrics-source.js';
import { parseDocuments } from '../../../src/config/parse.js';
import { validateResources } from '../../../src/config/validate.js';

const TEXT = `# the shop's route
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: cart
  namespace: shop
spec:
  parentRefs:
  - {group: "", kind: Service, name: cart}
  rules:
  - matches: [{path: {type: PathPrefix, value: /admin}}]
    backendRefs: [{name: admin, port: 80}]
  - name: main # moved by rollouts
    matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs:
    - {name: cart-v1, port: 80}
`;

function edit(fn: (e: GatewayRouteEditor) => void): { text: string; spec: any } {
  const f = new VsFile(TEXT);
  const e = new GatewayRouteEditor(f.findDocument('HTTPRoute', 'cart', 'shop', 'shop'));
  fn(e);
  const text = f.toString();
  const { resources } = parseDocuments(text, 'r.yaml');
  expect(validateResources(resources).filter((p) => p.severity !== 'warning')).toEqual([]);
  return { text, spec: resources[0]!.spec };
}

describe('GatewayRouteEditor', () => {
  it('finds the rollout rule and reads its weights', () => {
    const e = new GatewayRouteEditor(new VsFile(TEXT).findDocument('HTTPRoute', 'cart', 'shop', 'shop'));
    expect(e.findRoute('cart-v1', 'cart-v2')).toMatchObject({ index: 1, name: 'main', stable: 100, canary: 0, hasStable: true, hasCanary: false });
    expect(() => e.findRoute('x', 'y')).toThrow('HTTPRoute cart: no rule sends to x or y');
  });

  it('steps weights, adds and removes a mirror and a header rule, keeps comments', () => {
    const step = edit((e) => { e.setWeights('cart-v1', 'cart-v2', 25); e.setMirror('cart-v1', 'cart-v2', 10); e.setHeaderRoute('cart-v1', 'cart-v2', { name: 'x-canary', value: 'yes' }); });
    expect(step.text).toContain("# the shop's route");
    expect(step.text).toContain('# moved by rollouts');
    expect(step.spec.rules[1]).toEqual({
      name: 'remora-rollout-header-canary',
      matches: [{ path: { type: 'PathPrefix', value: '/api' }, headers: [{ name: 'x-canary', value: 'yes' }] }],
      backendRefs: [{ name: 'cart-v2', port: 80, weight: 1 }],
    });
    expect(step.spec.rules[2].backendRefs).toEqual([{ name: 'cart-v1', port: 80, weight: 75 }, { name: 'cart-v2', port: 80, weight: 25 }]);
    expect(step.spec.rules[2].filters).toEqual([{ type: 'RequestMirror', requestMirror: { backendRef: { name: 'cart-v2', port: 80 }, percent: 10 } }]);
    const done = edit((e) => { e.setWeights('cart-v1', 'cart-v2', 100); e.setMirror('cart-v1', 'cart-v2', 0); e.setHeaderRoute('cart-v1', 'cart-v2', undefined); });
    expect(done.spec.rules).toHaveLength(2);
    expect(done.spec.rules[1]).toEqual({ name: 'main', matches: [{ path: { type: 'PathPrefix', value: '/api' } }], backendRefs: [{ name: 'cart-v2', port: 80, weight: 100 }] });
  });
});

describe('metrics of two Services (HTTPRoute/GRPCRoute rollouts)', () => {
  const sel: Selector = { service: '', stable: 'cart-v1', canary: 'cart-v2', reporter: 'source', app: 'cart-v2', services: { stable: 'cart-v1.shop.svc.cluster.local', canary: 'cart-v2.shop.svc.cluster.local' } };
  it('counts samples by destination_service', () => {
    const into = new Map<string, Totals>();
    const s = (ds: string, code: string, value: number) => ({ name: 'istio_requests_total', labels: { reporter: 'source', destination_service: ds, destination_version: 'unknown', response_code: code, response_flags: '-' }, value });
    accumulate([s('cart-v1.shop.svc.cluster.local', '200', 90), s('cart-v2.shop.svc.cluster.local', '200', 9), s('cart-v2.shop.svc.cluster.local', '503', 1), s('other.shop.svc.cluster.local', '200', 5)], sel, into);
    expect(into.get('cart-v1')).toMatchObject({ requests: 90, failures: 0 });
    expect(into.get('cart-v2')).toMatchObject({ requests: 10, failures: 1 });
  });
  it('asks Prometheus by destination_service', () => {
    expect(promQueries(sel, 60).requests).toBe('sum by (destination_service) (increase(istio_requests_total{reporter="source",destination_service=~"cart-v1\\\\.shop\\\\.svc\\\\.cluster\\\\.local|cart-v2\\\\.shop\\\\.svc\\\\.cluster\\\\.local"}[60s]))');
  });
});
