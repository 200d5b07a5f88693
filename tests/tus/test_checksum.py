""" "Checksum" extension: every advertised algorithm verifies; 400 for an unsupported one, 460 on a
mismatch, and in both cases no byte of the chunk is kept and the offset is unchanged."""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Iterator

import pytest

from .conftest import HTTP_DATE, OCTET, TUS, Row, TusHelper, check_row

CHUNK = b"0123456789abcdef" * 4


def digest(algorithm: str, data: bytes) -> str:
    if algorithm == "crc32":
        raw = zlib.crc32(data).to_bytes(4, "big")
    else:
        raw = hashlib.new(algorithm, data).digest()
    return f"{algorithm} {base64.b64encode(raw).decode()}"


ALGORITHMS = ("sha1", "sha256", "sha512", "md5", "crc32")
PATCH = {**TUS, "Upload-Offset": "10", "Content-Type": OCTET}

ROWS = (
    [
        Row(
            f"{alg}-match",
            "PATCH",
            "upload",
            204,
            {**PATCH, "Upload-Checksum": digest(alg, CHUNK)},
            body=CHUNK,
            expect={"Upload-Offset": str(10 + len(CHUNK))},
            harmless=False,
        )
        for alg in ALGORITHMS
    ]
    + [
        Row(
            f"{alg}-mismatch-460",
            "PATCH",
            "upload",
            460,
            {**PATCH, "Upload-Checksum": digest(alg, CHUNK[:-1] + b"X")},
            body=CHUNK,
            expect={"Upload-Expires": HTTP_DATE},  # "every PATCH response", refused ones too
            message="ERR_CHECKSUM_MISMATCH",
        )
        for alg in ALGORITHMS
    ]
    + [
        Row(
            "unsupported-algorithm-400",
            "PATCH",
            "upload",
            400,
            {**PATCH, "Upload-Checksum": "whirlpool " + base64.b64encode(b"x" * 64).decode()},
            body=CHUNK,
            message="ERR_UNSUPPORTED_CHECKSUM_ALGORITHM",
        ),
        Row(
            "uppercase-name-is-not-an-algorithm",
            "PATCH",
            "upload",
            400,
            {**PATCH, "Upload-Checksum": "SHA-1 " + base64.b64encode(b"x" * 20).decode()},
            body=CHUNK,
        ),
        Row(
            "no-digest-400",
            "PATCH",
            "upload",
            400,
            {**PATCH, "Upload-Checksum": "sha1"},
            body=CHUNK,
            message="ERR_INVALID_CHECKSUM",
        ),
        Row(
            "digest-not-base64-400",
            "PATCH",
            "upload",
            400,
            {**PATCH, "Upload-Checksum": "sha1 ***"},
            body=CHUNK,
        ),
        Row(
            "digest-wrong-size-400",
            "PATCH",
            "upload",
            400,
            {**PATCH, "Upload-Checksum": "sha256 " + base64.b64encode(b"x" * 20).decode()},
            body=CHUNK,
        ),
        Row(
            "three-tokens-400",
            "PATCH",
            "upload",
            400,
            {**PATCH, "Upload-Checksum": digest("sha1", CHUNK) + " x"},
            body=CHUNK,
        ),
    ]
)


@pytest.mark.parametrize("row", [r.param() for r in ROWS])
def test_checksum_rule(tus: TusHelper, row: Row) -> None:
    check_row(tus, row)


def chunked(*parts: bytes) -> Iterator[bytes]:
    yield from parts


def test_mismatch_with_chunked_body_keeps_nothing(tus: TusHelper) -> None:
    """Without Content-Length the server learns the digest fails only at the end: still nothing kept."""
    url = tus.target()
    before = tus.snapshot(url)
    parts = [b"a" * 70_000, b"b" * 70_000, b"c" * 10]
    big = tus.create(300_000)
    r = tus.http.patch(
        big,
        headers={
            **TUS,
            "Upload-Offset": "0",
            "Content-Type": OCTET,
            "Upload-Checksum": digest("sha1", b"nope"),
        },
        content=chunked(*parts),
    )
    assert r.status_code == 460
    assert tus.head(big).headers["Upload-Offset"] == "0"
    assert tus.data_path(big).read_bytes() == b""
    tus.assert_unharmed(url, before)


def test_checksum_covers_the_last_chunk_and_finishes(tus: TusHelper) -> None:
    url = tus.create(len(CHUNK) * 2)
    assert tus.patch(url, 0, CHUNK, Upload_Checksum=digest("sha256", CHUNK)).status_code == 204
    assert tus.patch(url, len(CHUNK), CHUNK, Upload_Checksum=digest("md5", b"wrong")).status_code == 460
    r = tus.patch(url, len(CHUNK), CHUNK, Upload_Checksum=digest("crc32", CHUNK))
    assert r.status_code == 204
    assert r.headers["Upload-Offset"] == str(len(CHUNK) * 2)
    assert tus.data_path(url).read_bytes() == CHUNK * 2


def test_upload_checksum_is_a_cors_allowed_header(tus: TusHelper) -> None:
    r = tus.http.options(
        tus.files_url,
        headers={
            "Origin": "https://pwa.example",
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "upload-checksum,upload-offset,tus-resumable,content-type",
        },
    )
    assert r.status_code == 200
    assert "upload-checksum" in r.headers["Access-Control-Allow-Headers"].lower()
