"""The tus protocol engine: create, head, append, terminate and concatenate over a store, a locker and
the hook seam. No HTTP framework here: the adapter in :mod:`routes` parses requests into these calls.
"""

from __future__ import annotations

import contextlib
import functools
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from . import errors, spec
from .body import BodyReader
from .checksum import ChecksumVerifier
from .concat import Concatenation
from .events import NO_CHANGE, HookEvent, HookResponse, Hooks, HookType, HTTPRequest, NoHooks, Selective
from .headers import Checksum, format_http_date, format_metadata
from .locks import Locker, MemoryLocker
from .model import Creation, EngineConfig, Outcome, Patch
from .store import UPLOAD_ID, Acceptance, UploadInfo, UploadStore, check_upload_id
from .sweep import Sweeper

log = structlog.get_logger("relaypacs_tus.tus")

#: Runs a background job (post-* events, concatenation); the app passes its task group's ``start_soon``.
Job = Callable[[], Coroutine[Any, Any, None]]
Spawn = Callable[[Job], object]


class Engine:
    def __init__(
        self,
        store: UploadStore,
        *,
        config: EngineConfig | None = None,
        locker: Locker | None = None,
        hooks: Hooks | None = None,
        spawn: Spawn | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.config = config or EngineConfig()
        self.locker: Locker = locker or MemoryLocker()
        self.hooks: Hooks = hooks or NoHooks()
        self._handles = self.hooks.handles if isinstance(self.hooks, Selective) else _every_event
        self._spawn = spawn
        self.clock = clock
        self.concat = Concatenation(store, self.locker, get=self.get, finish=self.finish)

    # -- reading ---------------------------------------------------------------------------------------

    async def head(self, upload_id: str, request: HTTPRequest, principal: str | None = None) -> UploadInfo:
        """The upload's state ("HEAD"). Takes the lock so a stale PATCH lets go and the offset is final."""
        async with self._hold(upload_id, _noop, principal):
            return await self.get(upload_id, principal)

    async def get(self, upload_id: str, principal: str | None = None) -> UploadInfo:
        """The live upload; 404 if unknown or someone else's, 410 if terminated or expired."""
        info = await self.store.get(check_upload_id(upload_id))
        if info.owner is not None and info.owner != principal:
            raise errors.UploadNotFound()
        if info.is_gone:
            raise errors.UploadGone()
        self.set_expiry(info)
        if info.expires_at is not None and info.expires_at <= self.clock():
            raise errors.UploadGone("upload expired")
        return info

    def set_expiry(self, info: UploadInfo) -> None:
        """Set ``info.expires_at`` ("Expiration"): an unfinished upload expires ``expiration`` seconds after
        its last byte arrived; a complete one (or a concatenated final) never does."""
        if self.config.expiration and not info.is_complete and not (info.is_final and info.finished):
            info.expires_at = max(info.created_at, info.updated_at) + self.config.expiration
        else:
            info.expires_at = None

    def _hold(
        self, upload_id: str, on_release_request: Callable[[], None], principal: str | None
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """The upload's lock for a client request. Only a request that could read the upload itself may
        make a holder let go (someone else's id gets 404, not the power to cut an upload short); the
        check costs a store read only when the lock is taken, so an uncontended PATCH reads once."""
        check_upload_id(upload_id)
        return self.locker.hold(upload_id, on_release_request, vet=lambda: self.get(upload_id, principal))

    # -- creation --------------------------------------------------------------------------------------

    async def create(self, req: Creation, request: HTTPRequest, principal: str | None = None) -> Outcome:
        """ "creation" (+ "creation-with-upload", "creation-defer-length", "concatenation")."""
        info = self._new_info(req, principal)
        partials = await self.concat.load_partials(req.final_of, principal) if req.final_of else []
        if partials:
            info.size = self.concat.size_of(partials)
            self._check_max_size(info.size, info.max_size)
        answer = await self._hook(HookType.PRE_CREATE, info, request, principal)
        self._apply_pre_create(info, answer)
        if answer.change_id is not None and await self._exists(info.id):
            raise errors.HookFailed("a pre-create hook chose an upload id that is already taken")
        await self.store.create(info)
        log.info(
            "upload.created", upload_id=info.id, size=info.size, partial=info.is_partial, final=info.is_final
        )
        self._notify(HookType.POST_CREATE, info, request, principal)
        try:
            if partials:
                await self.concat.link(info, partials)
                await self.concat.attempt(info.id, request, principal)
            elif req.body is not None:
                patch = Patch(
                    offset=0, body=req.body, content_length=req.content_length, checksum=req.checksum
                )
                return await self.append(info.id, patch, request, principal)
            elif info.size == 0:
                return await self._locked_finish(info, request, principal)
        except errors.TusError as exc:
            exc.upload_id = info.id  # the upload exists: the adapter still tells the client where
            raise
        return Outcome(await self.get(info.id, principal))

    def _new_info(self, req: Creation, principal: str | None) -> UploadInfo:
        if req.final_of:
            if req.length is not None or req.deferred:
                raise errors.InvalidHeader("a final upload must not carry Upload-Length")
            if not self.config.enable_concatenation:
                raise errors.ExtensionDisabled("concatenation is disabled")
        elif req.length is None and not req.deferred:
            raise errors.MissingLength()
        elif req.length is not None and req.deferred:
            raise errors.InvalidHeader("send Upload-Length or Upload-Defer-Length, not both")
        if req.partial and not self.config.enable_concatenation:
            raise errors.ExtensionDisabled("concatenation is disabled")
        self._check_max_size(req.length, req.max_size)
        now = self.clock()
        return UploadInfo(
            id=uuid.uuid4().hex,
            size=req.length,
            metadata_header=req.metadata.raw,
            metadata=req.metadata.as_text(),
            created_at=now,
            updated_at=now,
            is_partial=req.partial,
            is_final=bool(req.final_of),
            partial_uploads=list(req.final_of),
            concat_header=req.concat_header,
            owner=principal,
            max_size=req.max_size,
            extra=dict(req.extra),
        )

    def _check_max_size(self, size: int | None, upload_cap: int | None = None) -> None:
        if size is not None and self.config.max_size and size > self.config.max_size:
            raise errors.MaxSizeExceeded(f"upload is larger than Tus-Max-Size ({self.config.max_size} bytes)")
        if size is not None and upload_cap is not None and size > upload_cap:
            raise errors.MaxSizeExceeded(f"upload is larger than this upload's cap ({upload_cap} bytes)")

    def _cap(self, info: UploadInfo) -> int:
        """Bytes the upload may reach when its length is not known yet."""
        caps = [c for c in (self.config.max_size, info.max_size) if c]
        return min(caps) if caps else spec.MAX_INT64

    def _apply_pre_create(self, info: UploadInfo, answer: HookResponse) -> None:
        if answer.reject_upload:
            raise _rejection(errors.UploadRejected, answer)
        if answer.change_metadata is not None:
            info.metadata = dict(answer.change_metadata)
            info.metadata_header = format_metadata(info.metadata)
        if answer.change_id is not None:
            if not UPLOAD_ID.fullmatch(answer.change_id):
                raise errors.HookFailed("a pre-create hook returned an id this server cannot store")
            info.id = answer.change_id

    async def _exists(self, upload_id: str) -> bool:
        try:
            await self.store.get(upload_id)
        except errors.UploadNotFound:
            return False
        return True

    # -- append ----------------------------------------------------------------------------------------

    async def append(
        self, upload_id: str, patch: Patch, request: HTTPRequest, principal: str | None = None
    ) -> Outcome:
        """ "PATCH": write the body at ``patch.offset``; finish the upload when the last byte is in."""
        readers: list[BodyReader] = []

        def interrupt() -> None:  # another request asks for the upload: stop reading this body
            for reader in readers:
                reader.interrupt()

        async with self._hold(upload_id, interrupt, principal):
            info = await self.get(upload_id, principal)
            try:
                return await self._append_locked(info, patch, readers, request, principal)
            except errors.TusError as exc:
                self._add_expiry(info, exc)
                raise

    async def _append_locked(
        self,
        info: UploadInfo,
        patch: Patch,
        readers: list[BodyReader],
        request: HTTPRequest,
        principal: str | None,
    ) -> Outcome:
        self._check_patch(info, patch)
        if patch.length is not None and info.size is None:
            info.size = patch.length
            await self.store.save_info(info)
        limit = (info.size if info.size is not None else self._cap(info)) - info.offset
        if patch.content_length is not None and patch.content_length > limit:
            raise errors.UploadSizeExceeded()
        readers.append(BodyReader(patch.body, limit=limit, idle_timeout=self.config.network_timeout))
        try:
            await self._write(info, readers[-1], patch.checksum, request, principal)
        except errors.TusError:
            # The bytes kept before the failure (excess body, timeout, disconnect) may have completed
            # the upload: finish it now, or it would wait forever for a PATCH no client will send.
            if info.is_complete:
                await self.finish(info, request, principal)
            raise
        if info.is_complete:
            return await self.finish(info, request, principal)
        return Outcome(info)

    def _add_expiry(self, info: UploadInfo, exc: errors.TusError) -> None:
        """ "Expiration": Upload-Expires MUST be in every PATCH response while the upload will expire,
        so a refused PATCH (409, 460, 413, timeout) carries it too."""
        self.set_expiry(info)
        if info.expires_at is not None and not isinstance(exc, errors.UploadGone):
            exc.headers.setdefault(spec.UPLOAD_EXPIRES, format_http_date(info.expires_at))

    def _check_patch(self, info: UploadInfo, patch: Patch) -> None:
        if info.is_final:
            raise errors.ModifyFinal()
        if patch.offset != info.offset:
            raise errors.OffsetMismatch(headers={spec.UPLOAD_OFFSET: str(info.offset)})
        if patch.length is not None:
            if info.size is not None and patch.length != info.size:
                raise errors.LengthAlreadySet()
            self._check_max_size(patch.length, info.max_size)
            if patch.length < info.offset:
                raise errors.InvalidUploadLength("Upload-Length is smaller than the upload's offset")
        if info.is_complete and patch.content_length:
            raise errors.UploadSizeExceeded("upload is already complete")

    async def _write(
        self,
        info: UploadInfo,
        body: BodyReader,
        checksum: Checksum | None,
        request: HTTPRequest,
        principal: str | None,
    ) -> None:
        verifier = ChecksumVerifier(checksum) if checksum else None
        start = info.offset
        try:
            info.offset = await self.store.append(info, body.__aiter__(), verifier)
        except errors.TusError as exc:
            fresh = await self.store.get(info.id)
            info.offset, info.updated_at = fresh.offset, fresh.updated_at
            log.info("upload.patch_failed", upload_id=info.id, reason=exc.code, kept=info.offset - start)
            if info.offset != start:
                self._notify(HookType.POST_RECEIVE, info, request, principal)
            raise
        info.updated_at = self.clock()
        self.set_expiry(info)
        log.info("upload.patch", upload_id=info.id, offset=info.offset, received=info.offset - start)
        self._notify(HookType.POST_RECEIVE, info, request, principal)

    # -- finishing -------------------------------------------------------------------------------------

    async def _locked_finish(self, info: UploadInfo, request: HTTPRequest, principal: str | None) -> Outcome:
        async with self.locker.hold(info.id, _noop):
            return await self.finish(await self.store.get(info.id), request, principal)

    async def finish(self, info: UploadInfo, request: HTTPRequest, principal: str | None) -> Outcome:
        """The last byte is in: let the store finish, ask pre-finish, then notify post-finish. The caller
        holds the upload's lock. A pre-finish rejection is recorded on the upload and raised. Once
        pre-finish accepted the upload this is a no-op, so a retried last PATCH (an empty one at the final
        offset) or the sweeper's recovery never runs the hooks twice; until then, they run again."""
        if info.accepted:
            return Outcome(info)
        if not info.finished:
            await self.store.finish(info)
            info.finished = True
        self.set_expiry(info)
        answer = await self._hook(HookType.PRE_FINISH, info, request, principal)
        http = answer.http_response
        if http is not None and http.status_code >= 400:
            info.state = "rejected"
            info.extra["rejection"] = {"status": http.status_code, "body": http.body}
            await self.store.save_info(info)
            log.info("upload.rejected", upload_id=info.id, status=http.status_code)
            raise _rejection(errors.UploadRejected, answer)
        info.accepted = True
        if isinstance(self.store, Acceptance):
            await self.store.mark_accepted(info)
        else:
            await self.store.save_info(info)
        log.info("upload.finished", upload_id=info.id, size=info.size)
        self._notify(HookType.POST_FINISH, info, request, principal)
        if info.is_partial:
            for final_id in list(info.final_uploads):
                self._spawn_task(functools.partial(self.concat.quietly, final_id, request, principal))
        return Outcome(info, dict(http.header) if http else {})

    # -- termination -----------------------------------------------------------------------------------

    async def terminate(self, upload_id: str, request: HTTPRequest, principal: str | None = None) -> None:
        """ "termination": DELETE removes the upload; later requests get 410."""
        if not self.config.enable_termination:
            raise errors.MethodNotAllowed("termination is disabled")
        async with self._hold(upload_id, _noop, principal):
            info = await self.get(upload_id, principal)
            answer = await self._hook(HookType.PRE_TERMINATE, info, request, principal)
            if answer.reject_termination or (
                answer.http_response and answer.http_response.status_code >= 400
            ):
                raise _rejection(errors.TerminationRejected, answer)
            await self.store.delete(upload_id, tombstone="terminated")
        log.info("upload.terminated", upload_id=upload_id)
        info.state = "terminated"
        self._notify(HookType.POST_TERMINATE, info, request, principal)

    # -- expiration ------------------------------------------------------------------------------------

    async def sweep(self, tombstone_ttl: float = 7 * 24 * 3600.0) -> list[UploadInfo]:
        """One pass of the background sweeper (expiration and recovery); see :class:`sweep.Sweeper`."""
        return await Sweeper(self, tombstone_ttl).run()

    # -- hooks -----------------------------------------------------------------------------------------

    async def _hook(
        self, kind: HookType, info: UploadInfo, request: HTTPRequest, principal: str | None
    ) -> HookResponse:
        """A blocking event. A hook that raises (crash, timeout) fails the request with 500, as in tusd;
        a hook that wants to refuse answers with a rejection instead."""
        if not self._handles(kind):
            return NO_CHANGE
        try:
            return await self.hooks(HookEvent(kind, info, request, principal)) or NO_CHANGE
        except errors.TusError:
            raise
        except Exception as exc:
            log.exception("hook.failed", hook=kind.value, upload_id=info.id)
            raise errors.HookFailed() from exc

    def _notify(self, kind: HookType, info: UploadInfo, request: HTTPRequest, principal: str | None) -> None:
        if not self._handles(kind):
            return
        event = HookEvent(kind, UploadInfo.from_json(info.to_json()), request, principal)

        async def run() -> None:
            try:
                answer = await self.hooks(event)
                if kind is HookType.POST_RECEIVE and answer is not None and answer.stop_upload:
                    await self._stop(event.upload.id, request, principal)
            except Exception:  # a notification must never take the server down
                log.exception("hook.notify_failed", hook=kind.value, upload_id=info.id)

        self._spawn_task(run)

    async def _stop(self, upload_id: str, request: HTTPRequest, principal: str | None) -> None:
        """post-receive answered ``StopUpload``: terminate the upload as tusd does. Taking the lock asks a
        PATCH in flight to let go; later requests get 410."""
        async with self.locker.hold(upload_id, _noop):
            info = await self.store.get(upload_id)
            if info.is_gone:
                return
            await self.store.delete(upload_id, tombstone="terminated")
        log.info("upload.stopped", upload_id=upload_id)
        info.state = "terminated"
        self._notify(HookType.POST_TERMINATE, info, request, principal)

    def _spawn_task(self, job: Job) -> None:
        if self._spawn is None:
            log.warning("engine.no_spawner", detail="post-* events dropped; pass spawn= to Engine")
            return
        self._spawn(job)


def _every_event(kind: HookType) -> bool:
    return True


def _noop() -> None:
    """Release request for holders that finish on their own quickly (HEAD, finish, concat)."""


def _rejection(kind: type[errors.UploadRejected], answer: HookResponse) -> errors.UploadRejected:
    http = answer.http_response
    if http is None:
        return kind()
    return kind(
        http.body or None,
        status=http.status_code or None,
        headers=dict(http.header),
        body=http.body or None,
    )


__all__ = ["Creation", "Engine", "EngineConfig", "Outcome", "Patch", "Spawn"]
