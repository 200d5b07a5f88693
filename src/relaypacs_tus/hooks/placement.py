"""Who and where a photo is filed: the patient and study from the upload token's binding or the
Upload-Metadata keys (contracts.md section 3), the expectations a DICOM file must meet, and the batch
placement (one study, one series, increasing Instance Numbers for uploads sharing a ``batch_id``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio

from ..dicom.secondary_capture import PatientStudy, SeriesPlacement
from ..dicom.validate import Expectations
from ..tus.store import UploadInfo
from .records import Batch, RecordStore, digest


class Rejected(Exception):
    """The upload cannot be accepted; ``reason`` is plain words for the user (no PHI)."""

    def __init__(self, reason: str, *, code: str, status: int = 422) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.status = status


#: Metadata key -> PatientStudy field.
_PATIENT_KEYS = {
    "patient_id": "patient_id",
    "patient_name": "patient_name",
    "patient_birth_date": "birth_date",
    "patient_sex": "sex",
    "accession_number": "accession_number",
    "study_instance_uid": "study_instance_uid",
    "study_description": "study_description",
    "body_part": "body_part",
}


_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+")
_TEXT_LIMIT = 64  # PS3.5 Table 6.2-1: LO and PN component groups hold at most 64 characters


def _check_value(key: str, value: str) -> None:
    """Refuse metadata a DICOM attribute cannot hold (PS3.5 value representations), in plain words."""
    label = key.replace("_", " ")
    if key == "study_instance_uid" and not (len(value) <= 64 and _UID.fullmatch(value)):
        raise Rejected(f"the {label} is not a valid DICOM UID (digits and dots, at most 64)", code="bad_uid")
    if key == "patient_birth_date":
        try:
            dt.datetime.strptime(value, "%Y%m%d")
        except ValueError:
            raise Rejected(f"the {label} must be a date written YYYYMMDD", code="bad_metadata") from None
    if key == "patient_sex" and value not in ("M", "F", "O"):
        raise Rejected(f"the {label} must be M, F or O", code="bad_metadata")
    if len(value) > _TEXT_LIMIT or "\\" in value or any(ord(c) < 32 for c in value):
        raise Rejected(
            f"the {label} is too long or holds characters DICOM cannot store"
            f" (at most {_TEXT_LIMIT}, no backslash)",
            code="bad_metadata",
        )


def binding_of(info: UploadInfo) -> dict[str, Any]:
    binding = info.extra.get("binding")
    return {k: v for k, v in binding.items() if v not in (None, "")} if isinstance(binding, dict) else {}


def expectations(info: UploadInfo) -> Expectations:
    """What a DICOM file must show (wrong-patient guard): the upload token's binding, else what the
    uploader declared in Upload-Metadata."""
    b, meta = binding_of(info), info.metadata

    def declared(key: str) -> str | None:
        value = b.get(key) if key in b else meta.get(key, "").strip()
        return str(value) if value else None

    return Expectations(
        patient_id=declared("patient_id"),
        accession_number=declared("accession_number"),
        study_instance_uid=declared("study_instance_uid"),
    )


def patient_for(info: UploadInfo) -> PatientStudy:
    """The patient and study a photo is filed under. A binding wins; metadata may only repeat it."""
    binding, meta = binding_of(info), info.metadata
    values: dict[str, str] = {}
    for key, name in _PATIENT_KEYS.items():
        bound, sent = binding.get(key), meta.get(key, "").strip()
        if bound is not None and sent and sent != str(bound):
            raise Rejected(
                f"the {key.replace('_', ' ')} sent does not match the patient this upload link is for",
                code="patient_mismatch",
            )
        value = str(bound) if bound is not None else sent
        if value:
            _check_value(key, value)
            values[name] = value
    if not values.get("patient_id"):
        raise Rejected(
            "a photo needs a patient: send the patient_id metadata or use an upload link made for a patient",
            code="missing_patient",
        )
    return PatientStudy(**values)


class BatchBook:
    """Keeps batch documents; one writer per batch at a time in this process."""

    def __init__(self, records: RecordStore, new_uid: Callable[[], str]) -> None:
        self.records = records
        self._new_uid = new_uid
        self._locks: dict[str, anyio.Lock] = {}

    @contextlib.asynccontextmanager
    async def _open(self, owner: str | None, batch_id: str) -> AsyncIterator[Batch]:
        lock = self._locks.setdefault(self.records.batch_key(owner, batch_id), anyio.Lock())
        async with lock:
            batch = await self.records.get_batch(owner, batch_id) or Batch(batch_id=batch_id, owner=owner)
            yield batch
            await self.records.put_batch(batch)

    async def join(self, info: UploadInfo) -> None:
        """Count the upload as a member of its batch (for the batch status), as soon as it is created."""
        batch_id = info.metadata.get("batch_id")
        if not batch_id:
            return
        async with self._open(info.owner, batch_id) as batch:
            if info.id not in batch.members:
                batch.members.append(info.id)

    async def place(self, info: UploadInfo, patient: PatientStudy) -> SeriesPlacement:
        """Study, series and Instance Number for a photo; the same answer every time for one upload."""
        batch_id = info.metadata.get("batch_id")
        if not batch_id:
            study = patient.study_instance_uid or self._new_uid()
            return SeriesPlacement(
                study_instance_uid=study, series_instance_uid=self._new_uid(), instance_number=1
            )
        async with self._open(info.owner, batch_id) as batch:
            self._claim(batch, info, patient)
            if info.id not in batch.placements:
                batch.placements[info.id] = max(batch.placements.values(), default=0) + 1
            study, series = batch.study_instance_uid or "", batch.series_instance_uid or ""
            return SeriesPlacement(study, series, batch.placements[info.id])

    def _claim(self, batch: Batch, info: UploadInfo, patient: PatientStudy) -> None:
        key = digest(patient.patient_id)
        if batch.patient_key not in (None, key):
            raise Rejected(
                "this batch already holds images of another patient", code="batch_patient_mismatch"
            )
        wanted = patient.study_instance_uid
        if wanted and batch.study_instance_uid not in (None, wanted):
            raise Rejected("this batch is already filed in another study", code="batch_study_mismatch")
        batch.patient_key = key
        batch.study_instance_uid = batch.study_instance_uid or wanted or self._new_uid()
        batch.series_instance_uid = batch.series_instance_uid or self._new_uid()
        if info.id not in batch.members:
            batch.members.append(info.id)
