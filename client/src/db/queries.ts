import { db, RECORD_TTL_MS, type TrackedUpload } from './db'
import type { FormValues } from '../utils/metadata'

export async function loadForm(): Promise<FormValues | null> {
  const row = await db.form.get('current')
  if (!row) return null
  if (Date.now() - row.updatedAt > RECORD_TTL_MS) {
    await db.form.clear()
    return null
  }
  return row.values
}

export async function saveForm(values: FormValues): Promise<void> {
  await db.form.put({ id: 'current', values, updatedAt: Date.now() })
}

export async function clearForm(): Promise<void> {
  await db.form.clear()
}

export async function trackUpload(row: TrackedUpload): Promise<void> {
  await db.uploads.put(row)
}

export async function untrackUpload(localId: string): Promise<void> {
  await db.uploads.delete(localId)
}

/** Uploads still waiting for a pipeline result; rows past their time are dropped, not shown. */
export async function loadTrackedUploads(): Promise<TrackedUpload[]> {
  const cutoff = Date.now() - RECORD_TTL_MS
  await db.uploads.where('createdAt').below(cutoff).delete()
  return db.uploads.orderBy('createdAt').toArray()
}

export async function clearAll(): Promise<void> {
  await db.transaction('rw', db.form, db.uploads, async () => {
    await db.form.clear()
    await db.uploads.clear()
  })
}
