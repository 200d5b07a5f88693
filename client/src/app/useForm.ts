// The patient/study form: restored from IndexedDB after a reload, saved on every change while it
// matters, locked where an upload link fixes the values, erased once its files are sent or discarded.
import { useCallback, useEffect, useMemo, useRef, useState } from 'react'
import { clearForm, loadForm, saveForm } from '../db/queries'
import { EMPTY_FORM, fromBinding, type Binding, type FieldName, type FormValues } from '../utils/metadata'

export interface FormControl {
  values: FormValues
  locked: ReadonlySet<FieldName>
  restored: boolean
  setField: (field: FieldName, value: string) => void
  /** Back to an empty form (the link's values stay), and nothing of it left in IndexedDB. */
  reset: () => Promise<void>
}

export function useForm(binding: Binding | null): FormControl {
  const bound = useMemo(() => fromBinding(binding ?? {}), [binding])
  const [values, setValues] = useState<FormValues>({ ...EMPTY_FORM, ...bound.values })
  const [restored, setRestored] = useState(false)
  const loaded = useRef(false)

  useEffect(() => {
    let cancelled = false
    void loadForm().then((saved) => {
      if (cancelled) return
      loaded.current = true
      if (saved) {
        setValues((v) => ({ ...v, ...saved, ...bound.values }))
        setRestored(true)
      }
    })
    return () => {
      cancelled = true
    }
    // Load once; the binding is merged by the effect below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [])

  useEffect(() => {
    if (binding) setValues((v) => ({ ...v, ...bound.values }))
  }, [binding, bound])

  const setField = useCallback(
    (field: FieldName, value: string) => {
      if (bound.locked.has(field)) return
      setValues((v) => {
        const next = { ...v, [field]: value }
        if (loaded.current) void saveForm(next)
        return next
      })
    },
    [bound],
  )

  const reset = useCallback(async () => {
    setValues({ ...EMPTY_FORM, ...bound.values })
    setRestored(false)
    await clearForm()
  }, [bound])

  return { values, locked: bound.locked, restored, setField, reset }
}
