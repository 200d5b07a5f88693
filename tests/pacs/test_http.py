"""The streaming pieces under the HTTP destinations: request bodies from files, hashes of responses."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from relaypacs_tus.pacs.http import FileBody, boundary_of, hash_single_part, multipart_body


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 1 << 20])
def test_single_part_hash_whatever_the_chunking(size: int) -> None:
    payload = os.urandom(5000) + b"\r\n--not-the-boundary\r\n" + os.urandom(100)
    boundary = "abc123"
    stream = (
        b"\r\n--abc123\r\nContent-Type: application/dicom\r\nX-Other: 1\r\n\r\n"
        + payload
        + b"\r\n--abc123--\r\n"
    )
    assert hash_single_part(iter(chunks(stream, size)), boundary) == hashlib.sha256(payload).hexdigest()


def test_single_part_hash_of_an_incomplete_stream_is_none() -> None:
    assert hash_single_part(iter([b"--b\r\nContent-Type: application/dicom\r\n\r\npartial"]), "b") is None
    assert hash_single_part(iter([]), "b") is None


def test_boundary_parameter() -> None:
    assert boundary_of('multipart/related; type="application/dicom"; boundary="x-y"') == "x-y"
    assert boundary_of("multipart/related; Boundary=abc; type=application/dicom") == "abc"
    assert boundary_of("application/dicom") is None


def test_file_body_streams_prefix_file_suffix_and_rewinds(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    (tmp_path / "f").write_bytes(data)
    with multipart_body(tmp_path / "f", "0123abcd") as body:
        expected = b"--0123abcd\r\nContent-Type: application/dicom\r\n\r\n" + data + b"\r\n--0123abcd--\r\n"
        assert len(body) == len(expected)
        first = b"".join(iter(lambda: body.read(8191), b""))
        assert first == expected
        body.seek(0)
        assert body.read() == expected
        body.seek(-5, io.SEEK_END)
        assert body.read() == expected[-5:]
    with FileBody(tmp_path / "f") as plain:
        assert plain.read() == data
