// The bearer token for tus and status requests. It lives in sessionStorage (this tab only, gone when
// the tab closes) so a reload can resume an upload. An upload link carries it in the URL fragment
// (`/#token=<token>`), which browsers never send to a server; we move it out of the address bar at once.
const KEY = 'relaypacs.token'

export function takeTokenFromLocation(): string | null {
  const params = new URLSearchParams(window.location.hash.replace(/^#/, ''))
  const token = params.get('token')?.trim()
  if (!token) return null
  params.delete('token')
  const rest = params.toString()
  const url = window.location.pathname + window.location.search + (rest ? `#${rest}` : '')
  window.history.replaceState(window.history.state, '', url)
  setToken(token)
  return token
}

export function getToken(): string | null {
  try {
    return sessionStorage.getItem(KEY)
  } catch {
    return null
  }
}

export function setToken(token: string): void {
  sessionStorage.setItem(KEY, token.trim())
}

export function clearToken(): void {
  sessionStorage.removeItem(KEY)
}

/** Accepts a bare token or a whole upload link pasted into the token field. */
export function parseTokenInput(text: string): string {
  const t = text.trim()
  const at = t.indexOf('#token=')
  if (at >= 0) return new URLSearchParams(t.slice(at + 1)).get('token')?.trim() ?? ''
  return t.replace(/^Bearer\s+/i, '')
}
