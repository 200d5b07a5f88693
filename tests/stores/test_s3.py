"""S3 store behaviour beyond the shared contract, against a real SeaweedFS: the tusd-like object layout,
part numbers never reused, bounded memory, crash windows of finishing, failures mapped to the tus catalogue.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aioboto3
import anyio
import pytest
from botocore.config import Config

from relaypacs_tus.stores.s3 import S3Store
from relaypacs_tus.stores.s3_errors import BucketUnavailable
from relaypacs_tus.tus import errors

from .harness import (
    PART,
    MiB,
    StoreSpec,
    open_store,
    pattern,
    raw_client,
    read_all,
    stored_bytes,
    verifier_for,
    wrong_verifier,
)
from .test_contract import append, created, finish

pytestmark = [pytest.mark.anyio, pytest.mark.s3]


async def keys(spec: StoreSpec) -> set[str]:
    async with raw_client(spec) as s3:
        resp = await s3.list_objects_v2(Bucket=spec.bucket)
        return {o["Key"] for o in resp.get("Contents", [])}


async def info_json(spec: StoreSpec, upload_id: str) -> dict[str, Any]:
    async with raw_client(spec) as s3:
        resp = await s3.get_object(Bucket=spec.bucket, Key=f"{spec.prefix}{upload_id}.info")
        return dict(json.loads(await resp["Body"].read()))


async def part_numbers(spec: StoreSpec, upload_id: str) -> list[int]:
    multipart_id = (await info_json(spec, upload_id))["S3"]["MultipartUploadId"]
    async with raw_client(spec) as s3:
        resp = await s3.list_parts(Bucket=spec.bucket, Key=spec.prefix + upload_id, UploadId=multipart_id)
        return [int(p["PartNumber"]) for p in resp.get("Parts", [])]


async def multipart_uploads(spec: StoreSpec) -> list[dict[str, Any]]:
    async with raw_client(spec) as s3:
        return list((await s3.list_multipart_uploads(Bucket=spec.bucket)).get("Uploads", []))


# -- layout --------------------------------------------------------------------------------------------


async def test_layout_follows_tusd(s3: StoreSpec) -> None:
    data = pattern(12 * MiB)
    async with open_store(s3) as store:
        info = await created(store, len(data), metadata={"filetype": "image/jpeg", "patient_name": "Doe^J"})
        await append(store, info.id, data[: 7 * MiB + 100])
        key = s3.prefix + info.id
        assert await keys(s3) == {key + ".info", key + ".part"}
        stored = await info_json(s3, info.id)
        assert stored["storage"] == {"Type": "s3store", "Bucket": s3.bucket, "Key": key}
        assert stored["S3"]["MultipartUploadId"]
        assert await part_numbers(s3, info.id) == [1]
        async with raw_client(s3) as raw:
            tail = await raw.head_object(Bucket=s3.bucket, Key=key + ".part")
        assert tail["ContentLength"] == 2 * MiB + 100
        assert tail["Metadata"] == {"next-part": "2"}

        await append(store, info.id, data[7 * MiB + 100 :])
        await finish(store, info.id)
        assert await keys(s3) == {key + ".info", key}
        async with raw_client(s3) as raw:
            final = await raw.head_object(Bucket=s3.bucket, Key=key)
        assert final["ContentLength"] == len(data)
        assert final["ContentType"] == "image/jpeg"
        assert "patient" not in json.dumps(final["Metadata"])  # metadata values never reach object metadata
        assert await multipart_uploads(s3) == []
        await store.put_document("records/r.json", b"{}")
        assert s3.prefix + ".documents/records/r.json" in await keys(s3)


async def test_part_numbers_are_never_reused(s3: StoreSpec) -> None:
    """Resumes after failures of every kind continue above every number ever used, so SeaweedFS never
    holds two copies of one number, and the final object holds exactly the bytes that counted."""
    data = pattern(40 * MiB, seed=3)
    seen: list[int] = []

    async def check_numbers() -> None:
        numbers = await part_numbers(s3, info.id)
        assert len(numbers) == len(set(numbers)), f"a part number was used twice: {numbers}"
        new = [n for n in numbers if n not in seen]
        assert all(n > max(seen, default=0) for n in new), f"{new} reuses numbers below {max(seen)}"
        seen.extend(new)

    async with open_store(s3) as store:
        info = await created(store, len(data))
        await append(store, info.id, data[: 6 * MiB])
        await check_numbers()
        bad = data[6 * MiB : 17 * MiB]
        with pytest.raises(errors.ChecksumMismatch):
            await append(store, info.id, bad, verifier=wrong_verifier())
        await check_numbers()
        with pytest.raises(errors.ClientDisconnected):
            await append(store, info.id, data[6 * MiB :], body={"fail_after": 8 * MiB})
        await check_numbers()
        offset = (await store.get(info.id)).offset
        assert offset == 14 * MiB
        good = data[offset : offset + 6 * MiB]
        await append(store, info.id, good, verifier=verifier_for(good))
        await check_numbers()
        assert (await info_json(s3, info.id))["S3"]["DiscardedParts"]
    await crash_mid_chunk(s3, info.id)
    await check_numbers()
    async with open_store(s3) as fresh:
        offset = (await fresh.get(info.id)).offset
        assert offset == 20 * MiB
        await append(fresh, info.id, data[offset:])
        await check_numbers()
        await finish(fresh, info.id)
        assert await read_all(fresh, info.id) == data


async def crash_mid_chunk(spec: StoreSpec, upload_id: str) -> None:
    """A child process starts a 12 MiB checksummed append and is SIGKILLed once a part of it is stored."""
    before = await stored_bytes(spec, upload_id)
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.stores.crash_append", spec.to_json(), upload_id, str(12 * MiB), "99"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        with anyio.fail_after(60):
            while await stored_bytes(spec, upload_id) < before + PART:
                assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
                await anyio.sleep(0.05)
    finally:
        child.kill()
        child.wait()


# -- memory --------------------------------------------------------------------------------------------


async def test_memory_stays_near_two_parts_whatever_the_patch_size(s3: StoreSpec) -> None:
    total, chunk = 64 * MiB, 64 * 1024  # a 64 MiB PATCH arriving in the chunks a server hands over

    async def generated() -> AsyncIterator[bytes]:
        block = os.urandom(chunk)
        for _ in range(total // chunk):
            yield bytes(block)

    async with open_store(s3) as store:
        info = await created(store, total)
        tracemalloc.start()
        try:
            offset = await store.append(info, generated())
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert offset == total
        assert len(await part_numbers(s3, info.id)) == 13  # the last 4 MiB is the final part
    # two parts (one filling, one in flight) plus the HTTP client's small send buffers
    assert peak < 2 * PART + 4 * MiB, f"peak {peak / MiB:.1f} MiB for {PART // MiB} MiB parts"


# -- crash windows and inconsistencies -----------------------------------------------------------------


@pytest.mark.parametrize("size", [11 * MiB, 3 * MiB], ids=["multipart", "whole-object"])
async def test_completed_upload_whose_info_was_not_updated_reports_complete(s3: StoreSpec, size: int) -> None:
    """The process died right after CompleteMultipartUpload (or after the one PUT of an upload that never
    needed a part), before ``.info`` said "finished": a new process finds the final object and reports
    the upload complete."""
    data = pattern(size)
    async with open_store(s3) as store:
        info = await created(store, len(data))
        await append(store, info.id, data)
        await store.finish(await store.get(info.id))
    assert (await info_json(s3, info.id))["finished"] is False  # the engine's save_info never came
    async with open_store(s3) as fresh:
        got = await fresh.get(info.id)
        assert got.finished
        assert got.offset == len(data)
        await fresh.finish(got)  # finishing again is harmless
        await fresh.save_info(got)
        assert (await info_json(s3, info.id))["finished"] is True
        assert await read_all(fresh, info.id) == data


@pytest.mark.parametrize("size", [20 * MiB, None], ids=["known-length", "deferred-length"])
async def test_vanished_multipart_upload_is_not_taken_for_completion(s3: StoreSpec, size: int | None) -> None:
    """A lifecycle rule aborted the multipart upload: the upload is lost (404), for a new process at once,
    and for the process that was writing it as soon as its next write fails."""
    async with open_store(s3) as store:
        info = await created(store, size)
        await append(store, info.id, pattern(6 * MiB))
        for up in await multipart_uploads(s3):
            async with raw_client(s3) as raw:
                await raw.abort_multipart_upload(Bucket=s3.bucket, Key=up["Key"], UploadId=up["UploadId"])
        async with open_store(s3) as fresh:
            with pytest.raises(errors.UploadNotFound):
                await fresh.get(info.id)
        with pytest.raises(errors.StoreUnavailable):
            await append(store, info.id, pattern(6 * MiB, seed=1))
        with pytest.raises(errors.UploadNotFound):
            await store.get(info.id)


async def test_two_different_parts_under_one_number_fail_loudly(s3: StoreSpec) -> None:
    async with open_store(s3) as store:
        info = await created(store, 20 * MiB)
        await append(store, info.id, pattern(6 * MiB))
        multipart_id = (await info_json(s3, info.id))["S3"]["MultipartUploadId"]
        async with raw_client(s3) as raw:
            await raw.upload_part(
                Bucket=s3.bucket,
                Key=s3.prefix + info.id,
                UploadId=multipart_id,
                PartNumber=1,
                Body=pattern(PART, 9),
            )
    async with open_store(s3) as fresh:  # another writer is only ever seen by a process that lists anew
        with pytest.raises(errors.StoreUnavailable):
            await fresh.get(info.id)


async def test_delete_aborts_and_removes_everything_but_the_tombstone(s3: StoreSpec) -> None:
    async with open_store(s3) as store:
        info = await created(store, 20 * MiB)
        await append(store, info.id, pattern(7 * MiB))
        await store.delete(info.id, tombstone="expired")
        assert await multipart_uploads(s3) == []
        assert await keys(s3) == {f"{s3.prefix}{info.id}.info"}
        assert (await info_json(s3, info.id))["state"] == "expired"


# -- opening and failures ------------------------------------------------------------------------------


async def test_missing_bucket_is_named(s3_server: Any) -> None:
    name = f"no-such-{uuid.uuid4().hex[:12]}"
    session = aioboto3.Session(
        aws_access_key_id=s3_server.access_key, aws_secret_access_key=s3_server.secret_key
    )
    with pytest.raises(BucketUnavailable, match=name):
        async with S3Store.open(
            bucket=name, endpoint_url=s3_server.endpoint_url, region="us-east-1", session=session
        ):
            pass


async def test_wrong_credentials_are_reported(s3_server: Any, s3_bucket: str) -> None:
    session = aioboto3.Session(
        aws_access_key_id=s3_server.access_key, aws_secret_access_key="wrong-secret-key"
    )
    with pytest.raises(BucketUnavailable, match="access denied"):
        async with S3Store.open(
            bucket=s3_bucket, endpoint_url=s3_server.endpoint_url, region="us-east-1", session=session
        ):
            pass


async def test_credentials_come_from_the_environment(
    s3_server: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app's path: no session given, credentials and region the usual AWS way."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", s3_server.region)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    async with S3Store.open(
        bucket=s3_bucket, prefix="site-a", endpoint_url=s3_server.endpoint_url, region=None
    ) as store:
        info = await created(store, 3)
        assert await append(store, info.id, b"abc") == 3
        assert info.storage["Key"] == f"site-a/{info.id}"  # a prefix is a folder, as in tusd


async def test_missing_credentials_are_explained(
    s3_server: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(BucketUnavailable, match="no AWS credentials"):
        async with S3Store.open(bucket=s3_bucket, endpoint_url=s3_server.endpoint_url, region="us-east-1"):
            pass


async def test_unreachable_store_is_unavailable_not_missing() -> None:
    from tests.services.ports import free_port

    session = aioboto3.Session(aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1")
    config = Config(connect_timeout=1, read_timeout=1, retries={"mode": "standard", "max_attempts": 1})
    endpoint = f"http://127.0.0.1:{free_port()}"
    async with session.client("s3", endpoint_url=endpoint, config=config) as client:
        store = S3Store(client, bucket="b")
        with pytest.raises(errors.StoreUnavailable) as caught:
            await store.get(uuid.uuid4().hex)
        assert caught.value.__cause__ is not None
        with pytest.raises(errors.StoreUnavailable):
            await store.put_document("a", b"x")
        with pytest.raises(errors.StoreUnavailable):
            await read_all(store, uuid.uuid4().hex)


async def test_listings_follow_every_page(s3: StoreSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    from relaypacs_tus.stores import s3 as s3_module
    from relaypacs_tus.stores import s3_objects

    monkeypatch.setattr(s3_objects, "PARTS_PER_PAGE", 2)
    monkeypatch.setattr(s3_module, "KEYS_PER_PAGE", 2)
    data = pattern(16 * MiB, seed=8)
    async with open_store(s3) as store:
        info = await created(store, len(data))
        others = {(await created(store, 1)).id for _ in range(3)}
        await append(store, info.id, data[: 15 * MiB + 10])
        assert len(await part_numbers(s3, info.id)) == 3
        assert (await store.get(info.id)).offset == 15 * MiB + 10
        assert {i async for i in store.list_ids()} == {info.id, *others}
        await append(store, info.id, data[15 * MiB + 10 :])
        await finish(store, info.id)
        assert await read_all(store, info.id) == data


async def test_every_write_is_checked_by_content_md5(s3: StoreSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    """Payloads are not SHA-256-signed (that would hash on the event loop), so S3 must check each body
    against its Content-MD5: a digest that does not match the bytes is refused."""
    from relaypacs_tus.stores import s3_objects, s3_writer

    async with open_store(s3) as store:
        info = await created(store, 20 * MiB)
        real = s3_objects.md5_b64

        def wrong(data: bytes | bytearray) -> str:
            return real(bytes(data) + b"corrupted on the way")

        data = pattern(20 * MiB)
        with monkeypatch.context() as patched:  # a part's Content-MD5 comes from hashing it as it arrives
            patched.setattr(s3_writer, "md5_header", lambda digest: s3_objects.md5_header(bytes(16)))
            with pytest.raises(errors.StoreUnavailable):
                await append(store, info.id, data[: 6 * MiB])  # the part upload is refused
        assert (await store.get(info.id)).offset == 0
        monkeypatch.setattr(s3_objects, "md5_b64", wrong)
        with pytest.raises(errors.StoreUnavailable):
            await store.put_document("records/x.json", b"{}")
        monkeypatch.setattr(s3_objects, "md5_b64", real)
        await append(store, info.id, data)
        await finish(store, info.id)
        assert await read_all(store, info.id) == data
