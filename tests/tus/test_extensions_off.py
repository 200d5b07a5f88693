"""Advertise only what is offered: with termination, concatenation and expiration switched off (and no
size limit) OPTIONS says so, and the switched-off requests are refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.services.server import RelayServer

from .conftest import TUS, TusHelper, start_server


@pytest.fixture(scope="module")
def bare_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayServer]:
    env = {
        "RELAYPACS_ENABLE_TERMINATION": "false",
        "RELAYPACS_ENABLE_CONCATENATION": "false",
        "RELAYPACS_EXPIRATION": "0",
        "RELAYPACS_MAX_SIZE": "0",
    }
    server = start_server(tmp_path_factory, env)
    yield server
    server.stop()


@pytest.fixture
def bare(bare_server: RelayServer) -> Iterator[TusHelper]:
    helper = TusHelper(bare_server)
    yield helper
    helper.close()


def test_options_lists_only_what_is_on(bare: TusHelper) -> None:
    r = bare.http.options(bare.files_url)
    assert r.status_code == 204
    assert r.headers["Tus-Extension"] == "creation,creation-with-upload,creation-defer-length,checksum"
    assert "Tus-Max-Size" not in r.headers, "no limit, no Tus-Max-Size"
    assert r.headers["Tus-Checksum-Algorithm"] == "sha1,sha256,sha512,md5,crc32"


def test_switched_off_requests_are_refused(bare: TusHelper) -> None:
    url = bare.create(10)
    r = bare.http.post(bare.files_url, headers={**TUS, "Upload-Length": "10"})
    assert "Upload-Expires" not in r.headers, "no expiration, no Upload-Expires"
    assert "Upload-Expires" not in bare.patch(url, 0, b"abc").headers
    assert "Upload-Expires" not in bare.head(url).headers
    r = bare.http.delete(url, headers=TUS)
    assert r.status_code == 405
    assert bare.head(url).headers["Upload-Offset"] == "3", "the refused DELETE left the upload alone"
    r = bare.http.post(bare.files_url, headers={**TUS, "Upload-Length": "3", "Upload-Concat": "partial"})
    assert r.status_code == 400
    assert b"ERR_EXTENSION_DISABLED" in r.content
    r = bare.http.post(bare.files_url, headers={**TUS, "Upload-Concat": f"final;{url}"})
    assert r.status_code == 400


def test_no_size_limit_accepts_large_declared_lengths(bare: TusHelper) -> None:
    r = bare.http.post(bare.files_url, headers={**TUS, "Upload-Length": str(2**40)})
    assert r.status_code == 201
