"""Wrap a JPEG or PNG picture as a DICOM Secondary Capture Image (PS3.3 A.8.1), written as Part 10.

JPEG: the codestream (SOI..EOI) is encapsulated byte for byte as JPEG Baseline, Transfer Syntax
1.2.840.10008.1.2.4.50 (PS3.5 A.4.1), one fragment with an empty Basic Offset Table, streamed from the
file (no decode, no re-encode; memory does not grow with the photo). Photometric Interpretation follows
the codestream: MONOCHROME2 for one component, YBR_FULL_422 for YCbCr (what DCMTK's ``img2dcm -sc``
writes, and what dciodvfy accepts for SC), RGB when the JPEG stores untransformed RGB (Adobe APP14
transform 0). Two cases need a lossless rewrite by ``jpegtran`` first (see ``jpeg.py``): an EXIF
orientation other than 1 (DICOM has no display-orientation flag for SC, so the pixels themselves are
turned upright) and non-baseline 8-bit JPEGs (progressive, arithmetic). Bytes a camera appends after EOI
(MPF depth maps, motion-photo video) are not part of the image and are not copied.

PNG: decoded losslessly by pillow (``png.py``) and written uncompressed, Explicit VR Little Endian.

Patient and study attributes come from ``PatientStudy``; study/series UIDs and the Instance Number from
``SeriesPlacement`` (uploads of one batch share a study and a series; the caller numbers them). The SOP
Instance UID is new, under the configured organisation root (PS3.5 §9, B.2) or ``2.25.<uuid>`` without
one. The file is written to a temporary name beside ``out_path`` and renamed, so readers never see a
partial file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import mmap
import os
import re
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid

from . import errors as E
from .attributes import (
    UNPAIRED_BODY_PARTS,
    PatientStudy,
    SeriesPlacement,
    body_part_term,
    check_patient,
    check_placement,
    laterality,
)
from .classify import HEAD_SIZE, Kind, classify, rejection_for
from .errors import DicomRejected
from .jpeg import JpegInfo, check_supported, lossless_transform, needs_transcode, read_jpeg
from .png import read_png
from .validate import InstanceInfo

__all__ = ["SECONDARY_CAPTURE_IMAGE_STORAGE", "PatientStudy", "SeriesPlacement", "new_uid", "wrap_image"]

SECONDARY_CAPTURE_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
MODALITY = "XC"  # External-camera Photography (PS3.3 C.7.3.1.1.1): photos and pictures from the edge
_COPY_BLOCK = 1024 * 1024
_MAX_ORG_ROOT = 40  # leaves >= 23 characters of the 64 for the unique part (PS3.5 §9.1)
_UID_ROOT_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")  # PS3.5 §9.1


def new_uid(org_root: str | None) -> str:
    """A new UID: ``<org_root>.<unique digits>`` (at most 64 characters), or ``2.25.<uuid as integer>``
    when no organisation root is configured (PS3.5 B.2). Raises ValueError for a malformed root."""
    if not org_root:
        return str(generate_uid(prefix=None))
    root = org_root.rstrip(".")
    if not _UID_ROOT_RE.match(root) or len(root) > _MAX_ORG_ROOT:
        raise ValueError(f"UID org root must be a valid UID of at most {_MAX_ORG_ROOT} characters")
    return str(generate_uid(prefix=root + "."))


def wrap_image(
    image_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    patient: PatientStudy,
    placement: SeriesPlacement,
    org_root: str | None,
) -> InstanceInfo:
    """Write ``image_path`` (JPEG or PNG, told apart by content) as a Secondary Capture Part 10 file at
    ``out_path`` and describe it. Raises ``DicomRejected`` for unusable images or patient data, and
    ``DicomError`` (code ``tool_missing``) when jpegtran is needed but not installed. Blocking."""
    src, out = Path(image_path), Path(out_path)
    with open(src, "rb") as fp:
        head = fp.read(HEAD_SIZE)
    kind = classify(head)
    if kind is Kind.DICOM:
        raise DicomRejected(E.UNSUPPORTED_FORMAT, "the file is already DICOM and needs no wrapping")
    if kind is Kind.OTHER:
        raise rejection_for(head)
    check_patient(patient)
    check_placement(placement, patient)
    out.parent.mkdir(parents=True, exist_ok=True)
    sop_uid = new_uid(org_root)
    if kind is Kind.JPEG:
        return _wrap_jpeg(src, out, patient, placement, sop_uid)
    return _wrap_png(src, out, patient, placement, sop_uid)


# --- JPEG -------------------------------------------------------------------------------------------


def _wrap_jpeg(src: Path, out: Path, patient: PatientStudy, place: SeriesPlacement, uid: str) -> InstanceInfo:
    info = read_jpeg(src)
    check_supported(info)
    orientation, taken = _exif(src)
    with contextlib.ExitStack() as stack:
        notes: list[str] = []
        if orientation != 1 or needs_transcode(info):
            tmp = stack.enter_context(tempfile.TemporaryDirectory(dir=out.parent, prefix=".sc-"))
            fixed = Path(tmp) / "fixed.jpg"
            trimmed = lossless_transform(
                src, fixed, orientation=orientation, to_baseline=needs_transcode(info)
            )
            notes.append(_derivation(info, orientation, trimmed))
            src, info = fixed, read_jpeg(fixed)
            if needs_transcode(info):
                raise DicomRejected(E.UNSUPPORTED_IMAGE, "the JPEG could not be converted to baseline JPEG")
        ds = _base_dataset(patient, place, uid, taken)
        _jpeg_pixel_module(ds, info)
        if notes:
            ds.DerivationDescription = "; ".join(notes)
        end = info.end
        return _write(out, ds, JPEGBaseline8Bit, lambda w: _write_encapsulated(w, src, end))


def _derivation(info: JpegInfo, orientation: int, trimmed: bool) -> str:
    parts = []
    if needs_transcode(info):
        parts.append("JPEG entropy coding rewritten as baseline without loss (jpegtran)")
    if orientation != 1:
        parts.append("turned upright per EXIF orientation without loss (jpegtran)")
    if trimmed:
        parts.append("partial edge blocks trimmed")
    return ", ".join(parts)


def _exif(path: Path) -> tuple[int, dt.datetime | None]:
    """EXIF Orientation (1 when absent or invalid) and DateTimeOriginal, read from the headers only. A
    damaged EXIF block is ignored (the picture itself is fine); a JPEG pillow cannot open is refused."""
    try:
        im = Image.open(path)
    except (OSError, SyntaxError, ValueError) as exc:
        raise DicomRejected(E.CORRUPT_IMAGE, "the JPEG file is damaged and cannot be read") from exc
    with im:
        try:
            exif = im.getexif()
            orientation = exif.get(0x0112, 1)
            taken = exif.get_ifd(0x8769).get(0x9003) or exif.get(0x0132)
        except (OSError, SyntaxError, ValueError, KeyError, IndexError, TypeError, struct.error):
            orientation, taken = 1, None
    if not isinstance(orientation, int) or not 1 <= orientation <= 8:
        orientation = 1
    return orientation, _exif_datetime(taken)


def _exif_datetime(value: object) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(str(value).strip("\0 "), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None


def _jpeg_pixel_module(ds: Dataset, info: JpegInfo) -> None:
    colour = len(info.component_ids) == 3
    ds.SamplesPerPixel = 3 if colour else 1
    if colour:
        ds.PhotometricInterpretation = "RGB" if info.is_rgb_coded else "YBR_FULL_422"
        ds.PlanarConfiguration = 0
    else:
        ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = info.height, info.width
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_10918_1"


def _write_encapsulated(w: _HashingWriter, src: Path, end: int) -> None:
    """(7FE0,0010) OB, undefined length: empty Basic Offset Table item, one fragment, delimiter (A.4).
    The codestream is written and hashed straight from a read-only map of the source (no copies)."""
    w.write(struct.pack("<HH2sHL", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF))
    w.write(struct.pack("<HHL", 0xFFFE, 0xE000, 0))
    w.write(struct.pack("<HHL", 0xFFFE, 0xE000, end + (end & 1)))  # fragments have even length
    with open(src, "rb") as fp:
        if os.fstat(fp.fileno()).st_size < end:
            raise DicomRejected(E.CORRUPT_IMAGE, "the JPEG file changed while it was being wrapped")
        with mmap.mmap(fp.fileno(), 0, access=mmap.ACCESS_READ) as mm, memoryview(mm) as view:
            for start in range(0, end, _COPY_BLOCK):
                with view[start : min(end, start + _COPY_BLOCK)] as block:
                    w.write(block)
    if end & 1:
        w.write(b"\0")
    w.write(struct.pack("<HHL", 0xFFFE, 0xE0DD, 0))


# --- PNG --------------------------------------------------------------------------------------------


def _wrap_png(src: Path, out: Path, patient: PatientStudy, place: SeriesPlacement, uid: str) -> InstanceInfo:
    px = read_png(src)
    if px.rows > 0xFFFF or px.columns > 0xFFFF:
        raise DicomRejected(
            E.UNSUPPORTED_IMAGE, "the image is wider or taller than DICOM allows (65535 pixels)"
        )
    ds = _base_dataset(patient, place, uid, None)
    ds.SamplesPerPixel = px.samples_per_pixel
    ds.PhotometricInterpretation = px.photometric
    if px.samples_per_pixel == 3:
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = px.rows, px.columns
    ds.BitsAllocated = ds.BitsStored = px.bits
    ds.HighBit, ds.PixelRepresentation = px.bits - 1, 0
    ds.LossyImageCompression = "00"
    if px.alpha_dropped:
        ds.DerivationDescription = "PNG transparency composited over black"
    ds.PixelData = px.data + (b"\0" if len(px.data) & 1 else b"")
    ds["PixelData"].VR = "OW" if px.bits == 16 else "OB"
    return _write(out, ds, ExplicitVRLittleEndian, lambda w: None)


# --- common attributes and writing ------------------------------------------------------------------


def _base_dataset(p: PatientStudy, place: SeriesPlacement, uid: str, taken: dt.datetime | None) -> Dataset:
    now = dt.datetime.now()
    content = taken or now
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: names may use any script
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.InstanceCreationDate, ds.InstanceCreationTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.SOPClassUID, ds.SOPInstanceUID = SECONDARY_CAPTURE_IMAGE_STORAGE, uid
    ds.StudyDate = p.study_date or content.strftime("%Y%m%d")
    ds.StudyTime = p.study_time if p.study_date else content.strftime("%H%M%S")
    ds.ContentDate, ds.ContentTime = content.strftime("%Y%m%d"), content.strftime("%H%M%S")
    ds.AccessionNumber = p.accession_number
    ds.Modality = MODALITY
    ds.ConversionType = "DI"  # Digital Interface (PS3.3 C.8.6.1)
    ds.ReferringPhysicianName = ""
    if p.study_description:
        ds.StudyDescription = p.study_description
    if place.series_description:
        ds.SeriesDescription = place.series_description
    ds.PatientName, ds.PatientID = p.patient_name, p.patient_id
    ds.PatientBirthDate, ds.PatientSex = p.birth_date, p.sex
    side, body_part = laterality(body_part_term(p.body_part)) if p.body_part else (None, "")
    if body_part:
        ds.BodyPartExamined = body_part
    if side:
        ds.ImageLaterality = side  # General Image (PS3.3 C.7.6.1): L, R or B, per picture
    elif body_part not in UNPAIRED_BODY_PARTS:
        ds.Laterality = ""  # General Series 2C: a paired (or unknown) part, side not known: empty
    ds.StudyInstanceUID, ds.SeriesInstanceUID = place.study_instance_uid, place.series_instance_uid
    ds.StudyID = ""
    ds.SeriesNumber = place.series_number
    ds.InstanceNumber = place.instance_number
    ds.PatientOrientation = ""
    return ds


def _write(out: Path, ds: Dataset, ts: UID, write_pixels: Callable[[_HashingWriter], None]) -> InstanceInfo:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ts
    ds.file_meta = meta
    header = io.BytesIO()
    pydicom.dcmwrite(header, ds, enforce_file_format=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as raw:
            hashing = _HashingWriter(raw)
            hashing.write(header.getbuffer())
            write_pixels(hashing)
            raw.flush()
            os.fsync(raw.fileno())  # durable before the rename makes it visible
            digest = hashing.hexdigest()
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return InstanceInfo(
        sop_class_uid=str(ds.SOPClassUID),
        sop_instance_uid=str(ds.SOPInstanceUID),
        study_instance_uid=str(ds.StudyInstanceUID),
        series_instance_uid=str(ds.SeriesInstanceUID),
        transfer_syntax_uid=str(ts),
        modality=MODALITY,
        size=hashing.size,
        sha256=digest,
    )


class _HashingWriter:
    """Writes through to a file and hashes the same bytes, so the written file is never read back."""

    def __init__(self, fp: BinaryIO) -> None:
        self._fp = fp
        self._digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview) -> int:
        self._fp.write(data)
        self._digest.update(data)
        self.size += len(data)
        return len(data)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()
