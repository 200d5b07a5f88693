import type { Entry } from '../services/tracker'
import { describe, isFinished } from '../services/status'
import { formatBytes } from '../utils/format'

export interface FileCardActions {
  pauseResume: (localId: string) => void
  retry: (localId: string) => void
  dismiss: (localId: string) => void
}

function kindLabel(entry: Entry): string {
  const kind = entry.status?.kind
  if (kind === 'jpeg' || kind === 'png' || entry.filetype.startsWith('image/')) return 'Photo'
  if (kind === 'dicom' || entry.filetype === 'application/dicom' || /\.dcm$/i.test(entry.name)) return 'DICOM'
  return 'File'
}

export function FileCard({ entry, online, actions }: { entry: Entry; online: boolean; actions: FileCardActions }) {
  const d = describe(entry, online)
  const labelId = `file-${entry.localId}-name`
  const canPause = entry.phase === 'uploading' || entry.phase === 'paused'
  const finished = isFinished(entry)
  return (
    <li
      className={`file-card file-card--${d.tone}`}
      data-testid="file-card"
      data-name={entry.name}
      data-phase={entry.phase}
      data-state={entry.status?.state ?? ''}
      aria-labelledby={labelId}
    >
      <div className="file-card__head">
        <span className="file-card__kind">{kindLabel(entry)}</span>
        <span className="file-card__name" id={labelId}>
          {entry.name}
        </span>
        <span className="file-card__size">{formatBytes(entry.size)}</span>
      </div>
      {d.fraction !== null && d.tone !== 'good' ? (
        <progress
          className="file-card__bar"
          max={1}
          value={d.fraction}
          aria-label={`${entry.name}: ${Math.floor(d.fraction * 100)} percent uploaded`}
        />
      ) : null}
      <p className="file-card__state" aria-live="polite">
        <span className={`badge badge--${d.tone}`} data-testid="file-state">
          {d.label}
        </span>
        {d.detail ? (
          <span className="file-card__detail" data-testid="file-detail">
            {d.detail}
          </span>
        ) : null}
      </p>
      {entry.restored && !finished && entry.phase !== 'uploaded' ? (
        <p className="file-card__note">Restored after the page was reopened.</p>
      ) : null}
      <div className="file-card__actions">
        {canPause ? (
          <button type="button" className="button button--quiet" onClick={() => actions.pauseResume(entry.localId)}>
            {entry.phase === 'paused' ? 'Resume' : 'Pause'}
            <span className="visually-hidden"> {entry.name}</span>
          </button>
        ) : null}
        {entry.phase === 'upload-error' ? (
          <button type="button" className="button" onClick={() => actions.retry(entry.localId)}>
            Retry<span className="visually-hidden"> {entry.name}</span>
          </button>
        ) : null}
        {finished || entry.phase === 'upload-error' ? (
          <button type="button" className="button button--quiet" onClick={() => actions.dismiss(entry.localId)}>
            {finished ? 'Dismiss' : 'Discard'}
            <span className="visually-hidden"> {entry.name}</span>
          </button>
        ) : null}
      </div>
    </li>
  )
}
