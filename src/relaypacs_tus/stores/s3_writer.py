"""One PATCH body into S3 parts: cut into parts, one part uploading while the next one fills, then the
chunk settled by the rules of :mod:`.s3_layout`.

Memory per active upload stays near two parts (the one filling plus the one in flight), whatever the
PATCH size. Nothing else is buffered: a part is handed to the S3 client as the buffer it was filled in.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from typing import Protocol

import anyio
import anyio.abc
import anyio.to_thread
import structlog

from ..tus import errors
from ..tus.checksum import ChecksumVerifier
from .s3_layout import MAX_PART_NUMBER, MIN_PART_SIZE, S3State, View
from .s3_objects import INLINE_HASH_BYTES, md5_header

log = structlog.get_logger("relaypacs_tus.stores.s3")

#: Upper bound for the clean-up after a failed body (storing what arrived, or rolling a chunk back).
SALVAGE_TIMEOUT = 60.0
#: New bytes in a part's buffer that a worker thread hashes while the rest of the part arrives.
HASH_STEP = 1024 * 1024


class PartSink(Protocol):
    """The S3 objects of one upload, as the writer needs them."""

    async def create_multipart(self) -> str: ...

    async def upload_part(self, number: int, data: bytes | bytearray, md5: str) -> None: ...

    async def put_whole(self, data: bytes | bytearray | memoryview, md5: str) -> None: ...

    async def put_tail(self, data: bytes, next_part: int, md5: str) -> None: ...

    async def delete_tail(self) -> None: ...

    async def save_state(self, state: S3State) -> None: ...


class PartLimitReached(errors.TusError):
    """The upload used every S3 part number (10,000)."""

    message = "the upload reached the S3 limit of 10,000 parts"


class _InFlight:
    """One part upload running beside the body; never raises into the task group."""

    def __init__(self, number: int, data: bytearray, md5: str) -> None:
        self.number = number
        self.md5 = md5
        self.data: bytearray | None = data
        self.done = anyio.Event()
        self.ok = False
        self.error: Exception | None = None

    async def run(self, sink: PartSink) -> None:
        try:
            assert self.data is not None
            await sink.upload_part(self.number, self.data, self.md5)
            self.ok = True
        except Exception as exc:
            self.error = exc
        finally:
            self.data = None  # release the part's memory as soon as it is sent
            self.done.set()


class _Hasher:
    """One part's MD5 and the chunk's checksum, computed while the part's buffer fills.

    A worker thread (hashlib releases the GIL) hashes what has arrived, in byte order, until fewer than
    HASH_STEP new bytes are left; the loop starts the next job as the buffer grows. Jobs go straight to
    the loop's executor: a task would start only once the body lets the loop run other tasks, which a
    body whose chunks are already buffered does not. So when the part is complete only its last bytes
    remain to hash. The buffer is never resized, and the loop only writes beyond the bytes a job reads.
    """

    def __init__(self, buf: bytearray, verify_from: int, verifier: ChecksumVerifier | None) -> None:
        self._buf = buf
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._done = 0  # bytes hashed
        self._available = 0  # bytes in the buffer (the loop moves it on, a job hashes up to it)
        self._verify_from = verify_from  # the body's first byte (before it: the old tail, verified already)
        self._verifier = verifier
        self._running = False  # a job is hashing (set by the loop, cleared by the job's thread)
        self._jobs: list[asyncio.Future[None]] = []

    def _update(self, end: int) -> None:
        view = memoryview(self._buf)
        self._md5.update(view[self._done : end])
        if self._verifier is not None and end > self._verify_from:
            self._verifier.update(view[max(self._done, self._verify_from) : end])
        self._done = end

    def _catch_up(self) -> None:
        try:
            while (end := self._available) - self._done >= HASH_STEP:
                self._update(end)
        finally:
            self._running = False

    def kick(self, end: int) -> None:
        """The buffer holds ``end`` bytes: hash them beside the body unless a job is running or fewer
        than HASH_STEP bytes are new."""
        self._available = end
        if self._running or end - self._done < HASH_STEP:
            return
        self._running = True
        self._jobs.append(asyncio.get_running_loop().run_in_executor(None, self._catch_up))

    async def digest(self, end: int) -> str:
        """The Content-MD5 of the buffer's first ``end`` bytes (and the checksum fed up to there)."""
        if self._jobs:
            # never cancels a job: after a cancellation the salvage waits here again, so two threads
            # never hash at once
            await asyncio.wait(self._jobs)
            failures = [job.exception() for job in self._jobs]
            self._jobs.clear()
            for failure in failures:
                if failure is not None:
                    raise failure
        if end - self._done >= INLINE_HASH_BYTES:
            await anyio.to_thread.run_sync(self._update, end)
        elif end > self._done:
            self._update(end)
        return md5_header(self._md5.digest())


class ChunkWriter:
    """Writes one PATCH body after ``view`` (the upload's resolved objects) and ``head`` (the tail's bytes).

    ``remaining`` is how many bytes complete the upload (None while the length is deferred): when the
    body ends exactly there, the last bytes go up as the final part instead of a tail object, or, if the
    upload never needed a part (it has no multipart upload), as the final object itself in one PUT.
    The multipart upload is created with the first part an upload needs.
    """

    def __init__(
        self,
        sink: PartSink,
        view: View,
        head: bytes,
        *,
        part_size: int,
        verifier: ChecksumVerifier | None,
        remaining: int | None,
    ) -> None:
        self._sink = sink
        self._state = view.state
        self._next = view.next_part
        self._tail_exists = view.tail is not None or view.stale_tail
        self._part_size = part_size
        self._verifier = verifier
        self._remaining = remaining
        self._placed = 0  # bytes of the body copied into buffers
        self._new_buffer(head)
        self._inflight: _InFlight | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._uncertain: list[int] = []  # parts whose upload failed: they may or may not exist
        self._shipped = False  # a part of this body was uploaded (the old tail is inside it)
        self._tail_put: str | None = None  # None | "sent" (outcome unknown) | "done": the new tail
        self._committed = False  # the chunk is final; nothing may be rolled back any more
        self.received = 0

    async def write(self, body: AsyncIterator[bytes]) -> int:
        """Write the body; returns the bytes received. On failure the chunk is settled (kept, or rolled
        back when checksummed) and the failure re-raised."""
        failure: Exception | None = None
        async with anyio.create_task_group() as tg:
            self._tg = tg
            try:
                await self._feed(body)
                await self._complete()
            except Exception as exc:  # raised below, outside the task group (no ExceptionGroup)
                failure = exc
                await self._salvage_shielded()
            except BaseException:  # cancelled: the part in flight is cancelled with us
                await self._salvage_shielded()
                raise
        if failure is not None:
            raise failure
        return self.received

    # -- receiving ---------------------------------------------------------------------------------------

    async def _feed(self, body: AsyncIterator[bytes]) -> None:
        async for chunk in body:
            if self._remaining is not None and self.received + len(chunk) > self._remaining:
                raise errors.UploadSizeExceeded()  # the engine never passes such bytes on; be sure
            self.received += len(chunk)
            view = memoryview(chunk)
            while view:
                # a full buffer goes up once more bytes arrive: if the body ends here instead, it may be
                # the whole upload (one PUT, :meth:`_store_remainder`)
                if self._pos == len(self._buf):
                    await self._ship(await self._hasher.digest(self._pos))
                n = min(len(view), len(self._buf) - self._pos)
                self._buf[self._pos : self._pos + n] = view[:n]
                self._pos += n
                self._placed += n
                view = view[n:]
            self._hasher.kick(self._pos)

    def _new_buffer(self, head: bytes = b"") -> None:
        """The next part's buffer, starting with ``head``: a part, or only as much as the upload still
        needs (a 4 KiB upload must not allocate and zero a whole part)."""
        size = self._part_size
        if self._remaining is not None:
            size = min(size, len(head) + self._remaining - self._placed)
        self._buf = bytearray(size)
        self._buf[: len(head)] = head
        self._pos = len(head)
        self._hasher = _Hasher(self._buf, len(head), self._verifier)

    def _take(self) -> bytearray:
        """The filled buffer. The next buffer is allocated only once this one is on its way
        (:meth:`_ship`), so at most two parts are held."""
        data = self._buf if self._pos == len(self._buf) else self._buf[: self._pos]
        self._buf, self._pos = bytearray(), 0
        return data

    async def _ship(self, md5: str, *, refill: bool = True) -> None:
        """Upload the buffer (hashed: ``md5``) as the next part once the previous one is in."""
        data = self._take()
        await self._settle_inflight()
        number = self._next
        if number > MAX_PART_NUMBER:
            raise PartLimitReached()
        await self._prepare(number)
        self._next += 1
        self._shipped = True
        self._inflight = _InFlight(number, data, md5)
        assert self._tg is not None
        self._tg.start_soon(self._inflight.run, self._sink)
        if refill:
            self._new_buffer()

    async def _prepare(self, number: int) -> None:
        """Before part ``number`` goes up: the multipart upload to hold it (the upload's first part creates
        it) and, in a checksum chunk, the marker that parts from ``number`` on count only once verified.
        Both reach ``.info`` in one write before the part is sent, so every part is one ``.info`` knows
        of; the writer's state changes only once that write succeeded."""
        need_upload = self._state.multipart_id is None
        need_marker = self._verifier is not None and self._state.pending_from is None
        if not (need_upload or need_marker):
            return
        state = self._state.copy()
        if need_upload:
            state.multipart_id = await self._sink.create_multipart()
        if need_marker:
            state.pending_from = number
        await self._sink.save_state(state)
        self._state = state

    async def _settle_inflight(self) -> None:
        up = self._inflight
        if up is None:
            return
        await up.done.wait()  # if cancelled here, the part stays in flight for the salvage to settle
        self._inflight = None
        if not up.ok:
            self._uncertain.append(up.number)
            raise up.error or errors.StoreUnavailable()

    # -- ending ------------------------------------------------------------------------------------------

    async def _complete(self) -> None:
        """The body ended: verify, then store the remainder and commit the chunk."""
        await self._settle_inflight()
        md5 = await self._hasher.digest(self._pos)
        if self._verifier is not None:
            self._verifier.verify()
        tail_written = await self._store_remainder(md5)
        await self._commit(tail_written)

    async def _store_remainder(self, md5: str) -> bool:
        """Upload the remainder (hashed: ``md5``) as a part (>= 5 MiB, or the upload's last bytes) or
        write it as the tail. Returns whether a new tail object was written."""
        if not self._pos:
            return False
        final = self._remaining is not None and self.received == self._remaining
        if final and self._state.multipart_id is None:  # no part before these bytes: the whole upload
            await self._sink.put_whole(memoryview(self._buf)[: self._pos], md5)
            return False
        if final or self._pos >= MIN_PART_SIZE:
            await self._ship(md5, refill=False)
            await self._settle_inflight()
            return False
        if not (self.received or self._shipped):
            return False  # the head is the unchanged old tail
        self._tail_put = "sent"
        await self._sink.put_tail(bytes(memoryview(self._buf)[: self._pos]), self._next, md5)
        self._tail_put = "done"
        return True

    async def _commit(self, tail_written: bool) -> None:
        if self._state.pending_from is not None:
            # a new tail (next-part > pending) already says "verified"; otherwise the marker must go first
            self._state.pending_from = None
            await self._sink.save_state(self._state)
        self._committed = True
        if self._shipped and not tail_written and self._tail_exists:
            await self._sink.delete_tail()  # stale already (a part after it exists); just tidy up

    # -- failure -----------------------------------------------------------------------------------------

    async def _salvage_shielded(self) -> None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(SALVAGE_TIMEOUT) as scope:
            try:
                if self._committed:
                    pass  # only tidying up failed; the chunk stands
                elif self._verifier is not None:
                    await self._roll_back()
                else:
                    await self._keep_what_arrived()
            except Exception as exc:  # the original failure matters more; recovery rules cover the rest
                log.warning("s3.salvage_failed", error=type(exc).__name__)
        if scope.cancelled_caught:
            log.warning("s3.salvage_timeout")

    async def _wait_quietly(self) -> None:
        # a failure is recorded as uncertain; the body's failure is what gets raised
        with contextlib.suppress(Exception):
            await self._settle_inflight()

    async def _roll_back(self) -> None:
        """A checksum chunk failed: none of its parts may ever count; the old tail is untouched.

        Once the new tail was sent, the marker stays for recovery to judge: a new tail that arrived
        means "verified, roll forward", the old one means "roll back" (:func:`.s3_layout.resolve`)."""
        await self._wait_quietly()
        start = self._state.pending_from
        if start is None:
            return  # no part was uploaded: nothing was written (a lone tail PUT is atomic)
        if self._tail_put == "done":
            self._state.pending_from = None  # verified and the tail is in: finish the commit
            await self._sink.save_state(self._state)
            return
        if self._tail_put == "sent":
            return
        self._state.discard(start, self._next - 1)
        self._state.pending_from = None
        await self._sink.save_state(self._state)
        log.info("s3.chunk_discarded", first_part=start, last_part=self._next - 1)

    async def _keep_what_arrived(self) -> None:
        """No checksum: keep the parts that are in and store the remainder, unless a part failed (the
        remainder would then follow a gap)."""
        await self._wait_quietly()
        if self._uncertain:
            for number in self._uncertain:
                self._state.discard(number, number)  # never reuse it, never count it
            await self._sink.save_state(self._state)
            return
        tail_written = await self._store_remainder(await self._hasher.digest(self._pos))
        await self._commit(tail_written)
