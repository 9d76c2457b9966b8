import { defineConfig } from 'vitest/config';

// `npm run soak`: the long soak of RELIABILITY.md §4 row 24 (an hour by default; SOAK_MINUTES shortens it). Not in CI.
export default defineConfig({
  test: {
    include: ['test/soak/**/*.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 0,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
