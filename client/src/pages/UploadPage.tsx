import Dashboard from '@uppy/react/dashboard'
import { useUppyState } from '@uppy/react'
import { useEffect, useMemo, useRef, useState } from 'react'
import { useServices } from '../app/services'
import { prepareFile } from '../services/uploader'
import { uploadBlocker, type TokenControl } from '../app/useToken'
import type { FormControl } from '../app/useForm'
import { Banner } from '../components/Banner'
import { PatientForm } from '../components/PatientForm'
import { TokenPanel } from '../components/TokenPanel'
import { newId } from '../utils/format'
import { toUploadMetadata, validate, type FieldName } from '../utils/metadata'

const FIELD_LABELS: Record<FieldName, string> = {
  patientId: 'Patient ID',
  familyName: 'Family name',
  givenName: 'Given name(s)',
  birthDate: 'Date of birth',
  sex: 'Sex',
  accessionNumber: 'Accession number',
  studyDescription: 'Study description',
  bodyPart: 'Body part',
  studyInstanceUid: 'Study',
}

function useNarrow(): boolean {
  const query = '(max-width: 600px)'
  const [narrow, setNarrow] = useState(() => window.matchMedia(query).matches)
  useEffect(() => {
    const mq = window.matchMedia(query)
    const on = () => setNarrow(mq.matches)
    mq.addEventListener('change', on)
    return () => mq.removeEventListener('change', on)
  }, [])
  return narrow
}

export interface UploadPageProps {
  form: FormControl
  token: TokenControl
  onStarted: () => void
  onDiscard: () => void
}

export function UploadPage({ form, token, onStarted, onDiscard }: UploadPageProps) {
  const { uppy } = useServices()
  const files = useUppyState(uppy, (s) => s.files)
  const [submitted, setSubmitted] = useState(false)
  const [problem, setProblem] = useState<string | null>(null)
  const summaryRef = useRef<HTMLDivElement>(null)
  const narrow = useNarrow()

  const list = useMemo(() => Object.values(files), [files])
  const waiting = list.filter((f) => !f.progress.uploadStarted)
  const active = list.filter((f) => f.progress.uploadStarted && !f.progress.uploadComplete && !f.error)
  const errors = submitted ? validate(form.values) : {}
  const errorFields = Object.keys(errors) as FieldName[]
  const blocker = uploadBlocker(token.state)

  useEffect(() => {
    if (problem && waiting.length > 0 && problem.startsWith('Add')) setProblem(null)
  }, [problem, waiting.length])

  const start = () => {
    if (blocker) {
      setProblem(blocker) // no form to check while no upload is possible at all
      return
    }
    setSubmitted(true)
    const found = validate(form.values)
    if (Object.keys(found).length > 0) {
      setProblem(null)
      window.setTimeout(() => summaryRef.current?.focus(), 0)
      return
    }
    if (waiting.length === 0) {
      setProblem('Add at least one file or photo first.')
      return
    }
    setProblem(null)
    const meta = toUploadMetadata(form.values, newId())
    for (const file of waiting) prepareFile(uppy, file, meta)
    if (uppy.getState().recoveredState) uppy.emit('restore-confirmed')
    else void uppy.upload().catch(() => undefined) // failures arrive as upload-error events
    onStarted()
  }

  const count = waiting.length
  return (
    <section className="page" aria-labelledby="upload-title">
      <h1 id="upload-title" tabIndex={-1}>
        Send images
      </h1>
      <TokenPanel token={token} />
      {form.restored && list.length > 0 ? (
        <Banner tone="info" testId="restored-banner">
          Your files and the patient details were kept from before the page closed.
        </Banner>
      ) : null}
      {errorFields.length > 0 ? (
        <div className="error-summary" role="alert" tabIndex={-1} ref={summaryRef} data-testid="error-summary">
          <h2>Check the patient details</h2>
          <ul>
            {errorFields.map((f) => (
              <li key={f}>
                <a
                  href={`#${f}`}
                  onClick={(e) => {
                    e.preventDefault()
                    document.getElementById(f)?.focus()
                  }}
                >
                  {FIELD_LABELS[f]}: {errors[f]}
                </a>
              </li>
            ))}
          </ul>
        </div>
      ) : null}
      <PatientForm
        values={form.values}
        errors={errors}
        locked={form.locked}
        frozen={active.length > 0}
        onChange={form.setField}
      />
      <div className="files" aria-label="Files to send">
        <h2 className="files__title">Files and photos</h2>
        <Dashboard
          uppy={uppy}
          width="100%"
          height={narrow ? 300 : 340}
          hideUploadButton
          showNativePhotoCameraButton
          nativeCameraFacingMode="environment"
          fileManagerSelectionType="both"
          proudlyDisplayPoweredByUppy={false}
          note="DICOM files or folders, and JPEG or PNG photos"
          theme="light"
        />
      </div>
      {problem ? (
        <p className="form-problem" role="alert" data-testid="upload-problem">
          {problem}
        </p>
      ) : null}
      <div className="actions">
        <button type="button" className="button button--primary" onClick={start} data-testid="start-upload">
          {count > 1 ? `Upload ${count} files` : count === 1 ? 'Upload 1 file' : 'Upload'}
        </button>
        {list.length > 0 ? (
          <button type="button" className="button button--quiet" onClick={onDiscard} data-testid="discard">
            Discard files and details
          </button>
        ) : null}
      </div>
    </section>
  )
}
