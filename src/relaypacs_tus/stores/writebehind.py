"""Write-behind for one PATCH body into a local file: the event loop keeps receiving while a worker thread
writes (and hashes) the previous batch, so neither waits for the other.

Why this shape (measured with ``benchmarks/``, 1 GiB in 8 MiB PATCHes on a 2-core VM):

* one ``os.write`` per received chunk (64-256 KiB) rather than one ``writev`` of the whole batch: a large
  write makes the kernel allocate large page-cache folios, which on a VM whose host reclaims freed memory
  cost 2-3x more per byte (``dd`` bs=64K vs bs=4M showed the same); the sink and the peers write chunk by
  chunk too;
* write, then hash: a chunk ``os.write`` has just read is still in the CPU cache, and hashing it there
  costs about half the CPU of hashing it before (or in a second thread, which also made each lane wait
  for the other); on 2 cores, CPU is what a checksum costs;
* double buffering: at most one batch in the thread and one being received, so memory per PATCH is about
  ``2 x flush`` bytes whatever the PATCH size (the store picks ``flush``);
* one thread hop for a body shorter than ``flush`` (open, write, verify, close together), none for a
  body the store lets run inline: small uploads are dominated by hops, not bytes.

Correctness does not depend on timing: a chunk leaves the spool only once written, so after any failure
the spool holds exactly the bytes that did not reach the file. Without a checksum those are written
(no byte received before a disconnect is lost); with one the chunk is rolled back (all-or-nothing).
"""

from __future__ import annotations

import collections
import os
from collections.abc import AsyncIterator, Callable

import anyio
import anyio.abc
import anyio.to_thread

from ..tus.checksum import ChecksumVerifier


class Spool:
    """Received chunks not yet in the file, in order. The event loop appends; one worker thread at a time
    writes. ``open_fd`` runs in that thread on the first write; ``commit`` (after the checksum matched)
    and ``rollback(fd)`` are the store's hooks for its pending marker."""

    def __init__(
        self,
        open_fd: Callable[[], int],
        verifier: ChecksumVerifier | None = None,
        *,
        commit: Callable[[], None] | None = None,
        rollback: Callable[[int], None] | None = None,
    ) -> None:
        self._open_fd = open_fd
        self._verifier = verifier
        self._on_commit = commit
        self._on_rollback = rollback
        self._chunks: collections.deque[bytes] = collections.deque()
        self._fd: int | None = None
        self._busy: anyio.Event | None = None  # set when the batch in flight is written
        self.queued = 0  # bytes received and not yet handed to a write
        self.written = 0
        self.error: Exception | None = None  # a failed write, raised on the receiving side

    @property
    def untouched(self) -> bool:
        """Nothing handed to a write yet: the whole body so far is in :attr:`queued`."""
        return self._busy is None

    def put(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self.queued += len(chunk)

    async def write_behind(self, tg: anyio.abc.TaskGroup) -> None:
        """Wait for the write in flight, then start writing everything queued and return at once."""
        if self._busy is not None:
            await self._busy.wait()
        if self.error is not None:
            raise self.error
        done = self._busy = anyio.Event()
        count, self.queued = len(self._chunks), 0
        tg.start_soon(self._write_task, count, done)

    async def _write_task(self, count: int, done: anyio.Event) -> None:
        try:
            await anyio.to_thread.run_sync(self._write, count)
        except Exception as exc:  # kept for write_behind/commit: a task group would wrap it in a group
            self.error = exc
        finally:
            done.set()

    def _write(self, count: int) -> None:
        """In a worker thread: write, then hash, the first ``count`` chunks, one ``os.write`` each."""
        if not count:  # an empty body touches nothing (an accepted upload's file is read-only)
            return
        if self._fd is None:
            self._fd = self._open_fd()
        fd = self._fd
        for _ in range(count):
            chunk = self._chunks[0]
            view = memoryview(chunk)
            while view:
                n = os.write(fd, view)
                self.written += n
                view = view[n:]
            if self._verifier is not None:  # after the write: the chunk is in cache now
                self._verifier.update(chunk)
            self._chunks.popleft()

    def commit(self) -> None:
        """In a worker thread, once the body ended: write the rest, verify the checksum, close."""
        if self.error is not None:
            raise self.error
        self._write(len(self._chunks))
        if self._verifier is not None:
            self._verifier.verify()
        if self._on_commit is not None and self._fd is not None:  # no file opened: nothing to commit
            self._on_commit()
        self._close()

    def abort(self) -> None:
        """In a worker thread, after any failure: roll a checksum chunk back, else keep every byte
        received (unless writing itself failed), then close."""
        try:
            if self._on_rollback is not None:
                if self._fd is not None:
                    self._on_rollback(self._fd)
            elif self.error is None and self._chunks:
                self._write(len(self._chunks))
        finally:
            self._close()

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


async def spool_body(body: AsyncIterator[bytes], spool: Spool, flush: int, *, inline: int = 0) -> int:
    """Write ``body`` through ``spool`` in batches of about ``flush`` bytes; returns the bytes written.
    A whole body of at most ``inline`` bytes is written (and hashed) on the event loop instead: for a few
    KiB that is cheaper than the thread hand-off (the store decides; 0 = never).

    On any failure (the body's: disconnect, timeout, size; a write's; a checksum mismatch; cancellation)
    the spool is aborted in a worker thread shielded from cancellation, and the failure re-raised as is.
    """
    try:
        failure = await _receive(body, spool, flush)
        if failure is not None:
            raise failure
        if spool.untouched and spool.queued <= inline:
            spool.commit()
        else:
            await anyio.to_thread.run_sync(spool.commit)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(spool.abort)
        raise
    return spool.written


async def _receive(body: AsyncIterator[bytes], spool: Spool, flush: int) -> Exception | None:
    """Feed the spool, writing behind; returns the body's exception instead of raising it inside the task
    group (which would wrap it in an ExceptionGroup). The group waits for the write in flight."""
    async with anyio.create_task_group() as tg:
        try:
            async for chunk in body:
                spool.put(chunk)
                if spool.queued >= flush:
                    await spool.write_behind(tg)
        except Exception as exc:
            return exc
    return None
