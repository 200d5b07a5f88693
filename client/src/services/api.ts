// The server's JSON APIs the app reads: runtime config, upload-token info (contracts.md section 5) and
// the pipeline status of an upload (section 4). Every call has a timeout; failures are ApiError with a
// message a nurse can read.
import type { Binding } from '../utils/metadata'

export const REQUEST_TIMEOUT_MS = 15_000

export class ApiError extends Error {
  /** HTTP status, or 0 when the server could not be reached. */
  readonly status: number
  readonly code: string

  constructor(message: string, status: number, code = '') {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.code = code
  }

  get unreachable(): boolean {
    return this.status === 0
  }
}

export interface AppConfig {
  tusEndpoint: string
  /** Whether uploads need a bearer token; null when the server could not be asked (offline). */
  authRequired: boolean | null
}

export interface TokenInfo {
  token_id: string
  expires_at: string
  remaining_uploads: number | null
  max_bytes_per_upload: number | null
  binding: Binding | null
}

export type PipelineState =
  | 'receiving'
  | 'received'
  | 'validating'
  | 'wrapping'
  | 'delivering'
  | 'delivered'
  | 'rejected'
  | 'failed'

export interface DestinationStatus {
  name: string
  state: 'pending' | 'delivering' | 'delivered' | 'retrying' | 'failed'
  attempts: number
  next_attempt_at: string | null
  error: string | null
  transient: boolean | null
}

export interface UploadStatus {
  upload_id: string
  state: PipelineState
  offset: number
  size: number | null
  kind: 'dicom' | 'jpeg' | 'png' | 'other' | null
  destinations: DestinationStatus[]
  reason: string | null
  sop_instance_uid: string | null
  updated_at: string
}

export const TERMINAL_STATES: ReadonlySet<PipelineState> = new Set(['delivered', 'rejected', 'failed'])

function bearer(token: string | null): Record<string, string> {
  return token ? { Authorization: `Bearer ${token}` } : {}
}

async function request(path: string, token: string | null, timeoutMs = REQUEST_TIMEOUT_MS): Promise<Response> {
  try {
    return await fetch(path, {
      headers: { Accept: 'application/json', ...bearer(token) },
      cache: 'no-store',
      credentials: 'omit',
      signal: AbortSignal.timeout(timeoutMs),
    })
  } catch {
    throw new ApiError('The server cannot be reached. Check the network connection.', 0)
  }
}

/** The message the server gave (JSON {message} per contracts.md section 5, or plain text). */
export async function readError(response: Response, fallback: string): Promise<ApiError> {
  let message = ''
  let code = ''
  const text = await response.text().catch(() => '')
  try {
    const body = JSON.parse(text) as { message?: unknown; error?: unknown; reason?: unknown }
    message = String(body.message ?? body.reason ?? '')
    code = String(body.error ?? '')
  } catch {
    message = text.trim().split('\n')[0] ?? ''
  }
  return new ApiError(message.slice(0, 300) || fallback, response.status, code)
}

export async function fetchConfig(): Promise<AppConfig> {
  const response = await request('/app-config.json', null, 4000)
  if (!response.ok) throw await readError(response, 'The app configuration could not be loaded.')
  const body = (await response.json()) as { tus_endpoint?: string; auth_required?: boolean }
  return { tusEndpoint: body.tus_endpoint || '/files/', authRequired: body.auth_required ?? null }
}

/** What the upload token allows and which patient/study it is bound to. */
export async function fetchTokenInfo(token: string): Promise<TokenInfo> {
  const response = await request('/auth/upload-tokens/current', token)
  if (response.status === 404) {
    throw new ApiError('This server does not issue upload links.', 404, 'not_supported')
  }
  if (!response.ok) throw await readError(response, 'This upload link is not valid.')
  return (await response.json()) as TokenInfo
}

/**
 * Whether this server wants a bearer token: asks for the status of an upload that cannot exist.
 * 401 means a token is needed; 404 means the request was accepted without one.
 */
export async function probeTokenRequired(): Promise<boolean> {
  const response = await request(`/uploads/${'0'.repeat(32)}/status`, null)
  return response.status === 401
}

export async function fetchUploadStatus(uploadId: string, token: string | null): Promise<UploadStatus> {
  const response = await request(`/uploads/${encodeURIComponent(uploadId)}/status`, token)
  if (!response.ok) throw await readError(response, `The upload's status is not available (${response.status}).`)
  return (await response.json()) as UploadStatus
}
