import { configDefaults, defineConfig } from 'vitest/config';
import { filesSkippedOn } from './test/support/platform.ts';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Linux-only files on macOS and Windows; the global teardown lists each with its reason.
    exclude: [...configDefaults.exclude, ...filesSkippedOn(process.platform)],
    globalSetup: ['test/support/global-setup.ts'],
    setupFiles: ['test/support/per-file.ts'],
    // Safety nets for a hung test, not speed bounds (those are relative: test/support/time-bounds.ts).
    // Generous, because the same suite must pass on a slow or busy machine.
    testTimeout: 300_000,
    hookTimeout: 300_000,
    // Two cores: the end-to-end files each start servers and the binary.
    maxWorkers: 2,
    pool: 'forks',
  },
});
