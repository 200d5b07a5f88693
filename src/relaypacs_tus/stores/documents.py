"""Small named documents in a plain folder (the ``Documents`` store capability), and the atomic small-file
write the local store also uses for its info files.

One implementation for every folder-backed document store: the local store keeps its documents under
``<uploads>/.documents``; hook programs behind stock tusd (which has no document store) use the same
folder beside tusd's uploads, so records look alike either way.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.to_thread

from ..tus.store import check_document_key


class FolderDocuments:
    """:class:`relaypacs_tus.tus.store.Documents` on a folder; keys are relative paths below it."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / check_document_key(key)

    async def put_document(self, key: str, data: bytes) -> None:
        await anyio.to_thread.run_sync(self._put, key, data)

    def _put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(path, data, hidden=True)

    async def get_document(self, key: str) -> bytes:
        try:
            return await anyio.to_thread.run_sync(self._path(key).read_bytes)
        except FileNotFoundError:
            raise KeyError(key) from None

    async def list_documents(self, prefix: str) -> AsyncIterator[str]:
        root = self.root
        paths = await anyio.to_thread.run_sync(lambda: [p for p in root.rglob("*") if p.is_file()])
        for path in paths:
            key = path.relative_to(root).as_posix()
            if key.startswith(prefix) and not path.name.startswith("."):  # dot files: temp files
                yield key

    async def delete_document(self, key: str) -> None:
        await anyio.to_thread.run_sync(lambda: self._path(key).unlink(missing_ok=True))


def atomic_write(path: str | Path, data: bytes, *, hidden: bool = False) -> None:
    """Write a small file so readers see the old or the new content, never a mix (temp file + rename),
    readable by the server's user only (it may hold PHI in metadata). ``hidden``: a dot temp name."""
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f"{'.' if hidden else ''}{name}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.replace(tmp, path)
