/** Validation of NetworkPolicy, AuthorizationPolicy and Sidecar documents, through validateResources as files are. */
import { describe, expect, it } from 'vitest';
import { parseDocuments } from '../../../src/config/parse.js';
import { validateResources } from '../../../src/config/validate.js';
import { formatError } from '../../../src/config/resource.js';

const check = (yaml: string): string[] => {
  const { resources, errors } = parseDocuments(yaml, 'p.yaml');
  expect(errors).toEqual([]);
  return validateResources(resources).map(formatError);
};

describe('NetworkPolicy', () => {
  it('accepts a valid policy silently', () => {
    expect(check(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow, namespace: default}
spec:
  podSelector: {matchLabels: {app: reviews}}
  policyTypes: [Ingress]
  ingress:
  - from:
    - podSelector: {matchExpressions: [{key: app, operator: In, values: [productpage]}]}
      namespaceSelector: {}
    - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}
    ports: [{port: 9080}, {port: http}, {port: 8000, endPort: 8100}]
`)).toEqual([]);
  });

  it('reports what would change the meaning, with field paths and lines', () => {
    expect(check(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bad, namespace: default}
spec:
  policyTypes: [Inbound]
  ingress:
  - from:
    - ipBlock: {cidr: 10.0.0.1, except: [192.168.0.0/16]}
    - {}
    - podSelector: {matchExpressions: [{key: app, operator: Has}]}
    ports: [{port: 70000}, {protocol: ICMP}, {port: http, endPort: 90}]
`)).toEqual([
      'p.yaml:4: NetworkPolicy/default/bad: spec.podSelector: required field is missing ({} selects every pod of the namespace)',
      'p.yaml:5: NetworkPolicy/default/bad: spec.policyTypes[0]: "Inbound" is not Ingress or Egress',
      'p.yaml:8: NetworkPolicy/default/bad: spec.ingress[0].from[0].ipBlock.cidr: invalid CIDR "10.0.0.1"',
      'p.yaml:9: NetworkPolicy/default/bad: spec.ingress[0].from[1]: must specify podSelector, namespaceSelector or ipBlock',
      'p.yaml:10: NetworkPolicy/default/bad: spec.ingress[0].from[2].podSelector.matchExpressions[0].operator: "Has" is not a valid selector operator (In, NotIn, Exists, DoesNotExist)',
      'p.yaml:11: NetworkPolicy/default/bad: spec.ingress[0].ports[0].port: port 70000 is not in 1-65535',
      'p.yaml:11: NetworkPolicy/default/bad: spec.ingress[0].ports[1].protocol: "ICMP" is not TCP, UDP or SCTP',
      'p.yaml:11: NetworkPolicy/default/bad: spec.ingress[0].ports[2].endPort: requires a numeric port',
    ]);
  });

  it('except must lie within the cidr', () => {
    expect(check(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: x}
spec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.0.0/8]}}]}]}
`)).toEqual(['p.yaml:4: NetworkPolicy/default/x: spec.ingress[0].from[0].ipBlock.except[0]: must be within 10.0.0.0/16']);
  });
});

describe('AuthorizationPolicy', () => {
  it('accepts ALLOW/DENY with from/to/when', () => {
    expect(check(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: default}
spec:
  action: DENY
  selector: {matchLabels: {app: reviews}}
  rules:
  - from: [{source: {namespaces: [web], ipBlocks: [10.0.0.1, 10.2.0.0/16]}}]
    to: [{operation: {paths: ["/admin*"], ports: ["9080"]}}]
    when: [{key: source.ip, values: [10.0.0.0/8]}]
`)).toEqual([]);
  });

  it('reports bad actions, CIDRs, ports and conditions', () => {
    expect(check(`apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: bad}
spec:
  action: REJECT
  rules:
  - from: [{source: {ipBlocks: [10.0.0.0/33]}}]
    to: [{operation: {ports: [http]}}]
    when: [{key: "request.headers[x]"}]
`)).toEqual([
      'p.yaml:5: AuthorizationPolicy/default/bad: spec.action: "REJECT" is not ALLOW, DENY, AUDIT or CUSTOM',
      'p.yaml:7: AuthorizationPolicy/default/bad: spec.rules[0].from[0].source.ipBlocks[0]: invalid CIDR "10.0.0.0/33"',
      'p.yaml:8: AuthorizationPolicy/default/bad: spec.rules[0].to[0].operation.ports[0]: "http" is not a port number',
      'p.yaml:9: AuthorizationPolicy/default/bad: spec.rules[0].when[0]: values or notValues is required',
    ]);
  });

  it('CUSTOM needs a provider; provider needs CUSTOM', () => {
    expect(check(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext}
spec: {action: CUSTOM, rules: [{}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow}
spec: {provider: {name: opa}}
`)).toEqual([
      'p.yaml:4: AuthorizationPolicy/default/ext: spec.provider: a CUSTOM policy needs a provider',
      'p.yaml:9: AuthorizationPolicy/default/allow: spec.provider: provider is only allowed with action CUSTOM',
    ]);
  });
});

describe('Sidecar', () => {
  it('accepts egress hosts and the traffic policy; warns about what is not applied', () => {
    expect(check(`apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  workloadSelector: {labels: {app: reviews}}
  egress:
  - hosts: ["./*", "istio-system/*", "*/api.example.com", "~/*", "web/*.example.com"]
  - port: {number: 9080, protocol: HTTP, name: http}
    hosts: ["./*"]
  ingress: [{port: {number: 9080, protocol: HTTP, name: http}, defaultEndpoint: "127.0.0.1:8080"}]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
`)).toEqual([
      'p.yaml:8: Sidecar/shop/default: spec.egress[1].port: warning: port-bound egress listeners are not applied by Remora: the hosts are reachable on every port',
      'p.yaml:10: Sidecar/shop/default: spec.ingress: warning: Sidecar ingress listeners are not applied by Remora (use --app-port)',
    ]);
  });

  it('rejects malformed hosts and modes', () => {
    expect(check(`apiVersion: networking.istio.io/v1beta1
kind: Sidecar
metadata: {name: bad}
spec:
  egress:
  - hosts: [reviews, "a/b/c", "ns/bad_name", "ns/"]
  - {}
  outboundTrafficPolicy: {mode: DENY}
`)).toEqual([
      'p.yaml:6: Sidecar/default/bad: spec.egress[0].hosts[0]: "reviews" must be namespace/dnsName (e.g. "./*", "istio-system/*", "*/api.example.com")',
      'p.yaml:6: Sidecar/default/bad: spec.egress[0].hosts[1]: "a/b/c" must be namespace/dnsName (e.g. "./*", "istio-system/*", "*/api.example.com")',
      'p.yaml:6: Sidecar/default/bad: spec.egress[0].hosts[2]: "bad_name" is not a DNS name or a wildcard (*, *.example.com)',
      'p.yaml:6: Sidecar/default/bad: spec.egress[0].hosts[3]: "ns/" must be namespace/dnsName (e.g. "./*", "istio-system/*", "*/api.example.com")',
      'p.yaml:7: Sidecar/default/bad: spec.egress[1].hosts: egress listener must have at least one host',
      'p.yaml:8: Sidecar/default/bad: spec.outboundTrafficPolicy.mode: "DENY" is not ALLOW_ANY or REGISTRY_ONLY',
    ]);
  });
});

describe('RequestAuthentication', () => {
  it('accepts a valid policy silently', () => {
    expect(check(`apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  jwtRules:
  - issuer: https://issuer.example
    jwksUri: https://issuer.example/jwks.json
    audiences: [reviews]
    fromHeaders: [{name: x-jwt, prefix: "Bearer "}]
    fromParams: [jwt]
    outputPayloadToHeader: x-jwt-payload
    outputClaimToHeaders: [{header: x-user, claim: sub}]
    forwardOriginalToken: true
    timeout: 5s
  - issuer: other
    jwks: '{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}'
`)).toEqual([]);
  });

  it('reports each unusable field with its path and line', () => {
    expect(check(`apiVersion: security.istio.io/v1beta1
kind: RequestAuthentication
metadata: {name: bad, namespace: default}
spec:
  jwtRules:
  - jwksUri: ftp://keys
  - issuer: a
    jwks: 'not json'
    fromHeaders: [{name: "bad header"}]
    outputClaimToHeaders: [{header: x-a}]
    timeout: soon
  - issuer: a
  - issuer: http://test-issuer
    jwksUri: http://test-issuer/jwks.json
`)).toEqual([
      'p.yaml:6: RequestAuthentication/default/bad: spec.jwtRules[0].issuer: required field is missing',
      'p.yaml:6: RequestAuthentication/default/bad: spec.jwtRules[0].jwksUri: "ftp://keys" is not an http(s) URL',
      'p.yaml:8: RequestAuthentication/default/bad: spec.jwtRules[1].jwks: must be a JSON Web Key Set: {"keys": [ … ]}',
      'p.yaml:9: RequestAuthentication/default/bad: spec.jwtRules[1].fromHeaders[0].name: must be a header name',
      'p.yaml:10: RequestAuthentication/default/bad: spec.jwtRules[1].outputClaimToHeaders[0].claim: required field is missing',
      'p.yaml:11: RequestAuthentication/default/bad: spec.jwtRules[1].timeout: "soon" is not a duration (e.g. 5s)',
      'p.yaml:12: RequestAuthentication/default/bad: spec.jwtRules[2].issuer: warning: issuer "a" is named by an earlier rule too: a token is accepted if either rule verifies it',
      'p.yaml:14: RequestAuthentication/default/bad: spec.jwtRules[3].jwksUri: warning: plain http: the sidecar fetches keys over https only, unless remora run --jwks-allow-http names this issuer (a test issuer); otherwise its tokens get 401',
    ]);
  });
});

describe('PeerAuthentication', () => {
  it('is validated: a portLevelMtls without a selector is an error', () => {
    expect(check(`apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: foo}
spec:
  mtls: {mode: STRICT}
  portLevelMtls:
    8080: {mode: DISABLE}
`)).toEqual([
      'p.yaml:6: PeerAuthentication/foo/default: spec.portLevelMtls: portLevelMtls requires a workload selector',
    ]);
  });
});
