/**
 * The subset YAML reader must never disagree with js-yaml: whatever it returns (rather than BAIL) is exactly
 * js-yaml's value, and it returns nothing where js-yaml throws. Plain Istio documents must not bail.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { dump, load } from 'js-yaml';
import { BAIL, fastYamlDocument, NEEDS_FULL_PARSER } from '../../../src/config/fast-yaml.js';
import { parseDocuments } from '../../../src/config/parse.js';

type Ref = { ok: true; value: unknown } | { ok: false };
function reference(text: string): Ref {
  try {
    return { ok: true, value: load(text) };
  } catch {
    return { ok: false };
  }
}

/** The invariant: BAIL, or js-yaml's value (Object.is on scalars, so -0, NaN and prototypes count). */
function agrees(text: string): { bailed: boolean } {
  const fast = fastYamlDocument(text);
  if (fast === BAIL) return { bailed: true };
  const ref = reference(text);
  expect(ref.ok, `js-yaml rejects what the subset reader read:\n${text}`).toBe(true);
  if (ref.ok) expect(isDeepStrictEqual(fast, ref.value), `differs from js-yaml:\n${text}\nfast: ${JSON.stringify(fast)}\njs-yaml: ${JSON.stringify(ref.value)}`).toBe(true);
  return { bailed: false };
}

const ISTIO = `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews   # trailing comment
  namespace: default
  labels: {app: reviews, "quoted key": 'single ''quoted'''}
spec:
  hosts:
  - reviews.default.svc.cluster.local
  - "*.example.com"
  http:
  - name: canary
    match:
    - headers:
        x-canary: {exact: "1"}
      uri:
        prefix: /api/v1
    route:
    - destination: {host: reviews, subset: v2, port: {number: 9080}}
      weight: 80
    - destination:
        host: reviews
        subset: v1
      weight: 20
    timeout: 1.5s
    retries: {attempts: 3, perTryTimeout: 2s, retryOn: "gateway-error,connect-failure"}
  - route: [{destination: {host: reviews}}]
    mirrorPercentage: {value: 12.5}
    corsPolicy:
      allowCredentials: true
      maxAge: 24h
      allowMethods: [GET, POST]
# a comment line

  - fault:
      abort: {httpStatus: 503, percentage: {value: 0.1}}
    route:
    -
      destination: {host: ratings}
    - - nested
      - seq
    empty:
    nothing: ~
    nul: null
    neg: -12
    hex: 0x1F
    float: 1.5e3
    url: http://example.com:8080/path
    ip: 127.0.0.1
    list_at_same_indent:
    - a
    - b
`;

describe('fast-yaml: subset reader', () => {
  it('reads a typical Istio document exactly as js-yaml does, without bailing', () => {
    expect(agrees(ISTIO).bailed).toBe(false);
    const v = fastYamlDocument(ISTIO) as { spec: { http: Array<Record<string, unknown>> }; metadata: Record<string, unknown> };
    expect(v.metadata.labels).toEqual({ app: 'reviews', 'quoted key': "single 'quoted'" });
    expect(v.spec.http[2]!.hex).toBe(31);
    expect(v.spec.http[2]!.float).toBe(1500);
    expect(v.spec.http[2]!.empty).toBe(null);
    expect(v.spec.http[2]!.url).toBe('http://example.com:8080/path');
    expect(v.spec.http[2]!.route).toEqual([{ destination: { host: 'ratings' } }, ['nested', 'seq']]);
  });

  it('reads the benchmark documents (flow collections on one line) without bailing', () => {
    const doc = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc-7, namespace: default}
spec:
  hosts: [svc-7.mesh.bench.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.9}]
`;
    expect(agrees(doc).bailed).toBe(false);
    expect(agrees('---\n' + doc).bailed).toBe(false);
  });

  it.each([
    ['block scalar', 'a: |\n  x\n'],
    ['folded scalar', 'a: >-\n  x\n  y\n'],
    ['anchor and alias', 'a: &x 1\nb: *x\n'],
    ['tag', 'a: !!str 1\n'],
    ['multi-line plain scalar', 'a: b\n  c\n'],
    ['multi-line flow', 'a: [1,\n  2]\n'],
    ['multi-line quoted', 'a: "x\n  y"\n'],
    ['double-quoted escape', 'a: "x\\ty"\n'],
    ['duplicate key', 'a: 1\na: 2\n'],
    ['merge key', 'a: {x: 1}\n<<: {y: 2}\n'],
    ['__proto__ key', '__proto__: 1\n'],
    ['complex key', '? a\n: b\n'],
    ['mapping value after a key', 'a: b: c\n'],
    ['sequence after a key on one line', 'a: - b\n'],
    ['document end marker', 'a: 1\n...\n'],
    ['content on the marker line', '--- {a: 1}\n'],
    ['flow key without value', '{a}\n'],
    ['bad indentation', 'a:\n    b: 1\n  c: 2\n'],
    ['colon inside a flow scalar', 'a: [http://x]\n'],
    ['infinity (JSON has none)', 'a: .inf\n'],
    ['NaN', 'a: [.nan]\n'],
    ['negative zero', 'a: -0\n'],
  ])('leaves %s to js-yaml', (_name, text) => {
    expect(fastYamlDocument(text)).toBe(BAIL);
  });

  it('resolves plain scalars with the CORE schema, as js-yaml does', () => {
    for (const s of ['1', '-1', '+1', '0o17', '0x1f', '1.5', '1e3', '1e400', '12345678901234567890', 'true', 'False', 'TRUE', 'yes', 'no', 'on', 'null', 'Null', '~', '2001-12-14', '1_000', '0.0.0.0/0', '-x', '08', '0b11', 'a"b', 'a\\b', 'é✓']) {
      expect(agrees(`k: ${s}\n`).bailed, s).toBe(false);
      expect(agrees(`${s}: v\n`).bailed, `key ${s}`).toBe(false);
      agrees(`k: [${s}, {${s}: ${s}}]\n`);
    }
    // Keys are String(value), so even the numbers JSON cannot carry make ordinary keys.
    for (const s of ['-.inf', '.NaN', '-0']) {
      expect(agrees(`k: ${s}\n`).bailed, s).toBe(true);
      expect(agrees(`${s}: v\n`).bailed, `key ${s}`).toBe(false);
    }
  });

  it('reads a document larger than its write buffer (and the next one after it)', () => {
    const big = Array.from({ length: 6000 }, (_, i) => `key-${i}: [value-${i}, "é ${i}", {n: ${i}}]`).join('\n') + '\n';
    expect(big.length).toBeGreaterThan(200_000);
    expect(agrees(big).bailed).toBe(false);
    expect(agrees('a: [1, b]\n').bailed).toBe(false);
  });

  it('sends files with tabs, CR, BOM or non-printable characters to the full parser', () => {
    for (const s of ['a:\tb', 'a: b\r\n', '\uFEFFa: b', 'a: \u0007', 'a: \uD800']) expect(NEEDS_FULL_PARSER.test(s)).toBe(true);
    expect(NEEDS_FULL_PARSER.test(ISTIO)).toBe(false);
  });

  // Random documents from a grammar full of YAML's traps: every answer that is not BAIL must match js-yaml.
  const KEYS = ['a', 'b', 'name', '1', '1.0', 'true', '~', 'null', '"q"', "'s'", "'it''s'", 'x y', '<<', '__proto__', 'a#b', 'k:x', '-k', '"a\\"b"', '[a]', '{a: 1}', '? a', '.inf', '0x1F', 'é', '"日本"'];
  const VALUES = [
    '1', '-1', '0x1F', '0o7', '1.5', '.inf', '-.Inf', '.nan', '1e3', '1_000', 'true', 'True', 'yes', 'null', '~', '', 'abc', 'a b',
    'a#b', 'a #b', 'http://x', 'a: b', 'a:', '"x"', '"a\\"b"', '"a # b"', "'it''s'", "'x", '"x', "'x' y", '[a, b]', '[]', '{}', '{a: 1, b: [x, y]}',
    '[a, [b, {c: d}]]', '{a: 1,}', '[a,]', '[a, , b]', '{a}', '{a:1}', '{a: }', '[a: b]', '[a b, c]', '{"a": 1}', "{'a': [1]}", '[a] x', '|', '>-', '&x a', '*x',
    '!!str 1', '@x', '`x', '%x', '-', '- a', ':x', '?x', ',x', 'a,b', 'a]', '{a: b', '[a', '127.0.0.1', '2001-12-14', '0.0.0.0/0', '-a', '--x', '#c', '...', 'ü', '✓ ok', "'日本'", 'a\\b', 'a"b',
  ];
  const line = fc.tuple(
    fc.constantFrom(0, 0, 1, 2, 2, 3, 4, 6),
    fc.oneof(
      fc.tuple(fc.constantFrom(...KEYS), fc.constantFrom(...VALUES)).map(([k, v]) => `${k}: ${v}`),
      fc.constantFrom(...KEYS).map((k) => `${k}:`),
      fc.constantFrom(...VALUES).map((v) => `- ${v}`),
      fc.tuple(fc.constantFrom(...KEYS), fc.constantFrom(...VALUES)).map(([k, v]) => `- ${k}: ${v}`),
      fc.constantFrom('-', '- -', '- - a', '# comment', '', '   ', '---', '...', 'x # c', 'a: b # c', 'a:  # c', '? a', ': b'),
      fc.constantFrom(...VALUES),
    ),
  ).map(([indent, text]) => ' '.repeat(indent) + text);
  const doc = fc.tuple(fc.boolean(), fc.array(line, { minLength: 1, maxLength: 8 }), fc.boolean())
    .map(([marker, lines, nl]) => (marker ? '---\n' : '') + lines.join('\n') + (nl ? '\n' : ''));

  it('never disagrees with js-yaml on random documents', () => {
    let read = 0;
    fc.assert(fc.property(doc, (text) => {
      if (!agrees(text).bailed) read++;
    }), { numRuns: 4000, seed: 20261122 });
    // The grammar produces readable documents often enough for the property to mean something.
    expect(read).toBeGreaterThan(200);
  });

  it('reads what js-yaml dumps (block and flow styles) to the same value', () => {
    const key = fc.constantFrom('a', 'b', 'host', 'name', 'x-y', '1', 'true', 'null', 'with space', "it's", 'a: b', '#x', '');
    const scalar = fc.oneof(
      fc.constantFrom('abc', '', ' lead', 'trail ', 'a #b', 'a: b', 'true', '1', '0x10', 'null', '~', "it's", 'say "hi"', '-', '- a', '[x]', '{y}', '127.0.0.1', 'http://x:1/y', '*', '&', '!', 'é', '✓', 'a\\b"c'),
      fc.integer({ min: -100000, max: 100000 }), fc.double({ noNaN: false }), fc.boolean(), fc.constant(null),
    );
    const value = fc.letrec((tie) => ({
      node: fc.oneof({ depthSize: 'small', withCrossShrink: true }, scalar, tie('arr'), tie('obj')),
      arr: fc.array(tie('node'), { maxLength: 4 }),
      obj: fc.dictionary(key, tie('node'), { maxKeys: 4 }),
    })).obj;
    fc.assert(fc.property(value, fc.constantFrom(-1, 0, 1, 2), (v, flowLevel) => {
      agrees(dump(v, { flowLevel }));
    }), { numRuns: 1500, seed: 7 });
  });

  it('agrees with js-yaml on every document of the repository YAML (deploy/, test/fixtures/ with the Istio fixtures)', () => {
    const files: string[] = [];
    const walk = (d: string): void => {
      for (const n of readdirSync(d)) {
        const p = join(d, n);
        if (statSync(p).isDirectory()) walk(p);
        else if (/\.ya?ml$/.test(n)) files.push(p);
      }
    };
    walk('deploy');
    // test/fixtures/istio/ holds Istio's samples and validation cases (see validate-corpus.test.ts).
    walk('test/fixtures');
    expect(files.length).toBeGreaterThan(0);
    let read = 0;
    for (const f of files) {
      for (const chunk of readFileSync(f, 'utf8').split(/^(?=---(?:\s|$))/m)) if (chunk.trim() !== '' && !agrees(chunk).bailed) read++;
    }
    expect(read).toBeGreaterThan(0);
  });
});

describe('parseDocuments with the subset reader', () => {
  it('gives the same resources, lines and errors whichever reader read a document', () => {
    const text = `${ISTIO}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: r}
spec:
  host: reviews
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
  exportTo: [&x ".", *x]
`;
    const lineOf = (prefix: string): number => text.split('\n').findIndex((l) => l.startsWith(prefix)) + 1;
    const r = parseDocuments(text, 'f.yaml');
    expect(r.errors).toEqual([]);
    expect(r.resources.map((x) => [x.kind, x.source.line])).toEqual([['VirtualService', 2], ['DestinationRule', lineOf('kind: DestinationRule') - 1]]);
    // The second document bailed (anchors) and came from js-yaml; the first from the subset reader.
    expect(r.resources[1]!.spec.exportTo).toEqual(['.', '.']);
    expect(r.resources[0]!.lineOf(['spec', 'http', 0, 'timeout'])).toBe(lineOf('    timeout: 1.5s'));
  });

  it('still reports a syntax error with its line', () => {
    // The unclosed flow mapping sends the whole file to the precise parser: the good document is kept.
    const r = parseDocuments('kind: A\n---\nkind: X\nspec: {a: 1\nb: 2\n', 'bad.yaml');
    expect(r.resources.map((x) => x.kind)).toEqual(['A']);
    expect(r.errors.length).toBeGreaterThan(0);
    expect(r.errors.every((e) => e.file === 'bad.yaml' && e.line >= 3 && e.message.startsWith('YAML syntax'))).toBe(true);
  });
});
