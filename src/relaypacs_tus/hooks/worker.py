"""The durable delivery queue: runs :meth:`Pipeline.process` for due uploads with bounded concurrency.

Nothing lives only in memory. The queue is rebuilt from the store: on start-up :meth:`DeliveryWorker.recover`
finds every record with work left and every finished upload that has no record yet (post-finish is
fire-and-forget in the engine, so a SIGKILL between the final PATCH and the first record write must not
lose the upload); every ``rescan_interval`` seconds the records are scanned again, which also picks up
``relaypacs-tus deliveries retry`` and work another replica left behind.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import AsyncIterator, Callable

import anyio
import structlog

from ..tus import errors as tus_errors
from .pipeline import Pipeline

log = structlog.get_logger("relaypacs_tus.pipeline")


class DeliveryWorker:
    def __init__(
        self,
        pipeline: Pipeline,
        *,
        list_uploads: Callable[[], AsyncIterator[str]],
        concurrency: int = 4,
        rescan_interval: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.pipeline = pipeline
        self._list_uploads = list_uploads
        self._concurrency = concurrency
        self._rescan_interval = rescan_interval
        self._clock = clock
        self._heap: list[tuple[float, str]] = []
        self._due: dict[str, float] = {}  # upload id -> earliest time it is wanted
        self._running: set[str] = set()
        self._again: set[str] = set()  # enqueued while running: run once more afterwards
        self._wake = anyio.Event()
        self._failures: dict[str, int] = {}

    # -- queue -----------------------------------------------------------------------------------------

    def enqueue(self, upload_id: str, at: float = 0.0) -> None:
        """Ask for a pass over ``upload_id`` at ``at`` (epoch seconds; 0 = now). Never blocks."""
        if upload_id in self._running and at <= self._clock():
            self._again.add(upload_id)
            return
        if upload_id in self._due and self._due[upload_id] <= at:
            return
        self._due[upload_id] = at
        heapq.heappush(self._heap, (at, upload_id))
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._due) + len(self._running)

    # -- running ---------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Recover, then serve the queue until cancelled (the app's lifespan owns this task)."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._recover_quietly, True)
            next_rescan = self._clock() + self._rescan_interval
            while True:
                now = self._clock()
                if now >= next_rescan:
                    tg.start_soon(self._recover_quietly, False)
                    next_rescan = now + self._rescan_interval
                while self._heap and self._heap[0][0] <= now and len(self._running) < self._concurrency:
                    at, upload_id = heapq.heappop(self._heap)
                    if self._due.get(upload_id) != at:
                        continue  # superseded by an earlier request
                    del self._due[upload_id]
                    self._running.add(upload_id)
                    tg.start_soon(self._one, upload_id)
                ready = self._heap and len(self._running) < self._concurrency
                wait = min([next_rescan - now] + ([self._heap[0][0] - now] if ready else []))
                self._wake = anyio.Event()
                with anyio.move_on_after(max(wait, 0.01)):
                    await self._wake.wait()

    async def _one(self, upload_id: str) -> None:
        again_at: float | None = None
        try:
            again_at = await self.pipeline.process(upload_id)
            self._failures.pop(upload_id, None)
        except Exception:
            # the store is down or a bug: keep the upload queued and back off; its record keeps the truth
            count = self._failures[upload_id] = self._failures.get(upload_id, 0) + 1
            again_at = self._clock() + min(300.0, 2.0**count)
            log.exception("pipeline.process_failed", upload_id=upload_id, failures=count)
        finally:
            self._running.discard(upload_id)
            self._wake.set()  # a slot is free
        if upload_id in self._again:
            self._again.discard(upload_id)
            again_at = 0.0
        if again_at is not None and math.isfinite(again_at):
            self.enqueue(upload_id, again_at)

    # -- recovery --------------------------------------------------------------------------------------

    async def _recover_quietly(self, full: bool) -> None:
        try:
            found = await self.recover(include_unrecorded=full)
        except Exception:
            log.exception("pipeline.recover_failed")
            return
        if found:
            log.info("pipeline.recovered", uploads=found, full=full)

    async def recover(self, *, include_unrecorded: bool = True) -> int:
        """Queue every upload with work left; returns how many were queued."""
        records = self.pipeline.records
        found, recorded = 0, set()
        async for upload_id in records.ids():
            recorded.add(upload_id)
            record = await records.get(upload_id)
            if record is not None and not record.terminal and upload_id not in self._running:
                self.enqueue(upload_id, record.next_due())
                found += 1
        if not include_unrecorded:
            return found
        async for upload_id in self._list_uploads():
            if upload_id in recorded or upload_id in self._due or upload_id in self._running:
                continue
            try:
                info = await self.pipeline.source.info(upload_id)
            except tus_errors.TusError:
                continue
            if info.finished and info.is_complete and info.state == "active" and not info.is_partial:
                self.enqueue(upload_id)
                found += 1
        return found
