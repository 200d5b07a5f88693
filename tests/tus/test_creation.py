""" "creation", "creation-with-upload", "creation-defer-length" and Upload-Metadata, row by row."""

from __future__ import annotations

import base64
import hashlib
import re
import socket

import pytest

from .conftest import HTTP_DATE, MAX_SIZE, OCTET, TUS, Row, TusHelper, check_row, upload_id

LOCATION = re.compile(r"http://127\.0\.0\.1:\d+/files/[0-9a-f]{32}")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


CREATE_ROWS = [
    Row(
        "create-201",
        "POST",
        "collection",
        201,
        {**TUS, "Upload-Length": "100"},
        expect={"Location": LOCATION, "Upload-Offset": "0", "Upload-Expires": HTTP_DATE},
    ),
    Row("create-at-max-size", "POST", "collection", 201, {**TUS, "Upload-Length": str(MAX_SIZE)}),
    Row(
        "create-over-max-size-413",
        "POST",
        "collection",
        413,
        {**TUS, "Upload-Length": str(MAX_SIZE + 1)},
        expect={"Location": None},
        message="ERR_MAX_SIZE_EXCEEDED",
    ),
    Row(
        "create-empty-upload",
        "POST",
        "collection",
        201,
        {**TUS, "Upload-Length": "0"},
        expect={"Upload-Offset": "0", "Upload-Expires": None},
    ),
    Row("create-without-length-400", "POST", "collection", 400, TUS, message="ERR_MISSING_UPLOAD_LENGTH"),
    Row(
        "create-negative-length-400",
        "POST",
        "collection",
        400,
        {**TUS, "Upload-Length": "-5"},
        message="ERR_INVALID_UPLOAD_LENGTH",
    ),
    Row(
        "create-text-length-400",
        "POST",
        "collection",
        400,
        {**TUS, "Upload-Length": "five"},
        message="ERR_INVALID_UPLOAD_LENGTH",
    ),
    Row("create-hex-length-400", "POST", "collection", 400, {**TUS, "Upload-Length": "0x10"}),
    Row("create-empty-length-400", "POST", "collection", 400, {**TUS, "Upload-Length": ""}),
    Row("create-int64-overflow-400", "POST", "collection", 400, {**TUS, "Upload-Length": str(2**63)}),
    Row(
        "create-defer",
        "POST",
        "collection",
        201,
        {**TUS, "Upload-Defer-Length": "1"},
        expect={"Location": LOCATION},
    ),
    Row(
        "create-defer-0-400",
        "POST",
        "collection",
        400,
        {**TUS, "Upload-Defer-Length": "0"},
        message="ERR_INVALID_UPLOAD_DEFER_LENGTH",
    ),
    Row("create-defer-2-400", "POST", "collection", 400, {**TUS, "Upload-Defer-Length": "2"}),
    Row("create-defer-true-400", "POST", "collection", 400, {**TUS, "Upload-Defer-Length": "true"}),
    Row(
        "create-defer-and-length-400",
        "POST",
        "collection",
        400,
        {**TUS, "Upload-Defer-Length": "1", "Upload-Length": "5"},
    ),
]

META_OK = [
    ("simple", f"filename {b64('scan.dcm')}"),
    ("bare-key", "is_confidential"),
    ("empty-value", "a ,b " + b64("x")),
    ("many", ",".join(f"k{i} {b64(str(i))}" for i in range(40))),
    ("crlf-inside-value", f"note {b64('x' + chr(13) + chr(10) + 'Set-Cookie: owned=1')}"),
    ("unicode-value", f"patient_name {b64('Müller^Zoë')}"),
    ("binary-value", "blob " + base64.b64encode(bytes(range(256))).decode()),
]
METADATA_ROWS = [
    Row(
        f"metadata-{name}",
        "POST",
        "collection",
        201,
        {**TUS, "Upload-Length": "1", "Upload-Metadata": value},
        expect={"Set-Cookie": None},
    )
    for name, value in META_OK
] + [
    Row(
        f"metadata-{name}-400",
        "POST",
        "collection",
        400,
        {**TUS, "Upload-Length": "1", "Upload-Metadata": value},
        expect={"Location": None},
        message="ERR_INVALID_METADATA",
    )
    for name, value in (
        ("duplicate-key", f"a {b64('1')},a {b64('2')}"),
        ("duplicate-bare-key", "a,a"),
        ("three-tokens", f"a {b64('1')} extra"),
        ("not-base64", "a !!!!"),
        ("unpadded-base64", "a YQ"),
        ("urlsafe-base64", "a _-8="),
        ("empty-element", f"a {b64('1')},,b {b64('2')}"),
        ("trailing-comma", f"a {b64('1')},"),
        ("double-space", f"a  {b64('1')}"),
        ("too-long", "k " + "QUFB" * 2100),
    )
]


@pytest.mark.parametrize("row", [r.param() for r in CREATE_ROWS + METADATA_ROWS])
def test_creation_rule(tus: TusHelper, row: Row) -> None:
    check_row(tus, row)


@pytest.mark.parametrize(("name", "value"), META_OK, ids=[m[0] for m in META_OK])
def test_metadata_is_echoed_exactly(tus: TusHelper, name: str, value: str) -> None:
    """ "creation": HEAD MUST echo Upload-Metadata as the client sent it: same order, same bytes."""
    url = tus.create(5, value)
    head = tus.head(url)
    assert head.headers["Upload-Metadata"] == value
    assert "set-cookie" not in head.headers, "a CRLF inside a value must never become a header"


def test_non_ascii_metadata_key_400(tus: TusHelper) -> None:
    headers = {**TUS, "Upload-Length": "1", "Upload-Metadata": "clé YQ==".encode("latin-1")}
    r = tus.http.post(tus.files_url, headers=headers)
    assert r.status_code == 400
    assert b"ERR_INVALID_METADATA" in r.content


def test_raw_crlf_in_header_is_refused_without_injection(tus: TusHelper) -> None:
    """A CR/LF in a header value is refused by the HTTP parser; nothing is created, nothing echoed."""
    with socket.create_connection(("127.0.0.1", tus.server.port), timeout=10) as s:
        s.sendall(
            b"POST /files/ HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Length: 1\r\n"
            b"Upload-Metadata: a YQ==\rSet-Cookie: owned=1\r\nContent-Length: 0\r\n\r\n"
        )
        reply = s.recv(65536)
    assert reply.startswith(b"HTTP/1.1 400"), reply[:200]
    assert b"set-cookie" not in reply.lower()
    tus.assert_serving()


def test_huge_header_block_is_refused_and_server_keeps_serving(tus: TusHelper) -> None:
    url = tus.target()
    before = tus.snapshot(url)
    with socket.create_connection(("127.0.0.1", tus.server.port), timeout=10) as s:
        path = f"/files/{upload_id(url)}".encode()
        s.sendall(
            b"HEAD "
            + path
            + b" HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nX-Big: "
            + b"a" * 200_000
            + b"\r\n\r\n"
        )
        reply = s.recv(65536)
    assert reply.split(b" ", 2)[1] in (b"400", b"413", b"431"), reply[:200]
    tus.assert_unharmed(url, before)


def test_creation_with_upload(tus: TusHelper) -> None:
    """ "creation-with-upload": the POST body is the first chunk; the response carries Upload-Offset."""
    body = b"hello tus"
    r = tus.http.post(
        tus.files_url,
        headers={**TUS, "Upload-Length": "20", "Content-Type": OCTET},
        content=body,
    )
    assert r.status_code == 201
    assert r.headers["Upload-Offset"] == str(len(body))
    assert "Upload-Expires" in r.headers
    url = r.headers["Location"]
    assert tus.data_path(url).read_bytes() == body
    assert tus.head(url).headers["Upload-Offset"] == "9"


def test_creation_with_upload_whole_file_finishes(tus: TusHelper) -> None:
    r = tus.http.post(
        tus.files_url, headers={**TUS, "Upload-Length": "4", "Content-Type": OCTET}, content=b"done"
    )
    assert r.status_code == 201
    assert r.headers["Upload-Offset"] == "4"
    assert "Upload-Expires" not in r.headers


def test_creation_with_upload_checksum(tus: TusHelper) -> None:
    body = b"abcdef"
    good = "sha1 " + base64.b64encode(hashlib.sha1(body).digest()).decode()
    r = tus.http.post(
        tus.files_url,
        headers={**TUS, "Upload-Length": "10", "Content-Type": OCTET, "Upload-Checksum": good},
        content=body,
    )
    assert r.status_code == 201
    assert r.headers["Upload-Offset"] == "6"
    bad = "sha1 " + base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    r = tus.http.post(
        tus.files_url,
        headers={**TUS, "Upload-Length": "10", "Content-Type": OCTET, "Upload-Checksum": bad},
        content=body,
    )
    assert r.status_code == 460
    # The upload exists: the client learns where, and that nothing of the chunk was kept.
    url = r.headers["Location"]
    assert tus.head(url).headers["Upload-Offset"] == "0"
    assert tus.data_path(url).read_bytes() == b""


def test_creation_with_upload_over_length_413(tus: TusHelper) -> None:
    r = tus.http.post(
        tus.files_url, headers={**TUS, "Upload-Length": "3", "Content-Type": OCTET}, content=b"toolong"
    )
    assert r.status_code == 413
    tus.assert_serving()


def test_creation_body_with_other_content_type_is_ignored(tus: TusHelper) -> None:
    """Like tusd: a body whose type is not offset+octet-stream is no chunk; the upload starts empty."""
    r = tus.http.post(
        tus.files_url,
        headers={**TUS, "Upload-Length": "10", "Content-Type": "text/plain"},
        content=b"ignored",
    )
    assert r.status_code == 201
    assert r.headers["Upload-Offset"] == "0"
    assert tus.data_path(r.headers["Location"]).read_bytes() == b""


def test_deferred_length(tus: TusHelper) -> None:
    """ "creation-defer-length": HEAD says Upload-Defer-Length: 1 until a PATCH sets the length once."""
    url = tus.create(None, None, Upload_Defer_Length="1")
    head = tus.head(url)
    assert head.headers["Upload-Defer-Length"] == "1"
    assert "Upload-Length" not in head.headers
    assert tus.patch(url, 0, b"abc").status_code == 204
    r = tus.patch(url, 3, b"de", Upload_Length="8")
    assert r.status_code == 204
    assert r.headers["Upload-Offset"] == "5"
    head = tus.head(url)
    assert head.headers["Upload-Length"] == "8"
    assert "Upload-Defer-Length" not in head.headers
    assert tus.patch(url, 5, b"f", Upload_Length="9").status_code == 400, "the length cannot change"
    assert tus.patch(url, 5, b"fgh").status_code == 204
    assert tus.data_path(url).read_bytes() == b"abcdefgh"


def test_deferred_length_cannot_exceed_max_size(tus: TusHelper) -> None:
    url = tus.create(None, None, Upload_Defer_Length="1")
    r = tus.patch(url, 0, b"a", Upload_Length=str(MAX_SIZE + 1))
    assert r.status_code == 413
    assert tus.head(url).headers["Upload-Defer-Length"] == "1"


def test_deferred_length_smaller_than_offset_400(tus: TusHelper) -> None:
    url = tus.create(None, None, Upload_Defer_Length="1")
    assert tus.patch(url, 0, b"abcd").status_code == 204
    assert tus.patch(url, 4, b"", Upload_Length="2").status_code == 400
    assert tus.head(url).headers["Upload-Offset"] == "4"


def test_repeated_header_lines(tus: TusHelper) -> None:
    """Upload-Metadata lines combine as HTTP allows (RFC 9110 5.3); a number sent twice with different
    values is refused, never guessed."""
    combined = [
        *TUS.items(),
        ("Upload-Length", "4"),
        ("Upload-Metadata", "a YQ=="),
        ("Upload-Metadata", "b Yg=="),
    ]
    r = tus.http.post(tus.files_url, headers=combined)
    assert r.status_code == 201
    url = r.headers["Location"]
    assert tus.head(url).headers["Upload-Metadata"] == "a YQ==,b Yg=="
    same_key = [
        *TUS.items(),
        ("Upload-Length", "4"),
        ("Upload-Metadata", "a YQ=="),
        ("Upload-Metadata", "a Yg=="),
    ]
    assert tus.http.post(tus.files_url, headers=same_key).status_code == 400
    twice = [*TUS.items(), ("Upload-Length", "4"), ("Upload-Length", "400")]
    r = tus.http.post(tus.files_url, headers=twice)
    assert r.status_code == 400
    assert b"more than once" in r.content
    agree = [*TUS.items(), ("Upload-Length", "4"), ("Upload-Length", "4")]
    assert tus.http.post(tus.files_url, headers=agree).status_code == 201
    before = tus.snapshot(url)
    offsets = [*TUS.items(), ("Upload-Offset", "0"), ("Upload-Offset", "2"), ("Content-Type", OCTET)]
    assert tus.http.patch(url, headers=offsets, content=b"ab").status_code == 400
    tus.assert_unharmed(url, before)
