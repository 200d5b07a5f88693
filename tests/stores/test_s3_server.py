"""The real server (subprocess) on store=s3 against SeaweedFS: a real tus client, expiry by the sweeper,
and a server process SIGKILLed in the middle of a large PATCH."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tusclient import client

from tests.services.waiting import wait_until

from .harness import MiB, pattern

pytestmark = pytest.mark.s3

TUS = {"Tus-Resumable": "1.0.0"}
PATCH = {**TUS, "Content-Type": "application/offset+octet-stream"}


def s3_env(s3_server: Any, bucket: str, **extra: str) -> dict[str, str]:
    return {
        **s3_server.env(bucket),
        "RELAYPACS_AUTH": "off",
        "RELAYPACS_S3_PREFIX": "uploads/",
        "RELAYPACS_S3_PART_SIZE": "5MiB",
        **extra,
    }


wait_for = wait_until


def object_bytes(s3_server: Any, bucket: str, key: str) -> bytes:
    return bytes(s3_server.client().get_object(Bucket=bucket, Key=key)["Body"].read())


def stored_parts(s3_server: Any, bucket: str, key: str) -> int:
    s3 = s3_server.client()
    total = 0
    for up in s3.list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads", []):
        if up["Key"] == key:
            parts = s3.list_parts(Bucket=bucket, Key=key, UploadId=up["UploadId"]).get("Parts", [])
            total += sum(int(p["Size"]) for p in parts)
    return total


def test_tus_client_upload_lands_in_the_bucket(
    relay_server: Any, s3_server: Any, s3_bucket: str, tmp_path: Path
):
    server = relay_server(env=s3_env(s3_server, s3_bucket)).start()
    source = tmp_path / "series.bin"
    source.write_bytes(pattern(11 * MiB + 12345, seed=5))
    uploader = client.TusClient(server.files_url).uploader(
        str(source), chunk_size=3 * MiB, upload_checksum=True, metadata={"filename": "series.bin"}
    )
    uploader.upload()
    upload_id = uploader.url.rsplit("/", 1)[1]
    stored = object_bytes(s3_server, s3_bucket, f"uploads/{upload_id}")
    assert hashlib.sha256(stored).digest() == hashlib.sha256(source.read_bytes()).digest()
    head = httpx.head(uploader.url, headers=TUS, timeout=10)
    assert head.headers["Upload-Offset"] == str(source.stat().st_size)


def test_expired_upload_is_aborted_and_answers_410(relay_server: Any, s3_server: Any, s3_bucket: str) -> None:
    env = s3_env(s3_server, s3_bucket, RELAYPACS_EXPIRATION="2", RELAYPACS_SWEEP_INTERVAL="1")
    server = relay_server(env=env).start()
    created = httpx.post(server.files_url, headers={**TUS, "Upload-Length": str(20 * MiB)}, timeout=10)
    assert created.status_code == 201, created.text
    location = created.headers["Location"]
    upload_id = location.rstrip("/").rsplit("/", 1)[1]
    patched = httpx.patch(
        location, headers={**PATCH, "Upload-Offset": "0"}, content=pattern(6 * MiB), timeout=30
    )
    assert patched.status_code == 204
    key = f"uploads/{upload_id}"
    s3 = s3_server.client()

    def multipart_uploads() -> list[Any]:
        return [u for u in s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) if u["Key"] == key]

    assert len(multipart_uploads()) == 1
    wait_for(lambda: not multipart_uploads(), 60, "the sweeper to abort the expired multipart upload")
    assert httpx.head(location, headers=TUS, timeout=10).status_code == 410
    remaining = {o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix=key).get("Contents", [])}
    assert remaining == {key + ".info"}  # the tombstone, nothing else


class SlowClient:
    """A PATCH sent from a thread whose body pauses after ``pause_at`` bytes until released."""

    def __init__(self, url: str, data: bytes, offset: int, pause_at: int) -> None:
        self.url, self.data, self.offset, self.pause_at = url, data, offset, pause_at
        self.release = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _body(self) -> Iterator[bytes]:
        for start in range(0, len(self.data), 256 * 1024):
            if start >= self.pause_at:
                self.release.wait(60)
            yield self.data[start : start + 256 * 1024]

    def _run(self) -> None:
        headers = {**PATCH, "Upload-Offset": str(self.offset), "Content-Length": str(len(self.data))}
        try:
            httpx.patch(self.url, headers=headers, content=self._body(), timeout=60)
        except BaseException as exc:
            self.error = exc


def test_server_killed_mid_patch_resumes_byte_identical(
    relay_server: Any, s3_server: Any, s3_bucket: str
) -> None:
    data = pattern(48 * MiB, seed=11)
    server = relay_server(env=s3_env(s3_server, s3_bucket)).start()
    created = httpx.post(server.files_url, headers={**TUS, "Upload-Length": str(len(data))}, timeout=10)
    location = created.headers["Location"]
    key = "uploads/" + location.rstrip("/").rsplit("/", 1)[1]
    sender = SlowClient(location, data, 0, pause_at=30 * MiB)
    sender.thread.start()
    try:
        wait_for(lambda: stored_parts(s3_server, s3_bucket, key) >= 20 * MiB, 120, "20 MiB of parts in S3")
        server.kill()  # SIGKILL mid-PATCH: no clean-up code runs
    finally:
        sender.release.set()
        sender.thread.join(30)
    assert sender.error is not None  # the client saw the connection drop

    server.start()
    offset = int(httpx.head(location, headers=TUS, timeout=10).headers["Upload-Offset"])
    assert 20 * MiB <= offset <= 30 * MiB, server.log_text()[-3000:]
    assert offset % (5 * MiB) == 0  # whole parts survived; the buffered part died with the process
    rest = httpx.patch(
        location, headers={**PATCH, "Upload-Offset": str(offset)}, content=data[offset:], timeout=120
    )
    assert rest.status_code == 204, f"{rest.status_code} {rest.text}\n{server.log_text()[-3000:]}"
    assert rest.headers["Upload-Offset"] == str(len(data))
    assert hashlib.sha256(object_bytes(s3_server, s3_bucket, key)).digest() == hashlib.sha256(data).digest()


def test_missing_bucket_stops_start_up_naming_it(relay_server: Any, s3_server: Any) -> None:
    server = relay_server(env=s3_env(s3_server, "no-such-bucket-for-relaypacs"))
    with pytest.raises(RuntimeError):
        server.start()
    assert "S3 bucket 'no-such-bucket-for-relaypacs'" in server.log_text()
