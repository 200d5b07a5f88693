import type { InputHTMLAttributes, ReactNode } from 'react'
import type { FieldName, FormErrors, FormValues } from '../utils/metadata'

const BODY_PARTS = ['HEAD', 'NECK', 'CHEST', 'ABDOMEN', 'PELVIS', 'ARM', 'HAND', 'LEG', 'KNEE', 'FOOT', 'SKIN', 'SPINE']

interface FieldProps {
  id: FieldName
  label: string
  hint?: string
  required?: boolean
  error?: string
  locked: boolean
  wide?: boolean
  children: (props: {
    id: string
    name: string
    'aria-invalid': boolean
    'aria-describedby': string | undefined
    'aria-required': boolean
  }) => ReactNode
}

function Field({ id, label, hint, required, error, locked, wide, children }: FieldProps) {
  const described = [hint ? `${id}-hint` : '', error ? `${id}-error` : '']
    .filter(Boolean)
    .join(' ')
  return (
    <div className={`field${wide ? ' field--wide' : ''}${error ? ' field--error' : ''}${locked ? ' field--locked' : ''}`}>
      <label htmlFor={id}>
        {label}
        {required ? <span className="required"> (required)</span> : null}
      </label>
      {children({
        id,
        name: id,
        'aria-invalid': Boolean(error),
        'aria-describedby': described || undefined,
        'aria-required': Boolean(required),
      })}
      {hint ? (
        <p className="field__hint" id={`${id}-hint`}>
          {hint}
        </p>
      ) : null}
      {error ? (
        <p className="field__error" id={`${id}-error`}>
          {error}
        </p>
      ) : null}
    </div>
  )
}

export interface PatientFormProps {
  values: FormValues
  errors: FormErrors
  locked: ReadonlySet<FieldName>
  /** Everything read-only: an upload for this patient is under way. */
  frozen: boolean
  onChange: (field: FieldName, value: string) => void
}

function LockIcon() {
  return (
    <svg className="lock-icon" viewBox="0 0 16 16" width="14" height="14" aria-hidden="true" focusable="false">
      <path d="M4 7V5a4 4 0 1 1 8 0v2h1v8H3V7h1Zm2 0h4V5a2 2 0 1 0-4 0v2Z" fill="currentColor" />
    </svg>
  )
}

const SEX_WORDS: Record<string, string> = { F: 'Female', M: 'Male', O: 'Other' }

function formatDate(iso: string): string {
  const d = new Date(`${iso}T00:00:00`)
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleDateString(undefined, { day: 'numeric', month: 'long', year: 'numeric' })
}

/** What an upload link fixed, shown as text: the nurse checks the patient, nothing to type. */
function LockedSummary({ values, locked }: { values: FormValues; locked: ReadonlySet<FieldName> }) {
  const rows: [string, string][] = []
  const add = (field: FieldName, label: string, text: string) => {
    if (locked.has(field) && text) rows.push([label, text])
  }
  const name = [values.familyName.toUpperCase(), values.givenName].filter(Boolean).join(', ')
  if (locked.has('familyName')) rows.push(['Patient', name])
  add('patientId', 'Patient ID', values.patientId)
  add('birthDate', 'Born', values.birthDate ? formatDate(values.birthDate) : '')
  add('sex', 'Sex', SEX_WORDS[values.sex] ?? '')
  add('accessionNumber', 'Accession', values.accessionNumber)
  add('studyDescription', 'Study', values.studyDescription)
  add('bodyPart', 'Body part', values.bodyPart)
  return (
    <div className="locked-summary" data-testid="locked-summary">
      <p className="locked-summary__note">
        <LockIcon /> Set by the upload link. Check that this is your patient.
      </p>
      <dl>
        {rows.map(([label, text]) => (
          <div key={label} className="locked-summary__row">
            <dt>{label}</dt>
            <dd>{text}</dd>
          </div>
        ))}
      </dl>
    </div>
  )
}

export function PatientForm({ values, errors, locked, frozen, onChange }: PatientFormProps) {
  const ro = (f: FieldName) => frozen || locked.has(f)
  const show = (f: FieldName) => !locked.has(f)
  const text = (f: FieldName, extra: InputHTMLAttributes<HTMLInputElement> = {}) => ({
    value: values[f],
    readOnly: ro(f),
    onChange: (e: { target: { value: string } }) => onChange(f, e.target.value),
    ...extra,
  })
  return (
    <fieldset className="patient-form" aria-describedby={frozen ? 'form-frozen' : undefined}>
      <legend>Patient and study</legend>
      {frozen ? (
        <p className="note" id="form-frozen">
          An upload for this patient is under way. Files you add now go to the same patient.
        </p>
      ) : null}
      {locked.size > 0 ? <LockedSummary values={values} locked={locked} /> : null}
      <div className="patient-form__grid">
        {show('patientId') ? (
          <Field id="patientId" label="Patient ID" required error={errors.patientId} locked={locked.has('patientId')}>
            {(p) => <input {...p} {...text('patientId', { autoComplete: 'off', inputMode: 'text', maxLength: 64 })} />}
          </Field>
        ) : null}
        {show('birthDate') ? (
          <Field id="birthDate" label="Date of birth" required error={errors.birthDate} locked={locked.has('birthDate')}>
            {(p) => <input {...p} type="date" min="1900-01-01" {...text('birthDate')} />}
          </Field>
        ) : null}
        {show('familyName') ? (
          <Field id="familyName" label="Family name" required error={errors.familyName} locked={locked.has('familyName')}>
            {(p) => <input {...p} {...text('familyName', { autoComplete: 'off', maxLength: 60 })} />}
          </Field>
        ) : null}
        {show('givenName') ? (
          <Field id="givenName" label="Given name(s)" error={errors.givenName} locked={locked.has('givenName')}>
            {(p) => <input {...p} {...text('givenName', { autoComplete: 'off', maxLength: 60 })} />}
          </Field>
        ) : null}
        {show('sex') ? (
          <Field id="sex" label="Sex" error={errors.sex} locked={locked.has('sex')}>
            {(p) => (
              <select {...p} value={values.sex} disabled={ro('sex')} onChange={(e) => onChange('sex', e.target.value)}>
                <option value="">Not known</option>
                <option value="F">Female</option>
                <option value="M">Male</option>
                <option value="O">Other</option>
              </select>
            )}
          </Field>
        ) : null}
        {show('accessionNumber') ? (
          <Field
            id="accessionNumber"
            label="Accession number"
            hint="From the order, if there is one"
            error={errors.accessionNumber}
            locked={locked.has('accessionNumber')}
          >
            {(p) => <input {...p} {...text('accessionNumber', { autoComplete: 'off', maxLength: 16 })} />}
          </Field>
        ) : null}
        {show('studyDescription') ? (
          <Field
            id="studyDescription"
            label="Study description"
            hint="For example: Wound check, left heel"
            error={errors.studyDescription}
            locked={locked.has('studyDescription')}
            wide
          >
            {(p) => <input {...p} {...text('studyDescription', { autoComplete: 'off', maxLength: 64 })} />}
          </Field>
        ) : null}
        {show('bodyPart') ? (
          <Field id="bodyPart" label="Body part" error={errors.bodyPart} locked={locked.has('bodyPart')}>
            {(p) => (
              <>
                <input
                  {...p}
                  {...text('bodyPart', { autoComplete: 'off', maxLength: 16, list: 'body-parts' })}
                  onChange={(e) => onChange('bodyPart', e.target.value.toUpperCase())}
                />
                <datalist id="body-parts">
                  {BODY_PARTS.map((b) => (
                    <option key={b} value={b} />
                  ))}
                </datalist>
              </>
            )}
          </Field>
        ) : null}
      </div>
    </fieldset>
  )
}
