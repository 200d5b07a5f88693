"""End-to-end fixtures: the real server with the DICOM pipeline delivering to a real Orthanc."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from tusclient import client

PASSWORD_ENV = "RELAYPACS_TEST_ORTHANC_PASSWORD"


@pytest.fixture
def pacs(fresh_orthanc: Any) -> Any:
    """A fresh Orthanc (tests/services/orthanc.py)."""
    return fresh_orthanc


def pipeline_env(orthanc: Any, **more: str) -> dict[str, str]:
    destinations = [
        {
            "name": "orthanc",
            "type": "stowrs",
            "url": orthanc.dicomweb_url,
            "auth": {"type": "basic", "username": orthanc.username, "password_env": PASSWORD_ENV},
            "timeout": 10,
        }
    ]
    return {
        "RELAYPACS_AUTH": "off",
        "RELAYPACS_DESTINATIONS": json.dumps(destinations),
        PASSWORD_ENV: orthanc.password or "",
        "RELAYPACS_DELIVERY_BACKOFF": "0.5",
        "RELAYPACS_DELIVERY_BACKOFF_MAX": "2",
        "RELAYPACS_DELIVERY_MAX_ATTEMPTS": "40",
        "RELAYPACS_PIPELINE_RESCAN_INTERVAL": "1",
        **more,
    }


def tus_upload(server: Any, path: Path, metadata: dict[str, str], chunk_size: int = 256 * 1024) -> str:
    """Upload with tuspy, a stock tus client; returns the upload id."""
    uploader = client.TusClient(server.files_url).uploader(
        str(path), chunk_size=chunk_size, upload_checksum=True, metadata=metadata
    )
    uploader.upload()
    return str(uploader.url).rsplit("/", 1)[1]


def status(server: Any, upload_id: str) -> dict[str, Any]:
    response = httpx.get(f"{server.base_url}/uploads/{upload_id}/status", timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def wait_status(
    server: Any, upload_id: str, until: Callable[[dict[str, Any]], bool], timeout: float = 60.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = status(server, upload_id)
        if until(last):
            return last
        time.sleep(0.1)
    raise AssertionError(f"status never matched; last: {last}")


def delivered(s: dict[str, Any]) -> bool:
    return s["state"] == "delivered"


def retrying(s: dict[str, Any]) -> bool:
    return any(d["state"] == "retrying" and d["attempts"] >= 1 for d in s["destinations"])


def fresh_dicom(tmp_path: Path, name: str = "ct.dcm", patient_id: str = "RELAY-E2E") -> Path:
    """CT_small with new UIDs (tests must not collide in the PACS)."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID = patient_id
    path = tmp_path / name
    ds.save_as(path, enforce_file_format=True)
    return path


def phone_jpeg(tmp_path: Path, name: str = "IMG_0001.jpg", size: tuple[int, int] = (1024, 768)) -> Path:
    """A camera-style JPEG: 4:2:0 baseline with EXIF (orientation, capture time)."""
    image = Image.new("RGB", size)
    image.paste((180, 40, 40), (0, 0, size[0] // 2, size[1]))
    image.paste((40, 40, 180), (size[0] // 2, 0, size[0], size[1]))
    exif = Image.Exif()
    exif[0x0112] = 1  # Orientation: upright
    exif[0x0132] = "2026:11:27 10:15:00"
    path = tmp_path / name
    image.save(path, "JPEG", quality=88, exif=exif.tobytes())
    return path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def jpeg_bytes(size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (10, 200, 10)).save(out, "JPEG")
    return out.getvalue()
