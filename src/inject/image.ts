/**
 * The sidecar image the CLI and the injector use by default: `ghcr.io/remora-mesh/remora:<version>`,
 * the version read from the package.json that ships next to dist/ (so the image matches the CLI).
 */
import { readFileSync } from 'node:fs';

export const IMAGE_REPOSITORY = 'ghcr.io/remora-mesh/remora';

let cached: string | undefined;

export function packageVersion(): string {
  if (cached !== undefined) return cached;
  try {
    // src/inject/ and the bundle's dist/cli/ and dist/chunks/ (rolldown.config.mjs) are all two levels below the root.
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    cached = typeof pkg.version === 'string' ? pkg.version : 'latest';
  } catch {
    cached = 'latest';
  }
  return cached;
}

export function defaultImage(): string {
  return `${IMAGE_REPOSITORY}:${packageVersion()}`;
}
