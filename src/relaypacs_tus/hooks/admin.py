"""Operator commands on processing records (``relaypacs-tus deliveries list|retry``), reading the store
directly. Output holds upload ids, states, UIDs, attempts and plain-word reasons: never PHI.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any, TextIO

from .records import ProcessingRecord, RecordStore, rfc3339


async def load(records: RecordStore, states: Iterable[str] = ()) -> list[ProcessingRecord]:
    wanted = set(states)
    found = []
    async for upload_id in records.ids():
        record = await records.get(upload_id)
        if record is not None and (not wanted or record.state in wanted):
            found.append(record)
    return sorted(found, key=lambda r: r.updated_at)


def row(record: ProcessingRecord) -> dict[str, Any]:
    return {
        "upload_id": record.upload_id,
        "state": record.state,
        "kind": record.kind,
        "sop_instance_uid": (record.instance or {}).get("sop_instance_uid"),
        "destinations": [
            {"name": d.name, "state": d.state, "attempts": d.attempts, "error": d.error}
            for d in record.destinations
        ],
        "reason": record.reason,
        "updated_at": rfc3339(record.updated_at),
    }


def print_table(records: list[ProcessingRecord], out: TextIO) -> None:
    if not records:
        print("no deliveries match", file=out)
        return
    print(f"{'upload id':32}  {'state':10}  {'kind':5}  {'updated':20}  destinations", file=out)
    for record in records:
        dests = ", ".join(f"{d.name}={d.state}({d.attempts})" for d in record.destinations) or "-"
        updated = rfc3339(record.updated_at) or ""
        kind = record.kind or "-"
        print(f"{record.upload_id:32}  {record.state:10}  {kind:5}  {updated:20}  {dests}", file=out)
        if record.reason:
            print(f"{'':34}reason: {record.reason}", file=out)


def print_json(records: list[ProcessingRecord], out: TextIO) -> None:
    for record in records:
        print(json.dumps(row(record)), file=out)


def reset(record: ProcessingRecord, now: float | None = None) -> bool:
    """Make a failed record's work due again (a rejection stays: the content itself is unusable)."""
    if record.state != "failed":
        return False
    for d in record.destinations:
        if d.state == "failed":
            d.state, d.attempts, d.next_attempt_at, d.error, d.transient = "pending", 0, None, None, None
    if not record.prepared:
        record.attempts, record.next_attempt_at = 0, None
    record.state, record.reason, record.reason_code = "received", None, None
    record.updated_at = now or time.time()
    return True


async def retry(records: RecordStore, upload_ids: Iterable[str], *, all_failed: bool, out: TextIO) -> int:
    """Reset the named (or every failed) record; the running server's worker picks them up at its next
    rescan. Returns the exit code: 1 if a named upload has no failed record."""
    targets = [r.upload_id for r in await load(records, ["failed"])] if all_failed else list(upload_ids)
    code = 0
    for upload_id in targets:
        record = await records.get(upload_id)
        if record is None or not reset(record):
            state = record.state if record else "no record"
            print(f"{upload_id}: not retried ({state})", file=out)
            code = 1
            continue
        await records.put(record)
        print(f"{upload_id}: queued for delivery again", file=out)
    if not targets:
        print("nothing to retry", file=out)
    return code
