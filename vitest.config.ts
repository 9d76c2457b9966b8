import { defineConfig } from 'vitest/config';

// `npm test`: two projects with their own time limits. Unit tests (test/unit: pure logic, in-process) get 15 s per
// test (the slowest, a property test, took 3 s on a loaded machine): one that needs longer is hanging, not slow.
// Integration tests (test/integration: real sockets, the built CLI, peers, network namespaces; test/security: the
// attack corpus, through CLI-started sidecars) get 30 s. `npx vitest run --project unit` runs one of them. The
// reliability suite, the soak and the image test have their own configs and commands (npm run test:reliability,
// npm run soak, npm run test:image). One JSON report for both projects, at test-results/vitest.json (.ci/run reads it).
export default defineConfig({
  test: {
    pool: 'forks',
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/vitest.json' },
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 15_000, hookTimeout: 15_000 },
      },
      {
        extends: true,
        test: { name: 'integration', include: ['test/integration/**/*.test.ts', 'test/security/**/*.test.ts'], testTimeout: 30_000, hookTimeout: 30_000 },
      },
    ],
  },
});
