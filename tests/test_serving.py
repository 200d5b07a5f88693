"""uvicorn glue (relaypacs_tus.serving): the zero-copy body buffer, the shared read buffer and the malloc
setting, the latter two against the real server. The head deadline is exercised against
the real server in tests/security/test_limits.py; every PATCH in tests/tus and tests/clients goes through
the body buffer."""

from __future__ import annotations

import base64
import platform
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from relaypacs_tus.serving import BodyChunks, keep_body_memory

from .services.server import RelayServer


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


def _minor_faults(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])  # field 10: minflt


def _upload_counting_faults(server: RelayServer, size: int) -> int:
    """Upload ``size`` bytes in 8 MiB PATCHes; returns the server's minor page faults meanwhile."""
    assert server.proc is not None
    _upload(server, 16 << 20)  # warm up: the heap grows once to what a PATCH needs
    before = _minor_faults(server.proc.pid)
    _upload(server, size)
    return _minor_faults(server.proc.pid) - before


def _upload(server: RelayServer, size: int) -> None:
    headers = {"Tus-Resumable": "1.0.0"}
    with httpx.Client(timeout=30.0) as client:
        created = client.post(server.files_url, headers={**headers, "Upload-Length": str(size)})
        assert created.status_code == 201, created.text
        url = httpx.URL(server.files_url).join(created.headers["Location"])
        chunk = bytes(range(256)) * (32 * 1024)
        for offset in range(0, size, len(chunk)):
            patch_headers = {
                **headers,
                "Upload-Offset": str(offset),
                "Content-Type": "application/offset+octet-stream",
            }
            answer = client.patch(url, headers=patch_headers, content=chunk)
            assert answer.status_code == 204, answer.text


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc tuning is glibc's")
def test_received_bodies_reuse_memory_instead_of_faulting_in_fresh_pages(relay_server: Any) -> None:
    """keep_body_memory: the pages of a 64 MiB upload's bodies are not faulted in afresh for every chunk.
    The control run (the operator's own MALLOC_TRIM_THRESHOLD_, which turns ours off, set to glibc's
    default) shows what the test tells apart: glibc's defaults fault in about two pages per page received."""
    size, pages = 64 << 20, (64 << 20) // 4096
    env = {"RELAYPACS_AUTH": "off", "RELAYPACS_AUDIT": "off"}  # the audit reads each upload once more
    server = relay_server(env=env).start()
    tuned = _upload_counting_faults(server, size)
    untuned = _upload_counting_faults(
        relay_server(env={**env, "MALLOC_TRIM_THRESHOLD_": "131072"}).start(), size
    )
    assert untuned > pages // 2, f"control: {untuned} faults for {pages} pages"
    assert any(e["event"] == "http.malloc_tuned" and e["ok"] for e in server.log_events())
    assert tuned < pages // 8, f"{tuned} faults for {pages} pages (glibc defaults: {untuned})"


def test_the_operators_malloc_settings_win() -> None:
    assert not keep_body_memory({"MALLOC_TRIM_THRESHOLD_": "131072"})
    assert not keep_body_memory({"MALLOC_MMAP_THRESHOLD_": "131072"})
    assert not keep_body_memory({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"})


def _head_request(upload_path: str) -> bytes:
    return f"HEAD {upload_path} HTTP/1.1\r\nHost: relay\r\nTus-Resumable: 1.0.0\r\n\r\n".encode()


def _read_head(sock: socket.socket) -> dict[str, str]:
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        assert more, f"connection closed after {data!r}"
        data += more
    status, *lines = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    assert status.startswith("HTTP/1.1 200"), status
    return {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}


def test_connections_that_interleave_their_reads_each_get_their_own_bytes(relay_server: Any) -> None:
    """buffered_reads: every connection of the loop reads into one buffer. A request head that arrives in
    three reads, with another connection's whole request read in between each, must still be parsed from
    its own bytes: its upload id and its Tus-Resumable header are split across the reads."""
    server = relay_server(env={"RELAYPACS_AUTH": "off"}).start()
    metadata = {"a": "filename " + base64.b64encode(b"a" * 600).decode(), "b": "filename YmI="}
    paths = {}
    for key, value in metadata.items():
        headers = {"Tus-Resumable": "1.0.0", "Upload-Length": "10", "Upload-Metadata": value}
        created = httpx.post(server.files_url, headers=headers)
        assert created.status_code == 201, created.text
        paths[key] = httpx.URL(created.headers["Location"]).path
    request_a = _head_request(paths["a"])
    cuts = [len(f"HEAD {paths['a']}") - 5, request_a.index(b"Tus-Resum") + 7]
    pieces = [request_a[: cuts[0]], request_a[cuts[0] : cuts[1]], request_a[cuts[1] :]]
    with socket.create_connection(("127.0.0.1", server.port)) as a:
        for piece in pieces[:-1]:
            a.sendall(piece)  # the server reads this much and must wait for the rest...
            with socket.create_connection(("127.0.0.1", server.port)) as b:  # ...reading B meanwhile
                b.sendall(_head_request(paths["b"]))
                assert _read_head(b)["upload-metadata"] == metadata["b"]
        a.sendall(pieces[-1])
        answer = _read_head(a)
    assert answer["upload-metadata"] == metadata["a"]
    assert answer["upload-length"] == "10"
