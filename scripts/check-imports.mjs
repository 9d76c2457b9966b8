#!/usr/bin/env node
/**
 * The house's import rules, checked over src/**\/*.ts: no import cycles among modules (runtime imports; `import type`
 * is erased by tsc and cannot form one), and the layering rules below. Prints every violation and exits 1 if any.
 * Usage: node scripts/check-imports.mjs [--types] (--types: count type-only imports too, as madge does).
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SRC = join(ROOT, 'src');
const withTypes = process.argv.includes('--types');

/** [importer prefix, imported prefix, why]: an importer under the first may not import anything under the second. */
const FORBIDDEN = [
  ['src/proxy/', 'src/net/', 'net/ accepts connections and calls into proxy/; proxy/ never calls back'],
  ['src/routing/', 'src/net/', 'routing/ is pure and below the listeners'],
  ['src/authz/', 'src/proxy/', 'authz/ is pure policy, below the proxy'],
];

function files(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Static import/export-from specifiers of a module, without the type-only ones unless --types. */
function imports(text) {
  const out = [];
  const re = /^\s*(import|export)\s+(type\s+)?([\s\S]*?)\s+from\s+['"]([^'"]+)['"]/gm;
  for (const m of text.matchAll(re)) {
    const typeOnly = m[2] !== undefined || (/^\{[\s\S]*\}$/.test(m[3].trim()) && m[3].replace(/[{}\s]/g, '').split(',').filter(Boolean).every((n) => n.startsWith('type')));
    if (typeOnly && !withTypes) continue;
    out.push(m[4]);
  }
  for (const m of text.matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm)) out.push(m[1]);
  return out;
}

const graph = new Map();
for (const f of files(SRC)) {
  const from = relative(ROOT, f);
  const deps = [];
  for (const spec of imports(readFileSync(f, 'utf8'))) {
    if (!spec.startsWith('.')) continue;
    deps.push(relative(ROOT, resolve(dirname(f), spec.replace(/\.js$/, '.ts'))));
  }
  graph.set(from, deps);
}

const problems = [];
for (const [from, deps] of graph) {
  for (const to of deps) {
    for (const [a, b, why] of FORBIDDEN) if (from.startsWith(a) && to.startsWith(b)) problems.push(`forbidden: ${from} imports ${to} (${why})`);
  }
}

// Tarjan's strongly connected components: every component of more than one module is a cycle.
let index = 0;
const idx = new Map();
const low = new Map();
const stack = [];
const on = new Set();
function visit(v) {
  idx.set(v, index);
  low.set(v, index);
  index++;
  stack.push(v);
  on.add(v);
  for (const w of graph.get(v) ?? []) {
    if (!graph.has(w)) continue;
    if (!idx.has(w)) { visit(w); low.set(v, Math.min(low.get(v), low.get(w))); }
    else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
  }
  if (low.get(v) === idx.get(v)) {
    const comp = [];
    let w;
    do { w = stack.pop(); on.delete(w); comp.push(w); } while (w !== v);
    if (comp.length > 1) problems.push(`cycle: ${comp.sort().join(' ↔ ')}`);
  }
}
for (const v of graph.keys()) if (!idx.has(v)) visit(v);

if (problems.length > 0) {
  for (const p of problems) console.log(p);
  console.log(`${problems.length} import rule violation(s) in ${graph.size} modules${withTypes ? ' (type-only imports counted)' : ''}`);
  process.exit(1);
}
console.log(`import rules hold: ${graph.size} modules, no cycle, no forbidden import${withTypes ? ' (type-only imports counted)' : ''}`);
