import '@uppy/core/css/style.min.css'
import '@uppy/dashboard/css/style.min.css'
import './styles.css'
import { StrictMode, useEffect, useState } from 'react'
import { createRoot } from 'react-dom/client'
import { App } from './app/App'
import { ServicesContext, type Services } from './app/services'
import { loadTrackedUploads } from './db/queries'
import { fetchConfig, type AppConfig } from './services/api'
import { StatusPoller } from './services/status'
import { getToken } from './services/token'
import { Tracker } from './services/tracker'
import { createUploader } from './services/uploader'
import { registerServiceWorker } from './sw/register'

function Root({ services }: { services: Services }) {
  const [updateReady, setUpdateReady] = useState(false)
  useEffect(() => {
    registerServiceWorker({ offlineReady: () => undefined, updateReady: () => setUpdateReady(true) })
  }, [])
  return (
    <ServicesContext.Provider value={services}>
      <App updateReady={updateReady} />
    </ServicesContext.Provider>
  )
}

async function boot(): Promise<void> {
  // Offline, the config cannot be fetched: the same-origin default is right for a standard install.
  const config: AppConfig = await fetchConfig().catch(() => ({ tusEndpoint: '/files/', authRequired: null }))
  const tracker = new Tracker()
  // Files the server received before a reload, whose pipeline result is not known yet.
  for (const row of await loadTrackedUploads().catch(() => [])) {
    tracker.upsert(row.localId, { ...row, phase: 'uploaded', bytesUploaded: row.size })
  }
  const uppy = createUploader({ endpoint: config.tusEndpoint, token: getToken, tracker })
  const poller = new StatusPoller(tracker, getToken)
  poller.start()
  const root = document.getElementById('root')
  if (!root) throw new Error('#root is missing from index.html')
  createRoot(root).render(
    <StrictMode>
      <Root services={{ uppy, tracker, poller, config }} />
    </StrictMode>,
  )
}

void boot()
