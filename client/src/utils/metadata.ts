// The patient/study form: its values, the rules they must meet before anything is sent, and their
// translation into tus Upload-Metadata keys (contracts.md section 3). DICOM value representations
// (PS3.5 section 6.2) set the length limits: LO 64 chars, SH 16, CS 16, PN 64 per component group.

export interface FormValues {
  patientId: string
  familyName: string
  givenName: string
  /** YYYY-MM-DD, as an <input type="date"> gives it. */
  birthDate: string
  /** '', 'M', 'F' or 'O' (DICOM Patient's Sex). */
  sex: string
  accessionNumber: string
  studyDescription: string
  bodyPart: string
  /** Only ever set from an upload link's binding; not shown as a field. */
  studyInstanceUid: string
}

export type FieldName = keyof FormValues
export type FormErrors = Partial<Record<FieldName, string>>

export const EMPTY_FORM: FormValues = {
  patientId: '',
  familyName: '',
  givenName: '',
  birthDate: '',
  sex: '',
  accessionNumber: '',
  studyDescription: '',
  bodyPart: '',
  studyInstanceUid: '',
}

/** Upload-Metadata keys sent with every file (contracts.md section 3). */
export const METADATA_KEYS = [
  'filename',
  'filetype',
  'patient_id',
  'patient_name',
  'patient_birth_date',
  'patient_sex',
  'accession_number',
  'study_instance_uid',
  'study_description',
  'body_part',
  'batch_id',
] as const

export type MetadataKey = (typeof METADATA_KEYS)[number]
export type UploadMetadata = Partial<Record<MetadataKey, string>>

/** What an upload token may bind (GET /auth/upload-tokens/current, contracts.md section 5). */
export interface Binding {
  patient_id?: string | null
  patient_name?: string | null
  patient_birth_date?: string | null
  patient_sex?: string | null
  accession_number?: string | null
  study_instance_uid?: string | null
  study_description?: string | null
  body_part?: string | null
}

// Backslash separates DICOM multi-values; control characters are not allowed in these VRs.
// eslint-disable-next-line no-control-regex
const FORBIDDEN = /[\\\u0000-\u001f\u007f]/
// eslint-disable-next-line no-control-regex
const FORBIDDEN_IN_NAME = /[\\^=\u0000-\u001f\u007f]/
const BODY_PART = /^[A-Z0-9 _]*$/
const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/

function checkText(value: string, max: number, label: string, pattern = FORBIDDEN): string | undefined {
  if (value.length > max) return `${label} can be at most ${max} characters.`
  if (pattern.test(value)) return `${label} cannot contain a backslash or control characters.`
  return undefined
}

function checkBirthDate(value: string, today: Date): string | undefined {
  if (!value) return 'Enter the date of birth.'
  const m = ISO_DATE.exec(value)
  if (!m) return 'Enter the date of birth as a full date.'
  const date = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])))
  if (date.getUTCDate() !== Number(m[3])) return 'This date does not exist.'
  if (Number(m[1]) < 1900) return 'The date of birth must be after 1900.'
  const todayUtc = Date.UTC(today.getFullYear(), today.getMonth(), today.getDate())
  if (date.getTime() > todayUtc) return 'The date of birth cannot be in the future.'
  return undefined
}

/** Every problem with the form, in words a user can act on; an empty object means it may be sent. */
export function validate(values: FormValues, today: Date = new Date()): FormErrors {
  const errors: FormErrors = {}
  const v = trimAll(values)
  errors.patientId = v.patientId ? checkText(v.patientId, 64, 'Patient ID') : 'Enter the patient ID.'
  errors.familyName = v.familyName
    ? checkText(v.familyName, 60, 'Family name', FORBIDDEN_IN_NAME)
    : 'Enter the family name.'
  errors.givenName = checkText(v.givenName, 60, 'Given name', FORBIDDEN_IN_NAME)
  if (!errors.familyName && !errors.givenName && joinName(v.familyName, v.givenName).length > 64) {
    errors.givenName = 'Family and given name together can be at most 63 characters.'
  }
  errors.birthDate = checkBirthDate(v.birthDate, today)
  errors.sex = ['', 'M', 'F', 'O'].includes(v.sex) ? undefined : 'Choose female, male, other or not known.'
  errors.accessionNumber = checkText(v.accessionNumber, 16, 'Accession number')
  errors.studyDescription = checkText(v.studyDescription, 64, 'Study description')
  errors.bodyPart = checkText(v.bodyPart, 16, 'Body part')
  if (!errors.bodyPart && !BODY_PART.test(v.bodyPart)) {
    errors.bodyPart = 'Body part can use only letters A–Z, digits, spaces and underscores.'
  }
  for (const key of Object.keys(errors) as FieldName[]) if (!errors[key]) delete errors[key]
  return errors
}

export function trimAll(values: FormValues): FormValues {
  const out = { ...values }
  for (const key of Object.keys(out) as FieldName[]) out[key] = out[key].trim()
  out.bodyPart = out.bodyPart.toUpperCase()
  return out
}

/** DICOM PN: "Family^Given". */
export function joinName(family: string, given: string): string {
  return given ? `${family}^${given}` : family
}

export function splitName(pn: string): { familyName: string; givenName: string } {
  const [familyName = '', givenName = ''] = pn.split('^')
  return { familyName, givenName }
}

/** YYYY-MM-DD <-> YYYYMMDD (DICOM DA). */
export function toDicomDate(iso: string): string {
  return iso.replaceAll('-', '')
}

export function fromDicomDate(da: string): string {
  return /^\d{8}$/.test(da) ? `${da.slice(0, 4)}-${da.slice(4, 6)}-${da.slice(6, 8)}` : ''
}

/** The patient/study part of Upload-Metadata; empty optional values are left out. */
export function toUploadMetadata(values: FormValues, batchId: string): UploadMetadata {
  const v = trimAll(values)
  const meta: UploadMetadata = {
    patient_id: v.patientId,
    patient_name: joinName(v.familyName, v.givenName),
    patient_birth_date: toDicomDate(v.birthDate),
    patient_sex: v.sex,
    accession_number: v.accessionNumber,
    study_instance_uid: v.studyInstanceUid,
    study_description: v.studyDescription,
    body_part: v.bodyPart,
    batch_id: batchId,
  }
  for (const key of Object.keys(meta) as MetadataKey[]) if (!meta[key]) delete meta[key]
  return meta
}

/** Form values fixed by an upload link, and which fields they lock. */
export function fromBinding(binding: Binding): { values: Partial<FormValues>; locked: Set<FieldName> } {
  const values: Partial<FormValues> = {}
  const locked = new Set<FieldName>()
  const set = (field: FieldName, value: string | null | undefined) => {
    if (value) {
      values[field] = value
      locked.add(field)
    }
  }
  if (binding.patient_name) {
    const { familyName, givenName } = splitName(binding.patient_name)
    set('familyName', familyName)
    values.givenName = givenName
    locked.add('givenName')
  }
  set('patientId', binding.patient_id)
  set('birthDate', binding.patient_birth_date ? fromDicomDate(binding.patient_birth_date) : '')
  set('sex', binding.patient_sex)
  set('accessionNumber', binding.accession_number)
  set('studyInstanceUid', binding.study_instance_uid)
  set('studyDescription', binding.study_description)
  set('bodyPart', binding.body_part)
  return { values, locked }
}
