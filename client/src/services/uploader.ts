// The upload manager: one Uppy instance with the tus uploader (chunked, resumable, retried with backoff)
// and Golden Retriever (files survive a reload or a closed tab in IndexedDB). It feeds the Tracker, and
// removes a file from Uppy (and so from IndexedDB) as soon as the server has all of it.
import Uppy, { type UppyFile } from '@uppy/core'
import GoldenRetriever from '@uppy/golden-retriever'
import Tus, { type TusBody } from '@uppy/tus'
import { trackUpload } from '../db/queries'
import { METADATA_KEYS, type UploadMetadata } from '../utils/metadata'
import type { Tracker } from './tracker'

export type FileMeta = UploadMetadata & { name: string; type: string; relativePath?: string | null }
export type RelayUppy = Uppy<FileMeta, TusBody>
export type RelayFile = UppyFile<FileMeta, TusBody>

export const UPPY_ID = 'relaypacs'
/** 5 MiB: a dropped connection costs at most one chunk, and proxies with body limits are happy. */
export const CHUNK_SIZE = 5 * 1024 * 1024
/** Backoff between retries of one request (tus-js-client); while offline it waits for 'online' instead. */
export const RETRY_DELAYS = [0, 1000, 3000, 5000, 10_000, 20_000, 30_000, 60_000]
export const RESTORE_TTL_MS = 24 * 60 * 60 * 1000
const KEEP_MAX_FILE = 4 * 1024 ** 3
const KEEP_MAX_TOTAL = 16 * 1024 ** 3

/** Photos the pipeline can turn into DICOM; other image formats are refused before upload. */
const PHOTO_TYPES = new Set(['image/jpeg', 'image/png'])
/** Files a folder of DICOM often carries that are not images of the patient. */
const SKIP_NAMES = /^(DICOMDIR|Thumbs\.db|desktop\.ini|\..*)$/i

export interface UploaderOptions {
  endpoint: string
  token: () => string | null
  tracker: Tracker
}

function reasonFromResponse(xhr: XMLHttpRequest | undefined): string {
  const text = (xhr?.responseText ?? '').trim()
  if (!text) return ''
  try {
    const body = JSON.parse(text) as { message?: unknown }
    if (body.message) return String(body.message)
  } catch {
    // plain text, as tus error bodies are
  }
  // Our tus errors read "<code>: <message>"; the message is the part meant for people.
  const line = text.split('\n')[0] ?? ''
  return line.replace(/^[a-z_]+:\s+/, '').slice(0, 300)
}

/** Whether a failed request's status means the server refused the file for good. */
function isRefusal(status: number): boolean {
  return status >= 400 && status < 500 && ![408, 409, 423, 429].includes(status)
}

function uploadIdFrom(url: string | undefined): string | null {
  if (!url) return null
  const path = new URL(url, window.location.href).pathname.replace(/\/+$/, '')
  return path.slice(path.lastIndexOf('/') + 1) || null
}

export function createUploader({ endpoint, token, tracker }: UploaderOptions): RelayUppy {
  const uppy: RelayUppy = new Uppy<FileMeta, TusBody>({
    id: UPPY_ID, // Golden Retriever keys its IndexedDB records by this id
    autoProceed: false,
    allowMultipleUploadBatches: true,
    onBeforeFileAdded: (file) => {
      const name = file.name ?? ''
      if (SKIP_NAMES.test(name)) return false // quietly: a folder's index or system file
      if (file.type?.startsWith('image/') && !PHOTO_TYPES.has(file.type)) {
        uppy.info(`${name} was not added: photos must be JPEG or PNG (this one is ${file.type}).`, 'error', 8000)
        return false
      }
      return { ...file, meta: { ...file.meta, filename: name, filetype: file.type || 'application/octet-stream' } }
    },
  })
  uppy.use(Tus, {
    endpoint,
    chunkSize: CHUNK_SIZE,
    retryDelays: RETRY_DELAYS,
    limit: 3,
    headers: (): Record<string, string> => {
      const t = token()
      return t ? { Authorization: `Bearer ${t}` } : {}
    },
    allowedMetaFields: ['filename', 'filetype'], // and per file, what prepareFile() set
    // tus-js-client would keep tus::<fingerprint> keys with the metadata (PHI) in localStorage. Golden
    // Retriever already keeps each file's upload URL, which is all a resume needs.
    storeFingerprintForResuming: false,
    removeFingerprintOnSuccess: true,
    onShouldRetry(err, _attempt, _options, next) {
      const status = err?.originalResponse?.getStatus() ?? 0
      if (isRefusal(status)) return false // a bad token or a refused file: retrying cannot help
      return next(err)
    },
  })
  uppy.use(GoldenRetriever, {
    expires: RESTORE_TTL_MS,
    // Golden Retriever keeps no blob over 10 MiB by default, and a restored file without its blob
    // cannot resume. DICOM files are often bigger; the browser's storage quota is the real limit.
    indexedDB: { maxFileSize: KEEP_MAX_FILE, maxTotalSize: KEEP_MAX_TOTAL } as { name?: string },
  })
  wire(uppy, tracker)
  return uppy
}

function entryBase(file: RelayFile) {
  return {
    name: file.name ?? 'file',
    size: file.size ?? 0,
    filetype: file.meta.filetype ?? file.type ?? '',
    batchId: file.meta.batch_id ?? '',
  }
}

function wire(uppy: RelayUppy, tracker: Tracker): void {
  uppy.on('upload', (_id, files) => {
    for (const file of files) {
      tracker.upsert(file.id, { ...entryBase(file), phase: file.isPaused ? 'paused' : 'uploading', error: null })
    }
  })
  uppy.on('restored', () => {
    let unfinished = 0
    for (const file of uppy.getFiles()) {
      if (file.progress.uploadStarted && !file.progress.uploadComplete) {
        const bytes = typeof file.progress.bytesUploaded === 'number' ? file.progress.bytesUploaded : 0
        tracker.upsert(file.id, { ...entryBase(file), phase: 'uploading', bytesUploaded: bytes, restored: true })
        unfinished += 1
      }
    }
    // Uploads that were running when the page went away continue by themselves (from the server's
    // offset: tus asks with HEAD first). Files picked but never sent wait for the Upload button.
    if (unfinished > 0) window.setTimeout(() => uppy.emit('restore-confirmed'), 0)
  })
  uppy.on('upload-progress', (file, progress) => {
    if (!file) return
    const bytes = typeof progress.bytesUploaded === 'number' ? progress.bytesUploaded : 0
    tracker.upsert(file.id, { ...entryBase(file), bytesUploaded: bytes, phase: file.isPaused ? 'paused' : 'uploading' })
  })
  uppy.on('upload-pause', (file, isPaused) => {
    if (file) tracker.update(file.id, { phase: isPaused ? 'paused' : 'uploading' })
  })
  uppy.on('pause-all', () => uppy.getFiles().forEach((f) => tracker.update(f.id, { phase: 'paused' })))
  uppy.on('resume-all', () => uppy.getFiles().forEach((f) => tracker.update(f.id, { phase: 'uploading' })))
  uppy.on('upload-retry', (file) => {
    if (file) tracker.update(file.id, { phase: 'uploading', error: null })
  })
  uppy.on('retry-all', (files) => files.forEach((f) => tracker.update(f.id, { phase: 'uploading', error: null })))
  uppy.on('upload-error', (file, error, response) => {
    if (!file) return
    const xhr = (response?.body as { xhr?: XMLHttpRequest } | undefined)?.xhr
    const status = response?.status ?? 0
    const reason = reasonFromResponse(xhr)
    if (file.isGhost || file.data == null) {
      const why = 'This file was not kept on this device while the page was closed. Discard it and add it again.'
      tracker.upsert(file.id, { ...entryBase(file), phase: 'upload-error', error: why })
    } else if (status === 401 || status === 403) {
      tracker.upsert(file.id, { ...entryBase(file), phase: 'refused', error: reason || 'The upload token was refused.' })
    } else if (isRefusal(status)) {
      tracker.upsert(file.id, { ...entryBase(file), phase: 'refused', error: reason || `The server refused the file (${status}).` })
    } else {
      const why = status ? `The server answered ${status}${reason ? `: ${reason}` : ''}.` : 'The network connection was lost.'
      tracker.upsert(file.id, { ...entryBase(file), phase: 'upload-error', error: `${why} Press Retry to continue.` })
      // For support: tus-js-client's message names the request and the response code (no metadata).
      console.warn('upload stopped:', error?.message)
    }
  })
  uppy.on('upload-success', (file, response) => {
    if (!file) return
    const uploadId = uploadIdFrom(response.uploadURL)
    const base = entryBase(file)
    tracker.upsert(file.id, { ...base, phase: 'uploaded', bytesUploaded: base.size, uploadId, error: null })
    if (uploadId) {
      void trackUpload({ localId: file.id, uploadId, ...base, createdAt: Date.now() })
    }
    // Not synchronously: the tus plugin still listens for this file's removal until this event returns,
    // and would answer it by terminating (DELETE) the finished upload on the server.
    window.setTimeout(() => {
      if (uppy.getFile(file.id)) uppy.removeFile(file.id)
    }, 0)
  })
  uppy.on('file-removed', (file) => {
    const entry = tracker.get(file.id)
    if (entry && entry.phase !== 'uploaded') tracker.remove(file.id) // discarded by the user
  })
  uppy.on('cancel-all', () => {
    for (const entry of tracker.all()) if (entry.phase !== 'uploaded') tracker.remove(entry.localId)
  })
}

/**
 * Give a file its Upload-Metadata. Only keys with a value are sent: Uppy would send a listed key that
 * a file lacks as the string "undefined". Kept per file (file.tus), so a restored upload sends the same.
 */
export function prepareFile(uppy: RelayUppy, file: RelayFile, meta: UploadMetadata): void {
  uppy.setFileMeta(file.id, { ...file.meta, ...meta })
  const keys = METADATA_KEYS.filter((k) => (k in meta && meta[k]) || k === 'filename' || k === 'filetype')
  uppy.setFileState(file.id, { tus: { ...file.tus, allowedMetaFields: [...keys] } })
}

/** Files picked or uploading (the Dashboard's list), and whether an upload is under way. */
export function uploadActivity(uppy: RelayUppy): { files: number; started: number; active: number } {
  const files = uppy.getFiles()
  const started = files.filter((f) => f.progress.uploadStarted)
  const active = started.filter((f) => !f.progress.uploadComplete && !f.error)
  return { files: files.length, started: started.length, active: active.length }
}
