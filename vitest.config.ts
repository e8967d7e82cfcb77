import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**'],
    // End-to-end files boot whole appliances: give them room, and run files one at a time so
    // two appliances never compete for the 2 cores during a timing-sensitive step.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    fileParallelism: false,
  },
});
