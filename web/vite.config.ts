import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';

// The dashboard: Preact (JSX through esbuild, no Babel), built into dist/web, which `kumo serve`
// serves at /. Everything is bundled from node_modules: no CDN, works offline.
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: fileURLToPath(new URL('../dist/web', import.meta.url)),
    emptyOutDir: true,
    // noVNC uses top-level await.
    target: 'es2022',
    chunkSizeWarningLimit: 1024,
  },
  logLevel: 'warn',
});
