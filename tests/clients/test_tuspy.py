"""tuspy (tus-py-client) with upload_checksum=True: a multi-chunk upload arrives byte for byte, and an upload
survives a SIGKILL of the server mid-way, resuming from the server's offset, on the local store and S3."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from tusclient import client
from tusclient.uploader import Uploader

from .conftest import Relay, kill_and_restart, make_file

CHUNK = 1024 * 1024


class PacedUploader(Uploader):  # type: ignore[misc]
    """tuspy's own uploader, pausing before each chunk so a test can act while it is half done."""

    pause = 0.0

    def upload_chunk(self) -> None:
        time.sleep(self.pause)
        super().upload_chunk()


def uploader(relay: Relay, source: Path, **kwargs: object) -> Uploader:
    tus = client.TusClient(relay.server.files_url, headers=relay.auth)
    return tus.uploader(
        str(source), chunk_size=CHUNK, upload_checksum=True, metadata={"filename": source.name}, **kwargs
    )


def test_multi_chunk_upload_is_byte_identical(relay: Relay, tmp_path: Path) -> None:
    source = make_file(tmp_path / "series.bin", 7 * CHUNK + 12345)
    up = uploader(relay, source)
    up.upload()
    upload_id = up.url.rsplit("/", 1)[1]
    ids, data = relay.stored(upload_id)
    assert ids == [upload_id]
    assert data == source.read_bytes()
    assert len(relay.events("upload.patch")) == 8, "one PATCH per chunk"
    assert relay.events("upload.finished")[0]["upload_id"] == upload_id


def test_resumes_after_the_server_is_killed(relay: Relay, tmp_path: Path) -> None:
    size = 12 * CHUNK + 777
    source = make_file(tmp_path / "study.bin", size)
    tus = client.TusClient(relay.server.files_url, headers=relay.auth)
    up = PacedUploader(
        str(source), client=tus, chunk_size=CHUNK, upload_checksum=True, retries=240, retry_delay=0.25,
        metadata={"filename": source.name},
    )  # fmt: skip
    up.pause = 0.15
    failure: list[BaseException] = []

    def run() -> None:
        try:
            up.upload()
        except BaseException as exc:  # reported by the test thread below
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    resumed = kill_and_restart(relay, threshold=3 * CHUNK)
    thread.join(timeout=180)
    assert not thread.is_alive(), "tuspy never finished"
    assert not failure, failure
    outcome = resumed()
    assert outcome.created == 1, "the client resumed its upload instead of starting a new one"
    assert outcome.first_start_after >= outcome.acknowledged >= 3 * CHUNK, outcome
    upload_id = up.url.rsplit("/", 1)[1]
    ids, data = relay.stored(upload_id)
    assert ids == [upload_id]
    assert data == source.read_bytes()
