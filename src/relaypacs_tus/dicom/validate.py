"""Validate a DICOM Part 10 file cheaply enough for tus pre-finish: header and structure, never pixel data.

What is checked, and where the rule comes from:

* 128-byte preamble + ``DICM`` and a File Meta Information group (PS3.10 §7.1) with
  MediaStorageSOPClassUID, MediaStorageSOPInstanceUID and TransferSyntaxUID (PS3.10 Table 7.1-1).
* The transfer syntax is one the standard defines (PS3.6 Table A-1, as pydicom knows it): a private
  one could not be parsed or delivered reliably.
* SOP Class UID and SOP Instance UID (SOP Common, PS3.3 C.12.1) are present, well formed (PS3.5 §9.1:
  at most 64 characters of digits and dots) and equal to their file meta copies (PS3.10 §7.1).
* Study and Series Instance UID are present (PS3.3 C.7.2.1 / C.7.3.1: Type 1).
* The SOP class is in the configured allow-list, when there is one.
* Wrong-patient guard: the patient ID, accession number and Study Instance UID that the uploader
  declared (Upload-Metadata or an upload token's binding) equal the data set's.
* The file is complete: no element (including Pixel Data and its encapsulated fragments, PS3.5 A.4)
  runs past the end of the file. This is done by reading element headers and seeking, so Pixel Data is
  never read into memory.

Reasons are plain words without PHI: they say which check failed, never the values compared.
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from . import errors as E
from .classify import HEAD_SIZE, Kind, classify, rejection_for
from .errors import DicomRejected

_DEFER_SIZE = 64 * 1024  # element values above this stay on disk (seek past them); not loaded
_HASH_BLOCK = 1024 * 1024
_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_PIXEL_TAGS = (0x7FE00008, 0x7FE00009, 0x7FE00010)  # Float/Double Float/Pixel Data (pydicom stops at these)
_ITEM, _SEQ_DELIM = 0xFFFEE000, 0xFFFEE0DD
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


@dataclass(frozen=True)
class Expectations:
    """What the uploader declared about the instance; ``None`` means "not declared, do not check"."""

    patient_id: str | None = None
    accession_number: str | None = None
    study_instance_uid: str | None = None


@dataclass(frozen=True)
class InstanceInfo:
    """Identity of a valid Part 10 file. ``sha256`` is the hex digest of the whole file's bytes."""

    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    modality: str | None
    size: int
    sha256: str


def validate_part10(
    path: str | os.PathLike[str],
    *,
    allowed_sop_classes: frozenset[str] | None = None,
    expect: Expectations = Expectations(),
) -> InstanceInfo:
    """Check the file at ``path`` (see the module docstring) and describe it.

    Raises ``DicomRejected`` with a stable code and a PHI-free reason. Blocking: run it in a worker
    thread. Memory stays bounded: Pixel Data and other values over 64 KiB are skipped, not read; the
    hash is computed in 1 MiB blocks. (Deflated transfer syntax is the exception: pydicom inflates the
    whole data set to parse it.)
    """
    size = os.path.getsize(path)
    with open(path, "rb") as fp:
        head = fp.read(HEAD_SIZE)
        if classify(head) is not Kind.DICOM:
            raise (rejection_for(head) if head else DicomRejected(E.EMPTY, "the file is empty"))
        fp.seek(0)
        ds = _read_header(fp)
        stopped_at = fp.tell()
        ts = _check_file_meta(ds, size)
        if ts != DeflatedExplicitVRLittleEndian:
            _check_complete(fp, ds, ts, stopped_at, size)
    info = _check_identity(ds, ts, size, allowed_sop_classes)
    _check_expectations(ds, expect)
    return InstanceInfo(**{**info.__dict__, "sha256": sha256_file(path)})


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (memory does not grow with the file)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fp:
        while block := fp.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _read_header(fp: BinaryIO) -> Dataset:
    try:
        return pydicom.dcmread(fp, stop_before_pixels=True, defer_size=_DEFER_SIZE)
    except InvalidDicomError as exc:
        raise DicomRejected(E.NOT_DICOM, "the file is not a valid DICOM file") from exc
    except (EOFError, struct.error) as exc:
        raise DicomRejected(
            E.TRUNCATED, "the DICOM file is incomplete (it ends inside a data element)"
        ) from exc
    except (ValueError, KeyError, TypeError, NotImplementedError, zlib.error, UnicodeDecodeError) as exc:
        raise DicomRejected(E.MALFORMED, "the DICOM data set could not be parsed") from exc


def _check_file_meta(ds: Dataset, size: int) -> UID:
    meta = ds.file_meta
    group_length = meta.get("FileMetaInformationGroupLength")
    if isinstance(group_length, int) and HEAD_SIZE + 12 + group_length > size:
        raise _truncated()  # the file ends inside its own header (PS3.10 §7.1, (0002,0000))
    for keyword, words in (
        ("TransferSyntaxUID", "transfer syntax"),
        ("MediaStorageSOPClassUID", "SOP class"),
        ("MediaStorageSOPInstanceUID", "SOP instance UID"),
    ):
        if not str(meta.get(keyword, "") or "").strip():
            raise DicomRejected(E.MISSING_FILE_META, f"the DICOM file header does not state the {words}")
    ts = UID(str(meta.TransferSyntaxUID).strip())
    if not ts.is_transfer_syntax:
        raise DicomRejected(
            E.UNKNOWN_TRANSFER_SYNTAX,
            "the file uses a transfer syntax that is not defined by the DICOM standard",
        )
    return ts


def _uid(ds: Dataset, keyword: str, code: str, words: str) -> str:
    value = str(ds.get(keyword, "") or "").strip().rstrip("\0")
    if not value:
        raise DicomRejected(code, f"the DICOM data set has no {words}")
    if len(value) > 64 or not _UID_RE.match(value):
        raise DicomRejected(E.INVALID_UID, f"the {words} is not a valid DICOM UID")
    return value


def _check_identity(ds: Dataset, ts: UID, size: int, allowed: frozenset[str] | None) -> InstanceInfo:
    sop_class = _uid(ds, "SOPClassUID", E.MISSING_SOP_CLASS_UID, "SOP Class UID")
    sop_instance = _uid(ds, "SOPInstanceUID", E.MISSING_SOP_INSTANCE_UID, "SOP Instance UID")
    study = _uid(ds, "StudyInstanceUID", E.MISSING_STUDY_INSTANCE_UID, "Study Instance UID")
    series = _uid(ds, "SeriesInstanceUID", E.MISSING_SERIES_INSTANCE_UID, "Series Instance UID")
    if str(ds.file_meta.MediaStorageSOPClassUID).strip().rstrip("\0") != sop_class:
        raise DicomRejected(
            E.SOP_CLASS_MISMATCH, "the SOP Class UID in the data set differs from the one in the file header"
        )
    if str(ds.file_meta.MediaStorageSOPInstanceUID).strip().rstrip("\0") != sop_instance:
        raise DicomRejected(
            E.SOP_INSTANCE_MISMATCH,
            "the SOP Instance UID in the data set differs from the one in the file header",
        )
    if allowed is not None and sop_class not in allowed:
        name = UID(sop_class).name if UID(sop_class).is_valid else "this SOP class"
        raise DicomRejected(E.SOP_CLASS_NOT_ALLOWED, f"{name} objects are not accepted by this relay")
    modality = str(ds.get("Modality", "") or "").strip() or None
    return InstanceInfo(sop_class, sop_instance, study, series, str(ts), modality, size, "")


def _check_expectations(ds: Dataset, expect: Expectations) -> None:
    checks = (
        (expect.patient_id, "PatientID", E.PATIENT_MISMATCH, "patient ID"),
        (expect.accession_number, "AccessionNumber", E.ACCESSION_MISMATCH, "accession number"),
        (expect.study_instance_uid, "StudyInstanceUID", E.STUDY_MISMATCH, "Study Instance UID"),
    )
    for wanted, keyword, code, words in checks:
        if wanted is None:
            continue
        actual = str(ds.get(keyword, "") or "").strip().rstrip("\0")
        if actual != wanted.strip():
            raise DicomRejected(code, f"the {words} does not match the one given for this upload")


# --- completeness: element headers and seeks only ------------------------------------------------


def _truncated() -> DicomRejected:
    return DicomRejected(E.TRUNCATED, "the DICOM file is incomplete (it ends inside a data element)")


def _check_complete(fp: BinaryIO, ds: Dataset, ts: UID, stopped_at: int, size: int) -> None:
    """Every element read so far ends inside the file; then walk Pixel Data (if reading stopped there)."""
    last_end: int | None = None  # None: the last element has undefined length; -1: end not known
    for tag in ds.keys():  # noqa: SIM118 - iterating a Dataset converts every element
        raw = ds.get_item(tag)
        if not isinstance(raw, RawDataElement):
            last_end = None if raw.is_undefined_length else -1  # already parsed by pydicom
            continue
        if raw.length == 0xFFFFFFFF:
            last_end = None  # undefined length: checked through its delimiter below
            continue
        if raw.value is not None and len(raw.value) < raw.length:
            raise _truncated()
        last_end = raw.value_tell + raw.length
        if last_end > size:
            raise _truncated()
    if stopped_at < size and _next_tag(fp, stopped_at, ts) in _PIXEL_TAGS:
        _check_elements_from(fp, stopped_at, ts, size)
        return
    if last_end is None and len(ds) and not _ends_with_delimiter(fp, ts, size):
        raise _truncated()
    if last_end is not None and last_end not in (-1, size):
        raise _truncated()  # a partial element header after the last complete element


def _next_tag(fp: BinaryIO, pos: int, ts: UID) -> int | None:
    fp.seek(pos)
    data = fp.read(4)
    if len(data) < 4:
        return None
    group, elem = struct.unpack("<HH" if ts.is_little_endian else ">HH", data)
    return int(group << 16 | elem)


def _ends_with_delimiter(fp: BinaryIO, ts: UID, size: int) -> bool:
    if size < 8:
        return False
    fp.seek(size - 8)
    fmt = "<HHL" if ts.is_little_endian else ">HHL"
    group, elem, length = struct.unpack(fmt, fp.read(8))
    return bool((group << 16 | elem) == _SEQ_DELIM and length == 0)


def _check_elements_from(fp: BinaryIO, pos: int, ts: UID, size: int) -> None:
    """Walk the top-level elements from Pixel Data to the end of the file (Data Set Trailing Padding
    may follow it) by their headers: each value must fit in the file; encapsulated fragments must end
    with a delimiter. An undefined-length element other than Pixel Data is checked by the file ending
    with a Sequence Delimitation Item."""
    while pos < size:
        tag, length, pos = _element_header(fp, pos, ts)
        if length != 0xFFFFFFFF:
            pos += length
            if pos > size:
                raise _truncated()
        elif tag in _PIXEL_TAGS:
            pos = _walk_fragments(fp, pos, "<" if ts.is_little_endian else ">", size)
        elif not _ends_with_delimiter(fp, ts, size):
            raise _truncated()
        else:
            return


def _element_header(fp: BinaryIO, pos: int, ts: UID) -> tuple[int, int, int]:
    """(tag, value length, offset of the value) of the element at ``pos`` (PS3.5 §7.1)."""
    endian = "<" if ts.is_little_endian else ">"
    fp.seek(pos)
    header = fp.read(8)
    if len(header) < 8:
        raise _truncated()
    group, elem = struct.unpack(endian + "HH", header[:4])
    vr = header[4:6]
    if ts.is_implicit_VR or not (vr.isalpha() and vr.isupper()):  # like pydicom, tolerate an implicit header
        (length,) = struct.unpack(endian + "L", header[4:8])
        return group << 16 | elem, length, pos + 8
    if vr in _LONG_VRS:
        extra = fp.read(4)
        if len(extra) < 4:
            raise _truncated()
        (length,) = struct.unpack(endian + "L", extra)
        return group << 16 | elem, length, pos + 12
    (length,) = struct.unpack(endian + "H", header[6:8])
    return group << 16 | elem, length, pos + 8


def _walk_fragments(fp: BinaryIO, pos: int, endian: str, size: int) -> int:
    """PS3.5 A.4: items (FFFE,E000) with explicit lengths, ended by (FFFE,E0DD). Returns the offset
    after the delimiter."""
    while True:
        fp.seek(pos)
        data = fp.read(8)
        if len(data) < 8:
            raise _truncated()
        group, elem, length = struct.unpack(endian + "HHL", data)
        tag = group << 16 | elem
        if tag == _SEQ_DELIM:
            return pos + 8
        if tag != _ITEM or length == 0xFFFFFFFF:
            raise DicomRejected(E.MALFORMED, "the compressed pixel data is not correctly encapsulated")
        pos += 8 + length
        if pos > size:
            raise _truncated()
