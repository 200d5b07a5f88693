"""The top-level hooks/ programs, run through OUR file transport with the exact JSON stock tusd sends
(filestore layout: the bytes at Event.Upload.Storage.Path), so the same programs work behind tusd."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from relaypacs_tus.hooks.events import event_from_tusd
from relaypacs_tus.hooks.transports import FileHooks
from relaypacs_tus.tus.events import NO_CHANGE, HookEvent

pytestmark = pytest.mark.anyio
HOOKS_DIR = Path(__file__).resolve().parents[2] / "hooks"
UPLOAD_ID = "5d892c228ec8d0451dfec588697e8930"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _program_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAYPACS_PYTHON", sys.executable)
    monkeypatch.setenv("RELAYPACS_AUTH", "off")
    monkeypatch.delenv("RELAYPACS_DESTINATIONS", raising=False)


def tusd_request(kind: str, path: Path, metadata: dict[str, str]) -> dict[str, object]:
    """Byte for byte what tusd v2's filestore puts on a file hook's stdin (pkg/hooks/hooks.go)."""
    size = path.stat().st_size
    return {
        "Type": kind,
        "Event": {
            "Upload": {
                "ID": UPLOAD_ID,
                "Size": size,
                "SizeIsDeferred": False,
                "Offset": size,
                "MetaData": metadata,
                "IsPartial": False,
                "IsFinal": False,
                "PartialUploads": None,
                "Storage": {"Type": "filestore", "Path": str(path), "InfoPath": f"{path}.info"},
            },
            "HTTPRequest": {
                "Method": "PATCH",
                "URI": f"/files/{UPLOAD_ID}",
                "RemoteAddr": "127.0.0.1:59395",
                "Header": {"Host": ["localhost:8080"], "Tus-Resumable": ["1.0.0"]},
            },
        },
    }


async def run_program(kind: str, path: Path, metadata: dict[str, str]) -> tuple[HookEvent, object]:
    request = tusd_request(kind, path, metadata)
    event = event_from_tusd(request)
    assert event.to_tusd() == request  # our transport sends exactly what tusd would
    return event, await FileHooks(HOOKS_DIR, timeout=60)(event)


def record_of(upload_dir: Path) -> dict[str, object]:
    return json.loads((upload_dir / ".documents" / "records" / f"{UPLOAD_ID}.json").read_text())


def _upload(tmp_path: Path, data: bytes) -> Path:
    directory = tmp_path / "data"
    directory.mkdir()
    path = directory / UPLOAD_ID
    path.write_bytes(data)
    return path


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, "JPEG", quality=90)
    return out.getvalue()


async def test_pre_finish_accepts_valid_dicom_and_records_it(tmp_path: Path) -> None:
    source = Path(get_testdata_file("CT_small.dcm"))
    path = _upload(tmp_path, source.read_bytes())
    _, answer = await run_program("pre-finish", path, {"filename": "ct.dcm"})
    assert answer == NO_CHANGE
    record = record_of(path.parent)
    assert record["kind"] == "dicom"
    assert record["instance"]["sop_instance_uid"] == pydicom.dcmread(source).SOPInstanceUID  # type: ignore[index]


async def test_pre_finish_refuses_a_pdf_with_a_readable_reason(tmp_path: Path) -> None:
    path = _upload(tmp_path, b"%PDF-1.7\n" + b"0" * 500)
    _, answer = await run_program("pre-finish", path, {"filename": "report.pdf"})
    http = answer.http_response  # type: ignore[attr-defined]
    assert http.status_code == 415
    assert "PDF" in http.body
    assert record_of(path.parent)["state"] == "rejected"


async def test_pre_finish_refuses_a_photo_without_a_patient(tmp_path: Path) -> None:
    path = _upload(tmp_path, _jpeg())
    _, answer = await run_program("pre-finish", path, {"filename": "wound.jpg"})
    http = answer.http_response  # type: ignore[attr-defined]
    assert http.status_code == 422
    assert "patient" in http.body


async def test_photo_is_wrapped_once_and_post_finish_completes_without_destinations(tmp_path: Path) -> None:
    path = _upload(tmp_path, _jpeg())
    meta = {"filename": "wound.jpg", "patient_id": "PID-1", "patient_name": "Doe^Jane"}
    _, answer = await run_program("pre-finish", path, meta)
    assert answer == NO_CHANGE
    first = record_of(path.parent)
    assert first["kind"] == "jpeg"
    assert first["wrapped_key"] == f"wrapped/{UPLOAD_ID}.dcm"
    wrapped = pydicom.dcmread(path.parent / ".documents" / str(first["wrapped_key"]))
    assert wrapped.PatientID == "PID-1"
    assert wrapped.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
    _, answer = await run_program("post-finish", path, meta)
    assert answer == NO_CHANGE
    done = record_of(path.parent)
    assert done["state"] == "delivered"
    assert done["destinations"] == []
    assert done["instance"] == first["instance"]  # not wrapped again: same UIDs


async def test_programs_refuse_a_request_that_is_not_tusd_json(tmp_path: Path) -> None:
    import subprocess

    result = subprocess.run(
        [str(HOOKS_DIR / "pre-finish")],
        input=b'{"Upload": {}}',
        capture_output=True,
        timeout=60,
        cwd=HOOKS_DIR,
    )
    assert result.returncode != 0
    assert b"not a tusd hook request" in result.stderr
