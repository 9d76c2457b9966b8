/**
 * The image build as CI runs it: the stand-in base (stand-in-base.sh), then `podman build --runtime runc` of the
 * Dockerfile, the default target (slim) and `--target distroless`, tagged as `remora inject` names them. Records
 * each step's wall time and each image's size; never throws (a failed build is a failing test, with its log).
 */
import { existsSync, mkdirSync, writeFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultImage } from '../../src/inject/image.js';
import { podman, podmanStatus, runLogged, type Podman } from './podman.js';

export interface BuiltImage {
  name: string;
  /** Wall time of its build step. */
  ms: number;
  /** Uncompressed size, as `podman image inspect` reports it. */
  bytes: number;
}

export interface ImageBuild {
  ok: boolean;
  error?: string;
  /** The build log (stand-in base and podman build output). */
  log: string;
  base?: BuiltImage;
  slim?: BuiltImage;
  distroless?: BuiltImage;
  /** Total wall time of the build steps. */
  ms: number;
}

export const BASE_IMAGE = `localhost/remora-stand-in/node:${process.versions.node.split('.')[0]}-bookworm-slim`;
export const SLIM_IMAGE = defaultImage();
export const DISTROLESS_IMAGE = `${defaultImage()}-distroless`;

/**
 * This machine reaches the npm registry through a TLS-inspecting egress proxy whose CA the runner's npm trusts via
 * NODE_EXTRA_CA_CERTS. The build's RUN steps get the runner's CA file and a global npmrc naming it, as a bind mount
 * over the base's empty /usr/local/etc (`podman build -v`): no layer keeps either, and the Dockerfile is unchanged.
 * The file is NODE_EXTRA_CA_CERTS, else the runner's system bundle (which holds the public CAs too, so it is harmless
 * where no proxy inspects TLS); with neither, nothing is mounted.
 */
export function runnerCaFile(env: NodeJS.ProcessEnv): string | undefined {
  for (const f of [env.NODE_EXTRA_CA_CERTS, '/etc/ssl/certs/ca-certificates.crt']) if (f !== undefined && f !== '' && existsSync(f)) return f;
  return undefined;
}

export function caMountArgs(dir: string, extraCa: string | undefined): string[] {
  if (extraCa === undefined) return [];
  const etc = join(dir, 'build-npm-etc');
  mkdirSync(etc, { recursive: true });
  copyFileSync(extraCa, join(etc, 'npm-ca.crt'));
  writeFileSync(join(etc, 'npmrc'), 'cafile=/usr/local/etc/npm-ca.crt\n');
  return ['--volume', `${etc}:/usr/local/etc:ro`];
}

/** The `podman build` arguments of one variant (printed in the log and in docs/operations.md). */
export function buildArgs(target: 'slim' | 'distroless', extra: string[], context: string): string[] {
  return [
    'build', '--runtime', 'runc',
    // RUN steps use the runner's network: the default bridge would leave a CNI bridge and NAT rules on the runner.
    '--network', 'host',
    // The base is local and nothing may be pulled; docker format keeps HEALTHCHECK (OCI has no field for it).
    '--pull=never', '--format', 'docker',
    '--build-arg', `NODE_IMAGE=${BASE_IMAGE}`,
    ...extra,
    ...(target === 'distroless' ? ['--target', 'distroless', '--tag', DISTROLESS_IMAGE] : ['--tag', SLIM_IMAGE]),
    context,
  ];
}

function size(p: Podman, name: string): number {
  return Number(podman(p, ['image', 'inspect', '--format', '{{.Size}}', name]).trim());
}

export async function buildImages(p: Podman, repo: string, log: string, extraCa: string | undefined): Promise<ImageBuild> {
  const started = Date.now();
  const result: ImageBuild = { ok: false, log, ms: 0 };
  const fail = (error: string): ImageBuild => ({ ...result, error, ms: Date.now() - started });
  try {
    // A kept store (REMORA_IMAGE_STORE, for local runs) may hold the base already; CI always makes it.
    if (podmanStatus(p, ['image', 'exists', BASE_IMAGE]).code !== 0) {
      const r = await runLogged(p, 'sh', [join(repo, 'test/image/stand-in-base.sh'), BASE_IMAGE, join(p.dir, 'base')], log, 10 * 60_000);
      if (r.code !== 0) return fail(`the stand-in base was not made (exit ${r.code}); see ${log}`);
      result.base = { name: BASE_IMAGE, ms: r.ms, bytes: size(p, BASE_IMAGE) };
    } else {
      result.base = { name: BASE_IMAGE, ms: 0, bytes: size(p, BASE_IMAGE) };
    }
    const extra = caMountArgs(p.dir, extraCa);
    for (const target of ['slim', 'distroless'] as const) {
      const r = await runLogged(p, 'podman', buildArgs(target, extra, repo), log, 15 * 60_000, repo);
      if (r.code !== 0) return fail(`podman build (${target}) exited with ${r.code}; see ${log}`);
      const name = target === 'slim' ? SLIM_IMAGE : DISTROLESS_IMAGE;
      result[target] = { name, ms: r.ms, bytes: size(p, name) };
    }
  } catch (err) {
    return fail((err as Error).message);
  }
  return { ...result, ok: true, ms: Date.now() - started };
}
