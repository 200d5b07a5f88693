"""Where the pipeline reads an upload: its info and a local file with its bytes.

Never into memory: a store with the LocalPath capability hands out its data file; any other store (S3)
streams the object into a temporary file under the work folder first. Behind stock tusd the hook program
reads the file named by ``Event.Upload.Storage.Path`` (tusd's filestore).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import anyio

from ..tus.store import LocalPath, UploadInfo, UploadStore


class SourceError(Exception):
    """The upload's bytes cannot be read here (a permanent condition, e.g. an unsupported tusd store)."""


class UploadSource(Protocol):
    async def info(self, upload_id: str) -> UploadInfo:
        """The upload; :class:`relaypacs_tus.tus.errors.UploadNotFound` if it is unknown."""
        ...

    def local_copy(self, info: UploadInfo) -> contextlib.AbstractAsyncContextManager[str]:
        """A local path holding the upload's bytes for the duration of the block."""
        ...


class StoreSource:
    """Reads uploads from our own store."""

    def __init__(self, store: UploadStore, work_dir: str | Path) -> None:
        self.store = store
        self.work_dir = Path(work_dir)

    async def info(self, upload_id: str) -> UploadInfo:
        return await self.store.get(upload_id)

    @contextlib.asynccontextmanager
    async def local_copy(self, info: UploadInfo) -> AsyncIterator[str]:
        if isinstance(self.store, LocalPath):
            yield self.store.data_path(info.id)
            return
        await anyio.Path(self.work_dir).mkdir(parents=True, exist_ok=True)
        tmp = anyio.Path(self.work_dir) / f"{info.id}.{secrets.token_hex(4)}.download"
        try:
            async with await anyio.open_file(tmp, "wb") as f:
                async for chunk in self.store.read(info.id):
                    await f.write(chunk)
            yield str(tmp)
        finally:
            with anyio.CancelScope(shield=True):
                await tmp.unlink(missing_ok=True)


class EventSource:
    """One upload as tusd described it in a hook request (hook programs behind stock tusd)."""

    def __init__(self, upload: UploadInfo) -> None:
        self.upload = upload

    async def info(self, upload_id: str) -> UploadInfo:
        return self.upload

    @contextlib.asynccontextmanager
    async def local_copy(self, info: UploadInfo) -> AsyncIterator[str]:
        storage = info.storage
        if storage.get("Type") != "filestore" or not storage.get("Path"):
            raise SourceError(
                f"cannot read uploads of tusd's {storage.get('Type') or 'unknown'} store here; "
                "use -upload-dir "
                "(filestore) or run relaypacs-tus itself"
            )
        yield storage["Path"]
