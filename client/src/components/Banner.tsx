import type { ReactNode } from 'react'

export function Banner({ tone, children, testId }: { tone: 'info' | 'warn' | 'bad'; children: ReactNode; testId?: string }) {
  return (
    <div className={`banner banner--${tone}`} role={tone === 'bad' ? 'alert' : 'status'} data-testid={testId}>
      {children}
    </div>
  )
}
