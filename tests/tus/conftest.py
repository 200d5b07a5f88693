"""Fixtures and helpers for the tus conformance tables.

Every table row is a request sent to the REAL server (``relaypacs-tus serve`` in a subprocess) and the
status, headers and message it must get back. Rows that send bad input to an existing upload also check
that the upload is unharmed (HEAD offset, length and metadata unchanged; bytes unchanged) and that the
server keeps answering.
"""

from __future__ import annotations

import http.client
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.services.server import RelayServer
from tests.services.waiting import wait_until as wait_until  # re-exported for the tests here

TUS = {"Tus-Resumable": "1.0.0"}
OCTET = "application/offset+octet-stream"
#: The target upload every "bad input" row aims at: 100 bytes declared, 10 sent.
TARGET_LENGTH = 100
TARGET_BYTES = bytes(range(10))
TARGET_METADATA = "filename c2Nhbi5kY20=,filetype YXBwbGljYXRpb24vZGljb20=,is_confidential"
MAX_SIZE = 1024 * 1024
#: RFC 9110 IMF-fixdate, the format "Expiration" requires for Upload-Expires.
HTTP_DATE = re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT")


@dataclass
class Row:
    """One protocol rule: a request and what the server must answer.

    ``target`` is ``"collection"`` (the creation URL), ``"upload"`` (a fresh target upload) or a raw path
    sent byte for byte. ``expect`` maps a header to its exact value, a compiled regex, or None for
    "must be absent". ``message`` must appear in the body (not for HEAD). ``harmless`` rows must leave the
    target upload as it was.
    """

    id: str
    method: str
    target: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    expect: dict[str, str | re.Pattern[str] | None] = field(default_factory=dict)
    message: str = ""
    harmless: bool = True

    def param(self) -> object:
        return pytest.param(self, id=self.id)


@dataclass
class Snapshot:
    offset: str | None
    length: str | None
    metadata: str | None
    data: bytes


class TusHelper:
    """Small tus client over httpx for building fixtures and checking state."""

    def __init__(self, server: RelayServer) -> None:
        self.server = server
        self.http = httpx.Client(timeout=30.0)

    @property
    def files_url(self) -> str:
        return self.server.files_url

    def create(self, length: int | None = TARGET_LENGTH, metadata: str | None = None, **headers: str) -> str:
        hdrs = dict(TUS)
        if length is not None:
            hdrs["Upload-Length"] = str(length)
        if metadata is not None:
            hdrs["Upload-Metadata"] = metadata
        hdrs.update({k.replace("_", "-"): v for k, v in headers.items()})
        r = self.http.post(self.files_url, headers=hdrs)
        assert r.status_code == 201, r.text
        return r.headers["Location"]

    def patch(self, url: str, offset: int, data: bytes, **headers: str) -> httpx.Response:
        hdrs = {**TUS, "Upload-Offset": str(offset), "Content-Type": OCTET}
        hdrs.update({k.replace("_", "-"): v for k, v in headers.items()})
        return self.http.patch(url, headers=hdrs, content=data)

    def head(self, url: str) -> httpx.Response:
        return self.http.head(url, headers=TUS)

    def target(self) -> str:
        """A fresh upload: 100 bytes declared, metadata set, the first 10 bytes written."""
        url = self.create(TARGET_LENGTH, TARGET_METADATA)
        r = self.patch(url, 0, TARGET_BYTES)
        assert r.status_code == 204, r.text
        return url

    def data_path(self, url: str) -> Path:
        return self.server.data_dir / "uploads" / url.rstrip("/").rsplit("/", 1)[1]

    def snapshot(self, url: str) -> Snapshot:
        r = self.head(url)
        path = self.data_path(url)
        return Snapshot(
            r.headers.get("Upload-Offset"),
            r.headers.get("Upload-Length"),
            r.headers.get("Upload-Metadata"),
            path.read_bytes() if path.exists() else b"",
        )

    def assert_unharmed(self, url: str, before: Snapshot) -> None:
        after = self.snapshot(url)
        assert after == before, f"upload changed: {before} -> {after}"
        self.assert_serving()

    def assert_serving(self) -> None:
        r = self.http.options(self.files_url)
        assert r.status_code == 204
        assert r.headers["Tus-Version"] == "1.0.0"

    def send(self, row: Row, upload_url: str | None) -> tuple[int, dict[str, str], bytes]:
        """Send the row; raw paths go through http.client, which keeps ``../`` as written."""
        if row.target in ("collection", "upload"):
            url = self.files_url if row.target == "collection" else upload_url
            assert url is not None
            r = self.http.request(row.method, url, headers=row.headers, content=row.body or None)
            return r.status_code, dict(r.headers), r.content
        return raw_request(self.server.port, row.method, row.target, row.headers, row.body)

    def close(self) -> None:
        self.http.close()


def raw_request(
    port: int, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        skip_host = any(k.lower() == "host" for k in headers)
        conn.putrequest(method, path, skip_host=skip_host, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        if body or method in ("POST", "PATCH"):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        resp = conn.getresponse()
        data = resp.read() if method != "HEAD" else b""
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def check_row(helper: TusHelper, row: Row) -> None:
    """Send ``row`` (to a fresh target upload when it names one) and assert everything it promises."""
    url = helper.target() if row.target == "upload" or row.harmless else None
    before = helper.snapshot(url) if url and row.harmless else None
    status, headers, body = helper.send(row, url)
    lower = {k.lower(): v for k, v in headers.items()}
    assert status == row.status, f"{row.id}: {status} {body[:300]!r}"
    if row.method != "OPTIONS" or "tus-resumable" in lower:
        assert lower.get("tus-resumable") == "1.0.0", f"{row.id}: every response carries Tus-Resumable"
    for name, want in row.expect.items():
        got = lower.get(name.lower())
        if want is None:
            assert got is None, f"{row.id}: {name} must be absent, got {got!r}"
        elif isinstance(want, re.Pattern):
            assert got is not None, f"{row.id}: {name} is missing"
            assert want.fullmatch(got), f"{row.id}: {name}={got!r} !~ {want.pattern}"
        else:
            assert got == want, f"{row.id}: {name}={got!r}, want {want!r}"
    if row.message:
        assert row.message.encode() in body, f"{row.id}: {body[:300]!r} lacks {row.message!r}"
    if url and before is not None:
        helper.assert_unharmed(url, before)
    else:
        helper.assert_serving()


def start_server(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> RelayServer:
    data = tmp_path_factory.mktemp("relay")
    # The protocol alone: auth has its own tests (tests/auth), the real clients carry tokens (tests/clients).
    env = {"RELAYPACS_LOG_LEVEL": "info", "RELAYPACS_AUTH": "off", **env}
    return RelayServer(data / "data", env=env).start()


@pytest.fixture(scope="module")
def tus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayServer]:
    """One server for a module's table: a 1 MiB Tus-Max-Size, default everything else."""
    server = start_server(tmp_path_factory, {"RELAYPACS_MAX_SIZE": str(MAX_SIZE)})
    yield server
    server.stop()


@pytest.fixture
def tus(tus_server: RelayServer) -> Iterator[TusHelper]:
    helper = TusHelper(tus_server)
    yield helper
    helper.close()


def upload_id(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[1]
