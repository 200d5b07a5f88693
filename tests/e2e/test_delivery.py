"""A tus client uploads; the instance appears in a real Orthanc, exactly once, whatever fails on the way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pydicom
import pytest

from tests.e2e.conftest import (
    delivered,
    fresh_dicom,
    phone_jpeg,
    pipeline_env,
    retrying,
    sha256,
    status,
    tus_upload,
    wait_status,
)

pytestmark = pytest.mark.orthanc


def test_dicom_and_phone_photo_arrive_with_the_right_patient(relay_server, pacs: Any, tmp_path: Path) -> None:
    server = relay_server(env=pipeline_env(pacs)).start()
    dicom = fresh_dicom(tmp_path)
    dicom_id = tus_upload(server, dicom, {"filename": "ct.dcm", "filetype": "application/dicom"})
    photo = phone_jpeg(tmp_path)
    meta = {
        "filename": "IMG_0001.jpg", "filetype": "image/jpeg", "patient_id": "PHOTO-77",
        "patient_name": "Doe^Jane",
        "patient_birth_date": "19800102", "patient_sex": "F", "study_description": "Wound check",
    }  # fmt: skip
    photo_id = tus_upload(server, photo, meta)

    dicom_status = wait_status(server, dicom_id, delivered)
    source = pydicom.dcmread(dicom)
    assert dicom_status["kind"] == "dicom"
    assert dicom_status["sop_instance_uid"] == source.SOPInstanceUID
    assert dicom_status["destinations"][0]["state"] == "delivered"
    stored = pacs.find_instance(source.SOPInstanceUID)
    assert stored is not None
    assert sha256(pacs.get_file(stored)) == sha256(dicom.read_bytes())  # relayed byte for byte

    photo_status = wait_status(server, photo_id, delivered)
    assert photo_status["kind"] == "jpeg"
    tags = pacs.instance_tags(pacs.find_instance(photo_status["sop_instance_uid"]))
    assert tags["PatientID"] == "PHOTO-77"
    assert tags["StudyInstanceUID"] == photo_status["study_instance_uid"]
    assert tags["SOPClassUID"] == "1.2.840.10008.5.1.4.1.1.7"
    assert pacs.count_instances() == 2


def test_a_batch_of_photos_lands_in_one_series(relay_server, pacs: Any, tmp_path: Path) -> None:
    server = relay_server(env=pipeline_env(pacs)).start()
    meta = {"patient_id": "BATCH-1", "batch_id": "visit-42", "filetype": "image/jpeg"}
    ids = [
        tus_upload(server, phone_jpeg(tmp_path, f"p{i}.jpg"), {**meta, "filename": f"p{i}.jpg"})
        for i in range(3)
    ]
    statuses = [wait_status(server, upload_id, delivered) for upload_id in ids]
    assert len({s["study_instance_uid"] for s in statuses}) == 1
    assert len({s["series_instance_uid"] for s in statuses}) == 1
    numbers = sorted(
        int(pacs.instance_tags(pacs.find_instance(s["sop_instance_uid"]))["InstanceNumber"]) for s in statuses
    )
    assert numbers == [1, 2, 3]
    import httpx

    batch = httpx.get(f"{server.base_url}/batches/visit-42/status", timeout=10).json()
    assert sorted(u["upload_id"] for u in batch["uploads"]) == sorted(ids)


def test_pacs_down_during_delivery_then_back_delivers_once(relay_server, pacs: Any, tmp_path: Path) -> None:
    server = relay_server(env=pipeline_env(pacs)).start()
    pacs.stop()
    dicom = fresh_dicom(tmp_path)
    upload_id = tus_upload(server, dicom, {"filename": "ct.dcm"})
    waiting = wait_status(server, upload_id, retrying)
    assert waiting["state"] == "delivering"
    assert waiting["destinations"][0]["transient"] is True
    pacs.start()
    done = wait_status(server, upload_id, delivered)
    assert done["destinations"][0]["attempts"] >= 2
    assert pacs.count_instances() == 1
    assert pacs.find_instance(pydicom.dcmread(dicom).SOPInstanceUID) is not None


def test_sigkill_with_work_pending_completes_after_restart(relay_server, pacs: Any, tmp_path: Path) -> None:
    server = relay_server(env=pipeline_env(pacs)).start()
    pacs.stop()
    photo_id = tus_upload(server, phone_jpeg(tmp_path), {"filename": "a.jpg", "patient_id": "KILL-1"})
    dicom_id = tus_upload(server, fresh_dicom(tmp_path), {"filename": "ct.dcm"})
    before = wait_status(server, photo_id, retrying)
    wait_status(server, dicom_id, retrying)
    server.kill()
    # a crash between the final PATCH and the first record write leaves a finished upload without a
    # record: recovery must find it from the store alone
    (server.data_dir / "uploads" / ".documents" / "records" / f"{dicom_id}.json").unlink()
    pacs.start()
    server.start()
    after = wait_status(server, photo_id, delivered)
    assert after["sop_instance_uid"] == before["sop_instance_uid"]  # not wrapped again with new UIDs
    wait_status(server, dicom_id, delivered)
    assert pacs.count_instances() == 2


def test_operator_sees_and_redrives_a_failed_delivery(relay_server, pacs: Any, tmp_path: Path) -> None:
    import subprocess
    import sys

    env = pipeline_env(pacs, RELAYPACS_DELIVERY_MAX_ATTEMPTS="2")
    server = relay_server(env=env).start()
    pacs.stop()
    upload_id = tus_upload(server, fresh_dicom(tmp_path, patient_id="SECRET-PID"), {"filename": "ct.dcm"})
    failed = wait_status(server, upload_id, lambda s: s["state"] == "failed")
    assert "could not deliver to orthanc" in failed["reason"]
    cli_env = {**server.env, "RELAYPACS_DATA_DIR": str(server.data_dir)}
    import os

    listing = subprocess.run(
        [sys.executable, "-m", "relaypacs_tus", "deliveries", "list", "--state", "failed", "--json"],
        env={**os.environ, **cli_env}, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    rows = [json.loads(line) for line in listing.stdout.splitlines()]
    assert [r["upload_id"] for r in rows] == [upload_id]
    assert "SECRET-PID" not in listing.stdout
    pacs.start()
    subprocess.run(
        [sys.executable, "-m", "relaypacs_tus", "deliveries", "retry", upload_id],
        env={**os.environ, **cli_env}, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    wait_status(server, upload_id, delivered)
    assert pacs.count_instances() == 1
    assert status(server, upload_id)["reason"] is None
