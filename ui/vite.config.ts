import { defineConfig } from 'vitest/config';
import { svelte } from '@sveltejs/vite-plugin-svelte';

// The app is served from tauri://localhost (Tauri) or http://127.0.0.1:PORT/ (browser mode): relative
// asset paths work for both. Everything is bundled; nothing is loaded from elsewhere at run time.
export default defineConfig({
  base: './',
  plugins: [svelte()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // No inline scripts (CSP script-src 'self'): Vite's module preload polyfill would be inlined otherwise.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
  },
  server: { port: 5173, strictPort: false },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
