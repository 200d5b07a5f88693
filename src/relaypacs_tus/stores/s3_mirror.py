"""What this process knows of each upload's S3 objects, so that a PATCH needs no reads before its parts.

A :class:`Mirror` is one upload's objects as this process last read or wrote them: the ``.info`` document,
every listed part, the tail object (counting or stale) and whether the final object exists. The offset comes
from it through :func:`.s3_layout.resolve`, exactly as from a fresh listing, and :class:`Sink` records each
write into it only once S3 confirmed the write, so mirror and bucket agree after every request that
succeeded. A request that failed may or may not have taken effect: the store then drops the mirror, and the
next writer lists the objects again.

Why this is safe: within one process the engine's per-upload lock lets one request at a time write an
upload, and the store is deployed as the only process writing its uploads (one replica, or session affinity
by upload URL). **A second process writing the same upload is unsupported**: its writes would not reach this
process's mirror. A process that starts fresh (after a SIGKILL, a restart) has no mirrors and lists the
objects (GET ``.info``, ListParts, HEAD), so recovery is exactly what :mod:`.s3_layout` describes.

Memory is bounded: at most ``max_uploads`` mirrors and ``max_parts`` listed parts over all of them, the
least recently used going first; a finished upload keeps no parts. A mirror not confirmed by S3 for
``max_idle`` seconds is dropped when next asked for (a bucket lifecycle rule may have aborted an idle
multipart upload meanwhile).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import structlog

from ..tus import errors
from ..tus.store import UploadInfo
from .s3_layout import LayoutError, Part, S3State, Tail, View, resolve
from .s3_objects import Doc, UploadObjects, content_type

log = structlog.get_logger("relaypacs_tus.stores.s3")

A = TypeVar("A")
B = TypeVar("B")

#: Defaults of :class:`Mirrors`: about 1,000 uploads at once, ~25 MB of parts at most, 10 minutes idle.
MAX_UPLOADS = 1024
MAX_PARTS = 100_000
MAX_IDLE = 600.0


def copied(info: UploadInfo) -> UploadInfo:
    """A deep copy: the engine changes the infos it is given, a mirror must not change with them."""
    return UploadInfo.from_json(info.to_json())


@dataclass(slots=True)
class Mirror:
    """One upload's objects: ``doc`` as stored in ``.info``, ``listed`` as ListParts would list them,
    ``tail`` as HEAD would find it, ``complete`` if the final object holds the whole upload."""

    doc: Doc
    listed: list[Part] = field(default_factory=list)
    tail: Tail | None = None
    complete: bool = False
    confirmed: float = 0.0  # monotonic time S3 last confirmed this mirror (a load or a write)

    def view(self) -> View:
        """The objects resolved (:func:`.s3_layout.resolve`); raises :class:`.s3_layout.LayoutError`."""
        return resolve(self.doc.state, self.listed, self.tail)

    def completed(self) -> None:
        """The final object holds the upload: parts are no longer needed (nor kept in memory)."""
        self.complete, self.listed = True, []


class Mirrors:
    """The mirrors of one store, bounded (least recently used out) and trusted for ``max_idle`` seconds."""

    def __init__(
        self,
        *,
        max_uploads: int = MAX_UPLOADS,
        max_parts: int = MAX_PARTS,
        max_idle: float = MAX_IDLE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._mirrors: OrderedDict[str, Mirror] = OrderedDict()
        self._parts: dict[str, int] = {}  # listed parts of each mirror when it was last put
        self._total = 0  # their sum
        self._max_uploads = max_uploads
        self._max_parts = max_parts
        self._max_idle = max_idle
        self._clock = clock

    def __len__(self) -> int:
        return len(self._mirrors)

    def parts(self) -> int:
        """Listed parts held over all mirrors (as counted when each was last put)."""
        return self._total

    def get(self, upload_id: str) -> Mirror | None:
        """The upload's mirror, unless there is none or it has not been confirmed for too long."""
        mirror = self._mirrors.get(upload_id)
        if mirror is None:
            return None
        if self._clock() - mirror.confirmed > self._max_idle:
            self._forget(upload_id)
            return None
        self._mirrors.move_to_end(upload_id)
        return mirror

    def put(self, upload_id: str, mirror: Mirror) -> None:
        """Keep ``mirror`` as S3 just confirmed it (after a load, or after writes that all succeeded).
        Between puts a writer adds parts in place; they are counted here, at the end of its request."""
        mirror.confirmed = self._clock()
        self._forget(upload_id)
        self._mirrors[upload_id] = mirror
        self._parts[upload_id] = len(mirror.listed)
        self._total += len(mirror.listed)
        while self._mirrors and (len(self._mirrors) > self._max_uploads or self._total > self._max_parts):
            self._forget(next(iter(self._mirrors)))

    def drop(self, upload_id: str, mirror: Mirror | None = None) -> None:
        """Forget the upload (only if its mirror is still ``mirror``, when given)."""
        if mirror is None or self._mirrors.get(upload_id) is mirror:
            self._forget(upload_id)

    def _forget(self, upload_id: str) -> None:
        self._mirrors.pop(upload_id, None)
        self._total -= self._parts.pop(upload_id, 0)


class Sink:
    """What :class:`.s3_writer.ChunkWriter` writes through: each write goes to S3, then, once S3 confirmed
    it, into the upload's mirror (a write that raised is never recorded)."""

    def __init__(self, objects: UploadObjects, mirror: Mirror) -> None:
        self._objects = objects
        self._mirror = mirror

    async def create_multipart(self) -> str:
        """A new multipart upload for the final object; it counts once :meth:`save_state` recorded it."""
        return await self._objects.create_multipart(content_type(self._mirror.doc.info))

    async def upload_part(self, number: int, data: bytes | bytearray, md5: str) -> None:
        multipart_id = self._mirror.doc.state.multipart_id
        if multipart_id is None:
            raise errors.TusError("the upload has no multipart upload")
        etag = await self._objects.upload_part(multipart_id, number, data, md5)
        self._mirror.listed.append(Part(number, len(data), etag, time.time()))

    async def put_tail(self, data: bytes, next_part: int, md5: str) -> None:
        etag = await self._objects.put_tail(data, next_part, md5)
        self._mirror.tail = Tail(len(data), etag, next_part, time.time())

    async def delete_tail(self) -> None:
        await self._objects.delete_tail()
        self._mirror.tail = None

    async def put_whole(self, data: bytes | bytearray | memoryview, md5: str) -> None:
        """The whole upload as the final object in one PUT (no multipart upload was ever needed)."""
        await self._objects.put_final(data, content_type(self._mirror.doc.info), md5)
        self._mirror.complete = True

    async def save_state(self, state: S3State) -> None:
        doc = Doc(self._mirror.doc.info, state.copy(), time.time())
        await self._objects.write_info(doc)
        self._mirror.doc = doc


async def load(objects: UploadObjects) -> Mirror:
    """The upload's objects as S3 lists them now. A multipart upload that vanished without a final
    object is a lost upload: 404. The final object with the upload's size means complete (the process
    died before ``.info`` said so, or the upload went up whole)."""
    doc = await objects.read_info()
    info = doc.info
    if info.is_gone or info.finished:
        return Mirror(doc, complete=info.finished)
    multipart_id = doc.state.multipart_id
    final: int | None = None
    if multipart_id is None:
        final, tail = await _both(objects.final_size(), objects.head_tail())
        listed: list[Part] | None = []
    else:
        listed, tail = await _both(objects.list_parts(multipart_id), objects.head_tail())
        if listed is None:
            final = await objects.final_size()
    complete = final is not None and final == info.size
    if listed is None and not complete:
        log.warning("s3.multipart_missing", upload_id=info.id)
        raise errors.UploadNotFound()
    mirror = Mirror(doc, listed or [], tail, complete)
    if not complete:
        resolved(mirror)  # inconsistent objects fail here, for readers too
    return mirror


def resolved(mirror: Mirror) -> View:
    """The mirror's view; objects that contradict each other are logged and a 503 (never guessed)."""
    try:
        return mirror.view()
    except LayoutError as exc:
        log.error("s3.layout_inconsistent", upload_id=mirror.doc.info.id, problem=str(exc))
        raise errors.StoreUnavailable("the upload's stored parts are inconsistent") from exc


async def _both(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """Two requests at once (a load's listing and HEAD); the first failure is raised once both ended."""
    a, b = await asyncio.gather(first, second, return_exceptions=True)
    if isinstance(a, BaseException):
        raise a
    if isinstance(b, BaseException):
        raise b
    return a, b


__all__ = ["Mirror", "Mirrors", "Sink", "copied", "load", "resolved"]
