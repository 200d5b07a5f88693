// Pipeline status: polls GET /uploads/{id}/status for every uploaded file until it is delivered,
// rejected or failed, and says what is happening in plain words.
import { ApiError, fetchUploadStatus, TERMINAL_STATES, type UploadStatus } from './api'
import type { Entry, Tracker } from './tracker'
import { untrackUpload } from '../db/queries'
import { formatTime } from '../utils/format'

const POLL_MS = 1500
const MAX_BACKOFF_MS = 15_000
/** A status the server does not know yet (404) is retried this many times before we say so. */
const MAX_NOT_FOUND = 20

/** Server reasons are written for people but may start in lower case. */
function sentence(text: string): string {
  return text ? text[0].toUpperCase() + text.slice(1) : text
}

export type Tone = 'neutral' | 'busy' | 'good' | 'bad' | 'warn'

export interface Description {
  label: string
  detail: string
  tone: Tone
  /** 0..1 for a progress bar, or null when there is nothing to measure. */
  fraction: number | null
}

function destinationsText(status: UploadStatus, state: string): string {
  return status.destinations
    .filter((d) => d.state === state)
    .map((d) => d.name)
    .join(', ')
}

function describeStatus(status: UploadStatus, isPhoto: boolean): Description {
  switch (status.state) {
    case 'receiving':
      return { label: 'Uploading', detail: '', tone: 'busy', fraction: null }
    case 'received':
      return { label: 'Uploaded', detail: 'Waiting to be checked', tone: 'busy', fraction: null }
    case 'validating':
      return { label: 'Checking', detail: isPhoto ? 'Checking the photo' : 'Checking the DICOM file', tone: 'busy', fraction: null }
    case 'wrapping':
      return { label: 'Converting', detail: 'Turning the photo into a DICOM image', tone: 'busy', fraction: null }
    case 'delivering': {
      const retrying = status.destinations.filter((d) => d.state === 'retrying')
      if (retrying.length > 0) {
        const d = retrying[0]
        const when = formatTime(d.next_attempt_at)
        const why = d.error ? ` (${d.error})` : ''
        return {
          label: 'Waiting for the PACS',
          detail: `${d.name} did not accept it yet${why}; trying again${when ? ` at ${when}` : ''}`,
          tone: 'warn',
          fraction: null,
        }
      }
      const names = status.destinations.map((d) => d.name).join(', ')
      return { label: 'Sending to PACS', detail: names ? `Sending to ${names}` : '', tone: 'busy', fraction: null }
    }
    case 'delivered': {
      const names = destinationsText(status, 'delivered') || status.destinations.map((d) => d.name).join(', ')
      const at = formatTime(status.updated_at)
      const where = names ? `Delivered to ${names}` : 'Delivered to the PACS'
      return { label: 'Delivered', detail: at ? `${where} at ${at}` : where, tone: 'good', fraction: 1 }
    }
    case 'rejected':
      return { label: 'Rejected', detail: sentence(status.reason ?? 'The file was not accepted.'), tone: 'bad', fraction: null }
    case 'failed': {
      const failed = status.destinations.find((d) => d.state === 'failed')
      const why = status.reason ?? failed?.error ?? 'The PACS did not accept the file.'
      return { label: 'Not delivered', detail: sentence(why), tone: 'bad', fraction: null }
    }
  }
}

/** The state of one file in words, for the Progress page. */
export function describe(entry: Entry, online: boolean): Description {
  const fraction = entry.size > 0 ? Math.min(1, entry.bytesUploaded / entry.size) : 0
  const pct = `${Math.floor(fraction * 100)} %`
  switch (entry.phase) {
    case 'queued':
      return { label: 'Waiting', detail: 'Waiting to upload', tone: 'neutral', fraction }
    case 'uploading':
      if (!online) return { label: 'Offline', detail: `${pct} sent; continues when the network is back`, tone: 'warn', fraction }
      return { label: 'Uploading', detail: `${pct} sent`, tone: 'busy', fraction }
    case 'paused':
      return { label: 'Paused', detail: `${pct} sent`, tone: 'neutral', fraction }
    case 'upload-error':
      return { label: 'Upload stopped', detail: entry.error ?? 'The upload stopped.', tone: 'warn', fraction }
    case 'refused':
      return { label: 'Rejected', detail: sentence(entry.error ?? 'The server did not accept the file.'), tone: 'bad', fraction: null }
    case 'uploaded':
      if (entry.status) return describeStatus(entry.status, entry.status.kind === 'jpeg' || entry.status.kind === 'png')
      if (entry.statusError) return { label: 'Uploaded', detail: entry.statusError, tone: 'neutral', fraction: 1 }
      return { label: 'Uploaded', detail: 'Waiting for the server to check it', tone: 'busy', fraction: 1 }
  }
}

/** Nothing more will happen to this entry (or nothing more can be learnt about it). */
export function isFinished(entry: Entry): boolean {
  if (entry.phase === 'refused' || entry.statusError !== null) return true
  return entry.status !== null && TERMINAL_STATES.has(entry.status.state)
}

/** Polls the status of every uploaded, unfinished entry; stop() ends it. */
export class StatusPoller {
  #timer: number | undefined
  #backoff = new Map<string, { wait: number; next: number; notFound: number }>()
  #running = false

  constructor(
    private readonly tracker: Tracker,
    private readonly token: () => string | null,
  ) {}

  start(): void {
    if (this.#timer === undefined) this.#timer = window.setInterval(() => void this.#tick(), POLL_MS)
    void this.#tick()
  }

  stop(): void {
    window.clearInterval(this.#timer)
    this.#timer = undefined
  }

  async #tick(): Promise<void> {
    if (this.#running || !navigator.onLine) return
    this.#running = true
    try {
      const due = this.tracker.all().filter((e) => e.phase === 'uploaded' && e.uploadId && !isFinished(e))
      for (const entry of due) {
        const b = this.#backoff.get(entry.localId)
        if (b && b.next > Date.now()) continue
        await this.#poll(entry)
      }
    } finally {
      this.#running = false
    }
  }

  async #poll(entry: Entry): Promise<void> {
    try {
      const status = await fetchUploadStatus(entry.uploadId as string, this.token())
      this.#backoff.delete(entry.localId)
      this.tracker.update(entry.localId, { status, statusError: null })
      if (TERMINAL_STATES.has(status.state)) await untrackUpload(entry.localId)
    } catch (err) {
      const b = this.#backoff.get(entry.localId) ?? { wait: POLL_MS, next: 0, notFound: 0 }
      b.wait = Math.min(MAX_BACKOFF_MS, b.wait * 2)
      b.next = Date.now() + b.wait
      const api = err instanceof ApiError ? err : null
      if (api?.status === 404) b.notFound += 1
      this.#backoff.set(entry.localId, b)
      let giveUp: string | null = null
      if (api?.status === 401 || api?.status === 403) giveUp = `Uploaded. Its progress cannot be shown: ${api.message}`
      if (api?.status === 404 && b.notFound >= MAX_NOT_FOUND) giveUp = 'Uploaded. The server has no progress to show for it.'
      if (giveUp) {
        this.#backoff.delete(entry.localId)
        this.tracker.update(entry.localId, { statusError: giveUp })
        await untrackUpload(entry.localId)
      }
    }
  }
}
