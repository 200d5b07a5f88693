"""The embedded default store: one data file and one JSON info file per upload in a local folder.

Layout (like tusd's filestore): ``<dir>/<id>`` holds the bytes, ``<id>.info`` the :class:`UploadInfo`
written atomically (temp file + rename), ``<id>.pending`` marks a checksum chunk being written: it holds the
offset the chunk started at, so a crash mid-chunk is rolled back on the next append or read. The offset is
the data file's size, which survives SIGKILL without a write per PATCH.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.to_thread

from ..tus import errors
from ..tus.checksum import ChecksumVerifier
from ..tus.store import UploadInfo, check_document_key, check_upload_id
from .writebehind import Spool, spool_body

#: Most bytes a PATCH receives before handing them to a worker thread to hash and write (write-behind: the
#: loop keeps receiving meanwhile). A PATCH holds about twice its batch in memory, whatever its size.
FLUSH_BYTES = 4 * 1024 * 1024
#: Batches shrink when many PATCHes run at once, so together they hold about twice this (fewer, larger
#: hand-offs to a thread cost less CPU; 32 concurrent PATCHes get MIN_FLUSH_BYTES each).
FLUSH_BUDGET = 32 * 1024 * 1024
MIN_FLUSH_BYTES = 1024 * 1024
READ_BYTES = 1024 * 1024


class LocalStore:
    """:class:`relaypacs_tus.tus.store.UploadStore` on a local folder; also offers ``data_path``."""

    name = "filestore"

    def __init__(self, directory: str | os.PathLike[str], *, flush_bytes: int = FLUSH_BYTES) -> None:
        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._flush = flush_bytes
        self._appending = 0  # PATCHes writing right now (they share FLUSH_BUDGET)

    # -- paths -----------------------------------------------------------------------------------------

    def data_path(self, upload_id: str) -> str:
        return str(self.directory / check_upload_id(upload_id))

    def _info_path(self, upload_id: str) -> Path:
        return self.directory / f"{check_upload_id(upload_id)}.info"

    def _pending_path(self, upload_id: str) -> Path:
        return self.directory / f"{check_upload_id(upload_id)}.pending"

    # -- info ------------------------------------------------------------------------------------------

    async def create(self, info: UploadInfo) -> None:
        info.storage = {
            "Type": self.name,
            "Path": self.data_path(info.id),
            "InfoPath": str(self._info_path(info.id)),
        }
        await anyio.to_thread.run_sync(self._create_sync, info)

    def _create_sync(self, info: UploadInfo) -> None:
        fd = os.open(self.data_path(info.id), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        self._write_info(info)

    def _write_info(self, info: UploadInfo) -> None:
        _atomic_write(self._info_path(info.id), json.dumps(info.to_json(), separators=(",", ":")).encode())

    async def save_info(self, info: UploadInfo) -> None:
        await anyio.to_thread.run_sync(self._write_info, info)

    async def get(self, upload_id: str) -> UploadInfo:
        return await anyio.to_thread.run_sync(self._get_sync, upload_id)

    def _get_sync(self, upload_id: str) -> UploadInfo:
        try:
            raw = self._info_path(upload_id).read_bytes()
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
        info.offset = self._committed(upload_id, st.st_size)
        info.updated_at = max(info.updated_at, st.st_mtime)
        return info

    def _committed(self, upload_id: str, size: int) -> int:
        """The offset, ignoring bytes of a checksum chunk that was never verified."""
        try:
            return min(size, int(self._pending_path(upload_id).read_text()))
        except (FileNotFoundError, ValueError):
            return size

    # -- bytes -----------------------------------------------------------------------------------------

    async def append(
        self, info: UploadInfo, body: AsyncIterator[bytes], verifier: ChecksumVerifier | None = None
    ) -> int:
        checksum = verifier is not None
        spool = Spool(
            lambda: self._open_for_append(info.id, checksum),
            verifier,
            commit=self._pending_path(info.id).unlink if checksum else None,
            rollback=(lambda fd: self._rollback(fd, info.id, info.offset)) if checksum else None,
        )
        self._appending += 1
        try:
            flush = min(self._flush, max(MIN_FLUSH_BYTES, FLUSH_BUDGET // self._appending))
            return info.offset + await spool_body(body, spool, flush)
        finally:
            self._appending -= 1

    def _open_for_append(self, upload_id: str, checksum: bool) -> int:
        fd = os.open(self.data_path(upload_id), os.O_WRONLY)
        size = os.fstat(fd).st_size
        committed = self._committed(upload_id, size)
        if committed != size:  # a checksum chunk of a crashed process: roll it back
            os.ftruncate(fd, committed)
        if checksum:
            self._pending_path(upload_id).write_text(str(committed))
        else:
            self._pending_path(upload_id).unlink(missing_ok=True)
        os.lseek(fd, committed, os.SEEK_SET)
        return fd

    def _rollback(self, fd: int, upload_id: str, start: int) -> None:
        os.ftruncate(fd, start)
        self._pending_path(upload_id).unlink(missing_ok=True)

    async def finish(self, info: UploadInfo) -> None:
        info.finished = True
        await self.save_info(info)

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
        Path(self.data_path(upload_id)).unlink(missing_ok=True)
        self._pending_path(upload_id).unlink(missing_ok=True)
        if tombstone is None:
            self._info_path(upload_id).unlink(missing_ok=True)

    def _get_info_only(self, upload_id: str) -> UploadInfo:
        try:
            return UploadInfo.from_json(json.loads(self._info_path(upload_id).read_bytes()))
        except FileNotFoundError:
            raise errors.UploadNotFound() from None

    async def list_ids(self) -> AsyncIterator[str]:
        names = await anyio.to_thread.run_sync(os.listdir, self.directory)
        for name in names:
            if name.endswith(".info") and len(name) == 37:
                yield name[:-5]

    async def aclose(self) -> None:
        return None

    # -- documents (optional capability) ---------------------------------------------------------------

    def _document_path(self, key: str) -> Path:
        return self.directory / ".documents" / check_document_key(key)

    async def put_document(self, key: str, data: bytes) -> None:
        await anyio.to_thread.run_sync(self._put_document_sync, key, data)

    def _put_document_sync(self, key: str, data: bytes) -> None:
        path = self._document_path(key)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _atomic_write(path, data, hidden=True)

    async def get_document(self, key: str) -> bytes:
        try:
            return await anyio.to_thread.run_sync(self._document_path(key).read_bytes)
        except FileNotFoundError:
            raise KeyError(key) from None

    async def list_documents(self, prefix: str) -> AsyncIterator[str]:
        root = self.directory / ".documents"
        paths = await anyio.to_thread.run_sync(lambda: [p for p in root.rglob("*") if p.is_file()])
        for path in paths:
            key = path.relative_to(root).as_posix()
            if key.startswith(prefix) and not path.name.startswith("."):
                yield key

    async def delete_document(self, key: str) -> None:
        await anyio.to_thread.run_sync(lambda: self._document_path(key).unlink(missing_ok=True))


def _atomic_write(path: Path, data: bytes, *, hidden: bool = False) -> None:
    """Write a small file so readers see the old or the new content, never a mix (temp file + rename),
    readable by the server's user only (it may hold PHI in metadata)."""
    tmp = path.with_name(f"{'.' if hidden else ''}{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.replace(tmp, path)
