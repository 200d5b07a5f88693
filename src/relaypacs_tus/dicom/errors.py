"""The dicom layer's error catalogue.

Every error carries a stable ``code`` (for programs, metrics and tests) and a ``reason`` in plain words
that is safe to show a user: it names what is wrong, never a value from the file (no patient names, ids,
dates or UIDs), so it may go into logs, status bodies and 4xx responses as it is.
"""

from __future__ import annotations


class DicomError(Exception):
    """A DICOM operation failed. ``code`` is stable; ``reason`` is plain words without PHI."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, reason={self.reason!r})"


class DicomRejected(DicomError):
    """The input itself is unusable (not DICOM, truncated, inconsistent, wrong patient, ...).

    Retrying cannot help: the upload is rejected with ``reason``.
    """


# Stable codes (documented here so callers can switch on them without importing magic strings).
EMPTY = "empty"  # zero bytes
NOT_DICOM = "not_dicom"  # no 128-byte preamble + "DICM"
UNSUPPORTED_FORMAT = "unsupported_format"  # neither DICOM, JPEG nor PNG (PDF, text, ...)
TRUNCATED = "truncated"  # the file ends inside an element
MALFORMED = "malformed"  # pydicom cannot parse the data set
MISSING_FILE_META = "missing_file_meta"  # file meta group incomplete
UNKNOWN_TRANSFER_SYNTAX = "unknown_transfer_syntax"
MISSING_SOP_CLASS_UID = "missing_sop_class_uid"
MISSING_SOP_INSTANCE_UID = "missing_sop_instance_uid"
MISSING_STUDY_INSTANCE_UID = "missing_study_instance_uid"
MISSING_SERIES_INSTANCE_UID = "missing_series_instance_uid"
INVALID_UID = "invalid_uid"
SOP_CLASS_MISMATCH = "sop_class_mismatch"  # data set vs MediaStorageSOPClassUID
SOP_INSTANCE_MISMATCH = "sop_instance_mismatch"  # data set vs MediaStorageSOPInstanceUID
SOP_CLASS_NOT_ALLOWED = "sop_class_not_allowed"
PATIENT_MISMATCH = "patient_mismatch"
ACCESSION_MISMATCH = "accession_mismatch"
STUDY_MISMATCH = "study_mismatch"
UNSUPPORTED_IMAGE = "unsupported_image"  # a JPEG/PNG we cannot wrap without loss (CMYK, 12-bit, ...)
CORRUPT_IMAGE = "corrupt_image"  # a JPEG/PNG whose structure is broken
INVALID_PATIENT_DATA = "invalid_patient_data"  # a PatientStudy value does not fit its DICOM VR
TOOL_MISSING = "tool_missing"  # a required helper program (jpegtran) is not installed
