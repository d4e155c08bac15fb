import { defineConfig } from 'vitest/config';

// Mutation testing (npm run mutation, stryker.config.json): the unit tests that run the mutated code
// in-process. Tests that drive dist/keybroker cannot see a mutant (the binary is built from the
// unmutated source), so they are left out; so is the global set-up that builds it.
export default defineConfig({
  test: {
    include: [
      'test/broker/**/*.test.ts',
      'test/cache/**/*.test.ts',
      'test/secret/**/*.test.ts',
      'test/kernel/**/*.test.ts',
      'test/admin/bulk.test.ts',
      'test/sso/**/*.test.ts',
    ],
    exclude: [
      'test/broker/claude.e2e.test.ts',
      'test/broker/recheck.e2e.test.ts',
      'test/broker/stalls.e2e.test.ts',
      'test/broker/storm.e2e.test.ts',
    ],
    setupFiles: ['test/support/per-file.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
