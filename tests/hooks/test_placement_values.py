"""Metadata a DICOM attribute cannot hold is refused with a plain reason (never a 500)."""

from __future__ import annotations

import pytest

from relaypacs_tus.hooks.placement import Rejected, patient_for
from relaypacs_tus.tus.store import UploadInfo


def _info(**meta: str) -> UploadInfo:
    return UploadInfo(id="a" * 32, size=1, metadata={"patient_id": "PX-1", **meta})


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("study_instance_uid", "undefined", "not a valid DICOM UID"),
        ("study_instance_uid", "1.2." + "3" * 70, "not a valid DICOM UID"),
        ("patient_birth_date", "1999-02-03", "YYYYMMDD"),
        ("patient_birth_date", "19990231", "YYYYMMDD"),
        ("patient_sex", "male", "M, F or O"),
        ("patient_id", "A\\B", "no backslash"),
        ("study_description", "x" * 65, "at most 64"),
    ],
)
def test_bad_metadata_is_rejected_with_a_reason(key: str, value: str, words: str) -> None:
    with pytest.raises(Rejected) as caught:
        patient_for(_info(**{key: value}))
    assert words in caught.value.reason
    assert value not in caught.value.reason  # the reason never echoes what may be PHI
    assert caught.value.status == 422


def test_good_metadata_passes() -> None:
    info = _info(
        patient_name="Doe^J", patient_birth_date="19800102", patient_sex="F", study_instance_uid="1.2"
    )
    patient = patient_for(info)
    assert patient.study_instance_uid == "1.2"
    assert patient.sex == "F"
