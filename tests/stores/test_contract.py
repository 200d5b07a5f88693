"""The store contract (relaypacs_tus.tus.store): one suite, run against the local store and the S3 store.

Sizes cross the S3 part boundary (5 MiB parts here) so that parts, the tail object and their hand-over
are exercised, not just small bodies that fit in one request.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from relaypacs_tus.tus import errors
from relaypacs_tus.tus.store import Documents, UploadInfo

from .harness import (
    MiB,
    StoreSpec,
    body,
    open_store,
    pattern,
    read_all,
    stored_bytes,
    verifier_for,
    wrong_verifier,
)

pytestmark = pytest.mark.anyio


def new_info(size: int | None, **kwargs: Any) -> UploadInfo:
    now = time.time()
    return UploadInfo(id=uuid.uuid4().hex, size=size, created_at=now, updated_at=now, **kwargs)


async def created(store: Any, size: int | None, **kwargs: Any) -> UploadInfo:
    info = new_info(size, **kwargs)
    await store.create(info)
    return await store.get(info.id)


async def append(store: Any, upload_id: str, data: bytes, **kwargs: Any) -> int:
    """Append from the store's own view of the upload (as the engine does); returns the new offset."""
    info = await store.get(upload_id)
    return int(await store.append(info, body(data, **kwargs.pop("body", {})), **kwargs))


async def finish(store: Any, upload_id: str) -> UploadInfo:
    info = await store.get(upload_id)
    await store.finish(info)
    return await store.get(upload_id)


# -- create / get / save_info --------------------------------------------------------------------------


async def test_create_then_get(store: Any) -> None:
    info = new_info(
        1234, metadata_header="filename c2Nhbi5kY20=", metadata={"filename": "scan.dcm"}, owner="u1"
    )
    await store.create(info)
    got = await store.get(info.id)
    assert (got.id, got.size, got.offset) == (info.id, 1234, 0)
    assert got.metadata == {"filename": "scan.dcm"}
    assert got.owner == "u1"
    assert got.storage["Type"] == store.name
    assert not got.finished
    assert not got.is_gone


async def test_unknown_and_malformed_ids_are_not_found(store: Any) -> None:
    with pytest.raises(errors.UploadNotFound):
        await store.get(uuid.uuid4().hex)
    for bad in ("../" + "a" * 29, "a" * 31 + "/", "..", "A" * 32, "a" * 32 + ".info"):
        with pytest.raises(errors.UploadNotFound):
            await store.get(bad)


async def test_save_info_round_trip_keeps_the_offset(store: Any) -> None:
    info = await created(store, None)
    data = pattern(6 * MiB + 123)
    await append(store, info.id, data)
    info = await store.get(info.id)
    info.size = 9 * MiB
    info.metadata = {"filename": "x.jpg", "filetype": "image/jpeg"}
    info.extra = {"token_id": "t1", "binding": {"patient_id": "P1"}}
    info.final_uploads = ["f" * 32]
    await store.save_info(info)
    again = await store.get(info.id)
    assert again.size == 9 * MiB
    assert again.metadata == info.metadata
    assert again.extra == info.extra
    assert again.final_uploads == ["f" * 32]
    assert again.offset == len(data)


# -- append --------------------------------------------------------------------------------------------


async def test_appends_move_the_offset(store: Any) -> None:
    data = pattern(13 * MiB + 77)
    info = await created(store, len(data))
    cuts = [0, 1000, 1000 + 3 * MiB, 1000 + 9 * MiB, len(data)]
    for start, end in itertools.pairwise(cuts):
        assert await append(store, info.id, data[start:end]) == end
        assert (await store.get(info.id)).offset == end
    assert (await finish(store, info.id)).offset == len(data)
    assert await read_all(store, info.id) == data


async def test_interrupted_body_keeps_what_arrived(store: Any) -> None:
    data = pattern(14 * MiB + 5)
    info = await created(store, len(data))
    await append(store, info.id, data[: 2 * MiB])  # a tail to start from
    arrived = 11 * MiB + 333  # two full parts and a remainder
    with pytest.raises(errors.ClientDisconnected):
        await append(store, info.id, data[2 * MiB :], body={"fail_after": arrived})
    assert (await store.get(info.id)).offset == 2 * MiB + arrived
    with pytest.raises(errors.ClientDisconnected):
        await append(store, info.id, data[2 * MiB + arrived :], body={"fail_after": 10})
    offset = (await store.get(info.id)).offset
    assert offset == 2 * MiB + arrived + 10
    await append(store, info.id, data[offset:])
    await finish(store, info.id)
    assert await read_all(store, info.id) == data


async def test_cancelled_append_leaves_a_resumable_upload(spec: StoreSpec) -> None:
    """The append's task is cancelled mid-body (shutdown): what is kept is consistent and resumable."""
    data = pattern(16 * MiB, seed=4)
    sent = anyio.Event()

    async def hanging() -> AsyncIterator[bytes]:
        for start in range(0, 9 * MiB, 256 * 1024):
            yield data[start : start + 256 * 1024]
        sent.set()
        await anyio.sleep_forever()

    async with open_store(spec) as store:
        info = await created(store, len(data))
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.append, info, hanging())
            with anyio.fail_after(60):
                await sent.wait()
                while await stored_bytes(spec, info.id) < 5 * MiB:
                    await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
    async with open_store(spec) as fresh:
        offset = (await fresh.get(info.id)).offset
        assert 0 <= offset <= 9 * MiB
        await append(fresh, info.id, data[offset:])
        await finish(fresh, info.id)
        assert await read_all(fresh, info.id) == data


async def test_resume_from_a_new_store_instance(spec: StoreSpec) -> None:
    data = pattern(12 * MiB + 1)
    async with open_store(spec) as first:
        info = await created(first, len(data))
        with pytest.raises(errors.ClientDisconnected):
            await append(first, info.id, data, body={"fail_after": 7 * MiB + 5})
    async with open_store(spec) as second:  # as after a process kill: nothing shared but the storage
        offset = (await second.get(info.id)).offset
        assert offset == 7 * MiB + 5
        await append(second, info.id, data[offset:])
        assert (await finish(second, info.id)).finished
        assert await read_all(second, info.id) == data


async def test_deferred_length(store: Any) -> None:
    data = pattern(5 * MiB + 10)
    info = await created(store, None)
    await append(store, info.id, data[:100])
    info = await store.get(info.id)
    info.size = len(data)
    await store.save_info(info)
    await append(store, info.id, data[100:])
    await finish(store, info.id)
    assert await read_all(store, info.id) == data


# -- checksum chunks -----------------------------------------------------------------------------------


async def test_checksum_match_commits_the_chunk(store: Any) -> None:
    data = pattern(8 * MiB)
    info = await created(store, len(data))
    chunk = data[: 6 * MiB + 1]
    assert await append(store, info.id, chunk, verifier=verifier_for(chunk)) == len(chunk)
    rest = data[len(chunk) :]
    assert await append(store, info.id, rest, verifier=verifier_for(rest, "crc32")) == len(data)
    await finish(store, info.id)
    assert await read_all(store, info.id) == data


async def test_checksum_mismatch_keeps_nothing(store: Any) -> None:
    data = pattern(16 * MiB + 9)
    info = await created(store, len(data))
    await append(store, info.id, data[: 3 * MiB])  # an earlier tail that must survive the bad chunk
    bad = data[3 * MiB : 15 * MiB]  # crosses two part boundaries
    with pytest.raises(errors.ChecksumMismatch):
        await append(store, info.id, bad, verifier=wrong_verifier())
    assert (await store.get(info.id)).offset == 3 * MiB
    small = data[3 * MiB : 3 * MiB + 100]
    with pytest.raises(errors.ChecksumMismatch):
        await append(store, info.id, small, verifier=wrong_verifier("md5"))
    assert (await store.get(info.id)).offset == 3 * MiB
    assert await append(store, info.id, bad, verifier=verifier_for(bad)) == 15 * MiB
    rest = data[15 * MiB :]
    await append(store, info.id, rest, verifier=verifier_for(rest))
    await finish(store, info.id)
    assert await read_all(store, info.id) == data


async def test_interrupted_checksum_chunk_keeps_nothing(store: Any) -> None:
    data = pattern(12 * MiB)
    info = await created(store, len(data))
    await append(store, info.id, data[:MiB])
    chunk = data[MiB:]
    with pytest.raises(errors.ClientDisconnected):
        await append(store, info.id, chunk, verifier=verifier_for(chunk), body={"fail_after": 10 * MiB})
    assert (await store.get(info.id)).offset == MiB
    await append(store, info.id, chunk, verifier=verifier_for(chunk))
    await finish(store, info.id)
    assert await read_all(store, info.id) == data


async def test_crash_mid_checksum_chunk_recovers_to_last_verified_offset(spec: StoreSpec) -> None:
    """A process dies (SIGKILL) while a checksummed chunk is half stored: a new instance reports the offset
    before the chunk, and the chunk sent again completes the upload intact."""
    data = pattern(16 * MiB, seed=7)
    async with open_store(spec) as store:
        info = await created(store, len(data))
        await append(store, info.id, data[: 2 * MiB], verifier=verifier_for(data[: 2 * MiB]))
    before = await stored_bytes(spec, info.id)
    chunk_len = 12 * MiB
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.stores.crash_append", spec.to_json(), info.id, str(chunk_len), "7"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        with anyio.fail_after(60):
            while await stored_bytes(spec, info.id) < before + 5 * MiB:  # part of the chunk is stored
                assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
                await anyio.sleep(0.05)
    finally:
        child.kill()
        child.wait()
    async with open_store(spec) as fresh:
        assert (await fresh.get(info.id)).offset == 2 * MiB
        chunk = data[2 * MiB : 2 * MiB + chunk_len]
        # the child sent other bytes than these: had any of them been kept, the final read would differ
        assert await append(fresh, info.id, chunk, verifier=verifier_for(chunk)) == 2 * MiB + chunk_len
        await append(fresh, info.id, data[2 * MiB + chunk_len :])
        await finish(fresh, info.id)
        assert await read_all(fresh, info.id) == data


# -- finish / read / zero length -----------------------------------------------------------------------


async def test_zero_length_upload(store: Any) -> None:
    info = await created(store, 0)
    done = await finish(store, info.id)
    assert done.finished
    assert done.offset == 0
    assert await read_all(store, info.id) == b""


async def test_small_upload_in_one_patch(store: Any) -> None:
    data = pattern(4000)
    info = await created(store, len(data), metadata={"filetype": "application/dicom"})
    assert await append(store, info.id, data) == len(data)
    assert (await finish(store, info.id)).offset == len(data)
    assert await read_all(store, info.id) == data


async def test_finished_upload_reports_its_size(store: Any) -> None:
    data = pattern(5 * MiB + 3)
    info = await created(store, len(data))
    await append(store, info.id, data)
    done = await finish(store, info.id)
    assert await append(store, info.id, b"") == len(data)  # a retried, empty last PATCH changes nothing
    assert await read_all(store, info.id) == data
    assert done.finished
    assert done.offset == len(data)
    assert done.is_complete


# -- delete / tombstones / list ------------------------------------------------------------------------


async def test_delete_with_tombstone(store: Any) -> None:
    info = await created(store, 10 * MiB)
    await append(store, info.id, pattern(6 * MiB))
    await store.delete(info.id, tombstone="terminated")
    gone = await store.get(info.id)
    assert gone.is_gone
    assert gone.state == "terminated"
    assert info.id in [i async for i in store.list_ids()]
    await store.delete(info.id)  # the sweeper drops old tombstones
    with pytest.raises(errors.UploadNotFound):
        await store.get(info.id)


async def test_delete_finished_upload(store: Any) -> None:
    info = await created(store, 3)
    await append(store, info.id, b"abc")
    await finish(store, info.id)
    await store.delete(info.id, tombstone="expired")
    assert (await store.get(info.id)).state == "expired"


async def test_read_after_delete_is_not_found(store: Any) -> None:
    info = await created(store, 3)
    await append(store, info.id, b"abc")
    await finish(store, info.id)
    await store.delete(info.id, tombstone="terminated")
    with pytest.raises(errors.UploadNotFound):
        await read_all(store, info.id)


async def test_list_ids(store: Any) -> None:
    ids = {(await created(store, 5)).id for _ in range(3)}
    if isinstance(store, Documents):
        await store.put_document("records/" + next(iter(ids)) + ".json", b"{}")
    listed = [i async for i in store.list_ids()]
    assert set(listed) == ids
    assert len(listed) == 3


# -- documents -----------------------------------------------------------------------------------------


async def test_documents(store: Any) -> None:
    assert isinstance(store, Documents)
    await store.put_document("records/a.json", b'{"v":1}')
    await store.put_document("records/a.json", b'{"v":2}')
    await store.put_document("records/sub/b.json", b"b")
    await store.put_document("audit/0001.log", b"log")
    assert await store.get_document("records/a.json") == b'{"v":2}'
    assert sorted([k async for k in store.list_documents("records/")]) == [
        "records/a.json",
        "records/sub/b.json",
    ]
    assert sorted([k async for k in store.list_documents("")]) == [
        "audit/0001.log",
        "records/a.json",
        "records/sub/b.json",
    ]
    await store.delete_document("records/a.json")
    with pytest.raises(KeyError):
        await store.get_document("records/a.json")
    assert [i async for i in store.list_ids()] == []


async def test_document_keys_cannot_escape(store: Any) -> None:
    for bad in ("../x", "a/../../x", "/abs", "a//b", "dir/", ".hidden", ""):
        with pytest.raises(ValueError, match="invalid document key"):
            await store.put_document(bad, b"x")
        with pytest.raises(ValueError, match="invalid document key"):
            await store.get_document(bad)
