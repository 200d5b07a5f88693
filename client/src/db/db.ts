// IndexedDB through Dexie: what must survive a reload or an offline spell, and nothing longer.
// - form: the patient/study form while files are waiting or uploading (one row, id 'current').
// - uploads: files the server has received whose pipeline result (delivered / rejected) is not known yet.
// Uppy's Golden Retriever keeps the file blobs themselves (database 'uppy-blobs').
// Every row holds PHI: purge() removes it as soon as the work it served is finished or discarded.
import Dexie, { type Table } from 'dexie'
import type { FormValues } from '../utils/metadata'

export interface FormRecord {
  id: 'current'
  values: FormValues
  updatedAt: number
}

export interface TrackedUpload {
  /** Uppy's file id. */
  localId: string
  /** The tus upload id (last path segment of its URL). */
  uploadId: string
  name: string
  size: number
  filetype: string
  batchId: string
  createdAt: number
}

export class RelayDb extends Dexie {
  form!: Table<FormRecord, string>
  uploads!: Table<TrackedUpload, string>

  constructor() {
    super('relaypacs')
    this.version(1).stores({ form: 'id', uploads: 'localId, uploadId, createdAt' })
  }
}

export const db = new RelayDb()

/** How long a record may wait for its owner to come back (same as Golden Retriever's expiry). */
export const RECORD_TTL_MS = 24 * 60 * 60 * 1000
