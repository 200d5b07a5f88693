import { useCallback, useEffect, useMemo, useState, useSyncExternalStore } from 'react'
import { Banner } from '../components/Banner'
import { untrackUpload } from '../db/queries'
import { ProgressPage } from '../pages/ProgressPage'
import { UploadPage } from '../pages/UploadPage'
import { isFinished } from '../services/status'
import { useServices } from './services'
import { useForm } from './useForm'
import { useOnline } from './useOnline'
import { useToken } from './useToken'

type Page = 'upload' | 'progress'

function pageFromPath(): Page {
  return window.location.pathname.replace(/\/+$/, '') === '/progress' ? 'progress' : 'upload'
}

function usePage(): [Page, (p: Page) => void] {
  const [page, setPage] = useState<Page>(pageFromPath)
  useEffect(() => {
    const onPop = () => setPage(pageFromPath())
    window.addEventListener('popstate', onPop)
    return () => window.removeEventListener('popstate', onPop)
  }, [])
  const go = useCallback((p: Page) => {
    const path = p === 'progress' ? '/progress' : '/'
    if (window.location.pathname !== path) window.history.pushState(null, '', path)
    setPage(p)
    // Move focus to the new page's heading, so screen readers and keyboards follow the change.
    window.setTimeout(() => document.getElementById(`${p}-title`)?.focus(), 0)
  }, [])
  return [page, go]
}

export function App({ updateReady }: { updateReady: boolean }) {
  const { uppy, tracker, config } = useServices()
  const online = useOnline()
  const [page, go] = usePage()
  const entries = useSyncExternalStore(tracker.subscribe, tracker.getSnapshot)
  // A refused token stays while files still need it: to finish after a reload, or to read their status.
  const keepToken = useCallback(
    () => uppy.getFiles().some((f) => f.progress.uploadStarted) || tracker.all().some((e) => !isFinished(e)),
    [uppy, tracker],
  )
  const token = useToken(keepToken, config.authRequired)
  const info = token.state.kind === 'active' ? token.state.info : null
  const form = useForm(info?.binding ?? null)
  const { reset: resetForm } = form
  const { refresh: refreshToken } = token

  useEffect(() => {
    uppy.setOptions({
      restrictions: {
        maxNumberOfFiles: info?.remaining_uploads ?? null,
        maxFileSize: info?.max_bytes_per_upload ?? null,
      },
    })
  }, [uppy, info])

  // Once every file of a batch is on the server, the form goes too: nothing of the patient stays behind.
  useEffect(() => {
    const onComplete = () =>
      window.setTimeout(() => {
        if (uppy.getFiles().length === 0) {
          void resetForm()
          void refreshToken()
        }
      }, 0)
    uppy.on('complete', onComplete)
    return () => {
      uppy.off('complete', onComplete)
    }
  }, [uppy, resetForm, refreshToken])

  // tus-js-client gives up after its retry delays; when the network returns, try again.
  useEffect(() => {
    if (online && uppy.getFiles().some((f) => f.error && f.progress.uploadStarted)) void uppy.retryAll()
  }, [online, uppy])

  const dismiss = useCallback(
    (localId: string) => {
      if (uppy.getFile(localId)) uppy.removeFile(localId)
      tracker.remove(localId)
      void untrackUpload(localId)
      if (uppy.getFiles().length === 0) void resetForm()
    },
    [uppy, tracker, resetForm],
  )

  const actions = useMemo(
    () => ({
      pauseResume: (id: string) => void uppy.pauseResume(id),
      retry: (id: string) => void uppy.retryUpload(id).catch(() => undefined),
      dismiss,
      clearFinished: () => tracker.all().filter(isFinished).forEach((e) => dismiss(e.localId)),
    }),
    [uppy, tracker, dismiss],
  )

  const discard = useCallback(() => {
    uppy.cancelAll()
    void resetForm()
  }, [uppy, resetForm])

  const inProgress = entries.filter((e) => !isFinished(e)).length
  const restored = entries.some((e) => e.restored && !isFinished(e))

  return (
    <div className="app">
      <header className="topbar">
        <div className="topbar__brand">
          <img src="/icons/favicon.svg" alt="" width="28" height="28" />
          <span>RelayPACS Upload</span>
        </div>
        <span className={`net net--${online ? 'on' : 'off'}`} data-testid="net-state">
          {online ? 'Online' : 'Offline'}
        </span>
      </header>
      <nav className="tabs" aria-label="Pages">
        <a
          href="/"
          className="tabs__tab"
          aria-current={page === 'upload' ? 'page' : undefined}
          onClick={(e) => {
            e.preventDefault()
            go('upload')
          }}
        >
          Upload
        </a>
        <a
          href="/progress"
          className="tabs__tab"
          aria-current={page === 'progress' ? 'page' : undefined}
          onClick={(e) => {
            e.preventDefault()
            go('progress')
          }}
        >
          Progress{inProgress > 0 ? <span className="tabs__count"> ({inProgress})</span> : null}
        </a>
      </nav>
      <main className="main">
        {!online ? (
          <Banner tone="warn" testId="offline-banner">
            You are offline. Files and details are kept on this device; uploads continue when the network is back.
          </Banner>
        ) : null}
        {restored ? (
          <Banner tone="info" testId="resumed-banner">
            Uploads from before the page was reloaded are continuing.
          </Banner>
        ) : null}
        {updateReady ? (
          <Banner tone="info">
            A new version of the app is ready.{' '}
            <button type="button" className="button button--quiet" onClick={() => window.location.reload()} disabled={inProgress > 0}>
              {inProgress > 0 ? 'Reload after the uploads' : 'Reload now'}
            </button>
          </Banner>
        ) : null}
        {page === 'upload' ? (
          <UploadPage form={form} token={token} onStarted={() => go('progress')} onDiscard={discard} />
        ) : (
          <ProgressPage online={online} actions={actions} onUploadMore={() => go('upload')} />
        )}
      </main>
    </div>
  )
}
