"""uvicorn glue: a deadline for each request head (for either of uvicorn's HTTP/1.1 protocols), and three
ways of receiving bodies with fewer copies and page faults (:class:`BodyChunks`, :func:`buffered_reads`,
:func:`keep_body_memory`).

uvicorn times a connection out only between requests (keep-alive). A client that connects and sends its
headers one byte at a time (the classic slow-loris) holds the connection for ever, and enough of them
exhaust ``limit_concurrency`` (503 for everyone). With :func:`with_head_deadline` each request head must
be complete within ``seconds`` of its first byte (or of the connection opening); otherwise the
connection is closed. Bodies have their own idle timeout in the engine (RELAYPACS_NETWORK_TIMEOUT, 408).
"""

from __future__ import annotations

import asyncio
import ctypes
import platform
import threading
from collections.abc import Callable, Mapping
from typing import Any, cast

import h11
import structlog

log = structlog.get_logger("relaypacs_tus.http")


def with_head_deadline(base: type[asyncio.Protocol], seconds: float) -> type[asyncio.Protocol]:
    """A subclass of uvicorn's ``H11Protocol`` or ``HttpToolsProtocol`` (or of a subclass of them)."""
    protocol: Any = base

    class HeadDeadline(protocol):  # type: ignore[misc,valid-type]
        _head_timer: asyncio.TimerHandle | None = None
        _in_head = True  # httptools: between a message's end and the next head's end

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._head_timer is None and self._head_pending():
                self._arm()  # the first bytes of a new request head (after keep-alive)
            super().data_received(data)
            if not self._head_pending():
                self._disarm()

        def on_headers_complete(self) -> None:  # httptools parser callback; h11 never calls it
            self._in_head = False
            super().on_headers_complete()

        def on_message_complete(self) -> None:  # httptools parser callback
            super().on_message_complete()
            self._in_head = True

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _head_pending(self) -> bool:
            conn = getattr(self, "conn", None)
            if isinstance(conn, h11.Connection):
                return conn.their_state is h11.IDLE
            return bool(self._in_head)

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(seconds, self._expired)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _expired(self) -> None:
            self._head_timer = None
            if self._head_pending() and not self.transport.is_closing():
                client = self.client[0] if self.client else "unknown"
                log.info("http.head_timeout", client=client, seconds=seconds)
                self.transport.close()

    HeadDeadline.__name__ = HeadDeadline.__qualname__ = f"HeadDeadline{base.__name__}"
    return cast(type[asyncio.Protocol], HeadDeadline)


class BodyChunks:
    """Stands in for uvicorn's per-request ``bytearray`` body buffer (httptools protocol), keeping the
    received chunks as they are instead of copying them into the buffer and out again.

    uvicorn collects body bytes with ``cycle.body += chunk`` and hands them to the app as
    ``bytes(cycle.body)``: two copies of every byte on the event loop thread, about a fifth of a PATCH's
    CPU per GiB (benchmarks/). Here ``+=`` appends the chunk and ``bytes()`` joins, which for the usual
    single chunk returns that very object. Only the operations uvicorn uses are offered; if it starts
    using others, uploads fail loudly in every test rather than silently copying.
    """

    __slots__ = ("_chunks", "_size")

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._size = 0

    def __iadd__(self, chunk: bytes) -> BodyChunks:
        self._chunks.append(chunk)
        self._size += len(chunk)
        return self

    def __len__(self) -> int:
        return self._size

    def __bytes__(self) -> bytes:
        return b"".join(self._chunks)  # one chunk: the same object, no copy


def zero_copy_bodies(base: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
    """A subclass of uvicorn's ``HttpToolsProtocol`` (or of a subclass) using :class:`BodyChunks`."""
    protocol: Any = base

    class ZeroCopyBodies(protocol):  # type: ignore[misc,valid-type]
        def on_body(self, body: bytes) -> None:
            cycle = self.cycle
            # uvicorn resets the buffer to an empty bytearray after each receive(): swap ours back in.
            if cycle is not None and not isinstance(cycle.body, BodyChunks) and not cycle.body:
                cycle.body = BodyChunks()
            super().on_body(body)

    return cast("type[asyncio.Protocol]", ZeroCopyBodies)


# glibc mallopt(3) parameters.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 4 << 20
TRIM_THRESHOLD = 32 << 20


def keep_body_memory(environ: Mapping[str, str]) -> bool:
    """Have glibc's malloc reuse the memory of received body chunks instead of returning it to the kernel
    after each one; returns whether it did. Call once, before serving.

    Every chunk uvicorn receives (up to 256 KiB) is a new ``bytes``, freed once written. With glibc's
    defaults such a block is either mmap-ed and unmapped again, or taken from the top of the heap that
    free() then trims: either way the next chunk's pages are fresh, and the kernel faults and zeroes each
    of them. That cost about 30% of the server's CPU per GiB and a quarter of single-stream throughput
    (benchmarks/, 1 GiB in 8 MiB PATCHes: 1,030 -> 1,340 MB/s, 1.06 -> 0.74 CPU s). Here blocks up to
    4 MiB (received chunks, the stores' 1 MiB read buffers) come from the heap, and at most 32 MiB of free
    heap stays mapped; live memory is unchanged (the write-behind spool bounds it).

    Nothing changes off glibc, or when the operator tunes malloc already (``MALLOC_MMAP_THRESHOLD_``,
    ``MALLOC_TRIM_THRESHOLD_`` or ``glibc.malloc`` in ``GLIBC_TUNABLES``): theirs wins.
    """
    if platform.libc_ver()[0] != "glibc":
        return False
    if "MALLOC_MMAP_THRESHOLD_" in environ or "MALLOC_TRIM_THRESHOLD_" in environ:
        return False
    if "glibc.malloc" in environ.get("GLIBC_TUNABLES", ""):
        return False
    libc = ctypes.CDLL(None)  # the process's own symbols: glibc's mallopt
    # mallopt returns 1 on success; setting either also stops glibc's dynamic threshold adjustment.
    mmap_set = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    kept = bool(mmap_set and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
    log.info("http.malloc_tuned", ok=kept, mmap_threshold=MMAP_THRESHOLD, trim_threshold=TRIM_THRESHOLD)
    return kept


READ_SIZE = 256 * 1024
_read_buffers = threading.local()


def _read_buffer() -> memoryview:
    view: memoryview | None = getattr(_read_buffers, "view", None)
    if view is None:
        view = _read_buffers.view = memoryview(bytearray(READ_SIZE))
    return view


def buffered_reads(base: Callable[..., asyncio.Protocol]) -> type[asyncio.BufferedProtocol]:
    """Wrap uvicorn's HTTP protocol so the event loop reads into one reused buffer instead of a new
    ``bytes`` per read (uvloop and asyncio both skip that copy for a ``BufferedProtocol``): 32 concurrent
    uploads 7% faster on 7% less CPU (benchmarks/, ab of 3 runs; one stream within noise).

    The buffer is shared by every connection of the event loop's thread: a read is parsed at once
    (httptools copies what it keeps: URL, headers, body chunks), so it is free again when
    ``buffer_updated`` returns. uvloop only takes this path for a protocol that is *not* an
    ``asyncio.Protocol``, hence a wrapper that forwards to uvicorn's protocol instead of a subclass.
    """

    class BufferedReads(asyncio.BufferedProtocol):
        __slots__ = ("buffer", "http")

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.http = base(*args, **kwargs)
            self.buffer = _read_buffer()  # made on the loop's thread: its buffer, looked up once

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.http.connection_made(transport)

        def connection_lost(self, exc: Exception | None) -> None:
            self.http.connection_lost(exc)

        def pause_writing(self) -> None:
            self.http.pause_writing()

        def resume_writing(self) -> None:
            self.http.resume_writing()

        def eof_received(self) -> bool | None:
            return self.http.eof_received()

        def get_buffer(self, sizehint: int) -> memoryview:
            return self.buffer

        def buffer_updated(self, nbytes: int) -> None:
            # a memoryview, not bytes: httptools parses any buffer and copies what it keeps
            self.http.data_received(self.buffer[:nbytes])  # type: ignore[arg-type]

    return BufferedReads
