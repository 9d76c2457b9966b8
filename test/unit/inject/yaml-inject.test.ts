// Unit tests of multi-document YAML injection: byte-identical passthrough, comments kept, errors with lines.
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { injectYaml } from '../../../src/inject/yaml-inject.js';
import { injectObject } from '../../../src/inject/inject.js';

const read = (name: string): string => readFileSync(new URL(`../../fixtures/inject/${name}`, import.meta.url), 'utf8');
const opts = { image: 'registry.test/remora:1' };

describe('injectYaml', () => {
  it('copies untouched documents byte for byte and keeps comments of the injected one', () => {
    const text = read('deployment.yaml');
    const r = injectYaml(text, opts);
    expect(r.errors).toEqual([]);
    expect(r.injected).toBe(1);
    const [svcSrc, , cmSrc] = text.split(/^---\n/m);
    expect(r.output.startsWith(svcSrc!)).toBe(true); // Service, including "# trailing comment"
    expect(r.output.endsWith(cmSrc!)).toBe(true); // ConfigMap, including the quoted value and its comment
    expect(r.output).toContain('# The workload: its comments must survive injection.');
    expect(r.output).toContain('replicas: 2 # two replicas');
    expect(r.output).toContain('- name: reviews # the app');
    expect(r.skipped).toEqual(['Service/reviews: kind Service has no pod template', 'ConfigMap/untouched: kind ConfigMap has no pod template']);
  });

  it('produces the same objects as injectObject, document by document', () => {
    for (const name of ['deployment.yaml', 'workloads.yaml', 'list.yaml', 'optout.yaml']) {
      const text = read(name);
      const out = injectYaml(text, opts).output;
      const got = parseAllDocuments(out).map((d) => d.toJS());
      const want = parseAllDocuments(text).map((d) => injectObject(d.toJS(), opts).object);
      expect(got).toEqual(want);
    }
  });

  it('keeps the source sequence style (flush "- " items stay flush)', () => {
    const out = injectYaml(read('deployment.yaml'), opts).output;
    expect(out).toMatch(/\n {6}containers:\n {6}- name: remora-proxy|\n {6}initContainers:\n {6}- name: remora-proxy/);
  });

  it('is idempotent on text: injecting the output again changes nothing', () => {
    for (const name of ['deployment.yaml', 'workloads.yaml', 'list.yaml', 'iptables.yaml']) {
      const once = injectYaml(read(name), { ...opts, iptables: true }).output;
      const twice = injectYaml(once, { ...opts, iptables: true });
      expect(twice.injected).toBe(0);
      expect(twice.output).toBe(once);
    }
  });

  it('leaves an input without pod templates identical, including "..." and comments between documents', () => {
    const text = '# head\napiVersion: v1\nkind: Service\nmetadata: {name: a}\n...\n---\n# between\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n';
    const r = injectYaml(text, opts);
    expect(r.output).toBe(text);
    expect(r.injected).toBe(0);
  });

  it('reports YAML syntax errors with their line', () => {
    const text = 'apiVersion: v1\nkind: Pod\n---\napiVersion: v1\nkind: [Pod\nmetadata: {}\n';
    const r = injectYaml(text, opts);
    expect(r.errors.length).toBeGreaterThan(0);
    expect(r.errors[0]!.line).toBeGreaterThanOrEqual(5);
    expect(r.errors[0]!.message).toMatch(/^YAML syntax:/);
  });

  it('reports a malformed capture annotation as an error of that document', () => {
    const text = read('iptables.yaml').replace('"5432,6379"', '"5432,x"');
    const r = injectYaml(text, { ...opts, iptables: true });
    expect(r.errors).toEqual([{ line: 1, message: 'traffic.sidecar.istio.io/excludeOutboundPorts: "x" is not a port number (1-65535)' }]);
  });
});

describe('injectYaml on flow-style sources', () => {
  it('turns the edited flow collections into block style and leaves untouched flow ones alone', () => {
    const out = injectYaml(read('list.yaml'), opts).output;
    expect(out).toContain('  metadata: { name: svc }\n'); // the Service item: untouched, still flow (re-spaced by yaml)
    expect(out).not.toMatch(/\{\s*labels:/); // the edited template metadata is block style now
    expect(out).toMatch(/\n {8}annotations:\n/);
    expect(parseAllDocuments(out).map((d) => d.toJS())).toEqual(parseAllDocuments(read('list.yaml')).map((d) => injectObject(d.toJS(), opts).object));
  });
});
