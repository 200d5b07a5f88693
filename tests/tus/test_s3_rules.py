"""The protocol rules where the store matters, on the S3 store (SeaweedFS): checksum chunks all or nothing,
stalled and over-long bodies, deferred length, concatenation, termination and expiry aborting the multipart
upload. Bytes are read back through the store; offsets through HEAD."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.services.server import RelayServer

from .conftest import OCTET, TUS, TusHelper, start_server, upload_id, wait_until
from .storeview import stored
from .test_limits import chunk, open_patch, status_of

pytestmark = pytest.mark.s3
MIB = 1024 * 1024
EXPIRATION = 4


@pytest.fixture(scope="module")
def s3_relay(
    tmp_path_factory: pytest.TempPathFactory, s3_server: Any
) -> Iterator[tuple[RelayServer, Any, str]]:
    bucket = s3_server.create_bucket()
    env = {
        **s3_server.env(bucket),
        "RELAYPACS_NETWORK_TIMEOUT": "1.5",
        "RELAYPACS_EXPIRATION": str(EXPIRATION),
        "RELAYPACS_SWEEP_INTERVAL": "1",
    }
    server = start_server(tmp_path_factory, env)
    yield server, s3_server, bucket
    server.stop()
    s3_server.delete_bucket(bucket)


@pytest.fixture
def s3tus(s3_relay: tuple[RelayServer, Any, str]) -> Iterator[TusHelper]:
    helper = TusHelper(s3_relay[0])
    yield helper
    helper.close()


def sha1(data: bytes) -> str:
    return "sha1 " + base64.b64encode(hashlib.sha1(data).digest()).decode()


def pattern(size: int, seed: int = 0) -> bytes:
    return bytes((i * 7 + seed) % 251 for i in range(size))


def multipart_keys(s3_relay: tuple[RelayServer, Any, str]) -> set[str]:
    _, s3, bucket = s3_relay
    uploads = s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return {u["Key"] for u in uploads}


def test_checksum_chunks_are_all_or_nothing(s3tus: TusHelper) -> None:
    data = pattern(3 * MIB + 5)
    url = s3tus.create(len(data))
    first, second = data[: 2 * MIB], data[2 * MIB :]
    assert s3tus.patch(url, 0, first, Upload_Checksum=sha1(first)).status_code == 204
    bad = s3tus.patch(url, len(first), second, Upload_Checksum=sha1(second[:-1] + b"!"))
    assert bad.status_code == 460
    assert s3tus.head(url).headers["Upload-Offset"] == str(len(first))
    ok = s3tus.patch(url, len(first), second, Upload_Checksum=sha1(second))
    assert ok.status_code == 204
    assert ok.headers["Upload-Offset"] == str(len(data))
    assert stored(s3tus.server, upload_id(url))[1] == data


def test_stalled_client_keeps_its_bytes_on_s3(s3tus: TusHelper) -> None:
    data = pattern(100, seed=3)
    url = s3tus.create(len(data))
    with open_patch(s3tus.server.port, url, 0, length=100) as s:
        s.sendall(data[:40])
        s.settimeout(20)
        assert status_of(s) == 408
    assert s3tus.head(url).headers["Upload-Offset"] == "40"
    assert s3tus.patch(url, 40, data[40:]).status_code == 204
    assert stored(s3tus.server, upload_id(url))[1] == data


def test_over_long_chunked_body_on_s3(s3tus: TusHelper) -> None:
    data = pattern(64, seed=5)
    url = s3tus.create(len(data))
    with open_patch(s3tus.server.port, url, 0, length=None, chunked=True) as s:
        s.sendall(chunk(data[:20]) + chunk(data[20:] + b"excess" * 10) + b"0\r\n\r\n")
        assert status_of(s) == 413
    offset = int(s3tus.head(url).headers["Upload-Offset"])
    assert offset in (0, 20)
    assert s3tus.patch(url, offset, data[offset:]).status_code == 204
    assert stored(s3tus.server, upload_id(url))[1] == data


def test_deferred_length_on_s3(s3tus: TusHelper) -> None:
    data = pattern(6 * MIB + 1, seed=9)
    url = s3tus.create(None, None, Upload_Defer_Length="1")
    assert s3tus.patch(url, 0, data[: 5 * MIB]).status_code == 204
    assert s3tus.head(url).headers["Upload-Defer-Length"] == "1"
    r = s3tus.patch(url, 5 * MIB, data[5 * MIB :], Upload_Length=str(len(data)))
    assert r.status_code == 204
    assert stored(s3tus.server, upload_id(url))[1] == data


def test_concatenation_on_s3(s3tus: TusHelper) -> None:
    parts = [pattern(2 * MIB, seed=1), pattern(7, seed=2), pattern(MIB, seed=3)]
    urls = []
    for part in parts:
        url = s3tus.create(len(part), Upload_Concat="partial")
        assert s3tus.patch(url, 0, part).status_code == 204
        urls.append(url)
    r = s3tus.http.post(s3tus.files_url, headers={**TUS, "Upload-Concat": "final;" + " ".join(urls)})
    assert r.status_code == 201
    final = r.headers["Location"]
    head = s3tus.head(final)
    assert head.headers["Upload-Offset"] == head.headers["Upload-Length"] == str(sum(map(len, parts)))
    assert stored(s3tus.server, upload_id(final))[1] == b"".join(parts)


def test_termination_aborts_the_multipart_upload(
    s3tus: TusHelper, s3_relay: tuple[RelayServer, Any, str]
) -> None:
    url = s3tus.create(10 * MIB)
    assert s3tus.patch(url, 0, pattern(5 * MIB)).status_code == 204
    assert s3tus.http.delete(url, headers=TUS).status_code == 204
    assert s3tus.head(url).status_code == 410
    assert not any(upload_id(url) in key for key in multipart_keys(s3_relay)), "nothing left to pay for"


def test_expiry_aborts_the_multipart_upload(s3tus: TusHelper, s3_relay: tuple[RelayServer, Any, str]) -> None:
    url = s3tus.create(10 * MIB)
    r = s3tus.http.patch(
        url, headers={**TUS, "Upload-Offset": "0", "Content-Type": OCTET}, content=pattern(5 * MIB)
    )
    assert r.status_code == 204
    assert "Upload-Expires" in r.headers
    wait_until(lambda: s3tus.head(url).status_code == 410, timeout=EXPIRATION * 10, what="expiry")
    wait_until(
        lambda: not any(upload_id(url) in key for key in multipart_keys(s3_relay)),
        timeout=EXPIRATION * 10,
        what="the sweeper to abort the multipart upload",
    )
