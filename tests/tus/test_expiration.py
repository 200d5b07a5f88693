""" "Expiration": Upload-Expires on the responses the spec names, 410 once expired, and the background
sweeper deleting expired uploads (tiny RELAYPACS_EXPIRATION and RELAYPACS_SWEEP_INTERVAL)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest

from tests.services.server import RelayServer

from .conftest import OCTET, TUS, TusHelper, start_server, upload_id, wait_until

EXPIRATION = 2


@pytest.fixture(scope="module")
def expiring_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayServer]:
    server = start_server(
        tmp_path_factory, {"RELAYPACS_EXPIRATION": str(EXPIRATION), "RELAYPACS_SWEEP_INTERVAL": "1"}
    )
    yield server
    server.stop()


@pytest.fixture
def exp(expiring_server: RelayServer) -> Iterator[TusHelper]:
    helper = TusHelper(expiring_server)
    yield helper
    helper.close()


def expires(response: object) -> datetime:
    value = response.headers["Upload-Expires"]  # type: ignore[attr-defined]
    assert value.endswith(" GMT"), "RFC 9110 IMF-fixdate"
    return parsedate_to_datetime(value)


def test_upload_expires_on_post_patch_and_head(exp: TusHelper) -> None:
    r = exp.http.post(exp.files_url, headers={**TUS, "Upload-Length": "10"})
    assert r.status_code == 201
    created = expires(r)
    url = r.headers["Location"]
    r = exp.patch(url, 0, b"abc")
    assert r.status_code == 204
    assert expires(r) >= created, "each PATCH pushes the expiry forward"
    assert expires(exp.head(url)) == expires(r)
    assert created.tzinfo is not None
    assert created > datetime(2000, 1, 1, tzinfo=UTC)


def test_expired_upload_gets_410_and_is_swept(exp: TusHelper) -> None:
    keep = exp.create(3)
    assert exp.patch(keep, 0, b"abc").status_code == 204  # finished: never expires
    url = exp.create(10)
    assert exp.patch(url, 0, b"abc").status_code == 204
    data = exp.data_path(url)
    assert data.exists()
    wait_until(lambda: exp.head(url).status_code == 410, timeout=EXPIRATION * 10, what="HEAD to answer 410")
    wait_until(lambda: not data.exists(), timeout=EXPIRATION * 10, what="the sweeper to delete the bytes")
    assert exp.head(url).status_code == 410, "the tombstone keeps answering 410"
    r = exp.patch(url, 3, b"d")
    assert r.status_code == 410
    assert b"ERR_UPLOAD_GONE" in r.content
    assert exp.http.delete(url, headers=TUS).status_code == 410
    events = exp.server.log_events()
    assert any(e.get("event") == "upload.expired" and e.get("upload_id") == upload_id(url) for e in events)
    head = exp.head(keep)
    assert head.status_code == 200
    assert head.headers["Upload-Offset"] == "3"
    assert "Upload-Expires" not in head.headers
    assert exp.data_path(keep).read_bytes() == b"abc"


def test_active_upload_does_not_expire(exp: TusHelper) -> None:
    """Expiry counts from the last byte received, so an upload that keeps moving outlives its first
    Upload-Expires."""
    url = exp.create(1000)
    first = expires(exp.head(url))
    offset = 0
    while datetime.now(UTC) < first + timedelta(seconds=1):
        r = exp.patch(url, offset, b"x")
        assert r.status_code == 204, "an upload receiving bytes must not expire"
        offset += 1
        time.sleep(0.2)  # pacing: a slow client sending a byte now and then
    head = exp.head(url)
    assert head.status_code == 200
    assert expires(head) > first


def test_expired_partial_blocks_concatenation_with_410(exp: TusHelper) -> None:
    a = exp.create(5, Upload_Concat="partial")
    wait_until(lambda: exp.head(a).status_code == 410, timeout=EXPIRATION * 10, what="the partial to expire")
    r = exp.http.post(exp.files_url, headers={**TUS, "Upload-Concat": f"final;{a}"})
    assert r.status_code == 410


def test_creation_with_upload_reports_expiry(exp: TusHelper) -> None:
    r = exp.http.post(
        exp.files_url, headers={**TUS, "Upload-Length": "10", "Content-Type": OCTET}, content=b"12"
    )
    assert r.status_code == 201
    assert r.headers["Upload-Offset"] == "2"
    expires(r)
