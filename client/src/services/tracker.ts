// What the Progress page shows: one entry per file, from "uploading 40 %" to "delivered to orthanc".
// Uppy knows a file until the server has all of it; after that the entry lives here (in memory) and in
// Dexie's uploads table while the pipeline works, so a reload still shows it. A tiny external store for
// React's useSyncExternalStore.
import type { UploadStatus } from './api'

export type Phase =
  | 'queued' // picked, upload not started
  | 'uploading'
  | 'paused'
  | 'upload-error' // network or server trouble; can be retried
  | 'refused' // the server refused the file (4xx with a reason); retrying will not help
  | 'uploaded' // the server has every byte; the pipeline takes over (see `status`)

export interface Entry {
  localId: string
  name: string
  size: number
  filetype: string
  batchId: string
  phase: Phase
  bytesUploaded: number
  /** Why the upload stopped (plain words), for upload-error and refused. */
  error: string | null
  /** The tus upload id, once known. */
  uploadId: string | null
  /** The latest pipeline status (GET /uploads/{id}/status). */
  status: UploadStatus | null
  /** Why the status could not be read, if it could not. */
  statusError: string | null
  restored: boolean
}

type Listener = () => void

export class Tracker {
  #entries = new Map<string, Entry>()
  #snapshot: Entry[] = []
  #listeners = new Set<Listener>()

  subscribe = (listener: Listener): (() => void) => {
    this.#listeners.add(listener)
    return () => this.#listeners.delete(listener)
  }

  getSnapshot = (): Entry[] => this.#snapshot

  get(localId: string): Entry | undefined {
    return this.#entries.get(localId)
  }

  all(): Entry[] {
    return this.#snapshot
  }

  upsert(localId: string, patch: Partial<Entry> & Pick<Entry, 'name' | 'size'>): void {
    const prev = this.#entries.get(localId)
    const base: Entry = prev ?? {
      localId,
      name: patch.name,
      size: patch.size,
      filetype: '',
      batchId: '',
      phase: 'queued',
      bytesUploaded: 0,
      error: null,
      uploadId: null,
      status: null,
      statusError: null,
      restored: false,
    }
    this.#entries.set(localId, { ...base, ...patch })
    this.#emit()
  }

  update(localId: string, patch: Partial<Entry>): void {
    const prev = this.#entries.get(localId)
    if (!prev) return
    this.#entries.set(localId, { ...prev, ...patch })
    this.#emit()
  }

  remove(localId: string): void {
    if (this.#entries.delete(localId)) this.#emit()
  }

  clear(): void {
    this.#entries.clear()
    this.#emit()
  }

  #emit(): void {
    this.#snapshot = [...this.#entries.values()]
    for (const listener of this.#listeners) listener()
  }
}
