"""Write-behind (relaypacs_tus.stores.writebehind), the local store's PATCH path: memory stays bounded when
the disk side is slower than the network, a slow client does not hold a worker thread, a PATCH costs one
hand-off to a worker thread, and a failure keeps the spool's promises (every byte received is kept, or
with a checksum the chunk is rolled back)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from relaypacs_tus.stores import writebehind
from relaypacs_tus.stores.writebehind import Spool, spool_body
from relaypacs_tus.tus import errors
from relaypacs_tus.tus.checksum import ChecksumVerifier
from relaypacs_tus.tus.headers import Checksum

pytestmark = pytest.mark.anyio

CHUNK = 256 * 1024
MiB = 1024 * 1024


def _chunk(i: int) -> bytes:
    return bytes([i % 251]) * CHUNK  # a fresh object each time, like the chunks uvicorn hands over


def _opener(path: Path) -> Callable[[], int]:
    return lambda: os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)


def _expected(count: int) -> bytes:
    return b"".join(_chunk(i) for i in range(count))


async def _body(count: int, *, paced: bool = False, then: Exception | None = None) -> AsyncIterator[bytes]:
    """``count`` chunks; ``paced``: yield to the loop after each, as a network does, so a drain runs
    while chunks arrive; ``then``: raised after the last one (a client that goes away)."""
    for i in range(count):
        yield _chunk(i)
        if paced:
            await anyio.sleep(0)
    if then is not None:
        raise then


def _rollback_recorder() -> tuple[list[int], Callable[[int], None]]:
    """A store's rollback hook that empties the file, and the list of its calls."""
    calls: list[int] = []

    def rollback(fd: int) -> None:
        os.ftruncate(fd, 0)
        calls.append(fd)

    return calls, rollback


class SlowVerifier(ChecksumVerifier):
    """sha1 that takes 2 ms per chunk: a disk side much slower than the network."""

    def update(self, data: bytes | bytearray | memoryview) -> None:
        time.sleep(0.002)
        super().update(data)


async def test_memory_stays_bounded_when_the_disk_is_slower_than_the_network(tmp_path: Path) -> None:
    count, flush = 256, 1024 * 1024  # a 64 MiB body; the spool may hold about 2 MiB
    digest = hashlib.sha1(_expected(count)).digest()

    async def body() -> AsyncIterator[bytes]:
        for i in range(count):
            yield _chunk(i)

    verifier = SlowVerifier(Checksum("sha1", digest))
    tracemalloc.start()
    try:
        written = await spool_body(body(), Spool(_opener(tmp_path / "data"), verifier), flush)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert written == count * CHUNK
    assert (tmp_path / "data").read_bytes() == _expected(count)
    assert peak < 2 * flush + 4 * CHUNK, f"peak {peak / 2**20:.1f} MiB for a 64 MiB body"


async def test_a_slow_client_does_not_hold_a_worker_thread(tmp_path: Path) -> None:
    limiter = anyio.to_thread.current_default_thread_limiter()
    count = 2 * MiB // CHUNK
    spool = Spool(_opener(tmp_path / "data"))
    released = False

    async def body() -> AsyncIterator[bytes]:
        nonlocal released
        for i in range(count):
            yield _chunk(i)
        with anyio.fail_after(10):  # the client pauses after 2 MiB
            while spool.written < count * CHUNK:  # a drain wrote them (the body has not ended)...
                await anyio.sleep(0.001)
            while limiter.borrowed_tokens:  # ...and gives its thread back while nothing comes
                await anyio.sleep(0.001)
        released = True
        for i in range(count, 2 * count):
            yield _chunk(i)

    written = await spool_body(body(), spool, 4 * 1024 * 1024)
    assert released
    assert written == 2 * count * CHUNK
    assert (tmp_path / "data").read_bytes() == _expected(2 * count)


async def test_a_long_body_costs_one_hand_off_to_a_worker_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    count = 32  # 8 MiB, the size of a typical client's PATCH
    hand_offs: list[str] = []
    run_sync = anyio.to_thread.run_sync

    async def counted(func: Callable[..., object], *args: object) -> object:
        hand_offs.append(getattr(func, "__name__", repr(func)))
        return await run_sync(func, *args)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    monkeypatch.setattr(writebehind, "LINGER", 30.0)  # a stalled test machine must not end the drain
    committed: list[int] = []
    digest = hashlib.sha1(_expected(count)).digest()
    spool = Spool(
        _opener(tmp_path / "data"),
        ChecksumVerifier(Checksum("sha1", digest)),
        commit=lambda: committed.append(threading.get_ident()),
    )
    assert await spool_body(_body(count, paced=True), spool, 4 * MiB, inline=64 * 1024) == count * CHUNK
    assert (tmp_path / "data").read_bytes() == _expected(count)
    assert len(hand_offs) == 1, hand_offs  # open, write, verify and commit in one drain
    assert len(committed) == 1
    assert committed[0] != threading.get_ident()  # in the drain's worker thread, not on the loop


async def test_a_checksum_mismatch_found_by_the_drain_rolls_the_body_back(tmp_path: Path) -> None:
    rolled_back, rollback = _rollback_recorder()
    spool = Spool(
        _opener(tmp_path / "data"),
        ChecksumVerifier(Checksum("sha1", b"\0" * 20)),
        commit=lambda: pytest.fail("a body whose checksum does not match was committed"),
        rollback=rollback,
    )
    with pytest.raises(errors.ChecksumMismatch):
        await spool_body(_body(24, paced=True), spool, 4 * MiB)
    assert len(rolled_back) == 1
    assert (tmp_path / "data").read_bytes() == b""


class ThreadNamingVerifier(SlowVerifier):
    """The slow sha1 that also notes which thread hashed each chunk."""

    def __init__(self, checksum: Checksum) -> None:
        super().__init__(checksum)
        self.threads: set[str] = set()

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self.threads.add(threading.current_thread().name)
        super().update(data)


@pytest.mark.parametrize("split_tail", [True, False])
async def test_a_long_rest_at_the_end_is_hashed_beside_the_write(tmp_path: Path, split_tail: bool) -> None:
    count = 64  # 16 MiB; the slow verifier leaves 4-8 MiB for the end
    verifier = ThreadNamingVerifier(Checksum("sha1", hashlib.sha1(_expected(count)).digest()))
    committed: list[bool] = []
    spool = Spool(
        _opener(tmp_path / "data"), verifier, commit=lambda: committed.append(True), split_tail=split_tail
    )
    assert await spool_body(_body(count), spool, 4 * MiB) == count * CHUNK
    assert (tmp_path / "data").read_bytes() == _expected(count)
    assert committed == [True]
    assert ("relaypacs-hash" in verifier.threads) is split_tail, verifier.threads


async def test_a_mismatch_in_a_rest_hashed_beside_rolls_the_body_back(tmp_path: Path) -> None:
    rolled_back, rollback = _rollback_recorder()
    verifier = ThreadNamingVerifier(Checksum("sha1", b"\0" * 20))
    spool = Spool(_opener(tmp_path / "data"), verifier, rollback=rollback, split_tail=True)
    with pytest.raises(errors.ChecksumMismatch):
        await spool_body(_body(64), spool, 4 * MiB)
    assert "relaypacs-hash" in verifier.threads
    assert len(rolled_back) == 1
    assert (tmp_path / "data").read_bytes() == b""


async def test_a_body_that_breaks_off_keeps_every_byte_received(tmp_path: Path) -> None:
    count = 3 * MiB // CHUNK + 1
    gone = ConnectionResetError("client went away")
    with pytest.raises(ConnectionResetError):
        await spool_body(_body(count, then=gone), Spool(_opener(tmp_path / "data")), 1024 * 1024)
    assert (tmp_path / "data").read_bytes() == _expected(count)


async def test_a_checksum_body_that_breaks_off_is_rolled_back(tmp_path: Path) -> None:
    rolled_back, rollback = _rollback_recorder()
    verifier = ChecksumVerifier(Checksum("sha1", b"\0" * 20))
    spool = Spool(_opener(tmp_path / "data"), verifier, rollback=rollback)
    gone = ConnectionResetError("client went away")
    with pytest.raises(ConnectionResetError):
        await spool_body(_body(3 * MiB // CHUNK, then=gone), spool, 1024 * 1024)
    assert len(rolled_back) == 1
    assert (tmp_path / "data").read_bytes() == b""


async def test_a_failed_write_reaches_the_request(tmp_path: Path) -> None:
    def full_disk() -> int:
        raise OSError(28, "No space left on device")

    async def body() -> AsyncIterator[bytes]:
        for i in range(4 * MiB // CHUNK):
            yield _chunk(i)

    with pytest.raises(OSError, match="No space left"):
        await spool_body(body(), Spool(full_disk), 1024 * 1024)
