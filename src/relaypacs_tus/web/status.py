"""The status API the PWA's Progress page reads (contracts.md section 4):

* ``GET /uploads/{id}/status``: one upload, from its info (offset, size) and processing record.
* ``GET /batches/{batch_id}/status``: the caller's uploads sharing a ``batch_id``.

Same principal as the tus requests (scope key ``relaypacs.principal``, set by the auth middleware);
someone else's upload answers 404 exactly like an unknown one. Answers hold states, UIDs and plain-word
reasons, never metadata values.
"""

from __future__ import annotations

from typing import Any

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..hooks.records import RecordStore, upload_status
from ..tus import errors
from ..tus.routes import PRINCIPAL_SCOPE_KEY
from ..tus.store import UploadInfo, UploadStore, check_upload_id

log = structlog.get_logger("relaypacs_tus.web")

_NO_STORE = {"Cache-Control": "no-store"}


def _error(status: int, code: str, message: str) -> Response:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=_NO_STORE)


class StatusApi:
    """Routes are built at once; the store and records arrive when the lifespan has opened them."""

    def __init__(self) -> None:
        self.store: UploadStore | None = None
        self.records: RecordStore | None = None

    def bind(self, store: UploadStore, records: RecordStore | None) -> None:
        self.store, self.records = store, records

    def routes(self) -> list[Route]:
        return [
            Route("/uploads/{upload_id}/status", self._upload, methods=["GET"], name="upload_status"),
            Route("/batches/{batch_id}/status", self._batch, methods=["GET"], name="batch_status"),
        ]

    async def _upload(self, request: Request) -> Response:
        if self.store is None:
            return _error(503, "starting", "the server is starting")
        try:
            info = await self._owned(request.path_params["upload_id"], _principal(request))
            return JSONResponse(await self._status(info), headers=_NO_STORE)
        except errors.UploadNotFound:
            return _error(404, "not_found", "upload not found")
        except errors.TusError as exc:
            return _error(exc.status, exc.code, exc.message)

    async def _batch(self, request: Request) -> Response:
        if self.store is None:
            return _error(503, "starting", "the server is starting")
        batch_id, principal = request.path_params["batch_id"], _principal(request)
        if not 0 < len(batch_id) <= 200:
            return _error(400, "invalid_batch_id", "batch id must be 1 to 200 characters")
        batch = await self.records.get_batch(principal, batch_id) if self.records else None
        uploads: list[dict[str, Any]] = []
        try:
            for upload_id in batch.members if batch else []:
                try:
                    uploads.append(await self._status(await self._owned(upload_id, principal)))
                except errors.UploadNotFound:
                    continue  # deleted since, or not the caller's
        except errors.TusError as exc:
            return _error(exc.status, exc.code, exc.message)
        return JSONResponse({"batch_id": batch_id, "uploads": uploads}, headers=_NO_STORE)

    async def _owned(self, upload_id: str, principal: str | None) -> UploadInfo:
        assert self.store is not None
        info = await self.store.get(check_upload_id(upload_id))
        if info.owner is not None and info.owner != principal:
            raise errors.UploadNotFound()
        return info

    async def _status(self, info: UploadInfo) -> dict[str, Any]:
        record = await self.records.get(info.id) if self.records else None
        return upload_status(info, record)


def _principal(request: Request) -> str | None:
    value = request.scope.get(PRINCIPAL_SCOPE_KEY)
    return str(value) if value is not None else None
