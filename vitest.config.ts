import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    globalSetup: ['test/global-setup.ts'],
    // Two cores: keep parallelism modest so timing-sensitive checks stay stable.
    maxWorkers: 2,
  },
});
