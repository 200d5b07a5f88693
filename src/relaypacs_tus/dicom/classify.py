"""Classify a finished upload by its first bytes (magic numbers), never by its file name.

DICOM Part 10: a 128-byte preamble followed by ``DICM`` (PS3.10 §7.1). JPEG: ``FF D8 FF`` (SOI followed
by the next marker, ISO/IEC 10918-1 B.2.1). PNG: the 8-byte signature (ISO/IEC 15948 §5.2).
"""

from __future__ import annotations

import enum

from .errors import EMPTY, NOT_DICOM, UNSUPPORTED_FORMAT, DicomRejected

HEAD_SIZE = 132
"""How many leading bytes ``classify`` needs to tell every kind apart."""

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOI = b"\xff\xd8\xff"


class Kind(enum.StrEnum):
    DICOM = "dicom"
    JPEG = "jpeg"
    PNG = "png"
    OTHER = "other"


def classify(head: bytes) -> Kind:
    """The kind of content whose first bytes are ``head`` (pass at least ``HEAD_SIZE`` bytes, or the
    whole file when it is shorter)."""
    if len(head) >= HEAD_SIZE and head[128:132] == b"DICM":
        return Kind.DICOM
    if head.startswith(_JPEG_SOI):
        return Kind.JPEG
    if head.startswith(_PNG_SIGNATURE):
        return Kind.PNG
    return Kind.OTHER


def _looks_like_bare_dataset(head: bytes) -> bool:
    """A DICOM data set without the Part 10 header usually starts with a group 0x0008 element
    (Specific Character Set, Image Type, ...), little or big endian."""
    if len(head) < 8:
        return False
    little = head[0:2] == b"\x08\x00" and head[3] == 0
    big = head[0:2] == b"\x00\x08" and head[2] == 0
    return little or big


def _known_format(head: bytes) -> str | None:
    """Name a few formats people upload by mistake, so the reason can say what the file is."""
    if head.startswith(b"%PDF-"):
        return "a PDF document"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"):
            return "a HEIC/HEIF photo"
        return "a video (MP4/MOV)"
    signatures = (
        ((b"II*\0", b"MM\0*"), "a TIFF image"),
        ((b"GIF87a", b"GIF89a"), "a GIF image"),
        ((b"BM",), "a BMP image"),
        ((b"PK\x03\x04",), "a ZIP archive"),
    )
    for prefixes, name in signatures:
        if head.startswith(prefixes):
            return name
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "a WebP image"
    return None


def rejection_for(head: bytes) -> DicomRejected:
    """Why content of kind ``OTHER`` is refused, in plain words (no PHI: only the format is named)."""
    if not head:
        return DicomRejected(EMPTY, "the file is empty")
    if _looks_like_bare_dataset(head):
        return DicomRejected(
            NOT_DICOM,
            "the file looks like a DICOM data set without the DICOM file header (preamble and DICM); "
            "export it as a DICOM Part 10 file",
        )
    name = _known_format(head)
    if name is None:
        return DicomRejected(
            UNSUPPORTED_FORMAT, "the file is not a DICOM, JPEG or PNG file; only those formats are accepted"
        )
    hint = (
        "; set the camera to JPEG ('Most Compatible') or export the photo as JPEG" if "HEIC" in name else ""
    )
    return DicomRejected(
        UNSUPPORTED_FORMAT, f"the file is {name}; only DICOM, JPEG and PNG files are accepted{hint}"
    )
