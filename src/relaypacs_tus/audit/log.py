"""Appending audit entries to a sink: a local folder (one ``YYYY-MM-DD.jsonl`` file per UTC day, appended
and fsynced) or the store's documents (S3: immutable segment documents ``audit/<first seq>.jsonl``).

Only allow-listed fields are written, as plain scalars: an audit entry can never carry a patient's name,
id or any Upload-Metadata value, whatever a caller passes.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import anyio
import anyio.to_thread
import structlog

from ..tus.store import Documents
from .chain import ChainHead, VerifyReport, verify_entries

log = structlog.get_logger("relaypacs_tus.audit")

#: Fields an entry may carry. Identifiers, sizes, hashes, outcomes; never metadata or patient data.
ALLOWED_FIELDS = frozenset({
    "principal", "upload_id", "token_id", "client", "size", "offset", "sha256", "checksum",
    "sop_instance_uid", "sop_instance_uids", "study_instance_uid", "series_instance_uid", "destination",
    "destinations", "outcome", "status", "code", "reason", "attempts", "transient", "route", "method",
    "limit",
    "max_uploads", "expires_at", "bound", "max_bytes_per_upload", "batch_id", "kind", "stage", "error",
    "partial", "final",
})  # fmt: skip
MAX_TEXT = 500
DOC_PREFIX = "audit/"


class Sink(Protocol):
    name: str

    async def append(self, lines: list[str], first_seq: int) -> None: ...

    def lines(self) -> AsyncIterator[tuple[str, str]]:
        """Every line in log order, with its location (``<segment>:<line number>``)."""
        ...


def clean(fields: dict[str, object]) -> dict[str, Any]:
    """Keep allow-listed fields with scalar (or list-of-scalar) values; long text is cut."""
    out: dict[str, Any] = {}
    if "owner" in fields and "principal" not in fields:  # the pipeline names the principal "owner"
        fields = {**fields, "principal": fields["owner"]}
    for key, value in fields.items():
        if key not in ALLOWED_FIELDS:
            log.debug("audit.field_dropped", field=key)
            continue
        if isinstance(value, list | tuple):
            out[key] = [_scalar(v) for v in value]
        else:
            out[key] = _scalar(value)
    return out


def _scalar(value: object) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)[:MAX_TEXT]


class FileSink:
    """Daily JSON-lines files in a folder (mode 0600); each batch is appended and fsynced."""

    name = "folder"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def append(self, lines: list[str], first_seq: int) -> None:
        await anyio.to_thread.run_sync(self._append_sync, lines)

    def _append_sync(self, lines: list[str]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.directory / f"{datetime.now(UTC):%Y-%m-%d}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, "".join(line + "\n" for line in lines).encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    async def lines(self) -> AsyncIterator[tuple[str, str]]:
        for where, line in await anyio.to_thread.run_sync(lambda: list(self._lines_sync())):
            yield where, line

    def _lines_sync(self) -> Iterator[tuple[str, str]]:
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.glob("*.jsonl")):
            with path.open(encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    if line.strip():
                        yield f"{path.name}:{number}", line.rstrip("\n")


class DocumentSink:
    """Segments as documents in the upload store (the way to keep the log in S3, which cannot append)."""

    name = "documents"

    def __init__(self, documents: Documents) -> None:
        self.documents = documents

    async def append(self, lines: list[str], first_seq: int) -> None:
        data = "".join(line + "\n" for line in lines).encode()
        await self.documents.put_document(f"{DOC_PREFIX}{first_seq:012d}.jsonl", data)

    async def lines(self) -> AsyncIterator[tuple[str, str]]:
        keys = sorted([k async for k in self.documents.list_documents(DOC_PREFIX) if k.endswith(".jsonl")])
        for key in keys:
            text = (await self.documents.get_document(key)).decode("utf-8")
            for number, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    yield f"{key}:{number}", line


class AuditLog:
    """``await audit("upload.created", {...})``: the callable the middleware, hooks and pipeline get."""

    def __init__(self, sink: Sink, key: bytes) -> None:
        self.sink = sink
        self._key = key
        self._head: ChainHead | None = None
        self._lock = anyio.Lock()  # entries get their seq in call order
        self._flush_lock = anyio.Lock()
        self._pending: list[tuple[int, str]] = []

    async def open(self) -> VerifyReport:
        """Find the chain's head (verifying the log on the way); call once at start-up."""
        report = verify_entries(self._key, [x async for x in self.sink.lines()])
        if not report.ok:
            # Keep appending after the last good entry's seq; `audit verify` will name the damage.
            log.error("audit.chain_broken", where=report.where, problem=report.problem)
            report = await self._resume_after_damage()
        self._head = report.head
        log.info("audit.opened", sink=self.sink.name, entries=report.entries, seq=report.head.seq)
        return report

    async def _resume_after_damage(self) -> VerifyReport:
        last: dict[str, Any] | None = None
        async for _, line in self.sink.lines():
            try:
                last = json.loads(line)
            except ValueError:
                continue
        head = ChainHead(int(last["seq"]), str(last["hash"])) if last else ChainHead()
        return VerifyReport(False, 0, head)

    async def __call__(self, event: str, fields: dict[str, object]) -> None:
        await self.record(event, fields)

    async def record(self, event: str, fields: dict[str, object]) -> None:
        async with self._lock:
            if self._head is None:
                raise RuntimeError("AuditLog.open() was not called")
            entry = self._head.next(self._key, event, clean(fields))
            line = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            self._pending.append((entry["seq"], line))
        await self.flush()

    async def flush(self) -> None:
        """Write what is pending; entries recorded during a write go out together in the next one."""
        async with self._flush_lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, []
            try:
                await self.sink.append([line for _, line in batch], batch[0][0])
            except BaseException:
                self._pending[:0] = batch  # keep them for the next write
                log.error("audit.write_failed", entries=len(batch))
                raise
