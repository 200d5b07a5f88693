"""Audit entries and their chain.

Each entry is one JSON object on one line: ``seq`` (1, 2, ...), ``ts`` (UTC, RFC 3339), ``event``, the
event's fields, ``prev`` (the previous entry's ``hash``; 64 zeros for the first) and ``hash``:
HMAC-SHA256 under the audit key over the entry's canonical JSON without ``hash`` (sorted keys, no spaces,
UTF-8). Editing an entry breaks its hash; removing or reordering entries breaks ``prev`` and ``seq``.
Without the key, nobody can write a chain that verifies: keep the key where the log's editors cannot.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64


def canonical(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(key: bytes, entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hmac.new(key, canonical(body), hashlib.sha256).hexdigest()


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class ChainHead:
    seq: int = 0
    hash: str = GENESIS

    def next(self, key: bytes, event: str, fields: dict[str, Any], ts: str | None = None) -> dict[str, Any]:
        """The next entry (and advance the head)."""
        entry: dict[str, Any] = {**fields, "seq": self.seq + 1, "ts": ts or now_rfc3339(), "event": event}
        entry["prev"] = self.hash
        entry["hash"] = entry_hash(key, entry)
        self.seq, self.hash = entry["seq"], entry["hash"]
        return entry


@dataclass(frozen=True, slots=True)
class VerifyReport:
    ok: bool
    entries: int
    head: ChainHead
    where: str = ""  # "<segment>:<line>" of the first bad entry
    problem: str = ""

    def describe(self) -> str:
        if self.ok:
            return f"ok: {self.entries} entries, last seq {self.head.seq}, head {self.head.hash}"
        return f"FAILED at {self.where}: {self.problem} (after {self.entries} good entries)"


def verify_entries(key: bytes, lines: Iterable[tuple[str, str]]) -> VerifyReport:
    """Check ``(location, line)`` pairs in log order; stops at the first bad entry."""
    head = ChainHead()
    count = 0
    for where, line in lines:
        problem = _check(key, head, line)
        if problem:
            return VerifyReport(False, count, head, where, problem)
        data = json.loads(line)
        head = ChainHead(int(data["seq"]), str(data["hash"]))
        count += 1
    return VerifyReport(True, count, head)


def _check(key: bytes, head: ChainHead, line: str) -> str:
    try:
        entry = json.loads(line)
    except ValueError:
        return "not a JSON line"
    if not isinstance(entry, dict) or not {"seq", "ts", "event", "prev", "hash"} <= entry.keys():
        return "not an audit entry (seq, ts, event, prev, hash required)"
    if not hmac.compare_digest(str(entry["hash"]), entry_hash(key, entry)):
        return "entry was altered (hash does not match its content) or the audit key is wrong"
    if entry["prev"] != head.hash:
        return f"chain broken: prev does not match entry {head.seq} (an entry was removed or reordered)"
    if entry["seq"] != head.seq + 1:
        return f"sequence broken: expected {head.seq + 1}, found {entry['seq']}"
    return ""
