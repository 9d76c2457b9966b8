/**
 * A file parsed again reuses the Resource of every document whose text did not change (the same object, moved to the
 * line its document now starts at), and validation by groups then checks again only what changed. After random edits
 * to multi-document files — documents replaced, inserted, removed, duplicated, moved down by lines added above,
 * invalid ones, documents that are not mappings, Lists, comments, YAML syntax errors, `...` end markers — the
 * incremental result equals parsing and validating the files from nothing: the same resources, the same parse and
 * validation errors with the same lines, the same line for any field; and an unchanged document's resource is the
 * previous parse's object.
 */
import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDocuments, type ParseResult } from '../../../src/config/parse.js';
import { loadConfig, type ParseCache } from '../../../src/config/load.js';
import { validateResources } from '../../../src/config/validate.js';
import { GroupedValidation } from '../../../src/config/validate/groups.js';
import type { FieldPath, Resource } from '../../../src/config/resource.js';
import { Gen, docText } from '../../support/random-mesh.js';
import { mulberry32 } from '../../../src/bench/schedule.js';

/** One document of a file as written: its marker line (or none, first only) and text; what it should parse to. */
interface Part { text: string; kind: 'doc' | 'list' | 'none' | 'bad' }

function newPart(g: Gen, first: boolean, others: readonly Part[]): Part {
  const marker = first && g.chance(0.3) ? '' : g.pick(['---\n', '---\n', '--- # next\n', '---\n\n']);
  const lead = g.chance(0.2) ? '# a comment\n' : '';
  const k = g.int(100);
  const docs = others.filter((p) => p.kind === 'doc');
  if (k < 8 && docs.length > 0) {
    // The same document twice (a duplicate: the first keeps its line in the second's error).
    const d = g.pick(docs);
    return { text: (first && !d.text.startsWith('---') ? '' : marker) + d.text.replace(/^---[^\n]*\n\n?/, ''), kind: 'doc' };
  }
  if (k < 11) return { text: `${marker}${lead}- not\n- a mapping\n`, kind: 'none' };
  if (k < 13) return { text: `${marker}# only a comment\n`, kind: 'none' };
  if (k < 15) return { text: `${marker}${lead}apiVersion: v1\nkind: List\nitems:\n- ${JSON.stringify(g.doc())}\n`, kind: 'list' };
  if (k < 17) return { text: `${marker}${lead}kind: [unclosed\n`, kind: 'bad' };
  const end = g.chance(0.03) ? '...\n' : '';
  return { text: `${marker}${lead}${docText(g.doc(), g.rand)}${end}`, kind: 'doc' };
}

/** One random edit of a file's parts. */
function edit(g: Gen, parts: Part[]): void {
  const op = g.int(7);
  const at = g.int(parts.length + 1);
  if (op === 0 || parts.length === 0) parts.splice(at, 0, newPart(g, at === 0, parts));
  else if (op === 1) parts.splice(Math.min(at, parts.length - 1), 1, newPart(g, at === 0, parts));
  else if (op === 2) parts.splice(Math.min(at, parts.length - 1), 1);
  else if (op === 3) {
    // Lines added at the end of a document: every document below moves down.
    const i = Math.min(at, parts.length - 1);
    parts[i] = { ...parts[i]!, text: `${parts[i]!.text}${g.pick(['\n', '# more\n', '\n\n# two more\n'])}` };
  } else if (op === 4) {
    // Lines taken from the end of a document: every document below moves up.
    const i = Math.min(at, parts.length - 1);
    const t = parts[i]!.text;
    const cut = ['\n\n# two more\n', '# more\n', '\n'].find((x) => t.endsWith(x) && t.slice(0, -x.length).endsWith('\n'));
    if (cut !== undefined) parts[i] = { ...parts[i]!, text: t.slice(0, -cut.length) };
  } else if (op === 5) {
    // A document copied elsewhere (its text twice).
    const d = parts[Math.min(at, parts.length - 1)]!;
    if (d.text.startsWith('---')) parts.splice(g.int(parts.length) + 1, 0, d);
  } else {
    const i = Math.min(at, parts.length - 1);
    if (parts[i]!.kind === 'doc') parts[i] = newPart(g, i === 0, parts);
  }
  // Only the first document may lack its marker.
  for (let i = 1; i < parts.length; i++) if (!parts[i]!.text.startsWith('---')) parts[i] = { ...parts[i]!, text: `---\n${parts[i]!.text}` };
}

const textOf = (parts: readonly Part[]): string => parts.map((p) => p.text).join('');

/** Paths to ask lines for: the document, metadata.name, spec, and the first leaf under spec. */
function pathsOf(r: Resource): FieldPath[] {
  const out: FieldPath[] = [[], ['metadata', 'name'], ['spec'], ['spec', 'nope', 3]];
  const leaf: Array<string | number> = ['spec'];
  let v: unknown = r.spec;
  while (typeof v === 'object' && v !== null) {
    const keys = Object.keys(v);
    if (keys.length === 0) break;
    const k = Array.isArray(v) ? 0 : keys[0]!;
    leaf.push(k);
    v = (v as Record<string | number, unknown>)[k];
  }
  out.push(leaf);
  return out;
}

function content(r: Resource): unknown {
  return { apiVersion: r.apiVersion, kind: r.kind, metadata: r.metadata, spec: r.spec, raw: r.raw, source: { ...r.source } };
}

describe('per-document parse reuse and validation by document', () => {
  it('equal a parse and validation from nothing after random edits of multi-document files', () => {
    let reusedAll = 0;
    let relocatedKept = 0;
    fc.assert(fc.property(fc.integer(), (seed) => {
      const g = new Gen(mulberry32(seed));
      const names = ['a.yaml', 'b.yaml', 'c.yaml'];
      const files = names.map((): Part[] => {
        const parts: Part[] = [];
        const n = 3 + g.int(10);
        for (let i = 0; i < n; i++) parts.push(newPart(g, i === 0, parts));
        for (let i = 1; i < parts.length; i++) if (!parts[i]!.text.startsWith('---')) parts[i] = { ...parts[i]!, text: `---\n${parts[i]!.text}` };
        return parts;
      });
      const cache = new Map<string, ParseResult>();
      const gv = new GroupedValidation();
      const parseAll = (): void => { names.forEach((f, i) => cache.set(f, parseDocuments(textOf(files[i]!), f))); };
      parseAll();
      gv.update(names.map((f) => ({ key: f, resources: cache.get(f)!.resources })));
      for (let step = 0; step < 20; step++) {
        const fi = g.int(names.length);
        const f = names[fi]!;
        const before = files[fi]!.slice();
        for (let e = 1 + g.int(3); e > 0; e--) edit(g, files[fi]!);
        const prev = cache.get(f)!;
        const now = parseDocuments(textOf(files[fi]!), f, 'default', { previous: prev });
        cache.set(f, now);
        reusedAll += now.reused ?? 0;
        const problems = gv.update(names.map((k) => ({ key: k, resources: cache.get(k)!.resources })));

        // From nothing.
        const fresh = names.map((k, i) => parseDocuments(textOf(files[i]!), k));
        const all = fresh.flatMap((p) => p.resources);
        expect(problems, `seed ${seed} step ${step}`).toEqual(validateResources(all));
        names.forEach((k, i) => {
          const incr = cache.get(k)!;
          expect(incr.errors, `${k} step ${step}`).toEqual(fresh[i]!.errors);
          expect(incr.resources.map(content), `${k} step ${step}`).toEqual(fresh[i]!.resources.map(content));
          incr.resources.forEach((r, j) => {
            // Lines asked of some resources only, so that both kept and not yet found field lines are moved.
            if (g.chance(0.25)) for (const p of pathsOf(r)) expect(r.lineOf(p), `${k} step ${step} ${r.kind} ${p.join('.')}`).toBe(fresh[i]!.resources[j]!.lineOf(p));
          });
        });

        // The documents left alone are the previous parse's objects (when both parses read document by document).
        if (![...before, ...files[fi]!].some((p) => p.kind === 'bad')) {
          const byText = new Map<string, Resource[]>();
          let at = 0;
          for (const p of before) {
            if (p.kind === 'doc') { const l = byText.get(p.text) ?? []; l.push(prev.resources[at]!); byText.set(p.text, l); }
            at += p.kind === 'doc' ? 1 : p.kind === 'list' ? 1 : 0;
          }
          at = 0;
          for (const p of files[fi]!) {
            if (p.kind === 'doc') {
              const old = byText.get(p.text)?.shift();
              if (old !== undefined) {
                expect(now.resources[at], `${f} step ${step}: an unchanged document's resource`).toBe(old);
                relocatedKept++;
              }
            }
            at += p.kind === 'doc' ? 1 : p.kind === 'list' ? 1 : 0;
          }
        }
      }
    }), { seed: 2611, numRuns: 15 });
    // Reuse happened, and the identity check above ran.
    expect(reusedAll).toBeGreaterThan(1000);
    expect(relocatedKept).toBeGreaterThan(1000);
  });

  it('one document edited in a 1,500-document file is parsed and checked again alone, though every one below moved', () => {
    const docs: string[] = [];
    for (let i = 0; i < 500; i++) {
      docs.push(`apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: s${i}, namespace: default}\nspec:\n  host: s${i}\n  subsets:\n  - name: v1\n    labels: {version: v1}\n  - name: v2\n    labels: {version: v2}\n`);
      docs.push(`apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: s${i}, namespace: default}\nspec:\n  hosts: [s${i}]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: STATIC\n  endpoints: [{address: 10.0.${i >> 8}.${i & 255}}]\n`);
      docs.push(vs(i, ''));
    }
    function vs(i: number, extra: string): string {
      return `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: s${i}, namespace: default}\nspec:\n  hosts: [s${i}]\n  http:\n  - route:\n    - destination: {host: s${i}, subset: v1}\n      weight: 80\n    - destination: {host: s${i}, subset: v2}\n      weight: 20\n${extra}`;
    }
    const text = (): string => docs.map((d) => `---\n${d}`).join('');
    const first = parseDocuments(text(), 'm.yaml');
    const gv = new GroupedValidation();
    expect(gv.update([{ key: 'm', resources: first.resources }])).toEqual([]);
    // The edit of the scale bench: one VirtualService's weights and four lines of a response header.
    docs[3 * 100 + 2] = vs(100, '    headers:\n      response:\n        set:\n          x-edit: "e0"\n').replace('weight: 80', 'weight: 50').replace('weight: 20', 'weight: 50');
    const second = parseDocuments(text(), 'm.yaml', 'default', { previous: first });
    expect(second.reused).toBe(1499);
    expect(second.resources.filter((r, i) => r !== first.resources[i]).map((r) => r.metadata.name)).toEqual(['s100']);
    expect(gv.update([{ key: 'm', resources: second.resources }])).toEqual([]);
    expect(gv.lastTouched).toBe(2); // the old VirtualService out, the new one in
    // The documents below moved four lines down, and say so.
    const fresh = parseDocuments(text(), 'm.yaml');
    expect(second.resources.map((r) => r.source.line)).toEqual(fresh.resources.map((r) => r.source.line));
    expect(second.resources[1000]!.source.line).toBe(first.resources[1000]!.source.line);
    expect(second.resources[1000]!.lineOf(['spec', 'http', 0, 'route', 1, 'weight'])).toBe(fresh.resources[1000]!.lineOf(['spec', 'http', 0, 'route', 1, 'weight']));
    // An error below the edit gets its new line: validation checks the moved resource again only because it has one.
    docs[3 * 400 + 2] = vs(400, '    timeout: 3 parsecs\n');
    const third = parseDocuments(text(), 'm.yaml', 'default', { previous: second });
    expect(gv.update([{ key: 'm', resources: third.resources }])).toHaveLength(1);
    docs[3 * 10 + 2] = vs(10, '    timeout: 5s\n');
    const fourth = parseDocuments(text(), 'm.yaml', 'default', { previous: third });
    const problems = gv.update([{ key: 'm', resources: fourth.resources }]);
    expect(gv.lastTouched).toBe(3); // s10's old VirtualService out, its new one in, and s400's (with an error, moved a line down) checked again
    const timeoutLine = text().split('\n').indexOf('    timeout: 3 parsecs') + 1;
    expect(problems).toEqual(validateResources(parseDocuments(text(), 'm.yaml').resources));
    expect(problems.map((e) => [e.line, e.object, e.field])).toEqual([[timeoutLine, 'VirtualService/default/s400', 'spec.http[0].timeout']]);
  });
});

describe('loadConfig with per-document reuse', () => {
  const dirs: string[] = [];
  afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

  const DOC = (name: string, timeout: string): string =>
    `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: ${name}, namespace: default}\nspec:\n  hosts: [${name}.example.com]\n  http:\n  - route:\n    - destination: {host: ${name}.example.com}\n    timeout: ${timeout}\n`;

  it('gives a reused resource the field lines of the file as it is now, and undo puts back the previous ones', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'remora-reuse-'));
    dirs.push(dir);
    const file = join(dir, 'm.yaml');
    const v1 = `---\n${DOC('a', '1s')}---\n${DOC('b', '3 parsecs')}`;
    writeFileSync(file, v1);
    const cache: ParseCache = new Map();
    const first = await loadConfig([dir], 'default', cache);
    const entry = cache.get(file)!;
    const b = first.resources[1]!;
    const errLine = (text: string): number => text.split('\n').indexOf('    timeout: 3 parsecs') + 1;
    // Lines added to the first document: b is kept and moved; its error's line is read from the new text.
    const v2 = `---\n${DOC('a', '2s')}# three\n# more\n# lines\n---\n${DOC('b', '3 parsecs')}`;
    writeFileSync(file, v2);
    const second = await loadConfig([dir], 'default', cache);
    expect(second.reused).toBe(1);
    expect(second.resources[1]).toBe(b);
    expect(validateResources(second.resources).map((e) => [e.file, e.line, e.field])).toEqual([[file, errLine(v2), 'spec.http[0].timeout']]);
    // A load not adopted is taken back: b says where it is in v1 again, and the cache holds v1's parse.
    second.undo!();
    expect(b.source.line).toBe(first.resources[1]!.source.line);
    expect(cache.get(file)).toBe(entry);
    writeFileSync(file, v1);
    const third = await loadConfig([dir], 'default', cache);
    expect(third.parsed).toEqual([]);
    expect(validateResources(third.resources).map((e) => [e.line, e.field])).toEqual([[errLine(v1), 'spec.http[0].timeout']]);
  });
});
