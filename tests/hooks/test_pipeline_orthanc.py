"""The pipeline in process, over the real local store, delivering by STOW-RS to a real Orthanc."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pydicom
import pytest

from relaypacs_tus.hooks.config import PipelineConfig
from relaypacs_tus.hooks.pipeline import Pipeline
from relaypacs_tus.hooks.records import RecordStore
from relaypacs_tus.hooks.sources import StoreSource
from relaypacs_tus.hooks.worker import DeliveryWorker
from relaypacs_tus.pacs.auth import Basic
from relaypacs_tus.pacs.stowrs import StowRsDestination
from relaypacs_tus.stores.local import LocalStore
from relaypacs_tus.tus.store import UploadInfo
from tests.e2e.conftest import fresh_dicom, phone_jpeg

pytestmark = [pytest.mark.anyio, pytest.mark.orthanc]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def stored_upload(store: LocalStore, path: Path, metadata: dict[str, str], **extra: Any) -> UploadInfo:
    data = path.read_bytes()
    info = UploadInfo(
        id=f"{time.time_ns():032x}"[-32:], size=len(data), metadata=metadata, created_at=time.time()
    )
    info.extra.update(extra)
    await store.create(info)
    info.offset = await store.append(info, _one(data))
    await store.finish(info)
    return await store.get(info.id)


def make_pipeline(store: LocalStore, orthanc: Any, tmp_path: Path, audit: Any = None) -> Pipeline:
    destination = StowRsDestination(
        "orthanc", orthanc.dicomweb_url, auth=Basic(orthanc.username, orthanc.password), timeout=5
    )
    config = PipelineConfig(work_dir=tmp_path / "work", backoff=0.2, backoff_max=0.5, max_attempts=5)
    return Pipeline(
        RecordStore(store), StoreSource(store, tmp_path / "work"), [destination], config, audit=audit
    )


async def test_dicom_is_delivered_unchanged_and_audited(fresh_orthanc: Any, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "uploads")
    audit: list[tuple[str, dict[str, object]]] = []

    async def record(action: str, data: dict[str, object]) -> None:
        audit.append((action, data))

    pipeline = make_pipeline(store, fresh_orthanc, tmp_path, record)
    source = fresh_dicom(tmp_path)
    info = await stored_upload(store, source, {"filename": "ct.dcm"})
    assert await pipeline.check(info) is None
    assert await pipeline.process(info.id) is None
    rec = await pipeline.records.get(info.id)
    assert rec is not None
    assert rec.state == "delivered"
    uid = pydicom.dcmread(source).SOPInstanceUID
    assert fresh_orthanc.get_file(fresh_orthanc.find_instance(uid)) == source.read_bytes()
    assert [(a, d["destination"], d["sop_instance_uid"]) for a, d in audit] == [
        ("delivery.succeeded", "orthanc", uid)
    ]


async def test_outage_is_retried_with_backoff_and_delivers_once(fresh_orthanc: Any, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "uploads")
    pipeline = make_pipeline(store, fresh_orthanc, tmp_path)
    info = await stored_upload(store, phone_jpeg(tmp_path), {"filename": "a.jpg", "patient_id": "P-9"})
    assert await pipeline.check(info) is None
    fresh_orthanc.stop()
    due = await pipeline.process(info.id)
    assert due is not None
    assert due > time.time() - 1
    rec = await pipeline.records.get(info.id)
    assert rec is not None
    (dest,) = rec.destinations
    assert (dest.state, dest.attempts, dest.transient) == ("retrying", 1, True)
    uid = rec.instance["sop_instance_uid"]  # type: ignore[index]
    fresh_orthanc.start()
    while (due := await pipeline.process(info.id)) is not None:
        await anyio.sleep(max(0.0, due - time.time()))
    rec = await pipeline.records.get(info.id)
    assert rec is not None
    assert rec.state == "delivered"
    assert rec.instance["sop_instance_uid"] == uid  # type: ignore[index]
    assert fresh_orthanc.count_instances() == 1


async def test_upload_token_destinations_restrict_and_unknown_ones_fail(
    fresh_orthanc: Any, tmp_path: Path
) -> None:
    store = LocalStore(tmp_path / "uploads")
    audit: list[str] = []

    async def record(action: str, data: dict[str, object]) -> None:
        audit.append(action)

    pipeline = make_pipeline(store, fresh_orthanc, tmp_path, record)
    info = await stored_upload(store, fresh_dicom(tmp_path), {}, destinations=["elsewhere"])
    assert await pipeline.check(info) is None
    assert await pipeline.process(info.id) is None
    rec = await pipeline.records.get(info.id)
    assert rec is not None
    assert rec.state == "failed"
    assert rec.reason == "could not deliver to elsewhere: this destination is not configured"
    assert fresh_orthanc.count_instances() == 0


async def test_worker_recovers_a_finished_upload_without_a_record(fresh_orthanc: Any, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "uploads")
    pipeline = make_pipeline(store, fresh_orthanc, tmp_path)
    info = await stored_upload(store, fresh_dicom(tmp_path), {"filename": "ct.dcm"})  # never saw pre-finish
    worker = DeliveryWorker(pipeline, list_uploads=store.list_ids, rescan_interval=0.5)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        with anyio.fail_after(30):
            while (rec := await pipeline.records.get(info.id)) is None or rec.state != "delivered":
                await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    assert fresh_orthanc.count_instances() == 1
