import { useId, useState, type FormEvent } from 'react'
import { USED_UP_MESSAGE, type TokenControl } from '../app/useToken'
import { formatTime } from '../utils/format'

function Remaining({ n }: { n: number | null }) {
  if (n === null) return null
  return <>{n === 1 ? ' · 1 upload left' : ` · ${n} uploads left`}</>
}

/** Shows which upload link is in use, or lets staff paste one when the server needs it. */
export function TokenPanel({ token }: { token: TokenControl }) {
  const [text, setText] = useState('')
  const [busy, setBusy] = useState(false)
  const inputId = useId()
  const { state } = token

  const submit = async (e: FormEvent) => {
    e.preventDefault()
    setBusy(true)
    const next = await token.use(text)
    setBusy(false)
    if (next.kind === 'active' || next.kind === 'open') setText('')
  }

  if (state.kind === 'checking') {
    return (
      <section className="token token--checking" aria-live="polite" data-token-state="checking">
        Checking the upload link…
      </section>
    )
  }
  if (state.kind === 'open') {
    return null
  }
  if (state.kind === 'active') {
    const info = state.info
    return (
      <section className="token token--active" aria-label="Upload link" data-token-state="active">
        <p>
          <strong>{info?.binding ? 'Upload link for one patient' : 'Upload token in use'}</strong>
          {info ? (
            <span className="token__meta">
              {' '}
              · valid until {formatTime(info.expires_at)}
              <Remaining n={info.remaining_uploads} />
            </span>
          ) : null}
        </p>
        <button type="button" className="button button--quiet" onClick={token.forget}>
          Forget this link
        </button>
      </section>
    )
  }
  const message =
    state.kind === 'invalid'
      ? state.message
      : state.kind === 'used'
        ? USED_UP_MESSAGE
        : state.kind === 'unknown'
        ? 'The server cannot be reached to check the upload link. Uploads start when the network is back.'
        : 'This server needs an upload token. Open the upload link or scan its QR code, or paste the token here.'
  const showForm = state.kind !== 'unknown' || !state.hasToken
  return (
    <section className={`token token--${state.kind}`} aria-label="Upload link" data-token-state={state.kind}>
      <p role={state.kind === 'invalid' || state.kind === 'used' ? 'alert' : undefined} className="token__message" data-testid="token-message">
        {message}
      </p>
      {showForm ? (
        <form className="token__form" onSubmit={submit}>
          <label htmlFor={inputId}>Upload token or link</label>
          <div className="token__row">
            <input
              id={inputId}
              type="password"
              autoComplete="off"
              spellCheck={false}
              value={text}
              onChange={(e) => setText(e.target.value)}
            />
            <button type="submit" className="button" disabled={busy || !text.trim()}>
              Use
            </button>
          </div>
        </form>
      ) : null}
    </section>
  )
}
