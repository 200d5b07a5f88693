import { useSyncExternalStore } from 'react'
import { useServices } from '../app/services'
import { FileCard, type FileCardActions } from '../components/FileCard'
import { isFinished } from '../services/status'

export function ProgressPage({ online, actions, onUploadMore }: {
  online: boolean
  actions: FileCardActions & { clearFinished: () => void }
  onUploadMore: () => void
}) {
  const { tracker } = useServices()
  const entries = useSyncExternalStore(tracker.subscribe, tracker.getSnapshot)
  const finished = entries.filter(isFinished)
  const delivered = entries.filter((e) => e.status?.state === 'delivered').length
  const problems = entries.filter((e) => e.phase === 'refused' || e.status?.state === 'rejected' || e.status?.state === 'failed').length
  const busy = entries.length - finished.length

  return (
    <section className="page" aria-labelledby="progress-title">
      <h1 id="progress-title" tabIndex={-1}>
        Progress
      </h1>
      {entries.length === 0 ? (
        <p className="empty">Nothing is being sent right now.</p>
      ) : (
        <p className="summary" role="status" data-testid="progress-summary">
          {busy > 0 ? `${busy} in progress` : 'All done'}
          {delivered > 0 ? ` · ${delivered} delivered` : ''}
          {problems > 0 ? ` · ${problems} not accepted` : ''}
        </p>
      )}
      <ul className="file-list">
        {entries.map((entry) => (
          <FileCard key={entry.localId} entry={entry} online={online} actions={actions} />
        ))}
      </ul>
      <div className="actions">
        <button type="button" className="button button--primary" onClick={onUploadMore}>
          Send more images
        </button>
        {finished.length > 0 ? (
          <button type="button" className="button button--quiet" onClick={actions.clearFinished}>
            Clear finished
          </button>
        ) : null}
      </div>
    </section>
  )
}
