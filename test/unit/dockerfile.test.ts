// Static checks of the Dockerfile (no Docker engine on these machines): every COPY source exists,
// the entry point is `remora` on PATH, the user is non-root, and the built entry point runs.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
const text = readFileSync(join(root, 'Dockerfile'), 'utf8');

interface Instruction {
  stage: string;
  op: string;
  args: string;
}

/** Instructions with line continuations joined and comments dropped, each tagged with its stage. */
function instructions(src: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = '';
  let stageCount = 0;
  const logical = src.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  for (const line of logical) {
    const m = /^(\w+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const op = m[1]!.toUpperCase();
    if (op === 'FROM') {
      const as = /\s+AS\s+(\S+)\s*$/i.exec(m[2]!);
      stage = as ? as[1]! : `#${stageCount}`;
      stageCount++;
    }
    out.push({ stage, op, args: m[2]! });
  }
  return out;
}

const ins = instructions(text);
const stages = [...new Set(ins.filter((i) => i.op === 'FROM').map((i) => i.stage))];
const finalStage = stages[stages.length - 1]!;
const final = ins.filter((i) => i.stage === finalStage);

/**
 * Whether .dockerignore leaves `path` out of the build context, as Docker reads it: patterns in order, the last one
 * that matches the path or one of its parent directories decides, `!` re-includes; `*` and `?` stay within one path
 * segment, `**` crosses them.
 */
function ignored(patterns: readonly string[], path: string): boolean {
  const toRegExp = (glob: string): RegExp =>
    new RegExp(`^${glob.replace(/^\/+|\/+$/g, '').split('**').map((part) => part.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')).join('.*')}$`);
  const segments = path.split('/');
  const prefixes = segments.map((_, i) => segments.slice(0, i + 1).join('/'));
  let out = false;
  for (const raw of patterns) {
    const negated = raw.startsWith('!');
    const re = toRegExp(negated ? raw.slice(1) : raw);
    if (prefixes.some((p) => re.test(p))) out = !negated;
  }
  return out;
}

function copySources(args: string): { from?: string; sources: string[]; dest: string } {
  const parts = args.split(/\s+/);
  const flags = parts.filter((p) => p.startsWith('--'));
  const rest = parts.filter((p) => !p.startsWith('--'));
  const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
  return { from, sources: rest.slice(0, -1), dest: rest[rest.length - 1]! };
}

describe('Dockerfile', () => {
  it('is multi-stage, with a Node LTS base', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const arg = /ARG NODE_IMAGE=(\S+)/.exec(text);
    expect(arg?.[1]).toMatch(/^node:(2[0-9])-[a-z]+-slim$/);
    expect(Number(/^node:(\d+)/.exec(arg![1]!)![1]) % 2).toBe(0); // even majors are the LTS lines
  });

  it('copies only paths that exist in the repository (build context)', () => {
    const dockerignore = readFileSync(join(root, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    const copies = ins.filter((i) => i.op === 'COPY' && copySources(i.args).from === undefined);
    expect(copies.length).toBeGreaterThan(0);
    for (const c of copies) {
      for (const src of copySources(c.args).sources) {
        expect(existsSync(join(root, src)), `COPY ${src}`).toBe(true);
        expect(ignored(dockerignore, src), `${src} is excluded by .dockerignore`).toBe(false);
      }
    }
    // The context is an allow-list: what the build does not copy stays out (and cannot change its layer cache).
    for (const path of ['node_modules', 'dist', 'test/unit', '.git', 'docs/operations.md', 'native/build', 'scripts/other.mjs']) {
      expect(ignored(dockerignore, path), path).toBe(true);
    }
    expect(ignored(['*', '!src'], 'src/cli/run.ts')).toBe(false);
    expect(ignored(['node_modules'], 'node_modules/x/y.js')).toBe(true);
  });

  it('copies from the build stage only what `npm run build` and npm produce', async () => {
    const fromBuild = final.filter((i) => i.op === 'COPY').map((i) => copySources(i.args));
    expect(fromBuild.map((c) => c.from)).toEqual(fromBuild.map(() => 'build'));
    const sources = fromBuild.flatMap((c) => c.sources).sort();
    expect(sources).toEqual(['/app/dist', '/app/native/build/Release/remora_net.node', '/app/node_modules', '/app/package.json']);
    // The SO_ORIGINAL_DST addon is built by npm ci's install script, with the compiler the stage installs.
    const installs = ins.filter((i) => i.stage === 'build' && i.op === 'RUN' && /apt-get install/.test(i.args)).map((i) => i.args).join(' ');
    for (const pkg of ['python3', 'make', 'g++']) expect(installs.split(/\s+/)).toContain(pkg);
    expect(ins.some((i) => i.stage === 'build' && i.op === 'RUN' && /npm ci\b.*remora_net\.node/.test(i.args))).toBe(true);
    // The build stage produces them: package.json copied in, npm ci, npm run build (whose outDir is dist).
    const build = ins.filter((i) => i.stage === 'build');
    expect(build.some((i) => i.op === 'RUN' && /npm ci\b/.test(i.args))).toBe(true);
    expect(build.some((i) => i.op === 'RUN' && /npm run build/.test(i.args) && /npm prune --omit=dev/.test(i.args))).toBe(true);
    // `npm run build` is tsc (to build/tsc) then the bundler (build/tsc → dist): the stage copies in what both read.
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { bin: Record<string, string>; scripts: Record<string, string> };
    expect(pkg.scripts.build).toMatch(/tsc -p tsconfig\.build\.json && rolldown -c rolldown\.config\.mjs/);
    const buildTsconfig = JSON.parse(readFileSync(join(root, 'tsconfig.build.json'), 'utf8')) as { compilerOptions: { outDir: string } };
    const bundle = ((await import(pathToFileURL(join(root, 'rolldown.config.mjs')).href)) as { default: { input: Record<string, string>; output: { dir: string } } }).default;
    expect(Object.values(bundle.input).every((f) => f.startsWith(`${buildTsconfig.compilerOptions.outDir}/`))).toBe(true);
    expect(bundle.output.dir).toBe('dist');
    const copiedIn = build.filter((i) => i.op === 'COPY').flatMap((i) => copySources(i.args).sources);
    for (const f of ['tsconfig.json', 'tsconfig.build.json', 'rolldown.config.mjs', 'src']) expect(copiedIn, f).toContain(f);
    expect(pkg.bin.remora).toBe('dist/cli.js');
  });

  it('runs as the non-root UID 1337 with `remora` as the entry point', () => {
    const user = final.filter((i) => i.op === 'USER').at(-1);
    expect(user?.args).toBe('1337:1337');
    const entry = final.filter((i) => i.op === 'ENTRYPOINT').at(-1);
    expect(JSON.parse(entry!.args)).toEqual(['remora']);
    expect(final.some((i) => i.op === 'RUN' && i.args.includes('ln -s /app/dist/cli.js /usr/local/bin/remora'))).toBe(true);
    const health = final.find((i) => i.op === 'HEALTHCHECK');
    expect(health?.args).toMatch(/CMD \["remora", "wait"/);
    expect(health?.args).toContain('/healthz/ready');
    const exposed = final.filter((i) => i.op === 'EXPOSE').flatMap((i) => i.args.split(/\s+/)).map(Number);
    expect(exposed).toEqual([15001, 15006, 15021, 15090]);
  });

  const cli = join(root, 'dist', 'cli.js');
  it.skipIf(!existsSync(cli))('the entry point runs: node dist/cli.js --help (skipped until `npm run build` made dist/cli.js)', () => {
    // The shebang runs node with the sidecar's V8 flags (the image's ENTRYPOINT is the `remora` symlink to it).
    expect(readFileSync(cli, 'utf8').split('\n')[0]).toMatch(/^#!\/usr\/bin\/env (-S )?node( |$)/);
    const out = execFileSync(process.execPath, [cli, '--help'], { encoding: 'utf8', timeout: 15_000 });
    expect(execFileSync(cli, ['--version'], { encoding: 'utf8', timeout: 15_000 })).toMatch(/^remora /);
    expect(out.length).toBeGreaterThan(0);
    expect(out).toMatch(/remora/i);
  });
});
