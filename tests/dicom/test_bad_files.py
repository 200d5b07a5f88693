"""The bad uploads a relay sees, taken the way a pre-finish hook takes them (classify, then validate or
wrap), each refused with its own plain reason."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from relaypacs_tus.dicom.classify import HEAD_SIZE, Kind, classify, rejection_for
from relaypacs_tus.dicom.errors import DicomRejected
from relaypacs_tus.dicom.secondary_capture import PatientStudy, SeriesPlacement, new_uid, wrap_image
from relaypacs_tus.dicom.validate import validate_part10

from .factories import dicom_file, jpeg_file, pdf_bytes


def take(upload: Path, out_dir: Path) -> None:
    """What the pipeline does with a finished upload (raises DicomRejected when it refuses it)."""
    with open(upload, "rb") as fp:
        kind = classify(fp.read(HEAD_SIZE))
    if kind is Kind.DICOM:
        validate_part10(upload)
    elif kind in (Kind.JPEG, Kind.PNG):
        place = SeriesPlacement(new_uid(None), new_uid(None), 1)
        wrap_image(
            upload, out_dir / "sc.dcm", patient=PatientStudy(patient_id="P"), placement=place, org_root=None
        )
    else:
        raise rejection_for(upload.read_bytes()[:HEAD_SIZE])


def truncated_dicom(tmp: Path) -> Path:
    whole = dicom_file(tmp / "whole.dcm").read_bytes()
    (tmp / "truncated.dcm").write_bytes(whole[: len(whole) * 2 // 3])
    return tmp / "truncated.dcm"


def jpeg_with_garbage(tmp: Path) -> Path:
    good = jpeg_file(tmp / "good.jpg").read_bytes()
    sos = good.index(b"\xff\xda")
    (tmp / "garbage.jpg").write_bytes(good[: sos + 14] + os.urandom(8000))
    return tmp / "garbage.jpg"


def write(tmp: Path, name: str, data: bytes) -> Path:
    (tmp / name).write_bytes(data)
    return tmp / name


CASES = {
    "truncated DICOM": (
        truncated_dicom,
        "truncated",
        "the DICOM file is incomplete (it ends inside a data element)",
    ),
    "DICOM without SOP Instance UID": (
        lambda t: dicom_file(t / "nosop.dcm", SOPInstanceUID=None),
        "missing_sop_instance_uid",
        "the DICOM data set has no SOP Instance UID",
    ),
    "JPEG with garbage after the header": (jpeg_with_garbage, "corrupt_image", "the JPEG file is damaged"),
    "PDF": (
        lambda t: write(t, "report.dcm", pdf_bytes()),
        "unsupported_format",
        "the file is a PDF document; only DICOM, JPEG and PNG files are accepted",
    ),
    "zero bytes": (lambda t: write(t, "empty.jpg", b""), "empty", "the file is empty"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_upload_is_refused_with_its_reason(tmp_path: Path, case: str) -> None:
    make, code, reason = CASES[case]
    upload = make(tmp_path)
    with pytest.raises(DicomRejected) as caught:
        take(upload, tmp_path)
    assert caught.value.code == code
    assert caught.value.reason.startswith(reason)
    assert not (tmp_path / "sc.dcm").exists()
