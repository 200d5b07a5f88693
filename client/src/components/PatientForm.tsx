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
  const described = [hint ? `${id}-hint` : '', error ? `${id}-error` : '', locked ? `${id}-locked` : '']
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
      {locked ? (
        <p className="field__locked" id={`${id}-locked`}>
          Set by the upload link
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

export function PatientForm({ values, errors, locked, frozen, onChange }: PatientFormProps) {
  const ro = (f: FieldName) => frozen || locked.has(f)
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
      <div className="patient-form__grid">
        <Field id="patientId" label="Patient ID" required error={errors.patientId} locked={locked.has('patientId')}>
          {(p) => <input {...p} {...text('patientId', { autoComplete: 'off', inputMode: 'text', maxLength: 64 })} />}
        </Field>
        <Field id="birthDate" label="Date of birth" required error={errors.birthDate} locked={locked.has('birthDate')}>
          {(p) => <input {...p} type="date" min="1900-01-01" {...text('birthDate')} />}
        </Field>
        <Field id="familyName" label="Family name" required error={errors.familyName} locked={locked.has('familyName')}>
          {(p) => <input {...p} {...text('familyName', { autoComplete: 'off', maxLength: 60 })} />}
        </Field>
        <Field id="givenName" label="Given name(s)" error={errors.givenName} locked={locked.has('givenName')}>
          {(p) => <input {...p} {...text('givenName', { autoComplete: 'off', maxLength: 60 })} />}
        </Field>
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
        <Field
          id="accessionNumber"
          label="Accession number"
          hint="From the order, if there is one"
          error={errors.accessionNumber}
          locked={locked.has('accessionNumber')}
        >
          {(p) => <input {...p} {...text('accessionNumber', { autoComplete: 'off', maxLength: 16 })} />}
        </Field>
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
      </div>
    </fieldset>
  )
}
