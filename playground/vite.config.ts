// The playground: `npm run playground` (dev server) and `npm run playground:build` (a static
// site in playground/dist with relative URLs, deployable as-is to any static host or subfolder).
import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const repo = fileURLToPath(new URL('..', import.meta.url));

export default defineConfig({
  root: here,
  base: './',
  publicDir: 'public',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // tfjs alone is ~1.5 MB minified; one chunk is fine for a demo page.
    chunkSizeWarningLimit: 4000,
  },
  // The page imports the library from ../src (the repository itself, not an installed copy).
  server: { fs: { allow: [repo] } },
});
