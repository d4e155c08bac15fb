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
    // The *.e2e.test.ts files run dist/keybroker; bulk-services.test.ts (moto, the LiteLLM fake) is not included.
    exclude: ['**/*.e2e.test.ts'],
    setupFiles: ['test/support/per-file.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
