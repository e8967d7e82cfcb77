import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    // test/image builds and runs the real image (root, podman): `npm run test:image`.
    exclude: ['node_modules/**', 'dist/**', 'test/image/**'],
    // End-to-end files boot whole appliances: give them room, and run files one at a time so
    // two appliances never compete for the 2 cores during a timing-sensitive step.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    fileParallelism: false,
  },
});
