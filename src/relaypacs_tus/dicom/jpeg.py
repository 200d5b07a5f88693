"""Read a JPEG's structure without decoding it, and make the lossless fixes DICOM needs (jpegtran).

The marker walk follows ISO/IEC 10918-1 Annex B: SOI, marker segments with 2-byte lengths up to the
frame header (SOFn) and scan header (SOS), entropy-coded data in which ``FF`` is followed by ``00``
(stuffing) or ``D0``-``D7`` (restart markers), further segments and scans (progressive), then EOI. The
whole walk runs over an ``mmap`` with a C-level regex, so a 5 MB photo is checked in milliseconds and
memory does not grow with the file.

Only JPEG Baseline (Process 1: SOF0, 8-bit, Huffman) can be encapsulated as Transfer Syntax
1.2.840.10008.1.2.4.50 (PS3.5 §8.2.1, A.4.1). Progressive (SOF2), extended sequential (SOF1) and
arithmetic-coded (SOF9/SOF10) 8-bit JPEGs are transcoded to baseline by ``jpegtran``, which rewrites
the entropy coding only: the DCT coefficients, and so every decoded pixel, stay the same. 12-bit,
lossless and hierarchical JPEGs and 4-component (CMYK/YCCK) JPEGs are rejected with a reason.
"""

from __future__ import annotations

import mmap
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import errors as E
from .errors import DicomError, DicomRejected

SOF_BASELINE = 0xC0
_SOF_TRANSCODABLE = {
    0xC1: "extended sequential",
    0xC2: "progressive",
    0xC9: "arithmetic-coded",
    0xCA: "arithmetic-coded progressive",
}
_SOF_UNSUPPORTED = {
    0xC3: "lossless", 0xC5: "hierarchical", 0xC6: "hierarchical", 0xC7: "hierarchical lossless",
    0xCB: "arithmetic-coded lossless", 0xCD: "hierarchical", 0xCE: "hierarchical",
    0xCF: "hierarchical lossless",
}  # fmt: skip
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM, RSTn: no length field
_MARKER_IN_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")  # a real marker inside entropy-coded data
_JPEGTRAN_TIMEOUT = 60.0
# EXIF Orientation (TIFF tag 0x0112) -> the jpegtran transform that shows the image upright.
_ORIENTATION_OPS: dict[int, list[str]] = {
    2: ["-flip", "horizontal"], 3: ["-rotate", "180"], 4: ["-flip", "vertical"], 5: ["-transpose"],
    6: ["-rotate", "90"], 7: ["-transverse"], 8: ["-rotate", "270"],
}  # fmt: skip


@dataclass(frozen=True)
class JpegInfo:
    """What DICOM needs to know about a JPEG codestream, read from its headers."""

    sof: int  # the frame marker (0xC0 = baseline)
    precision: int  # sample precision in bits
    width: int
    height: int
    component_ids: tuple[int, ...]
    jfif: bool  # an APP0 "JFIF" segment is present (implies YCbCr for 3 components)
    adobe_transform: int | None  # APP14 "Adobe" colour transform flag, when present
    end: int  # offset just past EOI: the codestream is bytes [0, end)

    @property
    def is_rgb_coded(self) -> bool:
        """Colour components stored as R, G, B (no YCbCr transform), per Adobe APP14 or the component ids."""
        if self.adobe_transform is not None:
            return self.adobe_transform == 0
        return not self.jfif and self.component_ids == (0x52, 0x47, 0x42)


def _corrupt(detail: str) -> DicomRejected:
    return DicomRejected(E.CORRUPT_IMAGE, f"the JPEG file is damaged ({detail})")


def read_jpeg(path: str | os.PathLike[str]) -> JpegInfo:
    """Walk the JPEG's markers from SOI to EOI. Raises ``DicomRejected`` for a damaged or truncated file."""
    with open(path, "rb") as fp:
        if os.fstat(fp.fileno()).st_size < 4:
            raise _corrupt("it is too short")
        with mmap.mmap(fp.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            return _walk(mm)


def _walk(mm: mmap.mmap) -> JpegInfo:
    if mm[0:2] != b"\xff\xd8":
        raise _corrupt("it does not start with a start-of-image marker")
    pos, frame, jfif, adobe = 2, None, False, None
    while True:
        marker, pos = _next_marker(mm, pos)
        if marker == 0xD9:
            if frame is None:
                raise _corrupt("it has no frame header")
            return JpegInfo(*frame, jfif=jfif, adobe_transform=adobe, end=pos)
        if marker in _STANDALONE:
            continue
        seg_start, length = pos, _u16(mm, pos)
        if length < 2 or seg_start + length > len(mm):
            raise _corrupt("a header segment runs past the end of the file")
        body = mm[seg_start + 2 : seg_start + length]
        pos = seg_start + length
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            frame = _parse_sof(marker, body)
        elif marker == 0xE0 and body.startswith(b"JFIF\0"):
            jfif = True
        elif marker == 0xEE and body.startswith(b"Adobe") and len(body) >= 12:
            adobe = body[11]
        elif marker == 0xDA:
            if frame is None:
                raise _corrupt("a scan comes before the frame header")
            pos = _skip_entropy_data(mm, pos)


def _next_marker(mm: mmap.mmap, pos: int) -> tuple[int, int]:
    """The marker at ``pos`` (fill bytes FF allowed, B.1.1.2) and the offset after it."""
    if pos >= len(mm) or mm[pos] != 0xFF:
        raise _corrupt("unexpected bytes where a marker should be" if pos < len(mm) else "it ends early")
    while pos < len(mm) and mm[pos] == 0xFF:
        pos += 1
    if pos >= len(mm):
        raise _corrupt("it ends early")
    marker = mm[pos]
    if marker == 0x00 or 0x02 <= marker <= 0xBF:
        raise _corrupt("it contains an invalid marker")
    return marker, pos + 1


def _skip_entropy_data(mm: mmap.mmap, pos: int) -> int:
    """Offset of the marker that ends this scan's entropy-coded data (the next segment or EOI)."""
    found = _MARKER_IN_SCAN.search(mm, pos)  # type: ignore[call-overload]
    if found is None:
        raise _corrupt("the image data ends before the end-of-image marker")
    return int(found.start())


def _u16(mm: mmap.mmap, pos: int) -> int:
    if pos + 2 > len(mm):
        raise _corrupt("it ends early")
    return int(mm[pos] << 8 | mm[pos + 1])


def _parse_sof(marker: int, body: bytes) -> tuple[int, int, int, int, tuple[int, ...]]:
    if len(body) < 6 or len(body) < 6 + 3 * body[5]:
        raise _corrupt("its frame header is too short")
    precision, height, width, count = body[0], body[1] << 8 | body[2], body[3] << 8 | body[4], body[5]
    ids = tuple(body[6 + 3 * i] for i in range(count))
    return marker, precision, width, height, ids


def check_supported(info: JpegInfo) -> None:
    """Reject what cannot become an 8-bit DICOM Secondary Capture without decoding (see module doc)."""
    if info.sof in _SOF_UNSUPPORTED:
        raise DicomRejected(
            E.UNSUPPORTED_IMAGE, f"{_SOF_UNSUPPORTED[info.sof]} JPEG images are not supported"
        )
    if info.precision != 8:
        raise DicomRejected(
            E.UNSUPPORTED_IMAGE,
            f"{info.precision}-bit JPEG images are not supported; save the photo as 8-bit",
        )
    if len(info.component_ids) == 4:
        raise DicomRejected(
            E.UNSUPPORTED_IMAGE, "CMYK JPEG images (print colour) are not supported; save the photo as RGB"
        )
    if len(info.component_ids) not in (1, 3):
        raise DicomRejected(
            E.UNSUPPORTED_IMAGE, "JPEG images must be greyscale or colour (1 or 3 components)"
        )
    if info.width == 0 or info.height == 0:
        raise DicomRejected(
            E.UNSUPPORTED_IMAGE, "JPEG images that state no height in the frame header are not supported"
        )


def needs_transcode(info: JpegInfo) -> bool:
    return info.sof != SOF_BASELINE


def describe_transcode(info: JpegInfo) -> str:
    return _SOF_TRANSCODABLE.get(info.sof, "non-baseline")


def jpegtran_path() -> str | None:
    return shutil.which("jpegtran")


def lossless_transform(src: Path, dst: Path, *, orientation: int, to_baseline: bool) -> bool:
    """Rewrite ``src`` into ``dst`` with jpegtran: upright per EXIF ``orientation`` and/or as baseline.

    Rotation first tries ``-perfect`` (every pixel kept); when the size is not a multiple of the MCU it
    falls back to ``-trim``, which drops the partial edge blocks (at most 15 pixel rows or columns), as
    a lossless rotation of those blocks is impossible. Returns True when edge blocks were trimmed.
    When the image is rotated the EXIF block is dropped (its orientation would be stale; it may also
    hold the camera's GPS position) and the ICC profile kept; otherwise every marker is copied.
    """
    tool = jpegtran_path()
    if tool is None:
        raise DicomError(E.TOOL_MISSING, "jpegtran is not installed (Debian package libjpeg-turbo-progs)")
    ops = _ORIENTATION_OPS.get(orientation, [])
    base = [tool, "-copy", "icc" if ops else "all", "-optimize", "-maxscans", "1000", "-strict"]
    if not ops:
        _run_jpegtran([*base, "-outfile", str(dst), str(src)])
        return False
    try:
        _run_jpegtran([*base, *ops, "-perfect", "-outfile", str(dst), str(src)])
        return False
    except DicomRejected:
        _run_jpegtran([*base, *ops, "-trim", "-outfile", str(dst), str(src)])
        return True


def _run_jpegtran(argv: list[str]) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=_JPEGTRAN_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise DicomError(E.CORRUPT_IMAGE, "the JPEG could not be transformed in time") from exc
    if done.returncode != 0:
        raise DicomRejected(
            E.CORRUPT_IMAGE, "the JPEG could not be transformed losslessly (it may be damaged)"
        )
