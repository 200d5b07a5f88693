"""The post-finish pipeline: classify -> validate DICOM or wrap a photo as Secondary Capture -> deliver to
each destination -> record the outcome.

Two entry points share one preparation step. :meth:`Pipeline.check` runs at pre-finish, so a bad file is
refused in the final PATCH's answer and nothing invalid is ever queued; it persists what it learnt (the
instance's UIDs, the wrapped object) in the processing record. :meth:`Pipeline.process` runs from the
durable worker after post-finish, and after a restart: it prepares an upload if pre-finish never finished,
then delivers to the destinations that are due. Retried work is idempotent: destinations accept the same
instance again without a duplicate, and a photo is wrapped once (its object and UIDs are persisted before
the first delivery, so a retry sends the very same bytes).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import random
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import structlog

from ..dicom.classify import HEAD_SIZE, Kind, classify, rejection_for
from ..dicom.errors import DicomError
from ..dicom.secondary_capture import new_uid, wrap_image
from ..dicom.validate import InstanceInfo, validate_part10
from ..pacs.base import DeliveryError, Destination, Instance
from ..tus import errors as tus_errors
from ..tus.events import HookEvent, HookResponse, HookType, HTTPResponse
from ..tus.locks import MemoryLocker
from ..tus.store import UploadInfo
from .config import PipelineConfig
from .placement import BatchBook, Rejected, expectations, patient_for
from .records import DestinationState, ProcessingRecord, RecordStore
from .sources import SourceError, UploadSource
from .transports import Handler

log = structlog.get_logger("relaypacs_tus.pipeline")
T = TypeVar("T")
Audit = Callable[[str, dict[str, object]], Awaitable[None]]
#: HTTP status for a rejection code; anything else is 422 (the content is understood but unusable).
_STATUS = {"unsupported_format": 415, "not_dicom": 415}


class Pipeline:
    def __init__(
        self,
        records: RecordStore,
        source: UploadSource,
        destinations: Sequence[Destination],
        config: PipelineConfig,
        *,
        audit: Audit | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.records = records
        self.source = source
        self.destinations = {d.name: d for d in destinations}
        self.config = config
        self.audit = audit
        self.clock = clock
        self.limiter = anyio.CapacityLimiter(config.concurrency)  # blocking DICOM work in threads
        self.batches = BatchBook(records, lambda: new_uid(config.org_root))
        self._locks = MemoryLocker(acquire_timeout=24 * 3600.0)

    # -- hook handlers ---------------------------------------------------------------------------------

    def handlers(self, enqueue: Callable[[str], None]) -> dict[HookType, list[Handler]]:
        """In-process hooks: batch membership (post-create), checks (pre-finish), queueing (post-finish)."""

        async def post_create(event: HookEvent) -> None:
            if not event.upload.is_partial:
                await self.batches.join(event.upload)

        async def pre_finish(event: HookEvent) -> HookResponse | None:
            return await self.pre_finish_answer(event.upload)

        async def post_finish(event: HookEvent) -> None:
            if not event.upload.is_partial:
                enqueue(event.upload.id)

        return {
            HookType.POST_CREATE: [post_create],
            HookType.PRE_FINISH: [pre_finish],
            HookType.POST_FINISH: [post_finish],
        }

    # -- entry points ----------------------------------------------------------------------------------

    async def pre_finish_answer(self, info: UploadInfo) -> HookResponse | None:
        """The pre-finish hook's answer: None to accept, a 4xx with the reason in plain words to refuse."""
        rejected = await self.check(info)
        if rejected is None:
            return None
        body = rejected.reason + "\n"
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        return HookResponse(
            http_response=HTTPResponse(status_code=rejected.status, body=body, header=headers)
        )

    async def check(self, info: UploadInfo) -> Rejected | None:
        """pre-finish: validate (or wrap) now; the rejection to answer with, or None if accepted."""
        if info.is_partial:
            return None  # only the final upload of a concatenation is a file
        async with self._locks.hold(info.id, _noop):
            record = await self._record(info)
            if record.prepared or record.terminal:
                return (
                    Rejected(record.reason or "", code=record.reason_code or "")
                    if record.state == "rejected"
                    else None
                )
            try:
                await self._prepare(info, record)
            except Rejected as rejected:
                await self._reject(record, rejected)
                return rejected
            return None

    async def process(self, upload_id: str) -> float | None:
        """One pass of the durable work; returns when to look again (epoch seconds) or None when done."""
        async with self._locks.hold(upload_id, _noop):
            try:
                info = await self.source.info(upload_id)
            except tus_errors.UploadNotFound:
                info = None
            record = await self.records.get(upload_id)
            if info is None or info.is_gone or info.state == "rejected":
                await self._abandon(upload_id, record, info)
                return None
            record = record or await self._record(info)
            if record.terminal:
                return None
            if not record.prepared:
                if (record.next_attempt_at or 0.0) > self.clock():
                    return record.next_attempt_at
                if not await self._prepare_quietly(info, record):
                    return None if record.terminal else record.next_attempt_at
            return await self._deliver(info, record)

    # -- preparation -----------------------------------------------------------------------------------

    async def _record(self, info: UploadInfo) -> ProcessingRecord:
        record = await self.records.get(info.id)
        if record is None:
            now = self.clock()
            record = ProcessingRecord(
                upload_id=info.id, owner=info.owner, batch_id=info.metadata.get("batch_id") or None,
                size=info.size, created_at=now, updated_at=now,
            )  # fmt: skip
        return record

    async def _prepare_quietly(self, info: UploadInfo, record: ProcessingRecord) -> bool:
        """Prepare from the worker: a rejection is recorded; other failures are retried with backoff."""
        try:
            await self._prepare(info, record)
        except Rejected as rejected:
            await self._reject(record, rejected)
            return False
        except (OSError, tus_errors.TusError) as exc:
            record.attempts += 1
            if record.attempts >= self.config.max_attempts:
                record.state, record.reason, record.reason_code = (
                    "failed",
                    "the upload could not be read",
                    "unreadable",
                )
            else:
                record.state, record.next_attempt_at = (
                    "received",
                    self.clock() + self._backoff(record.attempts),
                )
            log.warning(
                "pipeline.prepare_failed",
                upload_id=info.id,
                error=type(exc).__name__,
                attempts=record.attempts,
            )
            await self._save(record)
            return False
        return True

    async def _prepare(self, info: UploadInfo, record: ProcessingRecord) -> None:
        record.state = "validating"
        await self._save(record)
        try:
            async with self.source.local_copy(info) as path:
                head = await self._thread(_read_head, path)
                kind = classify(head)
                record.kind = kind.value
                if kind is Kind.DICOM:
                    instance = await self._validate(info, path)
                elif kind in (Kind.JPEG, Kind.PNG):
                    instance = await self._wrap(info, record, path)
                else:
                    raise rejection_for(head)
        except DicomError as exc:
            raise Rejected(exc.reason, code=exc.code, status=_STATUS.get(exc.code, 422)) from exc
        except SourceError as exc:
            raise Rejected(str(exc), code="unreadable", status=500) from exc
        record.instance = dataclasses.asdict(instance)
        record.destinations = self._destinations_for(info)
        record.state, record.reason, record.reason_code, record.next_attempt_at = "received", None, None, None
        await self._save(record)
        log.info(
            "pipeline.accepted", upload_id=info.id, kind=record.kind,
            sop_instance_uid=instance.sop_instance_uid,
            size=instance.size, destinations=len(record.destinations),
        )  # fmt: skip

    async def _validate(self, info: UploadInfo, path: str) -> InstanceInfo:
        return await self._thread(
            functools.partial(
                validate_part10,
                path,
                allowed_sop_classes=self.config.allowed_sop_classes,
                expect=expectations(info),
            )
        )

    async def _wrap(self, info: UploadInfo, record: ProcessingRecord, path: str) -> InstanceInfo:
        limit = self.config.max_image_size
        if (info.size or 0) > limit:
            raise Rejected(
                f"the image is larger than {limit // 1024**2} MiB", code="image_too_large", status=413
            )
        patient = patient_for(info)
        record.state = "wrapping"
        await self._save(record)
        placement = await self.batches.place(info, patient)
        work = anyio.Path(self.config.work_dir)
        await work.mkdir(parents=True, exist_ok=True)
        out = work / f"{info.id}.{secrets.token_hex(4)}.sc.dcm"
        try:
            instance: InstanceInfo = await self._thread(
                functools.partial(
                    wrap_image,
                    path,
                    str(out),
                    patient=patient,
                    placement=placement,
                    org_root=self.config.org_root,
                )
            )
            key = f"wrapped/{info.id}.dcm"
            await self.records.documents.put_document(key, await out.read_bytes())
        finally:
            await out.unlink(missing_ok=True)
        record.wrapped_key = key
        return instance

    def _destinations_for(self, info: UploadInfo) -> list[DestinationState]:
        """Every configured destination, or the upload token's subset of them (unknown names fail)."""
        wanted = info.extra.get("destinations")
        names = list(self.destinations) if not isinstance(wanted, list) else [str(n) for n in wanted]
        states = []
        for name in dict.fromkeys(names):
            state = DestinationState(name=name)
            if name not in self.destinations:
                state.state, state.error, state.transient = (
                    "failed",
                    "this destination is not configured",
                    False,
                )
            states.append(state)
        return states

    async def _reject(self, record: ProcessingRecord, rejected: Rejected) -> None:
        record.state, record.reason, record.reason_code = "rejected", rejected.reason, rejected.code
        await self._save(record)
        log.info("pipeline.rejected", upload_id=record.upload_id, code=rejected.code, kind=record.kind)

    async def _abandon(
        self, upload_id: str, record: ProcessingRecord | None, info: UploadInfo | None
    ) -> None:
        """The upload is gone or was refused: close its record so it is not retried forever."""
        if record is not None and not record.terminal:
            rejected = info is not None and info.state == "rejected"
            record.state = "rejected" if rejected else "failed"
            record.reason = record.reason or (
                "the upload was rejected" if rejected else "the upload no longer exists"
            )
            await self._save(record)
        return None

    # -- delivery --------------------------------------------------------------------------------------

    async def _deliver(self, info: UploadInfo, record: ProcessingRecord) -> float | None:
        now = self.clock()
        due = [d for d in record.destinations if d.open and (d.next_attempt_at or 0.0) <= now]
        if due:
            record.state = "delivering"
            try:
                async with self._instance_file(info, record) as path:
                    assert record.instance is not None
                    instance = Instance.from_info(path, InstanceInfo(**record.instance))
                    for state in due:
                        await self._attempt(record, state, instance)
            except (SourceError, KeyError) as exc:
                for state in due:
                    self._fail(state, "the file to deliver is missing", transient=False)
                log.error("pipeline.instance_missing", upload_id=record.upload_id, error=type(exc).__name__)
        self._settle(record)
        await self._save(record)
        return None if record.terminal else record.next_due()

    @contextlib.asynccontextmanager
    async def _instance_file(self, info: UploadInfo, record: ProcessingRecord) -> AsyncIterator[str]:
        if record.wrapped_key is None:
            async with self.source.local_copy(info) as path:
                yield path
            return
        work = anyio.Path(self.config.work_dir)
        await work.mkdir(parents=True, exist_ok=True)
        tmp = work / f"{info.id}.{secrets.token_hex(4)}.deliver.dcm"
        try:
            await tmp.write_bytes(await self.records.documents.get_document(record.wrapped_key))
            yield str(tmp)
        finally:
            with anyio.CancelScope(shield=True):
                await tmp.unlink(missing_ok=True)

    async def _attempt(self, record: ProcessingRecord, state: DestinationState, instance: Instance) -> None:
        destination = self.destinations.get(state.name)
        if destination is None:
            self._fail(state, "this destination is no longer configured", transient=False)
            return
        state.state, state.attempts = "delivering", state.attempts + 1
        await self._save(record)
        try:
            receipt = await destination.deliver(instance)
        except DeliveryError as exc:
            await self._delivery_failed(record, state, exc.reason, transient=exc.transient)
            return
        except Exception as exc:  # a bug or an unexpected library error: keep the record alive, retry later
            log.exception("pipeline.deliver_crashed", upload_id=record.upload_id, destination=state.name)
            await self._delivery_failed(
                record, state, f"internal error ({type(exc).__name__})", transient=True
            )
            return
        state.state, state.receipt = "delivered", _jsonable(dataclasses.asdict(receipt))
        state.error, state.transient, state.next_attempt_at = None, None, None
        log.info(
            "delivery.succeeded", upload_id=record.upload_id, destination=state.name,
            sop_instance_uid=instance.sop_instance_uid, outcome=receipt.outcome, attempts=state.attempts,
        )  # fmt: skip
        await self._audit("delivery.succeeded", record, state, outcome=receipt.outcome)

    async def _delivery_failed(
        self, record: ProcessingRecord, state: DestinationState, reason: str, *, transient: bool
    ) -> None:
        if transient and state.attempts < self.config.max_attempts:
            state.state, state.error, state.transient = "retrying", reason, True
            state.next_attempt_at = self.clock() + self._backoff(state.attempts)
            log.warning(
                "delivery.retrying", upload_id=record.upload_id, destination=state.name,
                attempts=state.attempts,
                reason=reason,
            )  # fmt: skip
            return
        self._fail(state, reason, transient=transient)
        log.error(
            "delivery.failed",
            upload_id=record.upload_id,
            destination=state.name,
            attempts=state.attempts,
            reason=reason,
        )
        await self._audit("delivery.failed", record, state, reason=reason, transient=transient)

    @staticmethod
    def _fail(state: DestinationState, reason: str, *, transient: bool) -> None:
        state.state, state.error, state.transient, state.next_attempt_at = "failed", reason, transient, None

    def _settle(self, record: ProcessingRecord) -> None:
        """The record's state from its destinations' states."""
        if any(d.open for d in record.destinations):
            record.state = "delivering" if any(d.attempts for d in record.destinations) else "received"
            return
        failed = [d for d in record.destinations if d.state == "failed"]
        if not failed:
            record.state, record.reason, record.reason_code = "delivered", None, None
            return
        record.state, record.reason_code = "failed", "delivery_failed"
        record.reason = "; ".join(f"could not deliver to {d.name}: {d.error}" for d in failed)

    def _backoff(self, attempts: int) -> float:
        """Exponential backoff with "equal jitter": half fixed, half random."""
        delay = min(self.config.backoff_max, self.config.backoff * 2.0 ** max(attempts - 1, 0))
        return delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 - jitter, not security

    async def _audit(
        self, action: str, record: ProcessingRecord, state: DestinationState, **more: Any
    ) -> None:
        if self.audit is None:
            return
        uid = (record.instance or {}).get("sop_instance_uid")
        data: dict[str, object] = {
            "upload_id": record.upload_id, "destination": state.name, "sop_instance_uid": uid,
            "attempts": state.attempts, "owner": record.owner, **more,
        }  # fmt: skip
        try:
            await self.audit(action, data)
        except Exception:  # the audit sink must not undo a delivery
            log.exception("pipeline.audit_failed", upload_id=record.upload_id, action=action)

    # -- helpers ---------------------------------------------------------------------------------------

    async def _save(self, record: ProcessingRecord) -> None:
        record.updated_at = self.clock()
        await self.records.put(record)

    async def _thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)


def _read_head(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(HEAD_SIZE)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


def _noop() -> None:
    """Release request: pipeline work on one upload finishes on its own."""
