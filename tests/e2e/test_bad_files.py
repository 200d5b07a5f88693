"""Bad files are refused in the final PATCH's answer with a reason a person can read, their status says
why, nothing reaches the PACS, and the server keeps serving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from tusclient import client
from tusclient.exceptions import TusCommunicationError

from tests.e2e.conftest import (
    b64,
    delivered,
    fresh_dicom,
    jpeg_bytes,
    pipeline_env,
    status,
    tus_upload,
    wait_status,
)

pytestmark = pytest.mark.orthanc


def _truncated(tmp_path: Path) -> bytes:
    data = fresh_dicom(tmp_path).read_bytes()
    return data[: len(data) * 2 // 3]


def _no_sop_instance_uid(tmp_path: Path) -> bytes:
    path = fresh_dicom(tmp_path)
    ds = pydicom.dcmread(path)
    del ds.SOPInstanceUID
    ds.save_as(path)
    return path.read_bytes()


def _jpeg_with_garbage(tmp_path: Path) -> bytes:
    head = jpeg_bytes()[:120]  # SOI and the first headers, then noise where the image should be
    return head + bytes((i * 37 + 11) % 256 for i in range(4000))


def _pdf(tmp_path: Path) -> bytes:
    return b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n" + b"0" * 2000 + b"\n%%EOF\n"


CASES = {
    "truncated DICOM": (_truncated, "incomplete"),
    "DICOM without SOP Instance UID": (_no_sop_instance_uid, "SOP Instance UID"),
    "JPEG with garbage after the header": (_jpeg_with_garbage, "damaged"),
    "PDF": (_pdf, "PDF"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_file_is_refused_with_its_reason(relay_server, pacs: Any, tmp_path: Path, case: str) -> None:
    make, words = CASES[case]
    server = relay_server(env=pipeline_env(pacs)).start()
    path = tmp_path / "upload.bin"
    path.write_bytes(make(tmp_path))
    meta = {"filename": "upload.bin", "patient_id": "BAD-1"}
    uploader = client.TusClient(server.files_url).uploader(str(path), chunk_size=1024 * 1024, metadata=meta)
    with pytest.raises(TusCommunicationError) as refused:
        uploader.upload()
    assert 400 <= int(refused.value.status_code) < 500
    body = (refused.value.response_content or b"").decode()
    assert words.lower() in body.lower()
    upload_id = str(uploader.url).rsplit("/", 1)[1]
    rejected = status(server, upload_id)
    assert rejected["state"] == "rejected"
    assert words.lower() in rejected["reason"].lower()
    _server_still_works(server, pacs, tmp_path)
    assert pacs.count_instances() == 1  # only the good file of _server_still_works


def test_empty_file_is_refused(relay_server, pacs: Any, tmp_path: Path) -> None:
    server = relay_server(env=pipeline_env(pacs)).start()
    headers = {
        "Tus-Resumable": "1.0.0",
        "Upload-Length": "0",
        "Upload-Metadata": f"filename {b64('empty.dcm')}",
    }
    response = httpx.post(server.files_url, headers=headers, timeout=30)
    assert 400 <= response.status_code < 500
    assert "empty" in response.text
    _server_still_works(server, pacs, tmp_path)


def _server_still_works(server: Any, pacs: Any, tmp_path: Path) -> None:
    good = tus_upload(server, fresh_dicom(tmp_path, "good.dcm"), {"filename": "good.dcm"})
    wait_status(server, good, delivered)
