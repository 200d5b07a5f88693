"""The DICOM pipeline as a tusd hook *program*: one event's ``HookRequest`` JSON on stdin, the
``HookResponse`` JSON on stdout (``pkg/hooks/file``). The executables in the repository's top-level
``hooks/`` folder run this (through ``relaypacs-tus hook <event>``), so they work behind stock tusd's
``-hooks-dir`` and behind our own file transport alike.

* ``post-create``: count the upload in its batch.
* ``pre-finish``: validate DICOM / wrap a photo; a bad file gets a 4xx ``HTTPResponse`` with the reason.
* ``post-finish``: deliver to every destination, retrying transient failures with backoff until done or
  out of attempts (tusd does not wait for post-finish, so this may take a while). The processing record
  stays behind for ``relaypacs-tus deliveries``.

Uploads are read at ``Event.Upload.Storage.Path`` (tusd's filestore); records go to the ``.documents``
folder beside the uploads, the same layout as our local store.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import structlog

from ..pacs.base import Destination
from ..tus.events import NO_CHANGE, HookResponse, HookType
from ..tus.store import Documents
from .config import PipelineConfig
from .events import HookFormatError, event_from_tusd, response_to_tusd
from .pipeline import Audit, Pipeline
from .records import RecordStore
from .sources import EventSource

log = structlog.get_logger("relaypacs_tus.hooks")

#: Events this program acts on; any other event is answered with "no changes".
EVENTS = (HookType.POST_CREATE, HookType.PRE_FINISH, HookType.POST_FINISH)


class ProgramError(Exception):
    """The hook request cannot be handled (bad JSON, no filestore path); the program exits non-zero."""


#: Opens the documents kept in a folder (the wiring passes the local store's folder implementation).
FolderOpener = Callable[[Path], Documents]


def documents_for(storage: dict[str, str], folder: FolderOpener) -> Documents:
    path = storage.get("Path")
    if storage.get("Type") != "filestore" or not path:
        raise ProgramError("the upload has no filestore path (run tusd with -upload-dir)")
    return folder(Path(path).parent / ".documents")


async def run(
    kind: HookType,
    request: bytes,
    *,
    destinations: Sequence[Destination],
    config: PipelineConfig,
    folder: FolderOpener,
    audit: Audit | None = None,
) -> bytes:
    """Handle one hook request; returns the stdout to print. Raises :class:`ProgramError`."""
    try:
        event = event_from_tusd(json.loads(request))
    except (ValueError, HookFormatError) as exc:
        raise ProgramError(f"stdin is not a tusd hook request: {exc}") from None
    if event.type is not kind:
        raise ProgramError(f"this program handles {kind.value}, the request is {event.type.value}")
    if kind not in EVENTS or event.upload.is_partial:
        return b""
    records = RecordStore(documents_for(event.upload.storage, folder))
    pipeline = Pipeline(records, EventSource(event.upload), destinations, config, audit=audit)
    answer = await _handle(pipeline, kind, event.upload.id)
    return json.dumps(response_to_tusd(answer)).encode() if answer != NO_CHANGE else b""


async def _handle(pipeline: Pipeline, kind: HookType, upload_id: str) -> HookResponse:
    info = await pipeline.source.info(upload_id)
    if kind is HookType.POST_CREATE:
        await pipeline.batches.join(info)
        return NO_CHANGE
    if kind is HookType.PRE_FINISH:
        return await pipeline.pre_finish_answer(info) or NO_CHANGE
    while (due := await pipeline.process(upload_id)) is not None:  # noqa: ASYNC110 - sleeps until a retry is due
        await anyio.sleep(max(0.0, due - pipeline.clock()))
    record = await pipeline.records.get(upload_id)
    log.info("hook.post_finish_done", upload_id=upload_id, state=record.state if record else None)
    return NO_CHANGE
