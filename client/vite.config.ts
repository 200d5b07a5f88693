import { defineConfig } from 'vite'
import { VitePWA } from 'vite-plugin-pwa'

// Paths the server answers itself: a navigation there must never get the cached app shell.
const API_PATHS = [/^\/files(\/|$)/, /^\/uploads\//, /^\/batches\//, /^\/auth\//, /^\/healthz$/, /^\/readyz$/,
  /^\/metrics$/, /^\/app-config\.json$/]

export default defineConfig({
  base: '/',
  build: { sourcemap: false, target: 'es2022', chunkSizeWarningLimit: 800 },
  plugins: [
    VitePWA({
      strategies: 'generateSW',
      registerType: 'autoUpdate',
      injectRegister: false, // src/sw/register.ts registers it (no inline script: the CSP forbids them)
      includeAssets: ['icons/favicon.svg', 'icons/icon-192.png'],
      manifest: {
        name: 'RelayPACS Upload',
        short_name: 'RelayPACS',
        description: 'Send DICOM files and clinical photos to the PACS, from the bedside.',
        start_url: '/',
        scope: '/',
        display: 'standalone',
        background_color: '#f4f7f9',
        theme_color: '#0b4f6c',
        icons: [
          { src: '/icons/icon-192.png', sizes: '192x192', type: 'image/png' },
          { src: '/icons/icon-512.png', sizes: '512x512', type: 'image/png' },
          { src: '/icons/icon-maskable-512.png', sizes: '512x512', type: 'image/png', purpose: 'maskable' },
        ],
      },
      workbox: {
        globPatterns: ['**/*.{js,css,html,svg,png,webmanifest}'],
        navigateFallback: 'index.html',
        navigateFallbackDenylist: API_PATHS,
        cleanupOutdatedCaches: true,
        // vite-plugin-pwa sets these only with injectRegister 'auto'; without them the first visit is never
        // controlled by the worker, and the app shell is not available offline until a reload.
        clientsClaim: true,
        skipWaiting: true,
        // No runtimeCaching: uploads, status and token answers hold PHI and must never land in Cache Storage;
        // tus-js-client owns retries and offsets (a replayed PATCH would carry a stale offset).
      },
    }),
  ],
})
