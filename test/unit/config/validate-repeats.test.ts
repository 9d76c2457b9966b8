/**
 * Host checks are remembered within one validateResources run (a mesh names each host several times): every
 * occurrence of a bad host is still reported at its own field and line, and nothing carries over between runs.
 */
import { describe, it, expect } from 'vitest';
import { parseDocuments } from '../../../src/config/parse.js';
import { validateResources } from '../../../src/config/validate.js';

const BAD = 'a_b.example.com';
const yaml = (host: string): string => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: s, namespace: default}
spec:
  hosts: [${host}]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: v, namespace: default}
spec:
  hosts: [${host}]
  http:
  - match: [{uri: {prefix: /a}}]
    route:
    - destination: {host: ${host}}
  - route:
    - destination: {host: ${host}}
`;

function run(text: string) {
  const { resources, errors } = parseDocuments(text, 'r.yaml');
  expect(errors).toEqual([]);
  return validateResources(resources).filter((e) => e.severity !== 'warning');
}

describe('validateResources: repeated hosts', () => {
  it('reports a bad host at every place it is written', () => {
    const text = yaml(BAD);
    const lines = text.split('\n');
    const lineOf = (from: number, needle: string): number => lines.findIndex((l, i) => i >= from && l.includes(needle)) + 1;
    const errs = run(text);
    const reason = `domain name "${BAD}" invalid (label "a_b" invalid)`;
    expect(errs.map((e) => [e.object, e.field, e.line, e.message])).toEqual([
      ['ServiceEntry/default/s', 'spec.hosts[0]', lineOf(0, 'hosts:'), reason],
      ['VirtualService/default/v', 'spec.hosts[0]', lineOf(9, 'hosts:'), reason],
      ['VirtualService/default/v', 'spec.http[0].route[0].destination.host', lineOf(0, '- destination'), reason],
      ['VirtualService/default/v', 'spec.http[1].route[0].destination.host', lineOf(lineOf(0, '- destination'), '- destination'), reason],
    ]);
  });

  it('starts afresh on the next run', () => {
    expect(run(yaml('good.example.com'))).toEqual([]);
    expect(run(yaml(BAD))).toHaveLength(4);
    expect(run(yaml('good.example.com'))).toEqual([]);
  });
});
