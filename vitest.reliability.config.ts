import { defineConfig } from 'vitest/config';

// `npm run test:reliability`: the hardening suite of issue #14 (RELIABILITY.md §4): hostile input, misbehaving
// upstreams, overload, slow clients, faults across network namespaces, shutdown and reload under load. Bounded to a
// few minutes; run by .ci/run beside `npm test`. Files run one at a time: several of them put the machine under load
// and measure latency against a clean run, which a neighbouring load test would spoil.
export default defineConfig({
  test: {
    include: ['test/reliability/**/*.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 60_000,
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/reliability.json' },
  },
});
