"""Test inputs made at test time: DICOM files from pydicom's bundled data with fresh UIDs, and pictures
drawn with pillow (or transformed by jpegtran). Nothing is downloaded; every call gets new UIDs, since
many bundled files share their SOP Instance UIDs."""

from __future__ import annotations

import io
import subprocess
import warnings
from pathlib import Path
from typing import Any

import pydicom
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid


def bundled(name: str) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = get_testdata_file(name)
    assert found is not None, f"pydicom does not bundle {name}"
    return Path(str(found))


def dicom_file(path: Path, source: str = "CT_small.dcm", **attributes: Any) -> Path:
    """``source`` with fresh Study/Series/SOP Instance UIDs (file meta kept consistent), ``attributes``
    set (``None`` deletes one), written as Part 10 to ``path``."""
    ds = pydicom.dcmread(bundled(source))
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = (
        generate_uid(),
        generate_uid(),
        generate_uid(),
    )
    for keyword, value in attributes.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    if "SOPInstanceUID" in ds:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if "SOPClassUID" in ds:
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=False)
    return path


def picture(size: tuple[int, int] = (64, 48), mode: str = "RGB") -> Image.Image:
    """Four coloured quadrants (or grey levels), so orientation and colour can be checked."""
    w, h = size
    im = Image.new("RGB", size)
    colours = [(220, 30, 30), (30, 200, 30), (30, 30, 220), (240, 240, 240)]
    for i, colour in enumerate(colours):
        x0, y0 = (i % 2) * w // 2, (i // 2) * h // 2
        im.paste(colour, (x0, y0, x0 + w // 2, y0 + h // 2))
    return im.convert(mode)


def jpeg_file(path: Path, *, size: tuple[int, int] = (64, 48), mode: str = "RGB", orientation: int = 1,
              **save: Any) -> Path:  # fmt: skip
    im = picture(size, mode)
    if orientation != 1:
        exif = im.getexif()
        exif[0x0112] = orientation
        save["exif"] = exif
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, "JPEG", quality=save.pop("quality", 90), **save)
    return path


def jpegtran(src: Path, dst: Path, *args: str) -> Path:
    subprocess.run(["jpegtran", *args, "-outfile", str(dst), str(src)], check=True, capture_output=True)
    return dst


def png_file(path: Path, image: Image.Image) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "PNG")
    return path


def pdf_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (10, 10), (255, 255, 255)).save(buf, "PDF")
    return buf.getvalue()
