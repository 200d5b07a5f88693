// Which token the app sends, what it allows (GET /auth/upload-tokens/current) and whether the server
// needs one at all. An upload link (`/#token=...`) fills it in; otherwise staff paste one.
import { useCallback, useEffect, useState } from 'react'
import { ApiError, fetchTokenInfo, probeTokenRequired, type TokenInfo } from '../services/api'
import { clearToken, getToken, parseTokenInput, setToken, takeTokenFromLocation } from '../services/token'

export type TokenState =
  | { kind: 'checking' }
  /** The server takes uploads without a token. */
  | { kind: 'open' }
  /** The server needs a token and none was given. */
  | { kind: 'needed' }
  /** A token is in use; `info` is null when the server cannot describe it (not an upload token). */
  | { kind: 'active'; info: TokenInfo | null }
  /** The token was refused: no uploads with it. */
  | { kind: 'invalid'; message: string }
  /** The token is valid but has no uploads left; kept so the status of its uploads can still be read. */
  | { kind: 'used' }
  /** The server could not be asked (offline); uploads will be tried and explain themselves. */
  | { kind: 'unknown'; hasToken: boolean }

export const USED_UP_MESSAGE = 'This upload link has already been used. Ask for a new link to send more.'

async function check(token: string | null, authRequired: boolean | null): Promise<TokenState> {
  try {
    if (!token) {
      const required = authRequired ?? (await probeTokenRequired())
      return required ? { kind: 'needed' } : { kind: 'open' }
    }
    const info = await fetchTokenInfo(token)
    if (info.remaining_uploads !== null && info.remaining_uploads <= 0) {
      return { kind: 'used' }
    }
    return { kind: 'active', info }
  } catch (err) {
    if (err instanceof ApiError && err.unreachable) return { kind: 'unknown', hasToken: token !== null }
    if (err instanceof ApiError && (err.status === 401 || (err.status === 403 && err.code === 'invalid_token'))) {
      return { kind: 'invalid', message: err.message }
    }
    // A bearer the server accepts for uploads but cannot describe (a staff JWT, or no token API).
    return { kind: 'active', info: null }
  }
}

export interface TokenControl {
  state: TokenState
  /** Use a pasted token or upload link; resolves to the new state. */
  use: (text: string) => Promise<TokenState>
  forget: () => void
  refresh: () => Promise<void>
}

export function useToken(keepWhileRefused: () => boolean, authRequired: boolean | null): TokenControl {
  const [state, setState] = useState<TokenState>({ kind: 'checking' })

  const refresh = useCallback(async () => {
    const next = await check(getToken(), authRequired)
    // A refused token is dropped, unless files restored after a reload still need it to finish.
    if (next.kind === 'invalid' && !keepWhileRefused()) clearToken()
    setState(next)
  }, [keepWhileRefused, authRequired])

  useEffect(() => {
    takeTokenFromLocation()
    void refresh()
    const onOnline = () => {
      setState((s) => {
        if (s.kind === 'unknown') void refresh()
        return s
      })
    }
    window.addEventListener('online', onOnline)
    return () => window.removeEventListener('online', onOnline)
  }, [refresh])

  const use = useCallback(async (text: string) => {
    const token = parseTokenInput(text)
    if (!token) {
      const next: TokenState = { kind: 'invalid', message: 'Paste the upload token or the whole upload link.' }
      setState(next)
      return next
    }
    setToken(token)
    setState({ kind: 'checking' })
    const next = await check(token, authRequired)
    if (next.kind === 'invalid') clearToken()
    setState(next)
    return next
  }, [authRequired])

  const forget = useCallback(() => {
    clearToken()
    setState({ kind: 'checking' })
    void refresh()
  }, [refresh])

  return { state, use, forget, refresh }
}

/** Whether new uploads may start with this token state, and if not, why. */
export function uploadBlocker(state: TokenState): string | null {
  switch (state.kind) {
    case 'needed':
      return 'This server needs an upload token. Open the upload link or scan its QR code, or paste the token above.'
    case 'invalid':
      return state.message
    case 'used':
      return USED_UP_MESSAGE
    default:
      return null
  }
}
