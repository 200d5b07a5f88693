"""Per-upload locks so two requests never write one upload at once.

Like tusd's lock "release requests": a new request for a held upload first asks the holder to let go (its
body read is cancelled; the bytes it already wrote are kept), then waits up to ``acquire_timeout``. A client
that lost its connection and retries thus takes over at once, instead of waiting for the old request's
network timeout, and a genuine concurrent writer gets 423 instead of interleaving.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

import anyio

from . import errors

#: Checks a request may take the upload from its holder (e.g. it is the owner's); raises to refuse.
Vet = Callable[[], Awaitable[object]]


class Locker(Protocol):
    def hold(
        self, upload_id: str, on_release_request: Callable[[], None], *, vet: Vet | None = None
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold the upload's lock for the block, or raise :class:`errors.UploadLocked`.

        If another request holds it, ``vet`` (when given) is awaited before that holder is asked to let
        go: a request that may not touch the upload must not be able to interrupt one that may. An
        uncontended lock is taken without ``vet``; the caller checks under the lock anyway."""
        ...


class _Entry:
    __slots__ = ("lock", "release", "waiters")

    def __init__(self) -> None:
        self.lock = anyio.Lock()
        self.release: Callable[[], None] | None = None
        self.waiters = 0


class MemoryLocker:
    """In-process locks for one server process (the embedded default)."""

    def __init__(self, acquire_timeout: float = 5.0) -> None:
        self._entries: dict[str, _Entry] = {}
        self._timeout = acquire_timeout

    @contextlib.asynccontextmanager
    async def hold(
        self, upload_id: str, on_release_request: Callable[[], None], *, vet: Vet | None = None
    ) -> AsyncIterator[None]:
        entry = self._entries.setdefault(upload_id, _Entry())
        entry.waiters += 1
        try:
            if entry.lock.locked() and vet is not None:
                await vet()
            if entry.lock.locked() and entry.release is not None:
                entry.release()
            with anyio.move_on_after(self._timeout) as scope:
                await entry.lock.acquire()
            if scope.cancelled_caught:
                raise errors.UploadLocked()
        finally:
            entry.waiters -= 1
        entry.release = on_release_request
        try:
            yield
        finally:
            entry.release = None
            entry.lock.release()
            if entry.waiters == 0 and not entry.lock.locked():
                self._entries.pop(upload_id, None)
