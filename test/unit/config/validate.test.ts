/**
 * One test per validation rule of `remora validate`: each asserts the exact field path, the reason and the
 * line the error points at (found by the text of that line in the YAML, so the tests stay readable).
 */
import { describe, it, expect } from 'vitest';
import { parseDocuments } from '../../../src/config/parse.js';
import { validateResources, checkRegex } from '../../../src/config/validate.js';
import { formatError, type ConfigError, type Resource } from '../../../src/config/resource.js';

function run(yaml: string, opts?: { clusterDomain?: string }): ConfigError[] {
  const { resources, errors } = parseDocuments(yaml, 'test.yaml');
  expect(errors).toEqual([]);
  return validateResources(resources, opts);
}
const errorsOf = (list: ConfigError[]): ConfigError[] => list.filter((e) => e.severity !== 'warning');
const warningsOf = (list: ConfigError[]): ConfigError[] => list.filter((e) => e.severity === 'warning');

/** 1-based line of the first line of `yaml` containing `text`. */
function lineOf(yaml: string, text: string): number {
  const i = yaml.split('\n').findIndex((l) => l.includes(text));
  if (i < 0) throw new Error(`"${text}" not in yaml`);
  return i + 1;
}

/** Exactly one error (or warning) at `field` whose message contains `msg`, on the line containing `at`. */
function expectIssue(list: ConfigError[], yaml: string, field: string, msg: string, at?: string, severity: 'error' | 'warning' = 'error'): void {
  const pool = severity === 'error' ? errorsOf(list) : warningsOf(list);
  const hits = pool.filter((e) => e.field === field && e.message.includes(msg));
  expect(hits, `want ${severity} at ${field} ~ "${msg}", got:\n${list.map(formatError).join('\n')}`).toHaveLength(1);
  if (at !== undefined) expect(hits[0]!.line).toBe(lineOf(yaml, at));
}

const vs = (http: string, hosts = '  - reviews', extra = ''): string => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: default
spec:
  hosts:
${hosts}
${extra}  http:
${http}`;

const route = (more = ''): string => `  - route:
    - destination:
        host: reviews
${more}`;

const dr = (spec: string, name = 'reviews', ns = 'default'): string => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: ${name}
  namespace: ${ns}
spec:
${spec}`;

const se = (spec: string): string => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: ext
  namespace: default
spec:
${spec}`;

const we = (spec: string): string => `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: vm1
  namespace: default
spec:
${spec}`;

describe('top level', () => {
  it('accepts all three apiVersions of the same spec', () => {
    for (const v of ['v1', 'v1beta1', 'v1alpha3']) {
      expect(run(vs(route()).replace('networking.istio.io/v1', `networking.istio.io/${v}`))).toEqual([]);
    }
  });

  it('rejects an unknown apiVersion of an Istio kind', () => {
    const y = vs(route()).replace('networking.istio.io/v1', 'networking.istio.io/v2');
    expectIssue(run(y), y, 'apiVersion', 'unsupported apiVersion "networking.istio.io/v2"', 'apiVersion:');
  });

  it('ignores other kinds with a warning, and Kubernetes Services/EndpointSlices silently', () => {
    const y = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  servers: []
---
apiVersion: v1
kind: Service
metadata:
  name: reviews
spec:
  ports: [{port: 9080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: reviews-abc
  labels: {kubernetes.io/service-name: reviews}
endpoints: []
`;
    const out = run(y);
    expect(errorsOf(out)).toEqual([]);
    expect(warningsOf(out)).toHaveLength(1);
    expectIssue(out, y, '', 'Gateway (networking.istio.io/v1) is not applied by a sidecar', 'apiVersion: networking.istio.io/v1', 'warning');
  });

  it('requires metadata.name and checks name and namespace syntax', () => {
    const noName = vs(route()).replace('  name: reviews\n', '');
    expectIssue(run(noName), noName, 'metadata.name', 'required field is missing', 'metadata:');
    const bad = vs(route()).replace('name: reviews', 'name: Reviews_1').replace('namespace: default', 'namespace: my.ns');
    const out = run(bad);
    expectIssue(out, bad, 'metadata.name', 'invalid name "Reviews_1"', 'name: Reviews_1');
    expectIssue(out, bad, 'metadata.namespace', 'invalid namespace "my.ns"', 'namespace: my.ns');
  });

  it('rejects unknown top-level and metadata fields, with a suggestion', () => {
    const y = vs(route()).replace('metadata:\n', 'metadata:\n  lables:\n    app: x\n').replace('spec:', 'sepc: {}\nspec:');
    const out = run(y);
    expectIssue(out, y, 'metadata.lables', 'unknown field "lables" (did you mean "labels"?)', 'lables:');
    expectIssue(out, y, 'sepc', 'unknown field "sepc" (did you mean "spec"?)', 'sepc:');
  });

  it('requires spec', () => {
    const y = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: no-spec
`;
    // A missing field points at its closest existing ancestor: here the document itself.
    expectIssue(run(y), y, 'spec', 'required field is missing', 'apiVersion');
  });
});

describe('structural schema', () => {
  it('rejects an unknown field and suggests the near miss (retryon → retryOn)', () => {
    const y = vs(route('    retries:\n      attempts: 3\n      retryon: 5xx\n'));
    expectIssue(run(y), y, 'spec.http[0].retries.retryon', 'unknown field "retryon" (did you mean "retryOn"?)', 'retryon:');
  });

  it('does not guess when nothing is close', () => {
    const y = vs(route('    frobnicate: true\n'));
    const e = errorsOf(run(y)).find((x) => x.field === 'spec.http[0].frobnicate');
    expect(e?.message).toBe('unknown field "frobnicate"');
  });

  it('a field named like an Object method is unknown too (constructor, toString, hasOwnProperty)', () => {
    for (const name of ['constructor', 'toString', 'hasOwnProperty']) {
      const y = vs(route(`    ${name}: true\n`));
      const e = errorsOf(run(y)).find((x) => x.field === `spec.http[0].${name}`);
      expect(e?.message, name).toMatch(new RegExp(`^unknown field "${name}"`));
    }
  });

  it('rejects wrong types: string for integer, string for list, string for boolean, list for object', () => {
    const y = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: reviews
  http:
  - match:
    - ignoreUriCase: "yes"
      uri: [a]
    route:
    - destination:
        host: reviews
      weight: "80"
`;
    const out = run(y);
    expectIssue(out, y, 'spec.hosts', 'must be a list, got string', 'hosts: reviews');
    expectIssue(out, y, 'spec.http[0].match[0].ignoreUriCase', 'must be of type boolean, got string "yes"', 'ignoreUriCase');
    expectIssue(out, y, 'spec.http[0].match[0].uri', 'must be a mapping, got array', 'uri: [a]');
    expectIssue(out, y, 'spec.http[0].route[0].weight', 'must be of type integer, got string "80"', 'weight: "80"');
  });

  it('rejects fractional integers and out-of-range int32', () => {
    const y = vs(route('      weight: 1.5\n').replace('  - route:', '  - timeout: 1s\n    route:'));
    expectIssue(run(y), y, 'spec.http[0].route[0].weight', 'must be of type integer, got number 1.5', 'weight: 1.5');
    const big = vs(route('      weight: 3000000000\n'));
    expectIssue(run(big), big, 'spec.http[0].route[0].weight', 'out of range', 'weight: 3000000000');
  });

  it('rejects enum values outside the CRD enum, with a suggestion', () => {
    const y = dr('  host: reviews\n  trafficPolicy:\n    loadBalancer:\n      simple: ROUNDROBIN\n');
    expectIssue(run(y), y, 'spec.trafficPolicy.loadBalancer.simple', 'unsupported value "ROUNDROBIN"', 'simple:');
    expect(errorsOf(run(y))[0]!.message).toContain('(did you mean "ROUND_ROBIN"?)');
    const res = se('  hosts: [a.example.com]\n  resolution: dns\n');
    expectIssue(run(res), res, 'spec.resolution', 'must be one of NONE, STATIC, DNS, DNS_ROUND_ROBIN, DYNAMIC_DNS (did you mean "DNS"?)', 'resolution:');
  });

  it('enforces oneOf groups: StringMatch, loadBalancer, hash key, ringHash/maglev, redirect port/derivePort', () => {
    const m = vs(`  - match:
    - uri:
        exact: /a
        prefix: /b
    route:
    - destination:
        host: reviews
`);
    expectIssue(run(m), m, 'spec.http[0].match[0].uri.prefix', 'only one of exact, prefix, regex may be set', 'prefix: /b');
    const lb = dr(`  host: reviews
  trafficPolicy:
    loadBalancer:
      simple: RANDOM
      consistentHash:
        httpHeaderName: x-user
        useSourceIp: true
        ringHash: {minimumRingSize: 1024}
        maglev: {tableSize: 65537}
`);
    const out = run(lb);
    expectIssue(out, lb, 'spec.trafficPolicy.loadBalancer.consistentHash', 'only one of simple, consistentHash may be set', 'consistentHash:');
    expectIssue(out, lb, 'spec.trafficPolicy.loadBalancer.consistentHash.useSourceIp', 'only one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName', 'useSourceIp');
    expectIssue(out, lb, 'spec.trafficPolicy.loadBalancer.consistentHash.maglev', 'only one of ringHash, maglev may be set', 'maglev:');
    const rd = vs('  - redirect:\n      uri: /x\n      port: 8080\n      derivePort: FROM_REQUEST_PORT\n');
    expectIssue(run(rd), rd, 'spec.http[0].redirect.derivePort', 'only one of port, derivePort may be set', 'derivePort');
  });

  it('reports missing required fields (route destination, destination host, subset name)', () => {
    const y = vs('  - route:\n    - weight: 100\n  - route:\n    - destination:\n        subset: v1\n');
    const out = run(y);
    expectIssue(out, y, 'spec.http[0].route[0].destination', 'required field is missing', 'weight: 100');
    expectIssue(out, y, 'spec.http[1].route[0].destination.host', 'required field is missing', 'destination:');
  });

  it('checks durations: syntax, ≥ 1ms, ms precision', () => {
    const y = vs(route('    timeout: 10\n    retries:\n      attempts: 2\n      perTryTimeout: 0.5ms\n      backoff: 1.5ms\n'));
    const out = run(y);
    expectIssue(out, y, 'spec.http[0].timeout', 'must be of type string, got integer 10', 'timeout: 10');
    expectIssue(out, y, 'spec.http[0].retries.perTryTimeout', 'must be a valid duration greater than 1ms', 'perTryTimeout');
    expectIssue(out, y, 'spec.http[0].retries.backoff', 'only durations to ms precision are supported', 'backoff');
    const bad = vs(route('    timeout: 10 seconds\n'));
    expectIssue(run(bad), bad, 'spec.http[0].timeout', 'invalid duration "10 seconds"', 'timeout:');
  });

  it('warns on deprecated and removed fields without rejecting', () => {
    const y = vs(route('    mirror:\n      host: reviews\n    mirrorPercent: 5\n    websocketUpgrade: true\n'));
    const out = run(y);
    expect(errorsOf(out)).toEqual([]);
    expectIssue(out, y, 'spec.http[0].mirrorPercent', 'deprecated setting "mirrorPercent"', 'mirrorPercent', 'warning');
    expectIssue(out, y, 'spec.http[0].websocketUpgrade', 'removed from the Istio API', 'websocketUpgrade', 'warning');
  });
});

describe('VirtualService', () => {
  it('accepts a typical canary with relative weights that do not sum to 100', () => {
    const y = vs(`  - route:
    - destination:
        host: reviews
      weight: 3
    - destination:
        host: reviews.other
      weight: 1
`);
    expect(run(y)).toEqual([]);
  });

  it('requires hosts unless the VirtualService is a delegate', () => {
    const y = vs(route(), '  []').replace('  hosts:\n  []\n', '');
    expectIssue(run(y), y, 'spec.hosts', 'hosts is required: only a delegate VirtualService may omit hosts', 'spec:');
  });

  it('checks host syntax: no wildcard in the middle, bare * only with gateways, no duplicates', () => {
    const y = vs(route(), '  - foo.*.com\n  - "*"\n  - reviews\n  - reviews');
    const out = run(y);
    expectIssue(out, y, 'spec.hosts[0]', 'domain name "foo.*.com" invalid (label "*" invalid)', 'foo.*.com');
    expectIssue(out, y, 'spec.hosts[1]', 'wildcard host * is not allowed for virtual services bound to the mesh gateway', '"*"');
    const dup = vs(route(), '  - "*.example.com"\n  - a.example.com');
    expectIssue(run(dup), dup, 'spec.hosts[1]', 'duplicate hosts in virtual service: *.example.com & a.example.com', 'a.example.com');
    const gw = vs(route(), '  - "*"', '  gateways: [istio-system/ingress]\n');
    expect(errorsOf(run(gw))).toEqual([]);
    expectIssue(run(gw), gw, 'spec.gateways', 'not applied to sidecar traffic', 'gateways', 'warning');
  });

  it('needs exactly one of route, redirect, directResponse', () => {
    const y = vs(`  - route:
    - destination:
        host: reviews
    redirect:
      uri: /x
  - redirect:
      uri: /x
    directResponse:
      status: 503
  - name: empty
    timeout: 1s
  - directResponse:
      status: 503
    rewrite:
      uri: /x
`);
    const out = run(y);
    expectIssue(out, y, 'spec.http[0].redirect', 'cannot contain both route and redirect', 'redirect:');
    expectIssue(out, y, 'spec.http[1].directResponse', 'cannot contain both direct_response and redirect', 'directResponse:');
    expectIssue(out, y, 'spec.http[2]', 'HTTP route, redirect or direct_response is required', 'name: empty');
    expectIssue(out, y, 'spec.http[3].rewrite', 'cannot contain both rewrite and direct_response', 'rewrite:');
  });

  it('checks weights: non-negative, not all zero', () => {
    const y = vs(`  - route:
    - destination:
        host: reviews
      weight: -1
  - route:
    - destination:
        host: a
      weight: 0
    - destination:
        host: b
      weight: 0
`);
    const out = run(y);
    expectIssue(out, y, 'spec.http[0].route[0].weight', 'weight -1 < 0', 'weight: -1');
    expectIssue(out, y, 'spec.http[1].route', 'total destination weight = 0');
  });

  it('checks destinations: host, subset name, port number', () => {
    const y = vs(`  - route:
    - destination:
        host: "*"
    - destination:
        host: reviews
        subset: V_1
        port:
          number: 70000
`);
    const out = run(y);
    expectIssue(out, y, 'spec.http[0].route[0].destination.host', 'invalid destination host *', 'host: "*"');
    expectIssue(out, y, 'spec.http[0].route[1].destination.subset', 'subset name is invalid: V_1', 'subset: V_1');
    expectIssue(out, y, 'spec.http[0].route[1].destination.port.number', 'port number 70000 must be in the range 1..65535', 'number: 70000');
  });

  it('checks retries: attempts, retryOn tokens, a policy with attempts 0', () => {
    const y = vs(`${route('    retries:\n      attempts: -1\n')}${route('    retries:\n      attempts: 2\n      retryOn: 5xx,gateway-eror,503\n')}${route('    retries:\n      attempts: 2\n      retryOn: 5xx, reset\n')}${route('    retries:\n      retryOn: 5xx\n')}`);
    const out = run(y);
    expectIssue(out, y, 'spec.http[0].retries.attempts', 'attempts cannot be negative', 'attempts: -1');
    expectIssue(out, y, 'spec.http[1].retries.retryOn', '"gateway-eror" is not a valid retryOn policy', 'gateway-eror');
    expectIssue(out, y, 'spec.http[2].retries.retryOn', '" reset" is not a valid retryOn policy (remove the spaces around commas)', '5xx, reset');
    expectIssue(out, y, 'spec.http[3].retries.attempts', 'http retry policy configured when attempts are set to 0 (disabled)');
    const codes = vs(route('    retries:\n      attempts: 2\n      retryOn: 5xx,599,\n'));
    expectIssue(run(codes), codes, 'spec.http[0].retries.retryOn', '"599" is not a valid retryOn policy', 'retryOn');
    expectIssue(run(codes), codes, 'spec.http[0].retries.retryOn', '"" is not a valid retryOn policy', 'retryOn');
    const ok = vs(route('    retries:\n      attempts: 3\n      retryOn: connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes,503\n'));
    expect(run(ok)).toEqual([]);
  });

  it('rejects regexes RE2 would reject, and invalid ones', () => {
    const y = vs(`  - match:
    - uri:
        regex: "/api/(?!internal).*"
    - headers:
        x-id:
          regex: "(a)\\\\1"
    - queryParams:
        q:
          regex: "("
    route:
    - destination:
        host: reviews
`);
    const out = run(y);
    expectIssue(out, y, 'spec.http[0].match[0].uri.regex', 'lookahead assertions are not supported', 'regex: "/api');
    expectIssue(out, y, 'spec.http[0].match[1].headers.x-id.regex', 'backreference', 'regex: "(a)');
    expectIssue(out, y, 'spec.http[0].match[2].queryParams.q.regex', 'invalid regex', 'regex: "("');
    expect(checkRegex('^/api/v[0-9]+/users$')).toBeUndefined();
    expect(checkRegex('(?<=a)b')).toContain('lookbehind');
    expect(checkRegex('(?i)abc')).toContain('inline flags');
    expect(checkRegex('\\Aabc\\z')).toContain('not supported by Remora yet');
    expect(checkRegex('x'.repeat(1025))).toContain('too large');
  });

  it('rejects empty prefix/regex string matches except an empty uri prefix', () => {
    const y = vs(`  - match:
    - uri:
        prefix: ""
      method:
        prefix: ""
      headers:
        x-a:
          regex: ""
    route:
    - destination:
        host: reviews
`);
    const out = run(y);
    expect(out.some((e) => e.field === 'spec.http[0].match[0].uri.prefix')).toBe(false);
    expectIssue(out, y, 'spec.http[0].match[0].method.prefix', 'prefix string match should not be empty');
    expectIssue(out, y, 'spec.http[0].match[0].headers.x-a.regex', 'regex string match should not be empty', 'regex: ""');
  });

  it('checks match header names: invalid token is an error, upper case a warning', () => {
    const y = vs(`  - match:
    - headers:
        X-Canary:
          exact: "true"
      withoutHeaders:
        "bad name":
          exact: "x"
    route:
    - destination:
        host: reviews
`);
    const out = run(y);
    expectIssue(out, y, 'spec.http[0].match[0].headers.X-Canary', 'write "x-canary"', 'X-Canary', 'warning');
    expectIssue(out, y, 'spec.http[0].match[0].withoutHeaders.bad name', 'header name bad name is not a valid header name', 'bad name');
  });

  it('checks match port, sourceNamespace and sourceLabels', () => {
    const y = vs(`  - match:
    - port: 70000
      sourceNamespace: Bad_NS
      sourceLabels:
        "app/x/y": v1
    route:
    - destination:
        host: reviews
`);
    const out = run(y);
    expectIssue(out, y, 'spec.http[0].match[0].port', 'port number 70000 must be in the range 1..65535', 'port: 70000');
    expectIssue(out, y, 'spec.http[0].match[0].sourceNamespace', 'sourceNamespace match Bad_NS is invalid', 'sourceNamespace');
    expectIssue(out, y, 'spec.http[0].match[0].sourceLabels.app/x/y', 'invalid label key "app/x/y"', 'app/x/y');
  });

  it('checks header operations: names and values', () => {
    const y = vs(route(`    headers:
      request:
        set:
          ":path": /x
          x-ok: "%HOSTNAME%"
          x-pct: "100%"
        remove: [host]
      response:
        add:
          x-crlf: "a\\r\\nb"
          "bad name": v
`));
    const out = run(y);
    expectIssue(out, y, 'spec.http[0].headers.request.set.:path', 'header cannot have ":" prefix', '":path"');
    expectIssue(out, y, 'spec.http[0].headers.request.set.x-pct', 'write "%%" for a literal percent sign', 'x-pct');
    expectIssue(out, y, 'spec.http[0].headers.request.remove[0]', 'cannot set Host header', 'remove: [host]');
    expectIssue(out, y, 'spec.http[0].headers.response.add.x-crlf', 'must not contain control characters', 'x-crlf');
    expectIssue(out, y, 'spec.http[0].headers.response.add.bad name', '"bad name" is not a valid HTTP header name', 'bad name');
    expect(out.some((e) => e.field.endsWith('x-ok'))).toBe(false);
  });

  it('rejects control bytes in config strings that become headers: redirect Location, rewrite path/Host, route header ops, cookie', () => {
    const y = vs(`  - match: [{uri: {prefix: /r}}]
    redirect:
      uri: "/next\\r\\nSet-Cookie: a=b"
      authority: "x\\0y"
  - rewrite:
      uri: "/v2\\n"
      authority: "b\\r"
    route:
    - destination:
        host: reviews
      headers:
        request:
          set:
            x-nul: "a\\0b"
`);
    const out = run(y);
    expectIssue(out, y, 'spec.http[0].redirect.uri', 'must not contain control characters', 'uri: "/next');
    expectIssue(out, y, 'spec.http[0].redirect.authority', 'must not contain control characters', 'authority: "x');
    expectIssue(out, y, 'spec.http[1].rewrite.uri', 'must not contain control characters', 'uri: "/v2');
    expectIssue(out, y, 'spec.http[1].rewrite.authority', 'must not contain control characters', 'authority: "b');
    expectIssue(out, y, 'spec.http[1].route[0].headers.request.set.x-nul', 'must not contain control characters', 'x-nul');
    const d = dr('  host: reviews\n  trafficPolicy:\n    loadBalancer:\n      consistentHash:\n        httpCookie: {name: "s\\r\\nx", path: "/\\n", ttl: 0s}\n');
    const outDr = run(d);
    expectIssue(outDr, d, 'spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name', 'must not contain control characters', 'httpCookie');
    expectIssue(outDr, d, 'spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.path', 'must not contain control characters', 'httpCookie');
  });

  it('rejects setting the authority twice', () => {
    const y = vs(route('    rewrite:\n      authority: a\n    headers:\n      request:\n        set:\n          host: b\n'));
    expectIssue(run(y), y, 'spec.http[0].headers.request.set.host', 'authority header cannot be set multiple times', 'host: b');
  });

  it('checks fault injection', () => {
    const y = vs(`${route(`    fault:
      abort:
        httpStatus: 700
        percentage:
          value: 150
      delay:
        percentage:
          value: 10
`)}${route('    fault: {}\n')}${route('    fault:\n      abort:\n        grpcStatus: NOPE\n      delay:\n        exponentialDelay: 1s\n')}`);
    const out = run(y);
    expectIssue(out, y, 'spec.http[0].fault.abort.httpStatus', 'HTTP status 700 is not in range 200-599', 'httpStatus: 700');
    expectIssue(out, y, 'spec.http[0].fault.abort.percentage.value', 'percentage 150 is neither 0.0, nor in range [0.0001, 100.0]', 'value: 150');
    expectIssue(out, y, 'spec.http[0].fault.delay.fixedDelay', 'delay requires fixedDelay', 'delay:');
    expectIssue(out, y, 'spec.http[1].fault', 'HTTP fault injection must have an abort and/or a delay', 'fault: {}');
    expectIssue(out, y, 'spec.http[2].fault.abort.grpcStatus', 'gRPC status "NOPE" is not supported', 'grpcStatus');
    expectIssue(out, y, 'spec.http[2].fault.delay.exponentialDelay', 'exponentialDelay not supported yet', 'exponentialDelay');
  });

  it('checks redirect and direct response', () => {
    const y = vs(`  - redirect:
      redirectCode: 305
      scheme: ftp
  - redirect:
      authority: x
      redirectCode: 308
  - redirect: {}
  - directResponse:
      status: 600
  - directResponse:
      status: 503
      body:
        string: down
`);
    const out = run(y);
    expectIssue(out, y, 'spec.http[0].redirect.redirectCode', '305 is not a supported redirect code', 'redirectCode: 305');
    expectIssue(out, y, 'spec.http[0].redirect.scheme', 'invalid redirect scheme', 'scheme: ftp');
    expectIssue(out, y, 'spec.http[2].redirect', 'redirect must specify URI, authority, scheme, or port', 'redirect: {}');
    expectIssue(out, y, 'spec.http[3].directResponse.status', 'HTTP status 600 is not in range 200-599', 'status: 600');
    expect(out.filter((e) => e.field.startsWith('spec.http[1]') || e.field.startsWith('spec.http[4]'))).toEqual([]);
  });

  it('checks mirroring: percentages, mirror and mirrors together', () => {
    const y = vs(route(`    mirror:
      host: reviews
    mirrorPercentage:
      value: 101
    mirrors:
    - destination:
        host: reviews
      percentage:
        value: -1
`));
    const out = run(y);
    expectIssue(out, y, 'spec.http[0].mirrorPercentage.value', 'mirror_percentage must be in range 0..100', 'value: 101');
    expectIssue(out, y, 'spec.http[0].mirrors[0].percentage.value', 'mirror percentage must be in range 0..100', 'value: -1');
    expectIssue(out, y, 'spec.http[0].mirrors', 'cannot contain both mirror and mirrors', 'mirrors:');
  });

  it('checks rewrite: uri XOR uriRegexRewrite, regex rewrite needs match and rewrite', () => {
    const y = vs(`${route('    rewrite:\n      uri: /x\n      uriRegexRewrite:\n        match: ^/a\n        rewrite: /b\n')}${route('    rewrite:\n      uriRegexRewrite:\n        match: "(?=x)"\n')}`);
    const out = run(y);
    expectIssue(out, y, 'spec.http[0].rewrite.uriRegexRewrite', 'rewrite may only contain one of URI or UriRegexRewrite', 'uriRegexRewrite');
    expectIssue(out, y, 'spec.http[1].rewrite.uriRegexRewrite', 'requires both Rewrite and Match');
    expectIssue(out, y, 'spec.http[1].rewrite.uriRegexRewrite.match', 'lookahead', 'match: "(?=x)"');
  });

  it('checks CORS', () => {
    const y = vs(route(`    corsPolicy:
      allowOrigins:
      - exact: ""
      allowMethods: [GET, FETCH]
      allowHeaders: ["x y"]
      maxAge: 1500ms
`));
    const out = run(y);
    expectIssue(out, y, 'spec.http[0].corsPolicy.allowOrigins[0]', 'not a valid match type for CORS allow origins', 'exact: ""');
    expectIssue(out, y, 'spec.http[0].corsPolicy.allowMethods[1]', '"FETCH" is not a supported HTTP method', 'allowMethods');
    expectIssue(out, y, 'spec.http[0].corsPolicy.allowHeaders[0]', 'header name x y is not a valid header name', 'allowHeaders');
    expectIssue(out, y, 'spec.http[0].corsPolicy.maxAge', 'seconds precision', 'maxAge');
  });

  it('follows delegates: a root route must name an existing hostless VirtualService', () => {
    const y = `${vs('  - match:\n    - uri:\n        prefix: /api\n    delegate:\n      name: api-routes\n  - delegate:\n      name: missing\n')}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: api-routes
  namespace: default
spec:
  http:
  - route:
    - destination:
        host: api
`;
    const out = run(y);
    expect(errorsOf(out).map((e) => e.field)).toEqual(['spec.http[1].delegate.name']);
    expectIssue(out, y, 'spec.http[1].delegate.name', 'delegate VirtualService default/missing not found', 'name: missing');
  });

  it('rejects route and redirect on a root (delegating) route', () => {
    const y = vs('  - delegate:\n      name: d\n    redirect:\n      uri: /x\n');
    expectIssue(run(y), y, 'spec.http[0].redirect', 'must not specify redirect', 'redirect:');
  });

  it('validates tcp routes (applied to captured connections, with no warning)', () => {
    const y = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: db
spec:
  hosts: [db.example.com]
  tcp:
  - match:
    - port: 0
    route: []
`;
    const out = run(y);
    expectIssue(out, y, 'spec.tcp[0].route', 'TCP route is required', 'route: []');
    expect(out.filter((e) => e.message.includes('not applied'))).toEqual([]);
  });
});

describe('DestinationRule', () => {
  it('requires host and valid subsets', () => {
    const y = dr(`  subsets:
  - name: v1
    labels: {version: v1}
  - name: v1
  - name: v_2
  - labels:
      "bad key!": x
`);
    const out = run(y);
    expectIssue(out, y, 'spec.host', 'host is required', 'spec:');
    expectIssue(out, y, 'spec.subsets[1].name', 'duplicate subset names: v1 (also subsets[0])');
    expectIssue(out, y, 'spec.subsets[2].name', 'subset name is invalid: v_2', 'name: v_2');
    expectIssue(out, y, 'spec.subsets[3].name', 'required field is missing');
    expectIssue(out, y, 'spec.subsets[3].labels.bad key!', 'invalid label key', 'bad key!');
  });

  it('checks traffic policy numbers and percentages', () => {
    const y = dr(`  host: reviews
  trafficPolicy:
    connectionPool:
      tcp:
        maxConnections: -1
      http:
        http1MaxPendingRequests: -5
        h2UpgradePolicy: UPGRADE
        useClientProtocol: true
    outlierDetection:
      maxEjectionPercent: 150
      minHealthPercent: -1
      consecutiveLocalOriginFailures: 3
`);
    const out = run(y);
    expectIssue(out, y, 'spec.trafficPolicy.connectionPool.tcp.maxConnections', 'max connections must be non-negative', 'maxConnections');
    expectIssue(out, y, 'spec.trafficPolicy.connectionPool.http.http1MaxPendingRequests', 'http1 max pending requests must be non-negative', 'http1MaxPendingRequests');
    expectIssue(out, y, 'spec.trafficPolicy.connectionPool.http.useClientProtocol', 'must not be true when H2UpgradePolicy is UPGRADE', 'useClientProtocol');
    expectIssue(out, y, 'spec.trafficPolicy.outlierDetection.maxEjectionPercent', 'percentage 150 is not in range 0..100', 'maxEjectionPercent');
    expectIssue(out, y, 'spec.trafficPolicy.outlierDetection.minHealthPercent', 'percentage -1 is not in range 0..100', 'minHealthPercent');
    expectIssue(out, y, 'spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures', 'split external local origin errors is set to false', 'consecutiveLocalOriginFailures');
  });

  it('checks traffic policy durations', () => {
    const y = dr('  host: reviews\n  trafficPolicy:\n    outlierDetection:\n      interval: 0s\n    connectionPool:\n      tcp:\n        connectTimeout: 1x\n        idleTimeout: 0s\n');
    const out = run(y);
    expectIssue(out, y, 'spec.trafficPolicy.outlierDetection.interval', 'greater than 1ms', 'interval');
    expectIssue(out, y, 'spec.trafficPolicy.connectionPool.tcp.connectTimeout', 'invalid duration "1x"', 'connectTimeout');
    expect(out.some((e) => e.field.endsWith('idleTimeout'))).toBe(false);
  });

  it('requires at least one field in a traffic policy and a connection pool', () => {
    const y = dr('  host: reviews\n  trafficPolicy: {}\n  subsets:\n  - name: v1\n    trafficPolicy:\n      connectionPool: {}\n');
    const out = run(y);
    expectIssue(out, y, 'spec.trafficPolicy', 'traffic policy must have at least one field', 'trafficPolicy: {}');
    expectIssue(out, y, 'spec.subsets[0].trafficPolicy.connectionPool', 'connection pool must have at least one field', 'connectionPool: {}');
  });

  it('requires a port in portLevelSettings, unique per rule', () => {
    const y = dr(`  host: reviews
  trafficPolicy:
    portLevelSettings:
    - loadBalancer: {simple: RANDOM}
    - port: {number: 80}
      loadBalancer: {simple: RANDOM}
    - port: {number: 80}
      loadBalancer: {simple: ROUND_ROBIN}
    - port: {number: 81}
`);
    const out = run(y);
    expectIssue(out, y, 'spec.trafficPolicy.portLevelSettings[0].port', 'portTrafficPolicy must have valid port');
    expectIssue(out, y, 'spec.trafficPolicy.portLevelSettings[2].port.number', 'port 80 already has settings in portLevelSettings[1]');
    expectIssue(out, y, 'spec.trafficPolicy.portLevelSettings[3]', 'port traffic policy must have at least one field', 'number: 81');
  });

  it('checks consistent hashing: one key, maglev prime table, ring size bound, deprecated minimumRingSize', () => {
    const y = dr(`  host: reviews
  trafficPolicy:
    loadBalancer:
      consistentHash:
        maglev:
          tableSize: 1000
  subsets:
  - name: a
    trafficPolicy:
      loadBalancer:
        consistentHash:
          httpHeaderName: x-user
          ringHash:
            minimumRingSize: 9000000
  - name: b
    trafficPolicy:
      loadBalancer:
        consistentHash:
          useSourceIp: true
          minimumRingSize: 1024
          maglev: {tableSize: 65537}
`);
    const out = run(y);
    expectIssue(out, y, 'spec.trafficPolicy.loadBalancer.consistentHash', 'consistentHash needs one hash key');
    expectIssue(out, y, 'spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize', 'tableSize must be a prime number for maglev', 'tableSize: 1000');
    expectIssue(out, y, 'spec.subsets[0].trafficPolicy.loadBalancer.consistentHash.ringHash.minimumRingSize', 'minimumRingSize must be at most 8388608', 'minimumRingSize: 9000000');
    expectIssue(out, y, 'spec.subsets[1].trafficPolicy.loadBalancer.consistentHash.minimumRingSize', 'only one of MinimumRingSize or Maglev/Ringhash', 'minimumRingSize: 1024');
    expectIssue(out, y, 'spec.subsets[1].trafficPolicy.loadBalancer.consistentHash.minimumRingSize', 'deprecated', 'minimumRingSize: 1024', 'warning');
  });

  it('checks warmup, locality and TLS', () => {
    const y = dr(`  host: reviews
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
      warmup:
        duration: 10s
        aggression: 0.5
      localityLbSetting:
        distribute:
        - from: us-west/*
          to:
            us-west/zone1: 60
            us-east/zone1: 30
    tls:
      mode: MUTUAL
`);
    const out = run(y);
    expectIssue(out, y, 'spec.trafficPolicy.loadBalancer.warmup.aggression', 'aggression should be greater than or equal to 1', 'aggression');
    expectIssue(out, y, 'spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to', 'total locality weight 90 != 100', 'to:');
    expectIssue(out, y, 'spec.trafficPolicy.tls.clientCertificate', 'client certificate required for mutual tls', 'tls:');
  });
});

describe('ServiceEntry', () => {
  it('requires hosts, rejects a bare * host', () => {
    const y = se('  hosts: ["*"]\n');
    expectIssue(run(y), y, 'spec.hosts[0]', 'hostname cannot be wildcard', 'hosts:');
    const none = se('  location: MESH_EXTERNAL\n');
    expectIssue(run(none), none, 'spec.hosts', 'required field is missing');
  });

  it('checks ports: unique names and numbers, DNS-label names, known protocols, ranges', () => {
    const y = se(`  hosts: [api.example.com]
  ports:
  - {number: 80, name: http, protocol: HTTP}
  - {number: 80, name: http, protocol: http3}
  - {number: 0, name: Web_1, targetPort: 70000}
`);
    const out = run(y);
    expectIssue(out, y, 'spec.ports[1].name', 'Duplicate value: service entry port name "http" already defined (ports[0])');
    expectIssue(out, y, 'spec.ports[1].number', 'port number cannot be duplicated: 80 (ports[0])');
    expectIssue(out, y, 'spec.ports[1].protocol', 'unsupported protocol: http3');
    expectIssue(out, y, 'spec.ports[2].number', 'port must be between 1-65535 (got 0)', 'number: 0');
    expectIssue(out, y, 'spec.ports[2].targetPort', 'port must be between 1-65535 (got 70000)', 'number: 0');
    expectIssue(out, y, 'spec.ports[2].name', 'invalid port name: Web_1');
  });

  it('accepts protocols case-insensitively', () => {
    const y = se('  hosts: [api.example.com]\n  ports:\n  - {number: 443, name: tls, protocol: tls}\n  - {number: 8080, name: grpc-web, protocol: GRPC-Web}\n  resolution: DNS\n');
    expect(errorsOf(run(y))).toEqual([]);
  });

  it('applies resolution rules: NONE has no endpoints, DNS_ROUND_ROBIN ≤ 1, STATIC needs IPs, DNS needs FQDN hosts', () => {
    const y = `${se('  hosts: [a.example.com]\n  endpoints:\n  - address: 1.2.3.4\n')}
---
${se('  hosts: [b.example.com]\n  resolution: DNS_ROUND_ROBIN\n  endpoints:\n  - address: x.example.com\n  - address: y.example.com\n').replace('name: ext', 'name: rr')}
---
${se('  hosts: [c.example.com]\n  resolution: STATIC\n  ports: [{number: 80, name: http}]\n  endpoints:\n  - address: host.example.com\n  - address: unix:///var/run/s.sock\n  - address: 10.0.0.1\n    ports: {web: 8080}\n').replace('name: ext', 'name: st')}
---
${se('  hosts: ["*.d.example.com"]\n  resolution: DNS\n').replace('name: ext', 'name: dns')}`;
    const out = run(y);
    expectIssue(out, y, 'spec.endpoints', 'NONE mode cannot set endpoints', 'endpoints:');
    expectIssue(out, y, 'spec.endpoints', 'DNS_ROUND_ROBIN mode cannot have multiple endpoints');
    expectIssue(out, y, 'spec.endpoints[0].address', 'endpoint address "host.example.com" is not a valid IP address', 'address: host.example.com');
    expectIssue(out, y, 'spec.endpoints[2].ports.web', 'endpoint port "web" is not defined by the service entry (ports: http)', 'ports: {web: 8080}');
    expectIssue(out, y, 'spec.hosts[0]', 'hosts must be FQDN if no endpoints are provided for resolution mode DNS', '*.d.example.com');
    // The unix:// endpoint of the STATIC entry is fine.
    expect(errorsOf(out).filter((e) => e.field === 'spec.endpoints[1].address')).toEqual([]);
  });

  it('rejects CIDR addresses unless NONE/STATIC, bad addresses, and selector with endpoints', () => {
    const y = se(`  hosts: [a.example.com]
  addresses: [10.0.0.0/8, 300.1.1.1, 10.0.0.0/40]
  resolution: DNS
  workloadSelector:
    labels: {app: x}
  endpoints:
  - address: 1.1.1.1
`);
    const out = run(y);
    expectIssue(out, y, 'spec.addresses', 'CIDR addresses are allowed only for NONE/STATIC resolution types', 'addresses:');
    expectIssue(out, y, 'spec.addresses[1]', '300.1.1.1 is not a valid IP');
    expectIssue(out, y, 'spec.addresses[2]', '10.0.0.0/40 is not a valid CIDR block');
    expectIssue(out, y, 'spec.endpoints', 'only one of WorkloadSelector or Endpoints can be set', 'endpoints:');
  });

  it('rejects multiple hosts with non-HTTP/TLS ports unless resolution is NONE, and DYNAMIC_DNS', () => {
    const y = se('  hosts: [a.example.com, b.example.com]\n  ports: [{number: 3306, name: mysql, protocol: TCP}]\n  resolution: DNS\n');
    expectIssue(run(y), y, 'spec.ports', 'multiple hosts provided with non-HTTP, non-TLS ports', 'ports:');
    const dyn = se('  hosts: [a.example.com]\n  resolution: DYNAMIC_DNS\n');
    expectIssue(run(dyn), dyn, 'spec.resolution', 'DYNAMIC_DNS is not supported', 'resolution');
  });

  it('checks workloadSelector labels and exportTo', () => {
    const y = se('  hosts: [a.example.com]\n  resolution: STATIC\n  workloadSelector:\n    labels: {app: "*"}\n  exportTo: [default, ".", "*"]\n');
    const out = run(y);
    expectIssue(out, y, 'spec.workloadSelector.labels.app', 'wildcard is not supported in selector', 'labels:');
    expectIssue(out, y, 'spec.exportTo[1]', 'duplicate entries in exportTo: . and current namespace default', 'exportTo');
    expectIssue(out, y, 'spec.exportTo', 'cannot have both public (*) and non-public exportTo values', 'exportTo');
  });
});

describe('WorkloadEntry', () => {
  it('requires an address unless a network is set', () => {
    const y = we('  labels: {app: vm}\n');
    expectIssue(run(y), y, 'spec.address', 'address is required', 'spec:');
    const net = we('  network: vpc-1\n');
    expect(errorsOf(run(net))).toEqual([]);
    expectIssue(run(net), net, 'spec.address', 'address is unset with network "vpc-1"', 'spec:', 'warning');
  });

  it('checks ports, labels, unix sockets and hostnames', () => {
    const y = we('  address: unix://relative\n  ports:\n    http: 0\n    "@": 80\n  labels:\n    "-bad": x\n');
    const out = run(y);
    expectIssue(out, y, 'spec.address', 'UDS must be an absolute path or abstract socket', 'address:');
    expectIssue(out, y, 'spec.ports', 'UDS may not include ports', 'ports:');
    expectIssue(out, y, 'spec.ports.http', 'port must be between 1-65535 (got 0)', 'http: 0');
    expectIssue(out, y, 'spec.ports', 'port name "@" must be valid', 'ports:');
    expectIssue(out, y, 'spec.labels.-bad', 'invalid label key "-bad"', '"-bad"');
    const host = we('  address: bad_host.example.com\n');
    expectIssue(run(host), host, 'spec.address', 'is not a valid FQDN or an IP address', 'address:');
    expect(run(we('  address: vm1.example.com\n  weight: 2\n'))).toEqual([]);
  });
});

describe('cross-resource references', () => {
  const reviewsDr = dr(`  host: reviews
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
`);

  it('rejects a subset no DestinationRule defines, at the subset field, listing the defined ones', () => {
    const y = `${vs(route('        subset: v3\n'))}\n---\n${reviewsDr}`;
    expectIssue(run(y), y, 'spec.http[0].route[0].destination.subset', 'subset v3 is not defined by any DestinationRule for reviews.default.svc.cluster.local (defined: v1, v2)', 'subset: v3');
  });

  it('rejects a subset when the host has no DestinationRule at all; checks mirrors too', () => {
    const y = vs(route('        subset: v1\n    mirror:\n      host: ratings\n      subset: v9\n'));
    const out = run(y);
    expectIssue(out, y, 'spec.http[0].route[0].destination.subset', 'subset v1 is not defined: no DestinationRule for reviews.default.svc.cluster.local', 'subset: v1');
    expectIssue(out, y, 'spec.http[0].mirror.subset', 'subset v9 is not defined: no DestinationRule for ratings.default.svc.cluster.local', 'subset: v9');
  });

  it('compares hosts after short-name expansion in each resource\'s own namespace', () => {
    const fq = `${vs(route('        subset: v2\n'))}\n---\n${reviewsDr.replace('host: reviews', 'host: reviews.default.svc.cluster.local').replace('namespace: default', 'namespace: other')}`;
    expect(run(fq)).toEqual([]);
    const otherNs = `${vs(route('        subset: v2\n'))}\n---\n${reviewsDr.replace('namespace: default', 'namespace: other')}`;
    expectIssue(run(otherNs), otherNs, 'spec.http[0].route[0].destination.subset', 'no DestinationRule for reviews.default.svc.cluster.local', 'subset: v2');
  });

  it('honours the cluster domain', () => {
    const y = `${vs(route('        subset: v1\n'))}\n---\n${reviewsDr.replace('host: reviews', 'host: reviews.default.svc.corp.example')}`;
    expect(errorsOf(run(y))).toHaveLength(1);
    expect(run(y, { clusterDomain: 'corp.example' })).toEqual([]);
  });

  it('uses the most specific wildcard DestinationRule', () => {
    const y = `${vs(`  - route:
    - destination:
        host: api.example.com
        subset: blue
`, '  - api.example.com')}\n---\n${dr('  host: "*.example.com"\n  subsets:\n  - name: blue\n', 'wild')}`;
    expect(run(y)).toEqual([]);
  });

  it('does not check references of gateway-only VirtualServices (a sidecar never applies them)', () => {
    const y = vs(route('        subset: v1\n'), '  - reviews', '  gateways: [ingress]\n');
    expect(errorsOf(run(y))).toEqual([]);
  });

  it('warns when two VirtualServices in one namespace claim the same host', () => {
    const y = `${vs(route())}\n---\n${vs(route(), '  - reviews.default.svc.cluster.local').replace('name: reviews', 'name: reviews-2')}\n---\n${vs(route()).replace('name: reviews', 'name: reviews-3').replace('namespace: default', 'namespace: other')}`;
    const out = run(y);
    expect(errorsOf(out)).toEqual([]);
    expect(warningsOf(out)).toHaveLength(1);
    expectIssue(out, y, 'spec.hosts[0]', 'VirtualService default/reviews (test.yaml:1) also defines host reviews.default.svc.cluster.local', 'reviews.default.svc.cluster.local', 'warning');
  });

  it('rejects the second of two resources with the same kind, namespace and name', () => {
    const y = `${reviewsDr}\n---\n${reviewsDr.replace('networking.istio.io/v1', 'networking.istio.io/v1beta1')}`;
    const out = run(y);
    expect(errorsOf(out)).toHaveLength(1);
    expectIssue(out, y, 'metadata.name', 'duplicate DestinationRule/default/reviews: already defined at test.yaml:1', undefined);
    expect(errorsOf(out)[0]!.line).toBeGreaterThan(lineOf(y, '---'));
  });
});

describe('output', () => {
  it('formats as file:line: Kind/namespace/name: field: reason, sorted by line', () => {
    const y = vs(route('      weight: -5\n    timeout: 0ms\n'));
    const lines = errorsOf(run(y)).map(formatError);
    expect(lines).toEqual([
      `test.yaml:${lineOf(y, 'weight: -5')}: VirtualService/default/reviews: spec.http[0].route[0].weight: weight -5 < 0`,
      `test.yaml:${lineOf(y, 'timeout: 0ms')}: VirtualService/default/reviews: spec.http[0].timeout: must be a valid duration greater than 1ms (got "0ms")`,
    ]);
  });

  it('validates a 10,000-service mesh (its speed is measured by npm run bench, not here)', () => {
    // Resources are built directly: this measures validation, not YAML parsing.
    const resources: Resource[] = [];
    const mk = (kind: string, name: string, namespace: string, spec: Record<string, unknown>): Resource => ({
      apiVersion: 'networking.istio.io/v1', kind, metadata: { name, namespace }, spec,
      raw: { apiVersion: 'networking.istio.io/v1', kind, metadata: { name, namespace }, spec },
      source: { file: 'big.yaml', line: 1 }, lineOf: () => 1,
    });
    for (let i = 0; i < 10_000; i++) {
      const host = `svc-${i}`;
      const ns = `ns-${i % 50}`;
      resources.push(mk('VirtualService', host, ns, {
        hosts: [host],
        http: [
          { match: [{ uri: { prefix: '/api' }, headers: { 'x-canary': { exact: 'true' } } }], route: [{ destination: { host, subset: 'v2' } }], retries: { attempts: 2, perTryTimeout: '1s', retryOn: '5xx' } },
          { route: [{ destination: { host, subset: 'v1' }, weight: 90 }, { destination: { host, subset: 'v2' }, weight: 10 }], timeout: '3s' },
        ],
      }));
      resources.push(mk('DestinationRule', host, ns, {
        host,
        trafficPolicy: { connectionPool: { tcp: { maxConnections: 100 } }, outlierDetection: { consecutive5xxErrors: 5 } },
        subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }],
      }));
    }
    // Speed targets live in the benchmark (docs/benchmarks.md), never in timed unit tests: CI machines are noisy.
    const out = validateResources(resources);
    expect(out).toEqual([]);
  });
});
