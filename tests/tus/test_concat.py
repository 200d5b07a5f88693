""" "Concatenation" and "concatenation-unfinished" on the real server."""

from __future__ import annotations

import httpx
import pytest

from .conftest import MAX_SIZE, OCTET, TUS, Row, TusHelper, check_row, upload_id, wait_until


def partial(tus: TusHelper, data: bytes, send: bool = True) -> str:
    url = tus.create(len(data), Upload_Concat="partial")
    if send:
        assert tus.patch(url, 0, data).status_code == 204
    return url


def final(tus: TusHelper, *urls: str, **headers: str) -> httpx.Response:
    extra = {k.replace("_", "-"): v for k, v in headers.items()}
    return tus.http.post(tus.files_url, headers={**TUS, "Upload-Concat": "final;" + " ".join(urls), **extra})


def test_partials_concatenate_in_order(tus: TusHelper) -> None:
    a, b = partial(tus, b"hello"), partial(tus, b" world")
    head = tus.head(a)
    assert head.headers["Upload-Concat"] == "partial"
    assert head.headers["Upload-Offset"] == "5"
    r = final(tus, a, b, Upload_Metadata="filename aGVsbG8udHh0")
    assert r.status_code == 201, r.text
    assert "Upload-Offset" not in r.headers or r.headers["Upload-Offset"] == "11"
    url = r.headers["Location"]
    head = tus.head(url)
    assert head.headers["Upload-Offset"] == head.headers["Upload-Length"] == "11"
    assert head.headers["Upload-Concat"] == f"final;{a} {b}"
    assert head.headers["Upload-Metadata"] == "filename aGVsbG8udHh0", "partials' metadata is not inherited"
    assert tus.data_path(url).read_bytes() == b"hello world"


def test_relative_partial_urls_and_reuse(tus: TusHelper) -> None:
    """URLs MAY be relative, and a partial MAY be used more than once."""
    a = partial(tus, b"ab")
    rel = "/files/" + upload_id(a)
    r = final(tus, rel, rel, a)
    assert r.status_code == 201
    assert tus.data_path(r.headers["Location"]).read_bytes() == b"ababab"


def test_concatenation_unfinished(tus: TusHelper) -> None:
    """The final upload may be created first; HEAD then has no Upload-Offset, and the final completes
    when the last partial does."""
    a, b = partial(tus, b"first-", send=False), partial(tus, b"second", send=False)
    r = final(tus, a, b)
    assert r.status_code == 201
    url = r.headers["Location"]
    head = tus.head(url)
    assert head.status_code == 200
    assert "Upload-Offset" not in head.headers, "HEAD of an unfinished final SHOULD NOT carry Upload-Offset"
    assert head.headers["Upload-Length"] == "12"
    assert tus.patch(url, 0, b"x").status_code == 403, "PATCH to a final upload is forbidden"
    assert tus.patch(a, 0, b"first-").status_code == 204
    assert "Upload-Offset" not in tus.head(url).headers
    assert tus.patch(b, 0, b"second").status_code == 204
    wait_until(
        lambda: tus.head(url).headers.get("Upload-Offset") == "12", what="the final upload to concatenate"
    )
    assert tus.data_path(url).read_bytes() == b"first-second"


def test_final_length_unknown_while_a_partial_defers(tus: TusHelper) -> None:
    a = partial(tus, b"abc")
    d = tus.create(None, None, Upload_Defer_Length="1", Upload_Concat="partial")
    url = final(tus, a, d).headers["Location"]
    head = tus.head(url)
    assert "Upload-Length" not in head.headers
    assert "Upload-Offset" not in head.headers
    assert tus.patch(d, 0, b"de", Upload_Length="2").status_code == 204
    wait_until(lambda: tus.head(url).headers.get("Upload-Offset") == "5", what="concatenation")
    assert tus.data_path(url).read_bytes() == b"abcde"


CONCAT_ROWS = [
    Row(
        "final-with-upload-length-400",
        "POST",
        "collection",
        400,
        {**TUS, "Upload-Concat": "final;/files/" + "0" * 32, "Upload-Length": "5"},
    ),
    Row(
        "final-with-defer-400",
        "POST",
        "collection",
        400,
        {**TUS, "Upload-Concat": "final;/files/" + "0" * 32, "Upload-Defer-Length": "1"},
    ),
    Row(
        "final-without-urls-400",
        "POST",
        "collection",
        400,
        {**TUS, "Upload-Concat": "final;"},
        message="ERR_INVALID_CONCAT",
    ),
    Row(
        "concat-garbage-400",
        "POST",
        "collection",
        400,
        {**TUS, "Upload-Concat": "partially", "Upload-Length": "1"},
    ),
    Row(
        "final-foreign-url-400",
        "POST",
        "collection",
        400,
        {**TUS, "Upload-Concat": "final;https://other/x/abc"},
    ),
    Row(
        "final-unknown-partial-404",
        "POST",
        "collection",
        404,
        {**TUS, "Upload-Concat": "final;/files/" + "0" * 32},
    ),
    Row(
        "final-dotdot-partial-404",
        "POST",
        "collection",
        404,
        {**TUS, "Upload-Concat": "final;/files/../../etc"},
    ),
]


@pytest.mark.parametrize("row", [r.param() for r in CONCAT_ROWS])
def test_concat_rule(tus: TusHelper, row: Row) -> None:
    check_row(tus, row)


def test_final_of_a_non_partial_400(tus: TusHelper) -> None:
    plain = tus.target()
    r = final(tus, plain)
    assert r.status_code == 400
    assert b"ERR_UPLOAD_NOT_PARTIAL" in r.content


def test_final_over_max_size_413(tus: TusHelper) -> None:
    a = tus.create(MAX_SIZE, Upload_Concat="partial")
    b = tus.create(1, Upload_Concat="partial")
    assert final(tus, a, b).status_code == 413


def test_patch_to_finished_final_403(tus: TusHelper) -> None:
    a = partial(tus, b"xy")
    url = final(tus, a).headers["Location"]
    r = tus.http.patch(url, headers={**TUS, "Upload-Offset": "2", "Content-Type": OCTET}, content=b"z")
    assert r.status_code == 403
    assert b"ERR_MODIFY_FINAL" in r.content
    assert tus.data_path(url).read_bytes() == b"xy"


def test_terminated_partial_leaves_final_unfinished(tus: TusHelper) -> None:
    a, b = partial(tus, b"aa"), partial(tus, b"bb", send=False)
    url = final(tus, a, b).headers["Location"]
    assert tus.http.delete(b, headers=TUS).status_code == 204
    head = tus.head(url)
    assert head.status_code == 200
    assert "Upload-Offset" not in head.headers
