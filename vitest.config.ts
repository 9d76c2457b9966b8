import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The reliability suite, the soak and the image test have their own commands (npm run test:reliability, npm run
    // soak, npm run test:image).
    exclude: ['test/reliability/**', 'test/soak/**', 'test/image/**', '**/node_modules/**'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/vitest.json' },
  },
});
