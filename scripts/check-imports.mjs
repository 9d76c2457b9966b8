#!/usr/bin/env node
/**
 * The house's rules, checked over src/**\/*.ts (docs/architecture.md, "Rules of the house", says why each holds):
 *  1. no import cycle among modules (runtime imports; `import type` is erased by tsc and cannot form one at run time;
 *     `--types` counts type-only imports too, as madge does);
 *  2. layering: net/ is never imported by proxy/ or routing/, authz/ never imports proxy/;
 *  3. pure modules (PURE below: routing, load balancers, config parse/validate/compile, authz, Gateway API
 *     translation, the error table, the retry and timeout policies …) import no node I/O module, directly or through
 *     another module of src/ (`import type` aside);
 *  4. `process.env` and `process.argv` are read in the CLI layer only (src/cli.ts, src/cli/);
 *  5. one YAML adapter: only src/util/yaml.ts imports `yaml` or `js-yaml`;
 *  6. one kubeconfig loader: only src/discovery/kubeconfig.ts loads a kubeconfig (client-node's loadFrom*);
 *  7. one table of response flags: no other module writes a flag literal ('UF', 'NR', …) than src/errors.ts (and the
 *     ResponseFlag type in src/model.ts).
 * Prints every violation and exits 1 if any. Usage: node scripts/check-imports.mjs [--types] [--root DIR].
 * `checkHouse(root, { types })` is exported for test/unit/house-rules.test.ts.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** [importer prefix, imported prefix, why]: an importer under the first may not import anything under the second. */
const FORBIDDEN = [
  ['src/proxy/', 'src/net/', 'net/ accepts connections and calls into proxy/; proxy/ never calls back'],
  ['src/routing/', 'src/net/', 'routing/ is pure and below the listeners'],
  ['src/authz/', 'src/proxy/', 'authz/ is pure policy, below the proxy'],
];

/**
 * Pure modules: decisions, compilation and data, unit-tested without sockets (time and randomness injected). A prefix
 * ending in '/' names a directory; `!path` excludes a module of it that does I/O.
 */
const PURE = [
  'src/routing/',
  'src/upstream/lb/',
  'src/upstream/policy.ts', 'src/upstream/outlier-detector.ts', 'src/upstream/resource-limits.ts', 'src/upstream/retry-budget.ts', 'src/upstream/hash-key.ts',
  'src/upstream/cluster-runtime.ts', 'src/discovery/sidecar-scope.ts', 'src/discovery/k8s-mapping.ts', 'src/discovery/k8s-registry.ts', 'src/discovery/k8s-trim.ts', 'src/discovery/k8s-kinds.ts', 'src/telemetry/access-log-format.ts', 'src/discovery/env-discovery.ts', 'src/rollout/view.ts', 'src/util/random.ts',
  'src/config/parse.ts', 'src/config/fast-yaml.ts', 'src/config/schema.ts', 'src/config/validate.ts', 'src/config/validate/', 'src/config/compile.ts', 'src/config/compile-delta.ts', 'src/config/compile-registry.ts', 'src/config/compile-clusters.ts', 'src/config/compile-routes.ts', 'src/config/host-lookup.ts', 'src/config/suggest-name.ts', 'src/config/snapshot.ts',
  'src/config/resource.ts', 'src/config/hosts.ts', 'src/config/duration.ts', 'src/config/types.ts',
  'src/authz/',
  'src/gateway/', '!src/gateway/status-writer.ts', '!src/gateway/lease.ts', '!src/gateway/kube-api.ts',
  'src/errors.ts', 'src/model.ts',
  'src/proxy/retry-policy.ts', 'src/proxy/stream-timeouts.ts', 'src/proxy/attempt-outcome.ts', 'src/proxy/grpc.ts',
  'src/net/protocol.ts', 'src/net/tls-sni.ts',
  'src/http2/hpack.ts', 'src/http2/frames.ts', 'src/http2/validate.ts', 'src/http2/request-headers.ts', 'src/http2/h2c.ts',
  'src/security/peer-authentication.ts', 'src/security/spiffe.ts', 'src/security/credential-name.ts', 'src/security/jwks-url.ts',
  'src/cluster/merge.ts',
  'src/rollout/plan.ts', 'src/rollout/doc-editor.ts', 'src/rollout/analysis.ts', 'src/rollout/state.ts', 'src/rollout/vs-edit.ts', 'src/rollout/route-edit.ts',
  'src/inject/inject.ts', 'src/inject/json-patch.ts',
];

/** node builtins that do I/O (sockets, files, processes, DNS, threads). */
const NODE_IO = new Set(['net', 'tls', 'fs', 'fs/promises', 'http', 'https', 'http2', 'dgram', 'dns', 'dns/promises', 'child_process', 'cluster', 'worker_threads', 'readline', 'inspector']);
/** Pure functions of an I/O builtin that a pure module may import by name (address syntax, no socket). */
const PURE_NAMES = { net: new Set(['isIP', 'isIPv4', 'isIPv6']) };

/** The CLI layer: the only modules that read the process's environment and arguments. */
const CLI = (f) => f === 'src/cli.ts' || f.startsWith('src/cli/');
const YAML_ADAPTER = 'src/util/yaml.ts';
const KUBECONFIG_LOADER = 'src/discovery/kubeconfig.ts';
const FLAG_TABLE = new Set(['src/errors.ts', 'src/model.ts']);
const FLAGS = ['NR', 'NC', 'UH', 'UF', 'UO', 'UC', 'UT', 'URX', 'UR', 'LR', 'DC', 'DI', 'FI', 'RL', 'DPE', 'UPE', 'UAEX', 'SI'];
const FLAG_LITERAL = new RegExp(`(['"\`])(${FLAGS.join('|')})\\1`);

function files(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** The text without comments (string contents are kept: a comment marker inside a string is not a comment). */
function stripComments(text) {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    const n = text[i + 1];
    if (c === '/' && n === '*') { const e = text.indexOf('*/', i + 2); i = e < 0 ? text.length : e + 2; continue; }
    if (c === '/' && n === '/') { const e = text.indexOf('\n', i); i = e < 0 ? text.length : e; continue; }
    if (c === '\'' || c === '"' || c === '`') {
      let j = i + 1;
      while (j < text.length && text[j] !== c) j += text[j] === '\\' ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
      continue;
    }
    out += c;
    i++;
  }
  return out;
}

/** The names of an import clause that is only `{ a, b as c }`; undefined for a default or namespace import. */
function namedOnly(clause) {
  const c = clause.trim();
  if (!/^\{[\s\S]*\}$/.test(c)) return undefined;
  return c.slice(1, -1).split(',').map((n) => n.trim().split(/\s+as\s+/)[0]).filter((n) => n !== '' && !n.startsWith('type '));
}

/** Static import/export-from specifiers of a module, each with whether it is type-only. Dynamic imports too. */
function imports(text) {
  const out = [];
  const re = /^\s*(import|export)\s+(type\s+)?([\s\S]*?)\s+from\s+['"]([^'"]+)['"]/gm;
  for (const m of text.matchAll(re)) {
    const typeOnly = m[2] !== undefined || (/^\{[\s\S]*\}$/.test(m[3].trim()) && m[3].replace(/[{}\s]/g, '').split(',').filter(Boolean).every((n) => n.startsWith('type')));
    out.push({ spec: m[4], typeOnly, dynamic: false, names: namedOnly(m[3]) });
  }
  for (const m of text.matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm)) out.push({ spec: m[1], typeOnly: false, dynamic: false });
  // import('x') as a value (a lazy load) is a runtime dependency, but loads nothing at start-up and forms no cycle
  // at module evaluation; `typeof import('x')` and `import('x').T` in a type position are types.
  for (const m of text.matchAll(/(typeof\s+)?\bimport\(\s*['"]([^'"]+)['"]\s*\)(\s*\.\s*[A-Z])?/g)) {
    out.push({ spec: m[2], typeOnly: m[1] !== undefined || m[3] !== undefined, dynamic: true });
  }
  for (const m of text.matchAll(/\bcreateRequire\([^)]*\)\(\s*['"]([^'"]+)['"]\s*\)/g)) out.push({ spec: m[1], typeOnly: false, dynamic: true });
  return out;
}

function isPure(f) {
  let pure = false;
  for (const p of PURE) {
    if (p.startsWith('!')) { if (f === p.slice(1)) return false; continue; }
    if (p.endsWith('/') ? f.startsWith(p) : f === p) pure = true;
  }
  return pure;
}

/** Every rule over the tree under `root` (a directory holding src/). Returns the violations, one line each. */
export function checkHouse(root, { types = false } = {}) {
  const src = join(root, 'src');
  const graph = new Map(); // module → runtime (or, with types, all) static imports of src modules
  const ioImports = new Map(); // module → node I/O builtins it imports at run time (static or lazy)
  const deps = new Map(); // module → every runtime import of a src module, lazy ones included (for purity)
  const problems = [];
  for (const file of files(src)) {
    const from = relative(root, file).split('\\').join('/');
    const raw = readFileSync(file, 'utf8');
    const code = stripComments(raw);
    const edges = [];
    const all = [];
    const io = [];
    for (const { spec, typeOnly, dynamic, names } of imports(code)) {
      if (spec.startsWith('.')) {
        const to = relative(root, resolve(dirname(file), spec.replace(/\.js$/, '.ts'))).split('\\').join('/');
        if (!typeOnly) all.push(to);
        if (!dynamic && (!typeOnly || types)) edges.push(to);
        if (!typeOnly) for (const [a, b, why] of FORBIDDEN) if (from.startsWith(a) && to.startsWith(b)) problems.push(`forbidden: ${from} imports ${to} (${why})`);
        continue;
      }
      if (typeOnly) continue;
      const builtin = spec.startsWith('node:') ? spec.slice(5) : spec;
      const pureNames = PURE_NAMES[builtin];
      if (NODE_IO.has(builtin) && !(pureNames !== undefined && names !== undefined && names.every((n) => pureNames.has(n)))) io.push(spec);
      if ((spec === 'yaml' || spec === 'js-yaml') && from !== YAML_ADAPTER) problems.push(`yaml: ${from} imports ${spec} (YAML goes through ${YAML_ADAPTER})`);
    }
    graph.set(from, edges);
    deps.set(from, all);
    ioImports.set(from, io);
    if (!CLI(from) && /\bprocess\s*\.\s*(env|argv)\b|\bprocess\s*\[\s*['"](env|argv)['"]\s*\]/.test(code)) {
      problems.push(`environment: ${from} reads process.env or process.argv (only src/cli.ts and src/cli/ do; pass options down)`);
    }
    if (from !== KUBECONFIG_LOADER && /\.loadFrom(Default|File|Cluster|String|Options)\s*\(/.test(code)) {
      problems.push(`kubeconfig: ${from} loads a kubeconfig itself (use ${KUBECONFIG_LOADER})`);
    }
    if (!FLAG_TABLE.has(from)) {
      const m = FLAG_LITERAL.exec(code);
      if (m) problems.push(`flags: ${from} writes the response flag ${m[0]} (take it from src/errors.ts)`);
    }
  }

  // Purity: a pure module reaches no node I/O module through its runtime imports (lazy ones included).
  const reachesIo = new Map();
  const ioPath = (m, seen) => {
    if (reachesIo.has(m)) return reachesIo.get(m);
    if (seen.has(m)) return undefined;
    seen.add(m);
    let found;
    const own = ioImports.get(m) ?? [];
    if (own.length > 0) found = [m, own[0]];
    else for (const d of deps.get(m) ?? []) { const p = ioPath(d, seen); if (p !== undefined) { found = [m, ...p]; break; } }
    seen.delete(m);
    reachesIo.set(m, found);
    return found;
  };
  for (const m of graph.keys()) {
    if (!isPure(m)) continue;
    const p = ioPath(m, new Set());
    if (p !== undefined) problems.push(`impure: ${m} is pure but reaches node I/O: ${p.join(' → ')}`);
  }

  // Tarjan's strongly connected components: every component of more than one module is a cycle.
  let index = 0;
  const idx = new Map();
  const low = new Map();
  const stack = [];
  const on = new Set();
  const visit = (v) => {
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
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return { modules: graph.size, problems };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const types = process.argv.includes('--types');
  const r = process.argv.indexOf('--root');
  const root = r > 0 ? resolve(process.argv[r + 1]) : resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const { modules, problems } = checkHouse(root, { types });
  const what = `${modules} modules${types ? ' (type-only imports counted)' : ''}`;
  if (problems.length > 0) {
    for (const p of problems) console.log(p);
    console.log(`${problems.length} house rule violation(s) in ${what}`);
    process.exit(1);
  }
  console.log(`house rules hold: ${what}: no cycle, no forbidden import, pure modules without I/O, process.env only in cli/, one YAML adapter, one kubeconfig loader, one flag table`);
}
