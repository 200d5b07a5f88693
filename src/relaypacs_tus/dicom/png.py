"""Decode a PNG losslessly into DICOM pixel data (native, interleaved, little endian).

PNG is lossless, so its samples go into DICOM unchanged: 8-bit greyscale -> MONOCHROME2 8 bit, 16-bit
greyscale -> MONOCHROME2 16 bit, 8-bit colour -> RGB 8 bit (PS3.3 C.7.6.3). Palette and 1-bit images are
expanded to RGB / 8-bit greyscale (exact). DICOM has no alpha channel: transparent pixels are composited
over black (the viewer background in PACS), which is the one change made to the samples. 16-bit colour
PNGs are rejected (pillow would reduce them to 8 bit).
"""

from __future__ import annotations

import os
import struct
import warnings
from dataclasses import dataclass

from PIL import Image

from . import errors as E
from .errors import DicomRejected

_IHDR = struct.Struct(">4sIIBB")  # chunk type, width, height, bit depth, colour type (ISO/IEC 15948 §11.2.2)


@dataclass(frozen=True)
class Pixels:
    rows: int
    columns: int
    samples_per_pixel: int
    bits: int  # BitsAllocated = BitsStored
    photometric: str
    data: bytes  # interleaved, little endian
    alpha_dropped: bool


def _ihdr(path: str | os.PathLike[str]) -> tuple[int, int]:
    with open(path, "rb") as fp:
        head = fp.read(8 + 4 + _IHDR.size)
    if len(head) < 8 + 4 + _IHDR.size or head[12:16] != b"IHDR":
        raise DicomRejected(E.CORRUPT_IMAGE, "the PNG file is damaged (it has no image header)")
    _, _, _, depth, colour = _IHDR.unpack(head[12:])
    return depth, colour


def read_png(path: str | os.PathLike[str]) -> Pixels:
    """Decode the PNG at ``path``. Raises ``DicomRejected`` for damaged or unsupported images."""
    depth, colour = _ihdr(path)
    if depth == 16 and colour in (2, 4, 6):
        raise DicomRejected(E.UNSUPPORTED_IMAGE, "16-bit colour PNG images are not supported; save as 8-bit")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                return _to_pixels(im)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DicomRejected(E.UNSUPPORTED_IMAGE, "the PNG image has too many pixels") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise DicomRejected(E.CORRUPT_IMAGE, "the PNG file is damaged and cannot be read") from exc


def _to_pixels(im: Image.Image) -> Pixels:
    alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode in ("P", "L", "RGB") and "transparency" in im.info)
    if im.mode == "I;16":
        return Pixels(im.height, im.width, 1, 16, "MONOCHROME2", im.tobytes(), False)
    if im.mode == "I":  # 16-bit greyscale on some pillow builds; values fit in 16 bits
        return Pixels(im.height, im.width, 1, 16, "MONOCHROME2", im.tobytes("raw", "I;16"), False)
    grey = im.mode in ("1", "L", "LA") or (im.mode == "P" and _palette_is_grey(im))
    target = "L" if grey else "RGB"
    if alpha:
        rgba = im.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        flat.alpha_composite(rgba)
        out = flat.convert(target)  # exact for grey: equal R=G=B give L=R
    else:
        out = im.convert(target)
    spp = 1 if grey else 3
    return Pixels(out.height, out.width, spp, 8, "MONOCHROME2" if grey else "RGB", out.tobytes(), alpha)


def _palette_is_grey(im: Image.Image) -> bool:
    palette = im.getpalette() or []
    triples = zip(palette[0::3], palette[1::3], palette[2::3], strict=False)
    return all(r == g == b for r, g, b in triples)
