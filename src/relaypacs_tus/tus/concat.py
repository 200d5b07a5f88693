"""protocol.md "Concatenation" and "concatenation-unfinished": final uploads made of partial uploads.

A final upload names its partials at creation. It may be created while they are still receiving bytes
("concatenation-unfinished"): each unfinished partial then records the final upload, and finishing the last
partial concatenates it. The final upload learns its length as soon as every partial's length is known.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import structlog

from . import errors
from .events import HTTPRequest
from .locks import Locker
from .store import UploadInfo, UploadStore

log = structlog.get_logger("relaypacs_tus.tus")

#: The engine's own lookup (ownership, gone, expired): ``get(upload_id, principal)``.
Get = Callable[[str, "str | None"], Awaitable[UploadInfo]]
#: The engine's finishing step (store finish, pre-finish, post-finish), called with the final's lock held.
Finish = Callable[[UploadInfo, HTTPRequest, "str | None"], Awaitable[object]]


def _noop() -> None:
    """Concatenation finishes on its own quickly; a waiting request need not interrupt it."""


class Concatenation:
    """Links, sizes and concatenates final uploads over the engine's store and locker."""

    def __init__(self, store: UploadStore, locker: Locker, *, get: Get, finish: Finish) -> None:
        self._store = store
        self._locker = locker
        self._get = get
        self._finish = finish

    async def load_partials(self, ids: tuple[str, ...], principal: str | None) -> list[UploadInfo]:
        """The named partial uploads; 404/410 like any lookup, 400 if one is not a partial upload."""
        partials = []
        for upload_id in ids:
            info = await self._get(upload_id, principal)
            if not info.is_partial:
                raise errors.NotPartial()
            partials.append(info)
        return partials

    @staticmethod
    def size_of(partials: list[UploadInfo]) -> int | None:
        """ "The length of the final upload MUST be the sum of the length of all partial uploads"; None
        while a partial's length is still deferred."""
        sizes = [p.size for p in partials]
        return None if None in sizes else sum(s for s in sizes if s is not None)

    async def link(self, final: UploadInfo, partials: list[UploadInfo]) -> None:
        """Record the final upload on each unfinished partial, so finishing it resumes concatenation."""
        for partial in partials:
            if partial.is_complete:
                continue
            async with self._locker.hold(partial.id, _noop):
                fresh = await self._store.get(partial.id)
                if final.id not in fresh.final_uploads:
                    fresh.final_uploads.append(final.id)
                    await self._store.save_info(fresh)

    async def quietly(self, final_id: str, request: HTTPRequest, principal: str | None) -> None:
        """:meth:`attempt` in the background: a failure is logged, never raised."""
        try:
            await self.attempt(final_id, request, principal)
        except errors.TusError as exc:
            log.warning("upload.concat_failed", upload_id=final_id, reason=exc.code)

    async def attempt(self, final_id: str, request: HTTPRequest, principal: str | None) -> UploadInfo:
        """Concatenate once every partial is complete; until then the final upload waits (and learns its
        length as soon as every partial's length is known). Idempotent."""
        async with self._locker.hold(final_id, _noop):
            final = await self._store.get(final_id)
            if final.accepted or final.is_gone:
                return final
            if not final.finished and not await self._concatenate(final):
                return final
            await self._finish(final, request, principal)
            return final

    async def _concatenate(self, final: UploadInfo) -> bool:
        """Write the partials' bytes into the final upload; False while a partial is still incomplete."""
        partials = [await self._store.get(p) for p in final.partial_uploads]
        if any(p.is_gone for p in partials):
            raise errors.UploadGone("a partial upload of this final upload is gone")
        if final.size is None and (size := self.size_of(partials)) is not None:
            final.size = size
            await self._store.save_info(final)
        if not all(p.is_complete for p in partials):
            return False
        if final.offset:  # a crash mid-concatenation left bytes behind: start over
            await self._store.delete(final.id)
            await self._store.create(final)
            final.offset = 0
        final.offset = await self._store.append(final, self._chain(partials), None)
        log.info("upload.concatenated", upload_id=final.id, partials=len(partials), size=final.size)
        return True

    async def _chain(self, partials: list[UploadInfo]) -> AsyncIterator[bytes]:
        for partial in partials:
            async for chunk in self._store.read(partial.id):
                yield chunk
