"""uvicorn glue (relaypacs_tus.serving): the zero-copy body buffer. The head deadline is exercised against
the real server in tests/security/test_limits.py; every PATCH in tests/tus and tests/clients goes through
the body buffer."""

from __future__ import annotations

from relaypacs_tus.serving import BodyChunks


def test_a_single_chunk_reaches_the_app_without_a_copy() -> None:
    chunk = bytes(range(256)) * 1024
    body = BodyChunks()
    body += chunk
    assert len(body) == len(chunk)
    assert bytes(body) is chunk


def test_chunks_that_arrive_between_two_reads_are_joined_in_order() -> None:
    body = BodyChunks()
    for part in (b"abc", b"", b"defg", b"h"):
        body += part
    assert len(body) == 8
    assert bytes(body) == b"abcdefgh"
    assert bytes(BodyChunks()) == b""
