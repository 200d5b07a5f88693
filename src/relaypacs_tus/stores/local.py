"""The embedded default store: one data file and one JSON info file per upload in a local folder.

Layout (like tusd's filestore): ``<dir>/<id>`` holds the bytes, ``<id>.info`` the :class:`UploadInfo`
written atomically (temp file + rename), ``<id>.pending`` marks a checksum chunk being written: it holds the
offset the chunk started at, so a crash mid-chunk is rolled back on the next append or read. The offset is
the data file's size, which survives SIGKILL without a write per PATCH.

Small operations run on the event loop (``inline_io``, the default): reading or replacing an info file,
creating an upload, writing a body of at most :data:`INLINE_BYTES`. On a local disk each is a few system
calls into the page cache, tens of microseconds, less than handing it to a worker thread and back (about
60-100 us of CPU and two wake-ups), and a 4 KiB upload needs five of them. Bulk bytes, deletes (freeing a
large file can take milliseconds) and listings always go to worker threads. On a network filesystem, where
a metadata call can stall for seconds, turn ``inline_io`` off (``RELAYPACS_LOCAL_INLINE_IO=false``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import stat
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TypeVar

import anyio
import anyio.to_thread

from ..tus import errors
from ..tus.checksum import ChecksumVerifier
from ..tus.store import UploadInfo, check_upload_id
from .documents import FolderDocuments, atomic_write
from .writebehind import Spool, spool_body

#: Write-behind (writebehind.py): a PATCH holds at most about twice this many received bytes that its
#: worker thread has not written (and hashed) yet, whatever the PATCH's size.
FLUSH_BYTES = 4 * 1024 * 1024
#: The allowance shrinks when many PATCHes run at once, so together they hold about twice this (32
#: concurrent PATCHes get MIN_FLUSH_BYTES each; a smaller one makes the loop wait for the drains more often).
FLUSH_BUDGET = 32 * 1024 * 1024
MIN_FLUSH_BYTES = 1024 * 1024
READ_BYTES = 1024 * 1024
#: A PATCH body at most this long is written on the event loop (``inline_io``): one write into the page
#: cache, and for a checksum chunk hashing it, take less time than a thread hand-off.
INLINE_BYTES = 64 * 1024

T = TypeVar("T")


class LocalStore:
    """:class:`relaypacs_tus.tus.store.UploadStore` on a local folder; also offers ``data_path``."""

    name = "filestore"

    def __init__(
        self, directory: str | os.PathLike[str], *, flush_bytes: int = FLUSH_BYTES, inline_io: bool = True
    ) -> None:
        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._prefix = f"{self.directory}{os.sep}"
        self._flush = flush_bytes
        self._inline = inline_io
        self._appending = 0  # PATCHes writing right now (they share FLUSH_BUDGET)
        self._documents = FolderDocuments(self.directory / ".documents")

    async def _small(self, fn: Callable[..., T], *args: object) -> T:
        """Run a small file operation: on the loop if ``inline_io``, else in a worker thread."""
        if self._inline:
            return fn(*args)
        return await anyio.to_thread.run_sync(fn, *args)

    # -- paths -----------------------------------------------------------------------------------------

    def data_path(self, upload_id: str) -> str:
        return self._prefix + check_upload_id(upload_id)

    def _info_path(self, upload_id: str) -> str:
        return f"{self._prefix}{check_upload_id(upload_id)}.info"

    def _pending_path(self, upload_id: str) -> str:
        return f"{self._prefix}{check_upload_id(upload_id)}.pending"

    # -- info ------------------------------------------------------------------------------------------

    async def create(self, info: UploadInfo) -> None:
        info.storage = {
            "Type": self.name,
            "Path": self.data_path(info.id),
            "InfoPath": self._info_path(info.id),
        }
        await self._small(self._create_sync, info)

    def _create_sync(self, info: UploadInfo) -> None:
        fd = os.open(self.data_path(info.id), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        self._write_info(info)

    def _write_info(self, info: UploadInfo) -> None:
        atomic_write(self._info_path(info.id), json.dumps(info.to_json(), separators=(",", ":")).encode())

    async def save_info(self, info: UploadInfo) -> None:
        await self._small(self._write_info, info)

    async def get(self, upload_id: str) -> UploadInfo:
        return await self._small(self._get_sync, upload_id)

    def _get_sync(self, upload_id: str) -> UploadInfo:
        try:
            raw = _read(self._info_path(upload_id))
        except FileNotFoundError:
            raise errors.UploadNotFound() from None
        except OSError as exc:
            raise errors.StoreUnavailable() from exc
        info = UploadInfo.from_json(json.loads(raw))
        if info.is_gone:
            return info
        try:
            st = os.stat(self.data_path(upload_id))
        except FileNotFoundError:
            raise errors.UploadNotFound() from None
        info.accepted = info.accepted or not st.st_mode & stat.S_IWUSR  # see mark_accepted()
        info.offset = self._committed(upload_id, st.st_size)
        info.finished = info.finished or info.is_complete  # see finish()
        info.updated_at = max(info.updated_at, st.st_mtime)
        return info

    def _committed(self, upload_id: str, size: int) -> int:
        """The offset, ignoring bytes of a checksum chunk that was never verified."""
        try:
            return min(size, int(_read(self._pending_path(upload_id))))
        except (FileNotFoundError, ValueError):
            return size

    # -- bytes -----------------------------------------------------------------------------------------

    async def append(
        self, info: UploadInfo, body: AsyncIterator[bytes], verifier: ChecksumVerifier | None = None
    ) -> int:
        checksum = verifier is not None
        self._appending += 1
        try:
            spool = Spool(
                lambda: self._open_for_append(info.id, checksum),
                verifier,
                commit=functools.partial(os.unlink, self._pending_path(info.id)) if checksum else None,
                rollback=(lambda fd: self._rollback(fd, info.id, info.offset)) if checksum else None,
                # the only PATCH in flight: at its body's end the client and the loop wait, a core is
                # free (1 GiB, 8 MiB PATCHes, sha1: +10%; with 32 concurrent uploads, splitting cost 3%)
                split_tail=self._appending == 1,
            )
            flush = min(self._flush, max(MIN_FLUSH_BYTES, FLUSH_BUDGET // self._appending))
            inline = INLINE_BYTES if self._inline else 0
            return info.offset + await spool_body(body, spool, flush, inline=inline)
        finally:
            self._appending -= 1

    def _open_for_append(self, upload_id: str, checksum: bool) -> int:
        fd = os.open(self.data_path(upload_id), os.O_WRONLY)
        size = os.fstat(fd).st_size
        committed = self._committed(upload_id, size)
        if committed != size:  # a checksum chunk of a crashed process: roll it back
            os.ftruncate(fd, committed)
        if checksum:
            atomic_write(self._pending_path(upload_id), str(committed).encode())
        else:
            _unlink(self._pending_path(upload_id))
        os.lseek(fd, committed, os.SEEK_SET)
        return fd

    def _rollback(self, fd: int, upload_id: str, start: int) -> None:
        os.ftruncate(fd, start)
        _unlink(self._pending_path(upload_id))

    async def finish(self, info: UploadInfo) -> None:
        """Nothing to assemble: the data file is the upload, so a complete upload is finished and
        :meth:`get` says so without a write here (one info write less per upload)."""
        info.finished = True

    async def mark_accepted(self, info: UploadInfo) -> None:
        """:class:`~relaypacs_tus.tus.store.Acceptance`: the data file becomes read-only. Replacing the
        info file instead (a rename over an existing file) makes ext4 flush the new file at once
        (``auto_da_alloc``), which while the disk is busy writing back earlier uploads cost a 4 KiB
        upload about a third of its time. The next :meth:`save_info` writes the flag down as well."""
        await self._small(os.chmod, self.data_path(info.id), 0o400)

    async def read(self, upload_id: str) -> AsyncIterator[bytes]:
        path = self.data_path(upload_id)
        try:
            f = await anyio.open_file(path, "rb")
        except FileNotFoundError:  # deleted (terminated, expired): the protocol's error, not the OS's
            raise errors.UploadNotFound() from None
        async with f:
            while chunk := await f.read(READ_BYTES):
                yield chunk

    # -- lifecycle -------------------------------------------------------------------------------------

    async def delete(self, upload_id: str, *, tombstone: str | None = None) -> None:
        await anyio.to_thread.run_sync(self._delete_sync, upload_id, tombstone)

    def _delete_sync(self, upload_id: str, tombstone: str | None) -> None:
        if tombstone is not None:
            # Tombstone first: a concurrent reader then sees "gone" (410), never an info without its
            # data file, which would read as 404.
            info = self._get_info_only(upload_id)
            info.state, info.updated_at = tombstone, time.time()
            self._write_info(info)
        _unlink(self.data_path(upload_id))
        _unlink(self._pending_path(upload_id))
        if tombstone is None:
            _unlink(self._info_path(upload_id))

    def _get_info_only(self, upload_id: str) -> UploadInfo:
        try:
            return UploadInfo.from_json(json.loads(_read(self._info_path(upload_id))))
        except FileNotFoundError:
            raise errors.UploadNotFound() from None

    async def list_ids(self) -> AsyncIterator[str]:
        names = await anyio.to_thread.run_sync(os.listdir, self.directory)
        for name in names:
            if name.endswith(".info") and len(name) == 37:
                yield name[:-5]

    async def aclose(self) -> None:
        return None

    # -- documents (optional capability): kept in ``.documents`` beside the uploads --------------------

    async def put_document(self, key: str, data: bytes) -> None:
        await self._documents.put_document(key, data)

    async def get_document(self, key: str) -> bytes:
        return await self._documents.get_document(key)

    def list_documents(self, prefix: str) -> AsyncIterator[str]:
        return self._documents.list_documents(prefix)

    async def delete_document(self, key: str) -> None:
        await self._documents.delete_document(key)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
