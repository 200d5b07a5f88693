"""Limits: bodies longer than the upload, stalled and slow clients, concurrent PATCHes to one upload."""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.services.server import RelayServer

from .conftest import OCTET, TARGET_BYTES, TUS, TusHelper, start_server, upload_id, wait_until

NETWORK_TIMEOUT = 1.5


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayServer]:
    server = start_server(tmp_path_factory, {"RELAYPACS_NETWORK_TIMEOUT": str(NETWORK_TIMEOUT)})
    yield server
    server.stop()


@pytest.fixture
def slow(slow_server: RelayServer) -> Iterator[TusHelper]:
    helper = TusHelper(slow_server)
    yield helper
    helper.close()


def open_patch(
    port: int,
    url: str,
    offset: int,
    *,
    length: int | None,
    chunked: bool = False,
    extra: str = "",
    reading: bool = False,
) -> socket.socket:
    """A PATCH whose headers are sent and whose body the caller writes (or withholds). ``extra``: more
    header lines. ``reading``: send ``Expect: 100-continue`` and return once the server answered
    ``100 Continue``, which uvicorn does when the app first asks for the body (RFC 9110 §10.1.1): the app
    is then waiting for the bytes the caller sends next."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}"
    expect = "Expect: 100-continue\r\n" if reading else ""
    s.sendall(
        (
            f"PATCH /files/{upload_id(url)} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\n"
            f"Upload-Offset: {offset}\r\nContent-Type: {OCTET}\r\n{framing}\r\n{extra}{expect}\r\n"
        ).encode()
    )
    if reading:
        interim = b""
        while b"\r\n\r\n" not in interim:
            part = s.recv(1)  # byte by byte: nothing of the final response may be consumed here
            assert part, "the server closed the connection instead of asking for the body"
            interim += part
        assert interim.startswith(b"HTTP/1.1 100 "), interim
    return s


def unread_by_server(s: socket.socket) -> int:
    """Bytes that the server's end of the connection ``s`` received but the server process has not read
    yet: that socket's rx_queue in the kernel's table of TCP sockets (Linux, /proc/net/tcp)."""
    client_port, server_port = s.getsockname()[1], s.getpeername()[1]
    with open("/proc/net/tcp") as table:
        next(table)  # the column names
        for line in table:
            fields = line.split()
            local, remote = (int(address.rsplit(":", 1)[1], 16) for address in fields[1:3])
            if (local, remote) == (server_port, client_port):
                return int(fields[4].split(":")[1], 16)
    raise AssertionError(f"no server end of 127.0.0.1:{client_port} in /proc/net/tcp")


def send_to_waiting_app(s: socket.socket, data: bytes) -> None:
    """Send body bytes to an app that waits for them (``open_patch(reading=True)``) and return once the
    server process has read them. The waiting app then gets them before the server looks at the socket
    again, so a close or a second request the caller sends next cannot overtake them (uvicorn drops body
    bytes it still holds when the connection closes)."""
    s.sendall(data)
    wait_until(lambda: unread_by_server(s) == 0, what="the server to read the bytes sent")


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def status_of(s: socket.socket) -> int:
    reply = b""
    while b"\r\n" not in reply:
        part = s.recv(4096)
        if not part:
            break
        reply += part
    return int(reply.split(b" ", 2)[1])


def test_chunked_body_longer_than_upload_is_refused(slow: TusHelper) -> None:
    """Without Content-Length the excess shows up mid-body: 413, and the upload never holds more than
    Upload-Length bytes nor anything but what the client sent, in order."""
    url = slow.target()
    body = bytes(range(256)) * 2  # 512 bytes for 90 free
    with open_patch(slow.server.port, url, 10, length=None, chunked=True) as s:
        s.sendall(chunk(body[:60]) + chunk(body[60:]) + b"0\r\n\r\n")
        assert status_of(s) == 413
    head = slow.head(url)
    offset = int(head.headers["Upload-Offset"])
    assert head.headers["Upload-Length"] == "100"
    assert 10 <= offset <= 100
    assert slow.data_path(url).read_bytes() == TARGET_BYTES + body[: offset - 10]
    rest = bytes(100 - offset)
    assert slow.patch(url, offset, rest).status_code == 204


def test_excess_after_the_last_byte_still_finishes_the_upload(slow: TusHelper) -> None:
    """The bytes that fit complete the upload: it is finished (pre-/post-finish run) despite the 413.

    The part that fits is longer than what the local store writes on the loop at the body's end, so it
    reaches the file while the PATCH is still open; the excess goes out once it is there, in a later read
    than the bytes that fit (sent together they would be one read, refused whole)."""
    fits = bytes(range(256)) * 1024  # 256 KiB
    url = slow.create(len(fits))
    path = slow.data_path(url)
    with open_patch(slow.server.port, url, 0, length=None, chunked=True) as s:
        s.sendall(chunk(fits))
        wait_until(lambda: path.stat().st_size == len(fits), timeout=10, what="the bytes that fit on disk")
        s.sendall(chunk(b"extra") + b"0\r\n\r\n")
        assert status_of(s) == 413
    assert slow.head(url).headers["Upload-Offset"] == str(len(fits))
    events = slow.server.log_events()
    assert any(e.get("event") == "upload.finished" and e.get("upload_id") == upload_id(url) for e in events)
    assert path.read_bytes() == fits


def test_stalled_client_times_out_and_keeps_its_bytes(slow: TusHelper) -> None:
    url = slow.target()
    with open_patch(slow.server.port, url, 10, length=80) as s:
        s.sendall(b"s" * 30)  # then nothing: the server must give up after the network timeout
        s.settimeout(NETWORK_TIMEOUT * 10)
        assert status_of(s) == 408
    head = slow.head(url)
    assert head.headers["Upload-Offset"] == "40", "what arrived before the stall is kept"
    assert slow.data_path(url).read_bytes() == TARGET_BYTES + b"s" * 30
    r = slow.patch(url, 40, b"t" * 60)
    assert r.status_code == 204
    assert r.headers["Upload-Offset"] == "100"


def test_slow_but_steady_client_is_not_cut_off(slow: TusHelper) -> None:
    url = slow.create(4)
    with open_patch(slow.server.port, url, 0, length=4) as s:
        for byte in b"slow":
            time.sleep(NETWORK_TIMEOUT / 3)  # pacing: each byte comes well within the network timeout
            s.sendall(bytes([byte]))
        assert status_of(s) == 204
    assert slow.data_path(url).read_bytes() == b"slow"


def test_new_patch_interrupts_a_stalled_one(tus: TusHelper) -> None:
    """Like tusd's lock release requests: a client that lost its connection and retries takes over at once;
    the stale request keeps what it wrote, and the retry learns the true offset (409) instead of waiting."""
    url = tus.target()
    with open_patch(tus.server.port, url, 10, length=80, reading=True) as stale:
        send_to_waiting_app(stale, b"o" * 25)
        r = tus.patch(url, 10, b"n" * 90)
        assert r.status_code == 409
        assert r.headers["Upload-Offset"] == "35"
        # 400 ERR_UPLOAD_INTERRUPTED, not 408: the stale request was released, not left to time out
        assert status_of(stale) == 400
    assert tus.data_path(url).read_bytes() == TARGET_BYTES + b"o" * 25
    assert tus.patch(url, 35, b"n" * 65).status_code == 204


@pytest.mark.parametrize("checksum", [False, True], ids=["plain", "checksum"])
def test_concurrent_patches_never_interleave(tus: TusHelper, checksum: bool) -> None:
    size = 256 * 1024
    url = tus.create(10 + size)
    assert tus.patch(url, 0, TARGET_BYTES).status_code == 204
    payloads = [bytes([65 + i]) * size for i in range(6)]
    results: list[int] = []

    def send(data: bytes) -> None:
        headers = {**TUS, "Upload-Offset": "10", "Content-Type": OCTET}
        if checksum:
            headers["Upload-Checksum"] = "sha1 " + base64.b64encode(hashlib.sha1(data).digest()).decode()
        with httpx.Client(timeout=60) as client:
            results.append(client.patch(url, headers=headers, content=data).status_code)

    threads = [threading.Thread(target=send, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == len(payloads)
    assert set(results) <= {204, 400, 409, 423}, results
    data = tus.data_path(url).read_bytes()
    assert data[:10] == TARGET_BYTES
    written = data[10:]
    owners = {b for b in written}
    assert len(owners) <= 1, "bytes of two requests interleaved"
    if checksum:
        assert written in (b"", *payloads), "a checksum chunk is all or nothing"
    if results.count(204) == 1:
        assert tus.head(url).headers["Upload-Offset"] == str(10 + size)
    tus.assert_serving()


def test_client_that_disconnects_keeps_its_bytes(slow: TusHelper) -> None:
    """ "The Server SHOULD always attempt to store as much of the received data as possible"."""
    url = slow.target()
    with open_patch(slow.server.port, url, 10, length=80, reading=True) as s:
        send_to_waiting_app(s, b"d" * 30)  # bytes the app has read are what we keep
    wait_until(lambda: slow.head(url).headers["Upload-Offset"] == "40", what="the kept bytes to show in HEAD")
    assert slow.data_path(url).read_bytes() == TARGET_BYTES + b"d" * 30
    assert slow.patch(url, 40, b"e" * 60).status_code == 204


def test_disconnect_during_a_checksum_chunk_keeps_nothing(slow: TusHelper) -> None:
    """With Upload-Checksum the chunk is all or nothing: a half-sent one is dropped."""
    url = slow.target()
    digest = base64.b64encode(hashlib.sha1(b"c" * 80).digest()).decode()
    s = open_patch(
        slow.server.port, url, 10, length=80, extra=f"Upload-Checksum: sha1 {digest}\r\n", reading=True
    )
    send_to_waiting_app(s, b"c" * 30)  # the app holds 30 bytes of the chunk when the connection drops
    s.close()
    wait_until(
        lambda: any(e.get("event") == "upload.patch_failed" and e.get("upload_id") == upload_id(url)
                    for e in slow.server.log_events()),
        what="the server to notice the disconnect",
    )  # fmt: skip
    assert slow.head(url).headers["Upload-Offset"] == "10"
    assert slow.data_path(url).read_bytes() == TARGET_BYTES
