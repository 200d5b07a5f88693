"""Write-behind for one PATCH body into a local file: the event loop keeps receiving while a worker thread
(the *drain*) writes and hashes the chunks already received, one after the other as they arrive.

Why this shape (measured with ``benchmarks/``, 1 GiB in 8 MiB PATCHes on a 2-core VM):

* a drain that follows the loop chunk by chunk rather than batches of a few MiB handed to a thread: the
  response must wait until the last byte is written and hashed, and with batches that tail was a whole
  batch, during which only the writer thread worked (1,300 -> 1,400 MB/s, sha1 on 700 -> 800 MB/s). A
  drain that caught up sleeps until ``WAKE_BYTES`` more arrived; if they do not within ``LINGER`` it
  writes what came and gives its thread back, so a slow client does not hold a worker thread;
* one ``os.write`` per received chunk (64-256 KiB) rather than one ``writev`` of several: a large write
  makes the kernel allocate large page-cache folios, which on a VM whose host reclaims freed memory cost
  2-3x more per byte (``writev`` of 4 and 16 chunks measured again with the drain: 3% and 30% slower);
* write, then hash: a chunk ``os.write`` has just read is still in the CPU cache, and hashing it there
  costs less CPU than hashing it in a second thread (measured again with the drain: one stream 2% faster,
  32 concurrent uploads 20% slower); on 2 cores, CPU is what a checksum costs. The exception is the
  body's end, when the client and the event loop wait for the response: with ``split_tail`` a helper
  thread hashes a long rest while the drain writes it (one stream with sha1: +10%, ab of 5 runs);
* bounded memory: once ``2 x flush`` bytes are pending the loop stops receiving until the drain is down
  to ``flush``, so a PATCH holds about ``2 x flush`` whatever its size (the store picks ``flush``);
* one hand-off to a worker thread per PATCH, started as soon as the body is too long to be written on
  the loop: the drain opens the file while the loop goes on receiving, and the drain that writes the
  last chunk also verifies and commits, so the response waits for no second hand-off (1 GiB in 8 MiB
  PATCHes, ab of 4 runs: 3% faster, with sha1 too; a thread started after 1 MiB, and a second one for
  the commit, each cost the response about 0.2-0.7 ms while a busy event loop held the CPUs);
* no thread at all for a body the store lets run inline: small uploads are dominated by hops.

Correctness does not depend on timing: a chunk leaves the spool only once written, so after any failure
the spool holds exactly the bytes that did not reach the file. Without a checksum those are written
(no byte received before a disconnect is lost); with one the chunk is rolled back (all-or-nothing).
A drain commits only a body that ended normally; whoever commits, the checksum is verified first.
"""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import AsyncIterator, Callable

import anyio
import anyio.abc
import anyio.to_thread

from ..tus.checksum import ChecksumVerifier

#: Once the body ended, a rest of at least this much (about 1 ms of sha1) is hashed by a helper thread
#: while the drain writes it, if the store allows (``split_tail``); a shorter one is not worth a thread.
SPLIT_BYTES = 2 * 1024 * 1024

#: A drain that caught up sleeps until this much is pending again (or the body ended): waking a thread
#: on another CPU for every 256 KiB chunk cost more than the chunk's write (32 concurrent uploads: +6%).
WAKE_BYTES = 1024 * 1024
#: How long a drain that caught up waits for WAKE_BYTES before it writes what came and gives its thread
#: back. Long enough for each of 32 concurrent fast uploads (~30 MB/s each here): restarting a drain
#: costs a hand-off through anyio's thread pool (32 concurrent uploads: +6% from 5 ms to 50 ms).
LINGER = 0.05


class Spool:
    """Received chunks not yet in the file, in order. The event loop appends; one worker thread at a time
    drains them (writes, then hashes, each). ``open_fd`` runs in that thread on the first write; ``commit``
    (after the checksum matched) and ``rollback(fd)`` are the store's hooks for its pending marker.
    ``split_tail``: the store expects a spare core (say, this is its only PATCH in flight), so a long rest
    at the body's end is hashed by a helper thread while the drain writes it."""

    def __init__(
        self,
        open_fd: Callable[[], int],
        verifier: ChecksumVerifier | None = None,
        *,
        commit: Callable[[], None] | None = None,
        rollback: Callable[[int], None] | None = None,
        split_tail: bool = False,
    ) -> None:
        self._split_tail = split_tail
        self._open_fd = open_fd
        self._verifier = verifier
        self._on_commit = commit
        self._on_rollback = rollback
        self._chunks: collections.deque[bytes] = collections.deque()
        self._fd: int | None = None
        self._drain: anyio.Event | None = None  # set when the drain in flight has returned
        self._more = threading.Event()  # wakes a drain waiting for chunks
        self._waiting = False  # a drain waits on _more
        self._ended = False  # no more chunks will come: a drain returns once the spool is empty
        self._commit_at_end = False  # the body ended normally: the drain commits once the spool is empty
        self.committed = False  # written, verified (with a checksum), the store's commit hook run, closed
        self._low = 0  # nonzero: the loop waits; the drain returns once pending <= _low
        self.received = 0
        self.written = 0
        self.error: Exception | None = None  # a drain's failed write or commit, raised on the receiving side

    @property
    def untouched(self) -> bool:
        """No drain ever started: the whole body so far is in the spool."""
        return self._drain is None

    @property
    def pending(self) -> int:
        """Bytes received and not yet written."""
        return self.received - self.written

    @property
    def draining(self) -> bool:
        return self._drain is not None and not self._drain.is_set()

    def put(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self.received += len(chunk)
        if self._waiting and self.pending >= WAKE_BYTES:
            self._more.set()

    async def write_behind(self, tg: anyio.abc.TaskGroup, limit: int) -> None:
        """Have a drain running; if more than ``limit`` bytes are pending, first wait until at most half
        of ``limit`` is (the drain returns then, and a new one starts)."""
        if self.draining and self.pending > limit:
            assert self._drain is not None
            self._low = limit // 2  # the drain is busy writing (pending > 0), not waiting on _more
            await self._drain.wait()
            self._low = 0
        if self.error is not None:
            raise self.error
        if not self.draining:
            done = self._drain = anyio.Event()
            tg.start_soon(self._drain_task, done)

    def end(self, *, commit: bool = False) -> None:
        """The body ended: a drain in flight writes what is left and returns; with ``commit`` (the body
        ended normally) it also commits, saving a hand-off to another worker thread."""
        self._commit_at_end = commit
        self._ended = True
        self._more.set()

    async def _drain_task(self, done: anyio.Event) -> None:
        try:
            await anyio.to_thread.run_sync(self._drain_chunks)
        except Exception as exc:  # kept for write_behind/commit: a task group would wrap it in a group
            self.error = exc
        finally:
            done.set()

    def _drain_chunks(self) -> None:
        """In a worker thread: write the spool's chunks as they arrive. Returns once the body ended and
        all is written (committed too if the body ended normally), once the waiting loop may go on
        (pending <= _low), or once fewer than ``WAKE_BYTES`` came in ``LINGER`` seconds (after writing
        them): a slow client holds no thread."""
        idle = False
        while True:
            while self._chunks:
                if self._ended and self._commit_at_end:
                    break  # commit() writes the rest, with a helper hashing beside it if worth it
                self._write_first()
                if self._low and self.pending <= self._low:
                    return
            if self._ended:
                if self._commit_at_end:
                    self.commit()
                return
            if idle:
                return
            idle = not self._await_chunks()

    def _await_chunks(self) -> bool:
        """Wait until ``WAKE_BYTES`` are pending or the body ended; False if ``LINGER`` passed first."""
        self._waiting = True  # before looking: a put() from now on wakes us
        try:
            return self.pending >= WAKE_BYTES or self._ended or self._more.wait(LINGER)
        finally:
            self._waiting = False
            self._more.clear()  # a wake-up lost here is harmless: the caller writes every chunk next

    def _write_rest(self) -> None:
        """In a worker thread: write, then hash, every chunk still in the spool."""
        while self._chunks:
            self._write_first()

    def _write_rest_hashing_beside(self, verifier: ChecksumVerifier) -> None:
        """Write the rest while a helper thread hashes it: once the body ended, the client and the event
        loop wait for the response, so a second core would idle while one thread wrote and hashed."""
        rest = list(self._chunks)  # the body ended: nothing is added any more
        failure: list[BaseException] = []

        def hash_rest() -> None:
            try:
                for chunk in rest:
                    verifier.update(chunk)
            except BaseException as exc:  # handed to the drain, raised there
                failure.append(exc)

        helper = threading.Thread(target=hash_rest, name="relaypacs-hash", daemon=True)
        helper.start()
        try:
            while self._chunks:
                self._write_first(hash_it=False)
        finally:
            helper.join()
        if failure:
            raise failure[0]

    def _write_first(self, *, hash_it: bool = True) -> None:
        """Write, then hash, the first chunk, one ``os.write`` (usually); then let go of it."""
        if self._fd is None:
            self._fd = self._open_fd()
        fd = self._fd
        chunk = self._chunks[0]
        view = memoryview(chunk)
        while view:
            n = os.write(fd, view)
            self.written += n
            view = view[n:]
        if hash_it and self._verifier is not None:  # after the write: the chunk is in cache now
            self._verifier.update(chunk)
        self._chunks.popleft()

    def commit(self) -> None:
        """Once the body ended normally: write the rest, verify the checksum, close. Runs in the drain
        that saw the end, else in a worker thread of its own (or inline, for a body the store allows)."""
        if self.error is not None:
            raise self.error
        verifier = self._verifier
        if verifier is not None and self._split_tail and self.pending >= SPLIT_BYTES:
            self._write_rest_hashing_beside(verifier)
        else:
            self._write_rest()
        if verifier is not None:
            verifier.verify()
        if self._on_commit is not None and self._fd is not None:  # no file opened: nothing to commit
            self._on_commit()
        self._close()
        self.committed = True

    def abort(self) -> None:
        """In a worker thread, after any failure: roll a checksum chunk back, else keep every byte
        received (unless writing itself failed), then close."""
        try:
            if self._on_rollback is not None:
                if self._fd is not None:
                    self._on_rollback(self._fd)
            elif self.error is None and self._chunks:
                self._write_rest()
        finally:
            self._close()

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


async def spool_body(body: AsyncIterator[bytes], spool: Spool, flush: int, *, inline: int = 0) -> int:
    """Write ``body`` through ``spool``, holding at most about ``2 x flush`` bytes; returns the bytes written.
    A whole body of at most ``inline`` bytes is written (and hashed) on the event loop instead: for a few
    KiB that is cheaper than the thread hand-off (the store decides; 0 = never).

    On any failure (the body's: disconnect, timeout, size; a write's; a checksum mismatch; cancellation)
    the spool is aborted in a worker thread shielded from cancellation, and the failure re-raised as is.
    """
    try:
        failure = await _receive(body, spool, inline, flush)
        if failure is not None:
            raise failure
        if spool.error is not None:  # a drain's write or commit (checksum mismatch) failed
            raise spool.error
        if not spool.committed:  # no drain saw the end (none ran, or it had returned)
            if spool.untouched and spool.pending <= inline:
                spool.commit()
            else:
                await anyio.to_thread.run_sync(spool.commit)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(spool.abort)
        raise
    return spool.written


async def _receive(body: AsyncIterator[bytes], spool: Spool, inline: int, flush: int) -> Exception | None:
    """Feed the spool, writing behind once more than ``inline`` bytes came; returns the body's exception
    instead of raising it inside the task group (which would wrap it in an ExceptionGroup). The group
    waits for the drain in flight, which commits if the body ended normally."""
    async with anyio.create_task_group() as tg:
        ended = False
        try:
            async for chunk in body:
                spool.put(chunk)
                if spool.pending > inline and (not spool.draining or spool.pending > 2 * flush):
                    await spool.write_behind(tg, 2 * flush)
            ended = True
        except Exception as exc:
            return exc
        finally:
            spool.end(commit=ended)  # the drain writes what is left, whatever ended the body
    return None
