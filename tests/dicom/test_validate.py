"""validate_part10: the checks a pre-finish hook runs, on real files, with plain PHI-free reasons."""

from __future__ import annotations

import hashlib
import tracemalloc
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from relaypacs_tus.dicom.errors import DicomRejected
from relaypacs_tus.dicom.validate import Expectations, validate_part10

from .factories import bundled, dicom_file, jpeg_file

CT = "1.2.840.10008.5.1.4.1.1.2"
SC = "1.2.840.10008.5.1.4.1.1.7"


def rejected(path: Path, **kwargs: object) -> DicomRejected:
    with pytest.raises(DicomRejected) as caught:
        validate_part10(path, **kwargs)  # type: ignore[arg-type]
    return caught.value


@pytest.mark.parametrize(
    "source",
    ["CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "JPEG2000.dcm", "MR_small_RLE.dcm",
     "SC_rgb_jpeg_dcmtk.dcm", "image_dfl.dcm", "waveform_ecg.dcm", "test-SR.dcm"],
)  # fmt: skip
def test_valid_files_are_described(tmp_path: Path, source: str) -> None:
    path = dicom_file(tmp_path / "x.dcm", source)
    ds = pydicom.dcmread(path)
    info = validate_part10(path)
    assert info.sop_instance_uid == ds.SOPInstanceUID
    assert info.sop_class_uid == ds.SOPClassUID
    assert info.study_instance_uid == ds.StudyInstanceUID
    assert info.series_instance_uid == ds.SeriesInstanceUID
    assert info.transfer_syntax_uid == ds.file_meta.TransferSyntaxUID
    assert info.size == path.stat().st_size
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_truncated_files_are_refused(tmp_path: Path) -> None:
    for name in ("MR_truncated.dcm", "rtplan_truncated.dcm"):
        assert rejected(bundled(name)).code == "truncated"
    whole = dicom_file(tmp_path / "ct.dcm").read_bytes()
    for cut in (len(whole) - 1, len(whole) // 2, 600, 200):
        part = tmp_path / f"cut{cut}.dcm"
        part.write_bytes(whole[:cut])
        error = rejected(part)
        assert error.code == "truncated", cut
        assert error.reason == "the DICOM file is incomplete (it ends inside a data element)"


def test_truncated_encapsulated_pixel_data_is_refused(tmp_path: Path) -> None:
    whole = dicom_file(tmp_path / "j.dcm", "SC_rgb_jpeg_dcmtk.dcm").read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(whole[:-9])  # drops the sequence delimiter and the end of the last fragment
    assert rejected(cut).code == "truncated"


@pytest.mark.parametrize(
    ("attributes", "code", "words"),
    [
        ({"SOPInstanceUID": None}, "missing_sop_instance_uid", "SOP Instance UID"),
        ({"SOPClassUID": None}, "missing_sop_class_uid", "SOP Class UID"),
        ({"StudyInstanceUID": None}, "missing_study_instance_uid", "Study Instance UID"),
        ({"SeriesInstanceUID": None}, "missing_series_instance_uid", "Series Instance UID"),
    ],
)
def test_required_uids(tmp_path: Path, attributes: dict[str, object], code: str, words: str) -> None:
    error = rejected(dicom_file(tmp_path / "x.dcm", **attributes))
    assert error.code == code
    assert error.reason == f"the DICOM data set has no {words}"


def test_sop_class_must_match_file_meta(tmp_path: Path) -> None:
    path = dicom_file(tmp_path / "x.dcm")
    ds = pydicom.dcmread(path)
    ds.file_meta.MediaStorageSOPClassUID = SC
    ds.save_as(path)
    error = rejected(path)
    assert error.code == "sop_class_mismatch"
    assert error.reason == "the SOP Class UID in the data set differs from the one in the file header"


def test_malformed_uid(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="Invalid value for VR UI"):
        path = dicom_file(tmp_path / "x.dcm", SOPInstanceUID="1.2.3.04x")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pydicom warns again when it reads the value
        error = rejected(path)
    assert error.code == "invalid_uid"
    assert error.reason == "the SOP Instance UID is not a valid DICOM UID"


def test_instance_uid_must_match_file_meta(tmp_path: Path) -> None:
    path = dicom_file(tmp_path / "x.dcm")
    ds = pydicom.dcmread(path)
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(path)
    assert rejected(path).code == "sop_instance_mismatch"


def test_file_meta_and_transfer_syntax(tmp_path: Path) -> None:
    assert rejected(bundled("meta_missing_tsyntax.dcm")).code == "missing_file_meta"
    path = dicom_file(tmp_path / "x.dcm")
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = "1.2.3.4.5.6.7"  # a private, unknown transfer syntax
    ds.save_as(path, enforce_file_format=False, implicit_vr=False, little_endian=True)
    error = rejected(path)
    assert error.code == "unknown_transfer_syntax"


def test_sop_class_allow_list(tmp_path: Path) -> None:
    path = dicom_file(tmp_path / "ct.dcm")
    assert validate_part10(path, allowed_sop_classes=frozenset({CT, SC})).sop_class_uid == CT
    error = rejected(path, allowed_sop_classes=frozenset({SC}))
    assert error.code == "sop_class_not_allowed"
    assert error.reason == "CT Image Storage objects are not accepted by this relay"


def test_wrong_patient_guard_names_the_field_never_the_values(tmp_path: Path) -> None:
    path = dicom_file(tmp_path / "x.dcm", PatientID="PAT-0042", AccessionNumber="ACC77")
    study = pydicom.dcmread(path).StudyInstanceUID
    ok = Expectations(patient_id="PAT-0042", accession_number="ACC77", study_instance_uid=study)
    assert validate_part10(path, expect=ok).study_instance_uid == study
    for expect, code, field in (
        (Expectations(patient_id="PAT-0043"), "patient_mismatch", "patient ID"),
        (Expectations(accession_number="ACC78"), "accession_mismatch", "accession number"),
        (Expectations(study_instance_uid=generate_uid()), "study_mismatch", "Study Instance UID"),
    ):
        error = rejected(path, expect=expect)
        assert error.code == code
        assert error.reason == f"the {field} does not match the one given for this upload"
        assert "PAT-00" not in error.reason
        assert "ACC7" not in error.reason


def test_not_dicom_inputs(tmp_path: Path) -> None:
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    assert rejected(empty).code == "empty"
    jpeg = jpeg_file(tmp_path / "photo.dcm")
    assert rejected(jpeg).code == "unsupported_format"
    no_preamble = bundled("ExplVR_LitEndNoMeta.dcm")
    assert rejected(no_preamble).code == "not_dicom"


def test_pixel_data_is_never_loaded(tmp_path: Path) -> None:
    """A 40 MB image validates with far less memory than its pixel data."""
    import numpy as np

    ds = pydicom.dcmread(dicom_file(tmp_path / "small.dcm"))
    ds.Rows, ds.Columns = 4000, 5000
    ds.PixelData = np.zeros((4000, 5000), dtype=np.uint16).tobytes()
    big = tmp_path / "big.dcm"
    ds.save_as(big, enforce_file_format=True)
    del ds
    tracemalloc.start()
    info = validate_part10(big)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert info.size > 40_000_000
    assert peak < 4_000_000, peak
