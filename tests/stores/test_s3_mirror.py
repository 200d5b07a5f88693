"""The S3 store's per-process mirror of each upload (stores/s3_mirror.py) against a real SeaweedFS: the
requests a PATCH costs, uploads that never need a multipart upload, new processes that have no mirror,
and memory that stays bounded whatever the number of uploads."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from relaypacs_tus.stores import s3_objects, s3_writer
from relaypacs_tus.stores.s3 import S3Store
from relaypacs_tus.stores.s3_layout import S3State
from relaypacs_tus.stores.s3_mirror import Mirror, Mirrors
from relaypacs_tus.stores.s3_objects import Doc
from relaypacs_tus.tus import errors

from .harness import PART, MiB, StoreSpec, open_store, pattern, raw_client, read_all, verifier_for
from .test_contract import append, created, finish, new_info
from .test_s3 import info_json, keys, multipart_uploads

pytestmark = [pytest.mark.anyio, pytest.mark.s3]


class Requests:
    """The S3 operations a client sends, by name, as botocore announces them."""

    def __init__(self, client: Any) -> None:
        self.sent: list[str] = []
        client.meta.events.register("before-call.s3", self._record)

    def _record(self, model: Any, **_: Any) -> None:
        self.sent.append(model.name)

    def take(self) -> list[str]:
        sent, self.sent = self.sent, []
        return sent


@contextlib.asynccontextmanager
async def store_with(spec: StoreSpec, mirrors: Mirrors) -> AsyncIterator[S3Store]:
    async with raw_client(spec) as client:
        yield S3Store(
            client, bucket=spec.bucket, prefix=spec.prefix, part_size=spec.part_size, mirrors=mirrors
        )


# -- requests ------------------------------------------------------------------------------------------


async def test_a_patch_costs_its_part_uploads_and_nothing_else(s3: StoreSpec) -> None:
    data = pattern(4 * PART + 1000)
    async with open_store(s3) as store:
        requests = Requests(store.client)
        info = await created(store, len(data))
        assert requests.take() == ["PutObject"]  # .info; the multipart upload comes with the first part
        await append(store, info.id, data[:PART])
        assert requests.take() == ["CreateMultipartUpload", "PutObject", "UploadPart"]
        await append(store, info.id, data[PART : 3 * PART])
        assert requests.take() == ["UploadPart", "UploadPart"]
        await append(store, info.id, data[3 * PART :])
        assert requests.take() == ["UploadPart", "UploadPart"]  # the last 1000 bytes: the final part
        done = await finish(store, info.id)
        assert requests.take() == ["CompleteMultipartUpload"]
        done.accepted = True
        await store.save_info(done)
        assert requests.take() == ["PutObject"]
        assert await read_all(store, info.id) == data


async def test_a_checksum_chunk_writes_its_marker_with_the_multipart_id(s3: StoreSpec) -> None:
    data = pattern(2 * PART)
    async with open_store(s3) as store:
        requests = Requests(store.client)
        info = await created(store, len(data))
        requests.take()
        chunk = data[:PART]
        await append(store, info.id, chunk, verifier=verifier_for(chunk))
        # one .info write before the part (multipart id and pending marker), one after (marker cleared)
        assert requests.take() == ["CreateMultipartUpload", "PutObject", "UploadPart", "PutObject"]
        assert (await info_json(s3, info.id))["S3"]["PendingFromPart"] is None


async def test_a_small_upload_is_one_put_of_the_final_object(s3: StoreSpec) -> None:
    data = pattern(4096)
    async with open_store(s3) as store:
        requests = Requests(store.client)
        info = await created(store, len(data), metadata={"filetype": "application/dicom"})
        await append(store, info.id, data)
        done = await finish(store, info.id)
        done.accepted = True
        await store.save_info(done)
        assert requests.take() == ["PutObject", "PutObject", "PutObject"]  # .info, the object, .info
        assert await read_all(store, info.id) == data
    key = s3.prefix + info.id
    assert await keys(s3) == {key, key + ".info"}
    assert await multipart_uploads(s3) == []
    async with raw_client(s3) as raw:
        assert (await raw.head_object(Bucket=s3.bucket, Key=key))["ContentType"] == "application/dicom"


async def test_an_upload_without_a_multipart_upload_resumes_in_a_new_process(s3: StoreSpec) -> None:
    """Bytes under the part size wait in the tail; a new process finds them and puts the whole upload."""
    data = pattern(3 * MiB + 7)
    async with open_store(s3) as first:
        info = await created(first, len(data))
        await append(first, info.id, data[:MiB])
    assert await multipart_uploads(s3) == []
    async with open_store(s3) as second:
        assert (await second.get(info.id)).offset == MiB
        await append(second, info.id, data[MiB : 2 * MiB])
        await append(second, info.id, data[2 * MiB :])
        assert (await finish(second, info.id)).finished
        assert await read_all(second, info.id) == data
    key = s3.prefix + info.id
    assert await keys(s3) == {key, key + ".info"}  # the tail is gone
    assert await multipart_uploads(s3) == []


async def test_a_new_process_continues_where_a_live_one_stopped(s3: StoreSpec) -> None:
    """The first process's PATCHes all succeeded (its mirror was never re-read): the objects alone tell
    a second process the same offset, parts, tail and checksum state."""
    data = pattern(3 * PART + 123, seed=5)
    async with open_store(s3) as first:
        info = await created(first, len(data))
        chunk = data[: PART + MiB]
        await append(first, info.id, chunk, verifier=verifier_for(chunk))
        await append(first, info.id, data[PART + MiB : 2 * PART + 2 * MiB])
        offset = (await first.get(info.id)).offset
    async with open_store(s3) as second:
        assert (await second.get(info.id)).offset == offset == 2 * PART + 2 * MiB
        await append(second, info.id, data[offset:])
        await finish(second, info.id)
        assert await read_all(second, info.id) == data


# -- bounds --------------------------------------------------------------------------------------------


async def test_mirrors_stay_bounded_and_evicted_uploads_read_back(s3: StoreSpec) -> None:
    mirrors = Mirrors(max_uploads=4, max_parts=3)
    async with store_with(s3, mirrors) as store:
        small = [await created(store, 10) for _ in range(10)]
        for i, info in enumerate(small):
            await append(store, info.id, bytes([i]) * 5)
        assert len(mirrors) == 4
        assert [(await store.get(info.id)).offset for info in small] == [5] * 10
        big = await created(store, 5 * PART)
        await append(store, big.id, pattern(4 * PART))  # four parts: more than the store keeps
        assert mirrors.parts() <= 3
        assert (await store.get(big.id)).offset == 4 * PART
        await append(store, big.id, pattern(PART, seed=1))
        await finish(store, big.id)
        assert mirrors.parts() == 0  # a finished upload keeps no parts
        for info in small:
            await store.delete(info.id)
        await store.delete(big.id, tombstone="terminated")
        assert len(mirrors) == 0


async def test_an_idle_mirror_is_listed_again(s3: StoreSpec) -> None:
    """A lifecycle rule aborts the multipart upload of an upload idle for days: once its mirror is older
    than ``max_idle``, the process that wrote it lists the objects again and answers 404."""
    now = [0.0]
    mirrors = Mirrors(max_idle=600.0, clock=lambda: now[0])
    async with store_with(s3, mirrors) as store:
        info = await created(store, 20 * MiB)
        await append(store, info.id, pattern(6 * MiB))
        for up in await multipart_uploads(s3):
            async with raw_client(s3) as raw:
                await raw.abort_multipart_upload(Bucket=s3.bucket, Key=up["Key"], UploadId=up["UploadId"])
        now[0] = 601.0
        with pytest.raises(errors.UploadNotFound):
            await store.get(info.id)


def test_mirrors_forget_the_least_recently_used_first() -> None:
    mirrors = Mirrors(max_uploads=2)
    a, b, c = (Mirror(Doc(new_info(1), S3State())) for _ in range(3))
    mirrors.put("a", a)
    mirrors.put("b", b)
    assert mirrors.get("a") is a  # now "b" is the least recently used
    mirrors.put("c", c)
    assert (mirrors.get("a"), mirrors.get("b"), mirrors.get("c")) == (a, None, c)
    mirrors.drop("a", b)  # not its mirror: kept
    assert mirrors.get("a") is a
    mirrors.drop("a")
    assert mirrors.get("a") is None


async def test_a_failed_write_forgets_the_mirror(s3: StoreSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a write that failed the next request lists the objects again: the refused part never counts,
    its number is never used again, and the upload carries on."""
    data = pattern(3 * PART)
    async with open_store(s3) as store:
        info = await created(store, len(data))
        await append(store, info.id, data[:PART])
        with monkeypatch.context() as patched:  # S3 refuses the part (BadDigest)
            patched.setattr(s3_writer, "md5_header", lambda digest: s3_objects.md5_header(bytes(16)))
            with pytest.raises(errors.StoreUnavailable):
                await append(store, info.id, data[PART : 2 * PART])
        requests = Requests(store.client)
        assert (await store.get(info.id)).offset == PART
        assert "ListParts" in requests.take()
        await append(store, info.id, data[PART:])
        await finish(store, info.id)
        assert await read_all(store, info.id) == data
    assert (await info_json(s3, info.id))["S3"]["DiscardedParts"] == [[2, 2]]


async def test_a_body_longer_than_the_upload_is_refused_at_its_end(s3: StoreSpec) -> None:
    """The engine never passes such bytes on (its body reader stops at the length); the store keeps the
    bytes that fit and refuses the rest, so a buffer sized to what the upload still needs never grows."""
    data = pattern(3 * MiB + 100)
    async with open_store(s3) as store:
        info = await created(store, 3 * MiB)
        with pytest.raises(errors.UploadSizeExceeded):
            await append(store, info.id, data)
        got = await store.get(info.id)
        assert (got.offset, got.finished) == (3 * MiB, True)  # the 3 MiB that fit went up whole
        assert await read_all(store, info.id) == data[: 3 * MiB]
