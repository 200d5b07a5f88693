"""Everything hook-related the server runs, opened and closed as one unit by the app's lifespan: the
dispatcher the engine calls, the operator's file/HTTP transports, and (when enabled) the DICOM pipeline
with its durable delivery worker and destinations.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
import httpx
import structlog

from ..tus.events import HookType
from ..tus.store import Documents, UploadStore
from .config import PipelineConfig
from .records import RecordStore
from .runner import TUSD_DEFAULT_EVENTS, HookRunner
from .transports import FileHooks, HttpHooks, InProcessHooks, Transport

if TYPE_CHECKING:
    from .pipeline import Audit, Pipeline
    from .worker import DeliveryWorker

log = structlog.get_logger("relaypacs_tus.hooks")


class HookSetupError(Exception):
    """The hook or pipeline configuration cannot work (the message names the setting)."""


@dataclass(frozen=True, slots=True)
class HookConfig:
    hooks_dir: str = ""
    hooks_http: str = ""
    enabled_events: frozenset[HookType] = field(default=TUSD_DEFAULT_EVENTS)
    timeout: float = 30.0
    http_retry: int = 3
    http_backoff: float = 1.0
    pipeline: PipelineConfig | None = None  # None: no DICOM pipeline
    destinations: str = ""  # pacs.config spec: JSON list or @file
    rescan_interval: float = 60.0


@dataclass(slots=True)
class HookService:
    hooks: HookRunner
    records: RecordStore | None = None
    pipeline: Pipeline | None = None
    worker: DeliveryWorker | None = None


@contextlib.asynccontextmanager
async def open_hook_service(
    store: UploadStore, config: HookConfig, *, audit: Audit | None = None
) -> AsyncIterator[HookService]:
    """Open clients and start the worker; on exit stop the worker (its work stays recorded) and close."""
    async with contextlib.AsyncExitStack() as stack:
        transports: list[Transport] = []
        if config.hooks_dir:
            transports.append(FileHooks(config.hooks_dir, timeout=config.timeout))
        if config.hooks_http:
            client = await stack.enter_async_context(httpx.AsyncClient())
            transports.append(
                HttpHooks(
                    config.hooks_http,
                    client=client,
                    timeout=config.timeout,
                    retries=config.http_retry,
                    backoff=config.http_backoff,
                )
            )
        service = HookService(HookRunner(transports, enabled=config.enabled_events))
        if config.pipeline is not None:
            await _open_pipeline(stack, service, store, config, config.pipeline, audit)
        yield service


async def _open_pipeline(
    stack: contextlib.AsyncExitStack,
    service: HookService,
    store: UploadStore,
    config: HookConfig,
    pipeline_config: PipelineConfig,
    audit: Audit | None,
) -> None:
    # imported here so a server without the pipeline never loads pydicom, pillow or the PACS clients
    from ..pacs.config import load_destinations
    from .pipeline import Pipeline
    from .sources import StoreSource
    from .worker import DeliveryWorker

    if not isinstance(store, Documents):
        raise HookSetupError(f"RELAYPACS_PIPELINE: the {store.name} store cannot keep processing records")
    try:
        destinations = load_destinations(config.destinations) if config.destinations.strip() else []
    except Exception as exc:
        raise HookSetupError(f"RELAYPACS_DESTINATIONS: {exc}") from exc
    for destination in destinations:
        stack.push_async_callback(destination.aclose)
    records = RecordStore(store)
    source = StoreSource(store, pipeline_config.work_dir)
    pipeline = Pipeline(records, source, destinations, pipeline_config, audit=audit)
    worker = DeliveryWorker(
        pipeline, list_uploads=store.list_ids, concurrency=pipeline_config.concurrency,
        rescan_interval=config.rescan_interval,
    )  # fmt: skip
    service.hooks.builtin = InProcessHooks(pipeline.handlers(worker.enqueue))
    service.records, service.pipeline, service.worker = records, pipeline, worker
    tg = await stack.enter_async_context(anyio.create_task_group())
    stack.callback(tg.cancel_scope.cancel)
    tg.start_soon(worker.run)
    log.info(
        "pipeline.started",
        destinations=[d.name for d in destinations],
        work_dir=str(pipeline_config.work_dir),
    )
