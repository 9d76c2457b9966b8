import { defineConfig } from 'vitest/config';

// `npm run test:image` (issue #27): the sidecar image built with podman from the Dockerfile and run as a pod would run
// it (test/image/). Root only; needs podman, runc and debootstrap. The build happens once, in the global setup; the
// files run one at a time (each starts containers and network namespaces). Run by .ci/run once, not in the fresh clone.
export default defineConfig({
  test: {
    include: ['test/image/**/*.test.ts'],
    globalSetup: ['test/image/global-setup.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // The global setup builds the images: up to ~10 minutes on a loaded 2-core machine.
    teardownTimeout: 180_000,
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/image.json' },
  },
});
