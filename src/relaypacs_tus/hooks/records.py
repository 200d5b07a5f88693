"""The processing record: what happened to one finished upload, kept beside it in the same store.

One JSON document per upload (``records/<id>.json``, through the store's Documents capability) and one per
batch (``batches/<digest>.json``). Records hold upload ids, UIDs, sizes, hashes, states and plain-word
reasons; never metadata values (patient names and ids stay in the upload's own info). The status API and
``relaypacs-tus deliveries`` read them; the worker writes them.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ..tus.store import Documents, UploadInfo

#: Record states (contracts.md section 4). "received": all bytes in and accepted, waiting for delivery.
STATES = ("received", "validating", "wrapping", "delivering", "delivered", "rejected", "failed")
TERMINAL = frozenset({"delivered", "rejected", "failed"})
#: Per-destination states.
DEST_STATES = ("pending", "delivering", "delivered", "retrying", "failed")


@dataclass(slots=True)
class DestinationState:
    name: str
    state: str = "pending"
    attempts: int = 0
    next_attempt_at: float | None = None
    receipt: dict[str, Any] | None = None
    error: str | None = None
    transient: bool | None = None

    @property
    def open(self) -> bool:
        return self.state in ("pending", "delivering", "retrying")


@dataclass(slots=True)
class ProcessingRecord:
    upload_id: str
    owner: str | None = None
    state: str = "received"
    kind: str | None = None
    batch_id: str | None = None
    size: int | None = None
    instance: dict[str, Any] | None = None  # dicom.validate.InstanceInfo fields once validated or wrapped
    wrapped_key: str | None = None  # document holding the wrapped Secondary Capture object
    destinations: list[DestinationState] = field(default_factory=list)
    reason: str | None = None
    reason_code: str | None = None
    attempts: int = 0  # preparation attempts that failed for a transient reason
    next_attempt_at: float | None = None
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def prepared(self) -> bool:
        return self.instance is not None

    def next_due(self) -> float:
        """When the worker should look at this record again (0 = now)."""
        times = [d.next_attempt_at or 0.0 for d in self.destinations if d.open]
        if not self.prepared:
            times.append(self.next_attempt_at or 0.0)
        return min(times, default=0.0)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessingRecord:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["destinations"] = [DestinationState(**d) for d in values.get("destinations") or []]
        return cls(**values)


@dataclass(slots=True)
class Batch:
    """Uploads sharing a ``batch_id`` (per owner): photos among them land in one study and one series."""

    batch_id: str
    owner: str | None = None
    members: list[str] = field(default_factory=list)
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    patient_key: str | None = None  # a digest of the patient id, so mixing patients is caught without PHI
    placements: dict[str, int] = field(default_factory=dict)  # upload id -> Instance Number

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Batch:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def digest(*parts: str | None) -> str:
    return hashlib.sha256("\0".join(p or "" for p in parts).encode()).hexdigest()[:40]


class RecordStore:
    """Records and batches on a :class:`Documents` backend."""

    def __init__(self, documents: Documents) -> None:
        self.documents = documents

    async def get(self, upload_id: str) -> ProcessingRecord | None:
        data = await self._load(f"records/{upload_id}.json")
        return ProcessingRecord.from_json(data) if data is not None else None

    async def put(self, record: ProcessingRecord) -> None:
        await self._save(f"records/{record.upload_id}.json", record.to_json())

    async def ids(self) -> AsyncIterator[str]:
        async for key in self.documents.list_documents("records/"):
            name = key.rsplit("/", 1)[-1]
            if name.endswith(".json"):
                yield name[: -len(".json")]

    async def get_batch(self, owner: str | None, batch_id: str) -> Batch | None:
        data = await self._load(self.batch_key(owner, batch_id))
        return Batch.from_json(data) if data is not None else None

    async def put_batch(self, batch: Batch) -> None:
        await self._save(self.batch_key(batch.owner, batch.batch_id), batch.to_json())

    @staticmethod
    def batch_key(owner: str | None, batch_id: str) -> str:
        return f"batches/{digest(owner, batch_id)}.json"

    async def _load(self, key: str) -> dict[str, Any] | None:
        try:
            raw = await self.documents.get_document(key)
        except KeyError:
            return None
        data = json.loads(raw)
        return data if isinstance(data, dict) else None

    async def _save(self, key: str, data: dict[str, Any]) -> None:
        await self.documents.put_document(key, json.dumps(data, separators=(",", ":")).encode())


def rfc3339(ts: float | None) -> str | None:
    if not ts:
        return None
    return (
        datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def upload_status(info: UploadInfo, record: ProcessingRecord | None) -> dict[str, Any]:
    """The status document of contracts.md section 4."""
    instance = (record.instance if record else None) or {}
    if info.is_gone and (record is None or not record.terminal):
        state = "failed"
    elif record is not None:
        state = record.state
    elif info.state == "rejected":
        state = "rejected"
    else:
        state = "received" if info.is_complete and info.finished else "receiving"
    reason = record.reason if record else None
    if state == "failed" and info.is_gone and reason is None:
        reason = "the upload was cancelled" if info.state == "terminated" else "the upload expired"
    if reason is None and info.state == "rejected":
        reason = (
            str((info.extra.get("rejection") or {}).get("body") or "").strip() or "the upload was rejected"
        )
    return {
        "upload_id": info.id,
        "state": state,
        "offset": info.offset,
        "size": info.size,
        "kind": record.kind if record else None,
        "batch_id": info.metadata.get("batch_id") or None,
        "sop_instance_uid": instance.get("sop_instance_uid"),
        "study_instance_uid": instance.get("study_instance_uid"),
        "series_instance_uid": instance.get("series_instance_uid"),
        "destinations": [_destination_status(d) for d in (record.destinations if record else [])],
        "reason": reason,
        "created_at": rfc3339(info.created_at),
        "updated_at": rfc3339(max(info.updated_at, record.updated_at if record else 0.0)),
    }


def _destination_status(d: DestinationState) -> dict[str, Any]:
    return {
        "name": d.name,
        "state": d.state,
        "attempts": d.attempts,
        "next_attempt_at": rfc3339(d.next_attempt_at) if d.state == "retrying" else None,
        "receipt": d.receipt,
        "error": d.error,
        "transient": d.transient,
    }
