"""The status API's ownership rule and document shape (contracts.md section 4), over the real local store.
The principal is put in the ASGI scope the way the auth middleware does (tests/security covers auth)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from relaypacs_tus.hooks.records import Batch, DestinationState, ProcessingRecord, RecordStore
from relaypacs_tus.stores.local import LocalStore
from relaypacs_tus.tus.routes import PRINCIPAL_SCOPE_KEY
from relaypacs_tus.tus.store import UploadInfo
from relaypacs_tus.web.status import StatusApi

pytestmark = pytest.mark.anyio
KEYS = {
    "upload_id", "state", "offset", "size", "kind", "batch_id", "sop_instance_uid", "study_instance_uid",
    "series_instance_uid", "destinations", "reason", "created_at", "updated_at",
}  # fmt: skip


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _bytes(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _as_principal(app: Any) -> Any:
    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers") or [])
        if b"x-principal" in headers:
            scope[PRINCIPAL_SCOPE_KEY] = headers[b"x-principal"].decode()
        await app(scope, receive, send)

    return asgi


async def test_owner_sees_status_others_get_404(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "uploads")
    records = RecordStore(store)
    now = time.time()
    mine = UploadInfo(id="a" * 32, size=4, metadata={"batch_id": "b1", "patient_id": "SECRET"}, owner="alice",
                      created_at=now)  # fmt: skip
    receiving = UploadInfo(id="b" * 32, size=10, metadata={"batch_id": "b1"}, owner="alice", created_at=now)
    theirs = UploadInfo(id="c" * 32, size=4, metadata={"batch_id": "b1"}, owner="bob", created_at=now)
    for info in (mine, receiving, theirs):
        await store.create(info)
    mine.offset = await store.append(mine, _bytes(b"abcd"))
    await store.finish(mine)
    await records.put(
        ProcessingRecord(
            upload_id=mine.id,
            owner="alice",
            state="delivering",
            kind="dicom",
            batch_id="b1",
            instance={
                "sop_instance_uid": "1.2.3",
                "study_instance_uid": "1.2",
                "series_instance_uid": "1.2.4",
            },
            destinations=[
                DestinationState("orthanc", "retrying", 2, now + 30, None, "PACS unreachable", True)
            ],
            created_at=now,
            updated_at=now,
        )
    )
    await records.put_batch(Batch("b1", "alice", members=[mine.id, receiving.id, theirs.id]))
    api = StatusApi()
    api.bind(store, records)
    app = _as_principal(Starlette(routes=api.routes()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        alice = {"X-Principal": "alice"}
        body = (await http.get(f"/uploads/{mine.id}/status", headers=alice)).json()
        assert set(body) == KEYS
        assert (body["state"], body["offset"], body["kind"], body["sop_instance_uid"]) == (
            "delivering",
            4,
            "dicom",
            "1.2.3",
        )
        assert body["destinations"][0]["state"] == "retrying"
        assert body["destinations"][0]["next_attempt_at"].endswith("Z")
        assert "SECRET" not in str(body)
        assert (await http.get(f"/uploads/{receiving.id}/status", headers=alice)).json()[
            "state"
        ] == "receiving"
        assert (await http.get(f"/uploads/{theirs.id}/status", headers=alice)).status_code == 404
        assert (await http.get(f"/uploads/{'d' * 32}/status", headers=alice)).status_code == 404
        assert (await http.get("/uploads/..%2F..%2Fetc/status", headers=alice)).status_code == 404
        batch = (await http.get("/batches/b1/status", headers=alice)).json()
        assert [u["upload_id"] for u in batch["uploads"]] == [mine.id, receiving.id]
        other = (await http.get("/batches/b1/status", headers={"X-Principal": "bob"})).json()
        assert other == {"batch_id": "b1", "uploads": []}  # bob's batch "b1" is another batch
