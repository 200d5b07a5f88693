"""tus 1.0.0 core protocol (protocol.md "Core Protocol") and termination, row by row, on the real server."""

from __future__ import annotations

import re

import pytest

from .conftest import HTTP_DATE, MAX_SIZE, OCTET, TARGET_METADATA, TUS, Row, TusHelper, check_row

EXTENSIONS = (
    "creation,creation-with-upload,creation-defer-length,expiration,checksum,termination,"
    "concatenation,concatenation-unfinished"
)
UNKNOWN = "/files/" + "0" * 32

OPTIONS_ROWS = [
    Row(
        "options-advertises-everything",
        "OPTIONS",
        "collection",
        204,
        expect={
            "Tus-Version": "1.0.0",
            "Tus-Extension": EXTENSIONS,
            "Tus-Max-Size": str(MAX_SIZE),
            "Tus-Checksum-Algorithm": "sha1,sha256,sha512,md5,crc32",
        },
    ),
    # "OPTIONS": the server MUST ignore Tus-Resumable, even an unsupported one.
    Row(
        "options-ignores-tus-resumable",
        "OPTIONS",
        "collection",
        204,
        {"Tus-Resumable": "0.2.2"},
        expect={"Tus-Version": "1.0.0"},
    ),
    Row("options-on-an-upload", "OPTIONS", "upload", 204, expect={"Tus-Version": "1.0.0"}),
    Row(
        "no-checksum-trailer",
        "OPTIONS",
        "collection",
        204,
        expect={"Tus-Extension": re.compile(r"(?!.*checksum-trailer).*")},
    ),
]

HEAD_ROWS = [
    Row(
        "head-reports-state",
        "HEAD",
        "upload",
        200,
        TUS,
        expect={
            "Upload-Offset": "10",
            "Upload-Length": "100",
            "Upload-Metadata": TARGET_METADATA,
            "Cache-Control": "no-store",
            "Upload-Expires": HTTP_DATE,
            "Upload-Defer-Length": None,
        },
    ),
    Row(
        "head-unknown-404",
        "HEAD",
        UNKNOWN,
        404,
        TUS,
        expect={"Upload-Offset": None, "Cache-Control": "no-store"},
    ),
    Row("head-short-id-404", "HEAD", "/files/abc", 404, TUS, expect={"Upload-Offset": None}),
    Row("head-dotdot-404", "HEAD", "/files/../../etc/passwd", 404, TUS, expect={"Upload-Offset": None}),
    Row("head-encoded-dotdot-404", "HEAD", "/files/..%2F..%2Fetc%2Fpasswd", 404, TUS),
    Row("head-encoded-dots-404", "HEAD", "/files/%2e%2e%2f%2e%2e%2fuploads", 404, TUS),
    Row("head-nul-404", "HEAD", "/files/%00" + "0" * 31, 404, TUS),
]

PATCH_ROWS = [
    Row(
        "patch-appends",
        "PATCH",
        "upload",
        204,
        {**TUS, "Upload-Offset": "10", "Content-Type": OCTET},
        body=b"x" * 5,
        expect={"Upload-Offset": "15", "Upload-Expires": HTTP_DATE},
        harmless=False,
    ),
    Row(
        "patch-content-type-params-ok",
        "PATCH",
        "upload",
        204,
        {**TUS, "Upload-Offset": "10", "Content-Type": "Application/Offset+Octet-Stream; charset=binary"},
        body=b"y",
        expect={"Upload-Offset": "11"},
        harmless=False,
    ),
    Row(
        "patch-offset-mismatch-409",
        "PATCH",
        "upload",
        409,
        {**TUS, "Upload-Offset": "3", "Content-Type": OCTET},
        body=b"zzz",
        expect={"Upload-Offset": "10", "Upload-Expires": HTTP_DATE},
        message="ERR_MISMATCHED_OFFSET",
    ),
    Row(
        "patch-offset-ahead-409",
        "PATCH",
        "upload",
        409,
        {**TUS, "Upload-Offset": "50", "Content-Type": OCTET},
        body=b"zzz",
        message="ERR_MISMATCHED_OFFSET",
    ),
    Row(
        "patch-wrong-content-type-415",
        "PATCH",
        "upload",
        415,
        {**TUS, "Upload-Offset": "10", "Content-Type": "application/octet-stream"},
        body=b"abc",
        message="ERR_INVALID_CONTENT_TYPE",
    ),
    Row("patch-no-content-type-415", "PATCH", "upload", 415, {**TUS, "Upload-Offset": "10"}, body=b"abc"),
    Row(
        "patch-negative-offset-400",
        "PATCH",
        "upload",
        400,
        {**TUS, "Upload-Offset": "-1", "Content-Type": OCTET},
        body=b"abc",
        message="ERR_INVALID_OFFSET",
    ),
    Row(
        "patch-text-offset-400",
        "PATCH",
        "upload",
        400,
        {**TUS, "Upload-Offset": "ten", "Content-Type": OCTET},
        body=b"abc",
        message="ERR_INVALID_OFFSET",
    ),
    Row(
        "patch-float-offset-400",
        "PATCH",
        "upload",
        400,
        {**TUS, "Upload-Offset": "10.0", "Content-Type": OCTET},
        body=b"abc",
    ),
    Row(
        "patch-huge-offset-400",
        "PATCH",
        "upload",
        400,
        {**TUS, "Upload-Offset": "9" * 30, "Content-Type": OCTET},
        body=b"abc",
    ),
    Row("patch-missing-offset-400", "PATCH", "upload", 400, {**TUS, "Content-Type": OCTET}, body=b"abc"),
    Row(
        "patch-past-length-413",
        "PATCH",
        "upload",
        413,
        {**TUS, "Upload-Offset": "10", "Content-Type": OCTET},
        body=b"q" * 91,
        message="ERR_UPLOAD_SIZE_EXCEEDED",
    ),
    Row(
        "patch-changes-length-400",
        "PATCH",
        "upload",
        400,
        {**TUS, "Upload-Offset": "10", "Content-Type": OCTET, "Upload-Length": "50"},
        body=b"abc",
    ),
    Row(
        "patch-unknown-404",
        "PATCH",
        UNKNOWN,
        404,
        {**TUS, "Upload-Offset": "0", "Content-Type": OCTET},
        body=b"abc",
    ),
    Row(
        "patch-dotdot-404",
        "PATCH",
        "/files/../uploads/x",
        404,
        {**TUS, "Upload-Offset": "0", "Content-Type": OCTET},
        body=b"abc",
    ),
    Row(
        "patch-encoded-dotdot-404",
        "PATCH",
        "/files/..%2f..%2fuploads",
        404,
        {**TUS, "Upload-Offset": "0", "Content-Type": OCTET},
        body=b"abc",
    ),
]

VERSION_ROWS = [
    Row(
        f"412-{method.lower()}-{label}",
        method,
        target,
        412,
        headers,
        body=body,
        expect={"Tus-Version": "1.0.0"},
        message="" if method == "HEAD" else "ERR_UNSUPPORTED_VERSION",
    )
    for label, version in (
        ("old", {"Tus-Resumable": "0.2.2"}),
        ("missing", {}),
        ("garbage", {"Tus-Resumable": "x"}),
    )
    for method, target, headers, body in (
        ("HEAD", "upload", version, b""),
        ("PATCH", "upload", {**version, "Upload-Offset": "10", "Content-Type": OCTET}, b"abc"),
        ("POST", "collection", {**version, "Upload-Length": "5"}, b""),
        ("DELETE", "upload", version, b""),
    )
]

OVERRIDE_ROWS = [
    Row(
        "override-post-as-patch",
        "POST",
        "upload",
        204,
        {**TUS, "X-HTTP-Method-Override": "PATCH", "Upload-Offset": "10", "Content-Type": OCTET},
        body=b"abcd",
        expect={"Upload-Offset": "14"},
        harmless=False,
    ),
    Row(
        "override-post-as-head",
        "POST",
        "upload",
        200,
        {**TUS, "X-HTTP-Method-Override": "HEAD"},
        expect={"Upload-Offset": "10", "Upload-Length": "100"},
    ),
    Row(
        "override-post-as-delete",
        "POST",
        "upload",
        204,
        {**TUS, "X-HTTP-Method-Override": "DELETE"},
        harmless=False,
    ),
    Row("override-unknown-method-405", "POST", "upload", 405, {**TUS, "X-HTTP-Method-Override": "BREW"}),
]

OTHER_ROWS = [
    Row("get-upload-405", "GET", "upload", 405, TUS, expect={"Allow": re.compile(r".*PATCH.*")}),
    Row("put-collection-405", "PUT", "collection", 405, TUS, body=b"x"),
    Row("delete-unknown-404", "DELETE", UNKNOWN, 404, TUS),
    Row("delete-terminates", "DELETE", "upload", 204, TUS, harmless=False),
]


@pytest.mark.parametrize(
    "row",
    [r.param() for r in OPTIONS_ROWS + HEAD_ROWS + PATCH_ROWS + VERSION_ROWS + OVERRIDE_ROWS + OTHER_ROWS],
)
def test_core_rule(tus: TusHelper, row: Row) -> None:
    check_row(tus, row)


def test_patch_keeps_bytes_in_order(tus: TusHelper) -> None:
    url = tus.target()
    assert tus.patch(url, 10, b"A" * 40).status_code == 204
    r = tus.patch(url, 50, b"B" * 50)
    assert r.status_code == 204
    assert r.headers["Upload-Offset"] == "100"
    assert "Upload-Expires" not in r.headers, "a finished upload no longer expires"
    assert tus.data_path(url).read_bytes() == bytes(range(10)) + b"A" * 40 + b"B" * 50
    head = tus.head(url)
    assert head.headers["Upload-Offset"] == head.headers["Upload-Length"] == "100"


def test_termination_then_410(tus: TusHelper) -> None:
    """ "Termination": DELETE answers 204, later requests 404 or 410 (we keep a tombstone: 410)."""
    url = tus.target()
    path = tus.data_path(url)
    r = tus.http.delete(url, headers=TUS)
    assert r.status_code == 204
    assert r.headers["Tus-Resumable"] == "1.0.0"
    assert not path.exists(), "termination frees the bytes"
    assert tus.head(url).status_code == 410
    assert tus.patch(url, 10, b"x").status_code == 410
    assert tus.http.delete(url, headers=TUS).status_code == 410


def test_patch_to_completed_upload_is_refused(tus: TusHelper) -> None:
    url = tus.create(3)
    assert tus.patch(url, 0, b"abc").status_code == 204
    r = tus.patch(url, 3, b"d")
    assert r.status_code == 413
    assert tus.data_path(url).read_bytes() == b"abc"
