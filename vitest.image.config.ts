import { defineConfig } from 'vitest/config';

// `npm run test:image`: the shipped image, built from the Dockerfile and booted (test/image).
export default defineConfig({
  test: {
    include: ['test/image/**/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 1_000_000,
  },
});
