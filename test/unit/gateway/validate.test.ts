/** Validation of Gateway API routes: each problem as `file:line: Kind/ns/name: spec.path: reason`. */
import { describe, expect, it } from 'vitest';
import { parseDocuments } from '../../../src/config/parse.js';
import { validateResources } from '../../../src/config/validate.js';
import { formatError } from '../../../src/config/resource.js';

function problems(yaml: string): string[] {
  const { resources, errors } = parseDocuments(yaml, 'routes.yaml', 'default');
  expect(errors).toEqual([]);
  return validateResources(resources).map(formatError);
}

const head = (rules: string, extra = ''): string => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: r
  namespace: shop
spec:
  parentRefs:
  - {group: "", kind: Service, name: cart}
${extra}  rules:
${rules}`;

describe('HTTPRoute validation', () => {
  it('a valid route has no problem', () => {
    expect(problems(head(`  - matches: [{path: {type: PathPrefix, value: /a}}]
    backendRefs: [{name: cart, port: 80, weight: 3}]
`))).toEqual([]);
  });

  it('an unknown filter type, a negative weight and a bad regex, each at its line', () => {
    const out = problems(head(`  - matches:
    - path: {type: RegularExpression, value: "/(a"}
    filters:
    - type: RequestHeaderModifer
    backendRefs:
    - name: cart
      port: 80
      weight: -1
`));
    expect(out).toEqual([
      expect.stringMatching(/^routes\.yaml:11: HTTPRoute\/shop\/r: spec\.rules\[0\]\.matches\[0\]\.path\.value: invalid regex: /),
      'routes.yaml:13: HTTPRoute/shop/r: spec.rules[0].filters[0].type: unknown filter type "RequestHeaderModifer": HTTPRoute filters are RequestHeaderModifier, ResponseHeaderModifier, RequestMirror, RequestRedirect, URLRewrite, ExtensionRef, CORS',
      'routes.yaml:17: HTTPRoute/shop/r: spec.rules[0].backendRefs[0].weight: weight -1 must be between 0 and 1000000',
    ]);
  });

  it("the CRD's CEL rules: redirect with backends, prefix rewrite without one PathPrefix match, repeated filters, rule names", () => {
    const out = problems(head(`  - name: one
    matches: [{path: {type: Exact, value: /a}}]
    filters:
    - {type: RequestRedirect, requestRedirect: {statusCode: 305}}
    backendRefs: [{name: cart, port: 80}]
  - name: one
    matches: [{path: {type: Exact, value: /b}}]
    filters:
    - {type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /x}}}
    - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: a, value: b}], remove: [A]}}
    - {type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: c, value: d}]}}
    backendRefs: [{name: cart}]
`));
    expect(out).toEqual([
      'routes.yaml:12: HTTPRoute/shop/r: spec.rules[0].filters: RequestRedirect filter must not be used together with backendRefs',
      'routes.yaml:13: HTTPRoute/shop/r: spec.rules[0].filters[0].requestRedirect.statusCode: unsupported value 305: must be one of 301, 302, 303, 307, 308',
      'routes.yaml:15: HTTPRoute/shop/r: spec.rules[1].name: Rule name must be unique within the route (also rules[0])',
      'routes.yaml:16: HTTPRoute/shop/r: spec.rules[1].matches: When using RequestRedirect or URLRewrite filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified',
      'routes.yaml:17: HTTPRoute/shop/r: spec.rules[1].filters: RequestHeaderModifier filter cannot be repeated',
      'routes.yaml:19: HTTPRoute/shop/r: spec.rules[1].filters[1].requestHeaderModifier.remove[0]: header "A" already has an action (set): only one action per header name',
      'routes.yaml:21: HTTPRoute/shop/r: spec.rules[1].backendRefs[0]: Must have port for Service reference',
    ]);
  });

  it('backendRef filters: header modifiers only', () => {
    expect(problems(head(`  - backendRefs:
    - name: cart
      port: 80
      filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: a, value: b}]}}, {type: URLRewrite, urlRewrite: {hostname: x.example}}]
`))).toEqual([
      'routes.yaml:13: HTTPRoute/shop/r: spec.rules[0].backendRefs[0].filters[1].type: URLRewrite is not supported on a backendRef by Remora (RequestHeaderModifier and ResponseHeaderModifier are); put it on the rule',
    ]);
  });

  it('timeouts and retries: GEP-2257 durations, backendRequest within request, codes 400-599', () => {
    const out = problems(head(`  - backendRefs: [{name: cart, port: 80}]
    timeouts: {request: 1s, backendRequest: 2s}
    retry: {codes: [200, 503], backoff: 1.5s}
`));
    expect(out).toEqual([
      'routes.yaml:11: HTTPRoute/shop/r: spec.rules[0].timeouts.backendRequest: backendRequest timeout cannot be longer than request timeout',
      'routes.yaml:12: HTTPRoute/shop/r: spec.rules[0].retry.codes[0]: retry code 200 must be between 400 and 599',
      'routes.yaml:12: HTTPRoute/shop/r: spec.rules[0].retry.backoff: invalid duration "1.5s": 1 to 4 terms of up to 5 digits with a unit h, m, s or ms (GEP-2257), e.g. "10s", "1m30s", "500ms"',
    ]);
  });

  it('path values: absolute, no // or dot segments; unknown fields with a hint', () => {
    const out = problems(head(`  - matches: [{path: {type: Exact, value: "a//b"}}, {path: {value: "/a/../b"}}, {pth: {value: /}}]
    backendRefs: [{name: cart, port: 80}]
`));
    expect(out).toEqual([
      'routes.yaml:10: HTTPRoute/shop/r: spec.rules[0].matches[2].pth: unknown field "pth" (did you mean "path"?)',
      "routes.yaml:10: HTTPRoute/shop/r: spec.rules[0].matches[0].path.value: value must be an absolute path and start with '/'",
      "routes.yaml:10: HTTPRoute/shop/r: spec.rules[0].matches[1].path.value: value must not contain '/../'",
    ]);
  });

  it('parentRefs: warnings for a Gateway parent, a Service without group "", and hostnames (ignored in the mesh)', () => {
    const out = problems(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: shop}
spec:
  parentRefs:
  - {name: gw}
  - {kind: Service, name: cart}
  hostnames: [cart.example.com]
  rules:
  - backendRefs: [{name: cart, port: 80}]
`);
    expect(out).toEqual([
      'routes.yaml:6: HTTPRoute/shop/r: spec.parentRefs[0]: warning: a Gateway parent is not applied by a sidecar (Remora implements the mesh profile: parentRefs of kind Service)',
      'routes.yaml:7: HTTPRoute/shop/r: spec.parentRefs[1].group: warning: group is unset, so it defaults to gateway.networking.k8s.io and names no Service: write group: "" (the core group)',
      'routes.yaml:8: HTTPRoute/shop/r: spec.hostnames: warning: hostnames are ignored for Service parents (GEP-1294: meshes infer nothing from them); match on the Host header instead',
    ]);
  });

  it('an unsupported apiVersion is one error; a duplicate route is rejected', () => {
    const out = problems(`apiVersion: gateway.networking.k8s.io/v9
kind: HTTPRoute
metadata: {name: r}
spec: {}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g}
spec: {parentRefs: [{group: "", kind: Service, name: s}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g}
spec: {parentRefs: [{group: "", kind: Service, name: s}]}
`);
    expect(out).toEqual([
      'routes.yaml:1: HTTPRoute/default/r: apiVersion: unsupported apiVersion "gateway.networking.k8s.io/v9" for HTTPRoute: use gateway.networking.k8s.io/v1, gateway.networking.k8s.io/v1beta1',
      'routes.yaml:13: HTTPRoute/default/g: metadata.name: duplicate GRPCRoute/default/g: already defined at routes.yaml:6',
    ].map((s) => s.replace('HTTPRoute/default/g', 'GRPCRoute/default/g')));
  });
});

describe('GRPCRoute and L4 route validation', () => {
  it('method matches: service or method required, Exact characters, filter subset', () => {
    const out = problems(`apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: g, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: cart, port: 7070}]
  rules:
  - matches:
    - method: {type: Exact}
    - method: {service: "a/b", method: Get}
    filters:
    - {type: RequestRedirect, requestRedirect: {}}
    backendRefs: [{name: cart, port: 7070}]
`);
    expect(out).toEqual([
      "routes.yaml:8: GRPCRoute/shop/g: spec.rules[0].matches[0].method: One or both of 'service' or 'method' must be specified",
      'routes.yaml:9: GRPCRoute/shop/g: spec.rules[0].matches[1].method.service: service must only contain valid characters (matching ^\\.?[a-z_][a-z_0-9]*(\\.[a-z_][a-z_0-9]*)*$)',
      'routes.yaml:11: GRPCRoute/shop/g: spec.rules[0].filters[0].type: unknown filter type "RequestRedirect": GRPCRoute filters are RequestHeaderModifier, ResponseHeaderModifier, RequestMirror, ExtensionRef',
    ]);
  });

  it('TCPRoute needs rules with backendRefs', () => {
    const out = problems(`apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: t, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: db, port: 5432}]
  rules:
  - backendRefs: []
`);
    expect(out).toEqual(['routes.yaml:7: TCPRoute/shop/t: spec.rules[0].backendRefs: must have at least 1 item']);
  });
});

describe('Services and EndpointSlices in files', () => {
  it('checks ports and addresses; accepts kubectl dump fields', () => {
    const out = problems(`apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: cart, namespace: shop, uid: x, resourceVersion: "1", creationTimestamp: "2025-01-01T00:00:00Z"}
  spec:
    clusterIP: 10.0.0.300
    ports: [{name: http, port: 80, targetPort: 8080}, {name: http, port: 70000}]
  status: {loadBalancer: {}}
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: {name: cart-1, namespace: shop, labels: {kubernetes.io/service-name: cart}}
  addressType: IPv4
  endpoints: [{addresses: [10.1.0.5]}, {addresses: [nope]}]
  ports: [{name: http, port: 8080}]
`);
    expect(out).toEqual([
      'routes.yaml:8: Service/shop/cart: spec.clusterIP: "10.0.0.300" is not an IP address (or None for a headless Service)',
      'routes.yaml:9: Service/shop/cart: spec.ports[1].port: port must be an integer 1..65535 (got 70000)',
      'routes.yaml:9: Service/shop/cart: spec.ports[1].name: duplicate port name "http" (also ports[0])',
      'routes.yaml:15: EndpointSlice/shop/cart-1: endpoints[1].addresses[0]: "nope" is not an IP address',
    ]);
  });
});
