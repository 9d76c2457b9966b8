/**
 * A private podman for the image tests: its storage, run state, temporary files and configuration all live in one
 * directory (nothing is cached anywhere else; destroy() removes it). runc as the runtime (crun fails on these
 * machines' hybrid cgroups), cgroupfs, podman's default ulimits cleared (its nofile default is above the hard limit
 * allowed here), and no registry: images are built or imported locally, and `--pull=never` everywhere.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Podman {
  dir: string;
  env: NodeJS.ProcessEnv;
}

export class PodmanError extends Error {
  override name = 'PodmanError';
  constructor(message: string, readonly code: number | null, readonly stderr: string) {
    super(message);
  }
}

/** Write the configuration files into `dir` (idempotent) and return the environment that selects them. */
export function podmanAt(dir: string): Podman {
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  const conf = join(dir, 'containers.conf');
  if (!existsSync(conf)) {
    writeFileSync(conf, [
      '[containers]',
      'default_ulimits = []',
      '[engine]',
      'runtime = "runc"',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      `tmp_dir = "${join(dir, 'tmp')}"`,
      `image_copy_tmp_dir = "${join(dir, 'tmp')}"`,
      '',
    ].join('\n'));
    writeFileSync(join(dir, 'storage.conf'), `[storage]\ndriver = "overlay"\ngraphroot = "${join(dir, 'storage')}"\nrunroot = "${join(dir, 'run')}"\n`);
    // No search registries: an unqualified or missing image is an error, never a pull.
    writeFileSync(join(dir, 'registries.conf'), 'unqualified-search-registries = []\n');
  }
  return {
    dir,
    env: {
      ...process.env,
      CONTAINERS_CONF: conf,
      CONTAINERS_STORAGE_CONF: join(dir, 'storage.conf'),
      CONTAINERS_REGISTRIES_CONF: join(dir, 'registries.conf'),
      TMPDIR: join(dir, 'tmp'),
    },
  };
}

/** Run podman and return its stdout; throws PodmanError with its stderr on a non-zero exit. */
export function podman(p: Podman, args: string[], opts: { input?: string; timeoutMs?: number } = {}): string {
  try {
    return execFileSync('podman', args, { env: p.env, encoding: 'utf8', input: opts.input, timeout: opts.timeoutMs ?? 60_000, stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  } catch (err) {
    const e = err as { status?: number | null; stderr?: string; message: string };
    const stderr = (e.stderr ?? '').trim();
    throw new PodmanError(`podman ${args.slice(0, 3).join(' ')}…: ${stderr.split('\n').slice(-5).join(' | ') || e.message}`, e.status ?? null, stderr);
  }
}

/** podman's exit status and output, without throwing (for checks that expect a failure). */
export function podmanStatus(p: Podman, args: string[], timeoutMs = 60_000): { code: number | null; stdout: string; stderr: string } {
  try {
    return { code: 0, stdout: podman(p, args, { timeoutMs }), stderr: '' };
  } catch (err) {
    if (!(err instanceof PodmanError)) throw err;
    return { code: err.code, stdout: '', stderr: err.stderr };
  }
}

/**
 * A long command (an image build, the stand-in base script) with its output appended to `log`; resolves with its
 * exit status and wall time. Killed after `timeoutMs`.
 */
export function runLogged(p: Podman, cmd: string, args: string[], log: string, timeoutMs: number, cwd?: string): Promise<{ code: number | null; ms: number }> {
  const started = Date.now();
  const out = createWriteStream(log, { flags: 'a' });
  out.write(`\n$ ${[cmd, ...args].join(' ')}\n`);
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: p.env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.pipe(out, { end: false });
    child.stderr.pipe(out, { end: false });
    const timer = setTimeout(() => child.pid !== undefined && process.kill(child.pid, 'SIGKILL'), timeoutMs);
    child.on('error', (err) => out.write(`${err.message}\n`));
    child.on('close', (code) => {
      clearTimeout(timer);
      out.end(`[exit ${code} after ${((Date.now() - started) / 1000).toFixed(1)} s]\n`, () => resolve({ code, ms: Date.now() - started }));
    });
  });
}

/**
 * Remove every container, image and layer of this podman, then the directory. `podman system reset` unmounts what
 * it mounted; a removal that fails still leaves nothing running.
 */
export function destroyPodman(p: Podman): void {
  for (const args of [['rm', '--all', '--force', '--time', '0'], ['system', 'reset', '--force']]) {
    try {
      podman(p, args, { timeoutMs: 120_000 });
    } catch {
      /* best effort: the directory goes below */
    }
  }
  rmSync(p.dir, { recursive: true, force: true });
}
