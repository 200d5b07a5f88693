"""The background sweeper's pass over every upload: expiration and recovery.

* protocol.md "Expiration": an unfinished upload idle past its ``Upload-Expires`` is deleted (S3: the
  multipart upload aborted). A tombstone stays behind so later requests get 410 ("the latter one SHOULD be
  used if the Server is keeping track of expired uploads"); tombstones older than ``tombstone_ttl`` go too.
* Recovery: an upload whose last byte is stored but whose finishing step never ran (the process died in
  between) is finished here, so pre-finish and post-finish still happen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from . import errors
from .events import HTTPRequest
from .store import UploadInfo

if TYPE_CHECKING:
    from .engine import Engine

log = structlog.get_logger("relaypacs_tus.tus")

#: The request recorded on events the sweeper causes (no client request is involved).
RECOVERY_REQUEST = HTTPRequest(method="", uri="", remote_addr="")


def _noop() -> None:
    """The sweeper's release callback: it holds a lock only briefly."""


class Sweeper:
    """One pass; ``run`` returns the uploads that expired (for the audit log)."""

    def __init__(self, engine: Engine, tombstone_ttl: float) -> None:
        self._engine = engine
        self._store = engine.store
        self._ttl = tombstone_ttl

    async def run(self) -> list[UploadInfo]:
        expired = []
        async for upload_id in self._store.list_ids():
            try:
                info = await self._one(upload_id)
            except errors.TusError as exc:
                log.warning("upload.sweep_failed", upload_id=upload_id, reason=exc.code)
                continue
            if info is not None:
                expired.append(info)
        return expired

    async def _one(self, upload_id: str) -> UploadInfo | None:
        now = self._engine.clock()
        info = await self._store.get(upload_id)
        if info.is_gone:
            if info.updated_at + self._ttl <= now:
                await self._store.delete(upload_id)
            return None
        if self._expired(info, now):  # first: an unfinished final upload expires rather than waits forever
            return await self._expire(upload_id)
        if self._needs_recovery(info, now):
            await self._recover(upload_id)
        return None

    async def _expire(self, upload_id: str) -> UploadInfo | None:
        async with self._engine.locker.hold(upload_id, _noop):
            info = await self._store.get(upload_id)  # a PATCH may have landed while we waited
            if info.is_gone or not self._expired(info, self._engine.clock()):
                return None
            await self._store.delete(upload_id, tombstone="expired")
        log.info("upload.expired", upload_id=upload_id, offset=info.offset, size=info.size)
        info.state = "expired"
        return info

    def _expired(self, info: UploadInfo, now: float) -> bool:
        self._engine.set_expiry(info)
        return info.expires_at is not None and info.expires_at <= now

    def _needs_recovery(self, info: UploadInfo, now: float) -> bool:
        """Complete (or a final upload) but its hooks never accepted it, and idle for longer than the
        network timeout, so no request is finishing it right now."""
        idle = now - max(info.created_at, info.updated_at) > self._engine.config.network_timeout
        if info.state != "active" or info.accepted or not idle:
            return False
        return info.is_complete or info.is_final

    async def _recover(self, upload_id: str) -> None:
        try:
            info = await self._store.get(upload_id)
            if info.is_final:  # concatenation is idempotent and takes the final's lock itself
                await self._engine.concat.attempt(upload_id, RECOVERY_REQUEST, info.owner)
                return
            async with self._engine.locker.hold(upload_id, _noop):
                info = await self._store.get(upload_id)
                if not self._needs_recovery(info, self._engine.clock()):
                    return
                log.info("upload.recovered", upload_id=upload_id, size=info.size)
                await self._engine.finish(info, RECOVERY_REQUEST, info.owner)
        except errors.TusError as exc:
            log.info("upload.recovery_failed", upload_id=upload_id, reason=exc.code)
