import path from 'node:path'
import { fileURLToPath } from 'node:url'
import vue from '@vitejs/plugin-vue'
import { defineConfig } from 'vite'

/**
 * The dashboard's build (docs/admin.md): a Vue 3 single-page app that the
 * admin listener serves at its root with the SPA fallback, under the strict
 * Content-Security-Policy (`script-src 'self'; style-src 'self'`). So the
 * build emits external files only: one hashed script and one hashed style
 * sheet under /assets/, no inline `<script>` or `<style>`, no assets turned
 * into `data:` URLs (fonts would need `font-src`), and no module-preload
 * polyfill (every browser the dashboard supports has `modulepreload`).
 */
const here = path.dirname(fileURLToPath(import.meta.url))

export default defineConfig({
  root: here,
  base: '/',
  publicDir: path.join(here, 'public'),
  plugins: [vue()],
  logLevel: 'warn',
  build: {
    outDir: path.join(here, '..', 'dist', 'dashboard'),
    emptyOutDir: true,
    assetsInlineLimit: 0,
    cssCodeSplit: false,
    modulePreload: { polyfill: false },
    sourcemap: false,
    target: 'es2022',
    chunkSizeWarningLimit: 400,
  },
})
