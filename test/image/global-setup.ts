/**
 * `npm run test:image`, once before its files: a private podman (podman.ts), the stand-in base and both image variants
 * built (build.ts). The result goes to the tests (inject('imageBuild')) and to test-results/image-build.json; a failed
 * build fails image.test.ts with its log instead of stopping here. Teardown removes the podman directory, unless
 * REMORA_IMAGE_STORE names one to keep between local runs (CI never sets it: nothing is cached).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { buildImages, runnerCaFile, type ImageBuild } from './build.js';
import { destroyPodman, podmanAt } from './podman.js';

declare module 'vitest' {
  export interface ProvidedContext {
    imageBuild: ImageBuild;
    podmanDir: string;
  }
}

const repo = fileURLToPath(new URL('../../', import.meta.url));
/**
 * podman import and podman build keep a blob-info cache (digests of layers they have seen) in this directory whatever
 * the storage configuration says; it is removed after the run when the run made it.
 */
const SYSTEM_PODMAN_DIR = '/var/lib/containers';

/** Why the image tests cannot run here, or undefined. */
function missing(): string | undefined {
  if (process.getuid?.() !== 0) return 'the image tests need root (podman with runc, debootstrap, network namespaces)';
  for (const tool of ['podman', 'runc', 'debootstrap', 'ip']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'pipe' });
    } catch {
      return `${tool} is not installed (apt-get install -y podman runc debootstrap iproute2)`;
    }
  }
  return undefined;
}

export default async function setup(project: TestProject): Promise<() => void> {
  const keep = process.env.REMORA_IMAGE_STORE;
  const madeSystemDir = !existsSync(SYSTEM_PODMAN_DIR);
  const dir = keep ?? mkdtempSync(join(tmpdir(), 'remora-image-'));
  const p = podmanAt(dir);
  mkdirSync(join(repo, 'test-results'), { recursive: true });
  const log = join(repo, 'test-results', 'image-build.log');
  writeFileSync(log, '');
  const why = missing();
  const build: ImageBuild = why !== undefined ? { ok: false, error: why, log, ms: 0 } : await buildImages(p, repo, log, runnerCaFile(process.env));
  writeFileSync(join(repo, 'test-results', 'image-build.json'), `${JSON.stringify(build, null, 2)}\n`);
  const mb = (b?: { bytes: number }): string => (b ? `${(b.bytes / 1e6).toFixed(1)} MB` : '-');
  const s = (b?: { ms: number }): string => (b ? `${(b.ms / 1000).toFixed(0)} s` : '-');
  console.log(`image: ${build.ok ? 'built' : `NOT built: ${build.error}`}; stand-in base ${mb(build.base)} (${s(build.base)}), slim ${mb(build.slim)} (${s(build.slim)}), distroless ${mb(build.distroless)} (${s(build.distroless)})`);
  project.provide('imageBuild', build);
  project.provide('podmanDir', dir);
  return () => {
    if (keep === undefined) destroyPodman(p);
    if (madeSystemDir) rmSync(SYSTEM_PODMAN_DIR, { recursive: true, force: true });
  };
}
