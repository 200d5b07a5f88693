"""The request body as the engine reads it: bounded in length, in idle time, and interruptible."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio

from . import errors


class BodyReader:
    """Wraps a body stream for one PATCH.

    * ``limit``: more bytes than this raise :class:`errors.UploadSizeExceeded` before the chunk that
      would cross it is passed on, so the store only ever sees bytes that fit the upload;
    * ``idle_timeout``: no byte for that long raises :class:`errors.RequestTimeout` (slow-loris);
    * :meth:`interrupt`: called by the locker when another request wants the upload; the pending read is
      cancelled and :class:`errors.UploadInterrupted` raised.
    """

    def __init__(self, stream: AsyncIterator[bytes], *, limit: int, idle_timeout: float) -> None:
        self._stream = stream
        self._limit = limit
        self._timeout = idle_timeout
        self._scope: anyio.CancelScope | None = None
        self._interrupted = False
        self.received = 0

    def interrupt(self) -> None:
        self._interrupted = True
        if self._scope is not None:
            self._scope.cancel()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self._next()
            if chunk is None:
                return
            if not chunk:
                continue
            if self.received + len(chunk) > self._limit:
                raise errors.UploadSizeExceeded()
            self.received += len(chunk)
            yield chunk

    async def _next(self) -> bytes | None:
        if self._interrupted:
            raise errors.UploadInterrupted()
        chunk: bytes | None = None
        with anyio.CancelScope(deadline=anyio.current_time() + self._timeout) as scope:
            self._scope = scope
            try:
                chunk = await self._stream.__anext__()
            except StopAsyncIteration:
                return None
            finally:
                self._scope = None
        if scope.cancelled_caught:
            raise errors.UploadInterrupted() if self._interrupted else errors.RequestTimeout()
        return chunk


async def empty_body() -> AsyncIterator[bytes]:
    """A body with no bytes (creation without upload)."""
    return
    yield b""  # pragma: no cover - makes this an async generator
