// Registers the Workbox service worker that vite-plugin-pwa generates (generateSW): it precaches the app
// shell so the app opens without a network. It caches nothing else: uploads, status and token answers
// hold PHI and must never land in Cache Storage, and tus-js-client (not a background-sync queue) owns
// retries, because a replayed PATCH would carry a stale Upload-Offset.
import { registerSW } from 'virtual:pwa-register'

export interface SwEvents {
  /** The app shell is cached: the app now opens offline. */
  offlineReady: () => void
  /** A new version took over; the page should reload when no upload is running. */
  updateReady: () => void
}

export function registerServiceWorker(events: SwEvents): void {
  if (!('serviceWorker' in navigator)) return
  registerSW({
    immediate: true,
    onOfflineReady: events.offlineReady,
    // Never reload by ourselves: the user may be in the middle of an upload.
    onNeedReload: events.updateReady,
    onRegisterError: (err: unknown) => console.warn('service worker registration failed', err),
  })
}
