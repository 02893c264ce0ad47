import swc from 'unplugin-swc';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // esbuild, Vitest's default transform, emits no decorator metadata; Nest needs it.
  plugins: [swc.vite()],
  test: {
    globals: true,
    include: ['test/**/*.e2e-spec.ts'],
  },
});
