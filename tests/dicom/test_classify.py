"""Uploads are classified by their bytes, never by their names; what is refused says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from relaypacs_tus.dicom.classify import HEAD_SIZE, Kind, classify, rejection_for

from .factories import bundled, dicom_file, jpeg_file, pdf_bytes, picture, png_file


def head(path: Path) -> bytes:
    return path.read_bytes()[:HEAD_SIZE]


def test_kinds_follow_content_not_file_names(tmp_path: Path) -> None:
    dicom = dicom_file(tmp_path / "photo.jpg")
    jpeg = jpeg_file(tmp_path / "scan.dcm")
    png = png_file(tmp_path / "image.jpeg", picture())
    assert classify(head(dicom)) is Kind.DICOM
    assert classify(head(jpeg)) is Kind.JPEG
    assert classify(head(png)) is Kind.PNG


@pytest.mark.parametrize(
    ("content", "code", "words"),
    [
        (b"", "empty", "empty"),
        (pdf_bytes(), "unsupported_format", "PDF"),
        (b"hello, this is plain text" * 10, "unsupported_format", "not a DICOM, JPEG or PNG"),
        (b"\0\0\0\x18ftypheic\0\0\0\0" + bytes(200), "unsupported_format", "HEIC/HEIF photo; only DICOM"),
        (b"\0\0\0\x18ftypisom\0\0\0\0" + bytes(200), "unsupported_format", "a video (MP4/MOV)"),
        (b"GIF89a" + bytes(200), "unsupported_format", "a GIF image"),
        (b"II*\0" + bytes(200), "unsupported_format", "a TIFF image"),
        (b"RIFF\0\0\0\0WEBPVP8 " + bytes(200), "unsupported_format", "a WebP image"),
    ],
)
def test_other_content_is_refused_with_a_reason(content: bytes, code: str, words: str) -> None:
    assert classify(content[:HEAD_SIZE]) is Kind.OTHER
    rejection = rejection_for(content[:HEAD_SIZE])
    assert rejection.code == code
    assert words in rejection.reason


@pytest.mark.parametrize("name", ["ExplVR_LitEndNoMeta.dcm", "ExplVR_BigEndNoMeta.dcm", "rtstruct.dcm"])
def test_a_data_set_without_the_part10_header_is_named_as_such(name: str) -> None:
    raw = bundled(name).read_bytes()  # starts with a group 0008 element, no preamble, no DICM
    assert classify(raw[:HEAD_SIZE]) is Kind.OTHER
    rejection = rejection_for(raw[:HEAD_SIZE])
    assert rejection.code == "not_dicom"
    assert "without the DICOM file header" in rejection.reason
