"""wrap_image: photos become Secondary Capture objects that dciodvfy accepts, with the JPEG kept as is."""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageOps
from pydicom.encaps import generate_frames

from relaypacs_tus.dicom.errors import DicomRejected
from relaypacs_tus.dicom.secondary_capture import PatientStudy, SeriesPlacement, new_uid, wrap_image
from relaypacs_tus.dicom.validate import validate_part10

from .factories import jpeg_file, jpegtran, pdf_bytes, picture, png_file

SC = "1.2.840.10008.5.1.4.1.1.7"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
ORG_ROOT = "1.2.826.0.1.3680043.10.1234"
PATIENT = PatientStudy(
    patient_id="PID-7",
    patient_name="Müller^Jürgen",
    birth_date="19700102",
    sex="M",
    accession_number="ACC-1",
    study_description="Wound photos",
    body_part="left arm",
)


def placement(number: int = 1, study: str | None = None, series: str | None = None) -> SeriesPlacement:
    return SeriesPlacement(study or new_uid(ORG_ROOT), series or new_uid(ORG_ROOT), number)


def wrap(src: Path, out: Path, patient: PatientStudy = PATIENT, place: SeriesPlacement | None = None):  # type: ignore[no-untyped-def]
    return wrap_image(src, out, patient=patient, placement=place or placement(), org_root=ORG_ROOT)


def frame(path: Path) -> bytes:
    ds = pydicom.dcmread(path)
    return next(generate_frames(ds.PixelData, number_of_frames=1))


def decoded(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int16)


def dciodvfy_errors(path: Path) -> list[str]:
    out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
    lines = (out.stdout + out.stderr).splitlines()
    assert any(line.strip() == "SCImage" for line in lines), lines
    return [line for line in lines if line.startswith("Error")]


def rejected(src: Path, out: Path, **kw: object) -> DicomRejected:
    with pytest.raises(DicomRejected) as caught:
        wrap(src, out, **kw)  # type: ignore[arg-type]
    assert not out.exists()
    if out.parent.exists():
        assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "temporary files left behind"
    return caught.value


# --- JPEG kept byte for byte ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "photometric", "samples"), [("RGB", "YBR_FULL_422", 3), ("L", "MONOCHROME2", 1)]
)
def test_jpeg_is_encapsulated_unchanged(tmp_path: Path, mode: str, photometric: str, samples: int) -> None:
    src = jpeg_file(tmp_path / "in" / "photo.jpg", mode=mode)
    out = tmp_path / "out" / "photo.dcm"
    place = placement(3)
    info = wrap(src, out, place=place)

    original = src.read_bytes()
    assert frame(out)[: len(original)] == original
    assert len(frame(out)) == len(original) + (len(original) & 1)
    ds = pydicom.dcmread(out)
    assert ds.file_meta.TransferSyntaxUID == JPEG_BASELINE
    assert ds.SOPClassUID == ds.file_meta.MediaStorageSOPClassUID == SC
    assert ds.PhotometricInterpretation == photometric
    assert ds.SamplesPerPixel == samples
    assert (ds.Rows, ds.Columns) == (48, 64)
    assert ds.LossyImageCompression == "01"
    assert ds.StudyInstanceUID == place.study_instance_uid
    assert ds.SeriesInstanceUID == place.series_instance_uid
    assert ds.InstanceNumber == 3
    assert ds.SOPInstanceUID.startswith(ORG_ROOT + ".")
    assert validate_part10(out) == info
    assert ds.pixel_array.shape[:2] == (48, 64)
    assert dciodvfy_errors(out) == []


def test_patient_and_study_attributes(tmp_path: Path) -> None:
    out = tmp_path / "p.dcm"
    wrap(jpeg_file(tmp_path / "p.jpg"), out)
    ds = pydicom.dcmread(out)
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert str(ds.PatientName) == "Müller^Jürgen"
    assert (ds.PatientID, ds.PatientBirthDate, ds.PatientSex) == ("PID-7", "19700102", "M")
    assert (ds.AccessionNumber, ds.StudyDescription) == ("ACC-1", "Wound photos")
    assert (ds.BodyPartExamined, ds.ImageLaterality) == ("ARM", "L")
    assert ds.Modality == "XC"
    assert "Laterality" not in ds


def test_a_batch_shares_study_and_series_with_increasing_numbers(tmp_path: Path) -> None:
    study, series = new_uid(ORG_ROOT), new_uid(ORG_ROOT)
    infos = [
        wrap(jpeg_file(tmp_path / f"{n}.jpg"), tmp_path / f"{n}.dcm", place=placement(n, study, series))
        for n in (1, 2, 3)
    ]
    assert {i.study_instance_uid for i in infos} == {study}
    assert {i.series_instance_uid for i in infos} == {series}
    assert len({i.sop_instance_uid for i in infos}) == 3
    assert [pydicom.dcmread(tmp_path / f"{n}.dcm").InstanceNumber for n in (1, 2, 3)] == [1, 2, 3]


def test_bytes_after_end_of_image_are_not_copied(tmp_path: Path) -> None:
    src = jpeg_file(tmp_path / "motion.jpg")
    image = src.read_bytes()
    src.write_bytes(image + b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))  # a motion photo's video
    out = tmp_path / "m.dcm"
    wrap(src, out)
    assert frame(out)[: len(image)] == image
    assert len(frame(out)) <= len(image) + 1


# --- lossless fixes by jpegtran ---------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(2, 9))
def test_exif_orientation_is_applied_without_loss(tmp_path: Path, orientation: int) -> None:
    src = jpeg_file(tmp_path / "o.jpg", size=(64, 48), orientation=orientation)
    out = tmp_path / "o.dcm"
    wrap(src, out)
    ds = pydicom.dcmread(out)
    with Image.open(src) as im:
        upright = np.asarray(ImageOps.exif_transpose(im).convert("RGB"), dtype=np.int16)
    pixels = decoded(frame(out))
    assert pixels.shape == upright.shape
    assert (ds.Rows, ds.Columns) == upright.shape[:2]
    assert np.abs(pixels - upright).mean() < 2.0  # same picture, same way up
    assert "EXIF orientation" in ds.DerivationDescription
    assert b"Exif" not in frame(out)[:200]  # the stale orientation (and any GPS position) is gone
    assert dciodvfy_errors(out) == []


def test_rotation_of_a_size_that_is_no_mcu_multiple_trims_the_edge(tmp_path: Path) -> None:
    src = jpeg_file(tmp_path / "odd.jpg", size=(70, 50), orientation=6)
    out = tmp_path / "odd.dcm"
    wrap(src, out)
    ds = pydicom.dcmread(out)
    # 90° clockwise: the partial MCU row at the bottom (50 = 3 x 16 + 2) would land on the left edge,
    # where it cannot be moved without loss, so it is dropped: 70 x 50 -> 48 wide, 70 tall.
    assert (ds.Rows, ds.Columns) == (70, 48)
    assert "partial edge blocks trimmed" in ds.DerivationDescription


@pytest.mark.parametrize("variant", ["progressive", "arithmetic"])
def test_non_baseline_jpeg_becomes_baseline_with_identical_pixels(tmp_path: Path, variant: str) -> None:
    baseline = jpeg_file(tmp_path / "b.jpg")
    src = jpegtran(baseline, tmp_path / f"{variant}.jpg", f"-{variant}")
    out = tmp_path / "v.dcm"
    wrap(src, out)
    data = frame(out)
    assert b"\xff\xc0" in data[:600]  # SOF0: baseline
    assert np.array_equal(decoded(data), decoded(baseline.read_bytes()))  # coefficients untouched
    assert "without loss" in pydicom.dcmread(out).DerivationDescription


# --- JPEGs that are refused ---------------------------------------------------------------------------


def test_cmyk_jpeg_is_refused(tmp_path: Path) -> None:
    error = rejected(jpeg_file(tmp_path / "c.jpg", mode="CMYK"), tmp_path / "o" / "c.dcm")
    assert error.code == "unsupported_image"
    assert "CMYK" in error.reason


@pytest.mark.parametrize(
    ("patch", "words"),
    [
        ((0, 12), "12-bit JPEG images are not supported"),
        ((-1, 0xC3), "lossless JPEG images are not supported"),
    ],
)
def test_12_bit_and_lossless_jpegs_are_refused(tmp_path: Path, patch: tuple[int, int], words: str) -> None:
    data = bytearray(jpeg_file(tmp_path / "x.jpg").read_bytes())
    sof = data.index(b"\xff\xc0")
    if patch[0] == 0:
        data[sof + 4] = patch[1]  # sample precision
    else:
        data[sof + 1] = patch[1]  # the frame marker itself
    (tmp_path / "x.jpg").write_bytes(bytes(data))
    error = rejected(tmp_path / "x.jpg", tmp_path / "o" / "x.dcm")
    assert error.code == "unsupported_image"
    assert words in error.reason


def test_damaged_jpegs_are_refused(tmp_path: Path) -> None:
    good = jpeg_file(tmp_path / "g.jpg").read_bytes()
    sos = good.index(b"\xff\xda")
    cases = {
        "garbage after the header": good[: sos + 14] + os.urandom(4000),
        "garbage instead of the header": good[:20] + os.urandom(4000),
        "cut in half": good[: len(good) // 2],
    }
    for name, data in cases.items():
        (tmp_path / "bad.jpg").write_bytes(data)
        error = rejected(tmp_path / "bad.jpg", tmp_path / "o" / "bad.dcm")
        assert error.code == "corrupt_image", name
        assert error.reason.startswith("the JPEG file is damaged"), name


def test_other_inputs_are_refused(tmp_path: Path) -> None:
    for name, data, code in (("empty", b"", "empty"), ("doc.pdf", pdf_bytes(), "unsupported_format")):
        (tmp_path / name).write_bytes(data)
        assert rejected(tmp_path / name, tmp_path / "o" / f"{name}.dcm").code == code
    shutil.copy(jpeg_file(tmp_path / "j.jpg"), tmp_path / "j2.jpg")
    wrap(tmp_path / "j2.jpg", tmp_path / "o" / "already.dcm")
    assert rejected(tmp_path / "o" / "already.dcm", tmp_path / "o2" / "x.dcm").code == "unsupported_format"


# --- PNG, lossless --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "photometric", "bits"),
    [("RGB", "RGB", 8), ("L", "MONOCHROME2", 8), ("I;16", "MONOCHROME2", 16), ("P", "RGB", 8)],
)
def test_png_samples_are_kept_exactly(tmp_path: Path, mode: str, photometric: str, bits: int) -> None:
    if mode == "I;16":
        image = Image.fromarray(np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 13)
    elif mode == "P":
        image = picture().convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    else:
        image = picture(mode=mode)
    src = png_file(tmp_path / "i.png", image)
    out = tmp_path / "i.dcm"
    info = wrap(src, out)
    ds = pydicom.dcmread(out)
    assert info.transfer_syntax_uid == ds.file_meta.TransferSyntaxUID == EXPLICIT_LE
    assert (ds.PhotometricInterpretation, ds.BitsStored, ds.LossyImageCompression) == (
        photometric,
        bits,
        "00",
    )
    expected = np.asarray(image.convert("RGB") if mode == "P" else image)
    assert np.array_equal(ds.pixel_array, expected)
    assert dciodvfy_errors(out) == []


def test_png_transparency_is_composited_over_black(tmp_path: Path) -> None:
    image = Image.new("RGBA", (8, 8), (200, 100, 50, 0))
    image.putpixel((0, 0), (200, 100, 50, 255))
    out = tmp_path / "a.dcm"
    wrap(png_file(tmp_path / "a.png", image), out)
    ds = pydicom.dcmread(out)
    assert tuple(ds.pixel_array[0, 0]) == (200, 100, 50)
    assert tuple(ds.pixel_array[1, 1]) == (0, 0, 0)
    assert "transparency" in ds.DerivationDescription


def _png_rgb16(path: Path) -> Path:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\x00" + b"\x12\x34" * 3 * 4 for _ in range(4))
    ihdr = struct.pack(">IIBBBBB", 4, 4, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    return path


def test_16_bit_colour_and_damaged_pngs_are_refused(tmp_path: Path) -> None:
    error = rejected(_png_rgb16(tmp_path / "deep.png"), tmp_path / "o" / "deep.dcm")
    assert (error.code, error.reason) == (
        "unsupported_image",
        "16-bit colour PNG images are not supported; save as 8-bit",
    )
    good = png_file(tmp_path / "g.png", picture()).read_bytes()
    (tmp_path / "cut.png").write_bytes(good[: len(good) // 2])
    assert rejected(tmp_path / "cut.png", tmp_path / "o" / "cut.dcm").code == "corrupt_image"


# --- patient data and UIDs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"patient_id": " "}, "a patient ID is required"),
        ({"patient_id": "x" * 65}, "the patient ID is longer than 64 characters"),
        ({"accession_number": "A" * 17}, "the accession number is longer than 16 characters"),
        ({"birth_date": "19701302"}, "the birth date must be a real date"),
        ({"sex": "X"}, "the patient sex must be M, F or O"),
        ({"patient_name": "Doe\\John"}, "the patient name contains a backslash"),
        ({"body_part": "upper left arm and shoulder"}, "the body part must be at most 16"),
    ],
)
def test_unusable_patient_data_is_refused_naming_the_field(
    tmp_path: Path, change: dict[str, str], words: str
) -> None:
    patient = PatientStudy(**{**PATIENT.__dict__, **change})
    error = rejected(jpeg_file(tmp_path / "p.jpg"), tmp_path / "o" / "p.dcm", patient=patient)
    assert error.code == "invalid_patient_data"
    assert error.reason.startswith(words)
    for value in change.values():
        assert value.strip() == "" or value not in error.reason


def test_declared_study_must_match_the_placement(tmp_path: Path) -> None:
    patient = PatientStudy(**{**PATIENT.__dict__, "study_instance_uid": new_uid(None)})
    error = rejected(jpeg_file(tmp_path / "p.jpg"), tmp_path / "o" / "p.dcm", patient=patient)
    assert error.code == "study_mismatch"


def test_new_uid() -> None:
    uids = {new_uid(ORG_ROOT) for _ in range(200)}
    assert len(uids) == 200
    assert all(u.startswith(ORG_ROOT + ".") and len(u) <= 64 for u in uids)
    assert new_uid(None).startswith("2.25.")
    with pytest.raises(ValueError, match="org root"):
        new_uid("1.2.abc")


def test_wrapping_a_large_jpeg_holds_little_memory(tmp_path: Path) -> None:
    noise = np.random.default_rng(1).integers(0, 255, (1800, 2400, 3), dtype=np.uint8)
    src = tmp_path / "big.jpg"
    Image.fromarray(noise).save(src, quality=95)
    assert src.stat().st_size > 4_000_000
    tracemalloc.start()
    info = wrap(src, tmp_path / "big.dcm")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert info.size > src.stat().st_size
    assert peak < 3_000_000, peak


def test_a_damaged_exif_block_is_ignored_and_the_photo_kept_as_is(tmp_path: Path) -> None:
    src = jpeg_file(tmp_path / "e.jpg", orientation=6)
    data = bytearray(src.read_bytes())
    tiff = data.index(b"Exif\0\0") + 6
    data[tiff : tiff + 24] = b"\xa5" * 24  # no valid TIFF header any more
    src.write_bytes(bytes(data))
    out = tmp_path / "e.dcm"
    wrap(src, out)
    assert frame(out)[: len(data)] == bytes(data)
