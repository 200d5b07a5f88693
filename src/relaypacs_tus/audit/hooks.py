"""Records the upload lifecycle in the audit log by decorating the engine's hooks: whatever hooks the app
passes are called unchanged, and their answers returned unchanged.

created (post-create), completed with the upload's SHA-256 (post-finish), rejected (a pre-create or
pre-finish answer that refuses), terminated (post-terminate). Expiry is recorded by the sweeper, which
gets the expired uploads from ``Engine.sweep()``. Never a metadata value: only ids, sizes, hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread
import structlog

from ..tus.events import HookEvent, HookResponse, Hooks, HookType, Selective
from ..tus.store import UploadInfo, UploadStore

log = structlog.get_logger("relaypacs_tus.audit")

Audit = Callable[[str, dict[str, object]], Awaitable[None]]
#: Events recorded whatever the inner hooks do (a refusal at pre-* is seen only if ``inner`` answers one).
_AUDITED = frozenset({HookType.POST_CREATE, HookType.POST_FINISH, HookType.POST_TERMINATE})


def upload_fields(info: UploadInfo, principal: str | None = None, client: str = "") -> dict[str, object]:
    """What an audit entry may say about an upload (no metadata values, no binding)."""
    fields: dict[str, object] = {
        "upload_id": info.id,
        "size": info.size,
        "offset": info.offset,
        "principal": principal if principal is not None else info.owner,
        "token_id": info.extra.get("token_id"),
        "client": client or None,
    }
    if info.is_partial:
        fields["partial"] = True
    if info.is_final:
        fields["final"] = True
    return {k: v for k, v in fields.items() if v is not None}


def _client(remote_addr: str) -> str:
    """``host:port`` or ``[v6]:port`` to the host."""
    host = remote_addr.rsplit(":", 1)[0] if remote_addr.count(":") == 1 or "]" in remote_addr else remote_addr
    return host.strip("[]")


class AuditingHooks:
    """A :class:`~relaypacs_tus.tus.events.Hooks` that audits, then defers to ``inner``."""

    def __init__(self, inner: Hooks, audit: Audit, store: UploadStore, *, hash_uploads: bool = True) -> None:
        self.inner = inner
        self.audit = audit
        self.store = store
        self.hash_uploads = hash_uploads
        self._hashing = anyio.CapacityLimiter(2)

    def handles(self, kind: HookType) -> bool:
        """:class:`~relaypacs_tus.tus.events.Selective`: the audited events, plus what ``inner`` handles."""
        if kind in _AUDITED:
            return True
        return self.inner.handles(kind) if isinstance(self.inner, Selective) else True

    async def __call__(self, event: HookEvent) -> HookResponse:
        kind = event.type
        if kind.is_blocking:
            answer = await self.inner(event)
            if _refuses(kind, answer):
                await self._record("upload.rejected", event, stage=kind.value, answer=answer)
            return answer
        if kind is HookType.POST_FINISH:
            async with anyio.create_task_group() as tg:  # hashing must not hold up delivery
                tg.start_soon(self._completed, event)
                answer = await self.inner(event)
            return answer
        if kind is HookType.POST_CREATE:
            await self._record("upload.created", event)
        elif kind is HookType.POST_TERMINATE:
            await self._record("upload.terminated", event)
        return await self.inner(event)

    async def _completed(self, event: HookEvent) -> None:
        sha256 = None
        if self.hash_uploads:
            try:
                sha256 = await self._sha256(event.upload.id)
            except Exception as exc:  # the entry is still written, without the hash
                log.warning("audit.hash_failed", upload_id=event.upload.id, error=type(exc).__name__)
        await self._record("upload.completed", event, sha256=sha256)

    async def _sha256(self, upload_id: str) -> str:
        digest = hashlib.sha256()
        async with self._hashing:
            async for chunk in self.store.read(upload_id):
                await anyio.to_thread.run_sync(digest.update, chunk)
        return digest.hexdigest()

    async def _record(
        self,
        name: str,
        event: HookEvent,
        *,
        stage: str = "",
        answer: HookResponse | None = None,
        **extra: Any,
    ) -> None:
        fields = upload_fields(event.upload, event.principal, _client(event.request.remote_addr))
        if event.type is HookType.PRE_CREATE:
            fields.pop("upload_id", None)  # not assigned yet
        if stage:
            fields["stage"] = stage
        if answer is not None and answer.http_response is not None:
            fields["status"] = answer.http_response.status_code
            fields["reason"] = answer.http_response.body or None
        fields.update({k: v for k, v in extra.items() if v is not None})
        try:
            await self.audit(name, {k: v for k, v in fields.items() if v is not None})
        except Exception:
            log.exception("audit.write_failed", audit_event=name, upload_id=event.upload.id)


def _refuses(kind: HookType, answer: HookResponse) -> bool:
    http = answer.http_response
    failed = http is not None and http.status_code >= 400
    if kind is HookType.PRE_CREATE:
        return answer.reject_upload or failed
    if kind is HookType.PRE_FINISH:
        return failed
    return False
