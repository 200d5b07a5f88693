"""Interfaces for state that must be shared by every replica: counted grants (single-use upload tokens),
token-bucket rate limits and concurrency slots. Each operation is atomic on its own; callers never
read-modify-write across two calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class GrantRefused(Exception):
    """A grant cannot be consumed. ``code``: ``unknown``, ``exhausted``, ``bytes`` or ``expired``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Grant:
    """A counted permission (an upload token's server-side record).

    ``consume_until``: last moment a new use may be taken; ``keep_until``: when the record may be
    forgotten (uses already taken stay valid until then). ``payload`` is opaque to the registry.
    """

    grant_id: str
    max_uses: int
    consume_until: float
    keep_until: float
    max_total_bytes: int | None = None
    used: int = 0
    reserved_bytes: int = 0
    members: tuple[str, ...] = ()
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def remaining_uses(self) -> int:
        return max(0, self.max_uses - self.used)

    @property
    def remaining_bytes(self) -> int | None:
        return None if self.max_total_bytes is None else max(0, self.max_total_bytes - self.reserved_bytes)

    def to_json(self) -> dict[str, Any]:
        return {
            "grant_id": self.grant_id, "max_uses": self.max_uses, "consume_until": self.consume_until,
            "keep_until": self.keep_until, "max_total_bytes": self.max_total_bytes, "used": self.used,
            "reserved_bytes": self.reserved_bytes, "members": list(self.members), "payload": self.payload,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Grant:
        return cls(
            grant_id=str(data["grant_id"]),
            max_uses=int(data["max_uses"]),
            consume_until=float(data["consume_until"]),
            keep_until=float(data["keep_until"]),
            max_total_bytes=None if data.get("max_total_bytes") is None else int(data["max_total_bytes"]),
            used=int(data.get("used", 0)),
            reserved_bytes=int(data.get("reserved_bytes", 0)),
            members=tuple(str(m) for m in data.get("members", ())),
            payload=dict(data.get("payload") or {}),
        )


class GrantRegistry(Protocol):
    """Counted grants. Consumption survives a restart once :meth:`consume` has returned."""

    async def create(self, grant: Grant) -> None:
        """Store a new grant; ``ValueError`` if the id exists."""

    async def get(self, grant_id: str) -> Grant:
        """The grant; :class:`KeyError` if unknown or forgotten."""
        ...

    async def consume(self, grant_id: str, nbytes: int, now: float) -> Grant:
        """Take one use and reserve ``nbytes`` of the total, atomically; raises :class:`GrantRefused`."""
        ...

    async def refund(self, grant_id: str, nbytes: int) -> None:
        """Give back one use and ``nbytes`` (the use did not happen: the creation failed)."""

    async def add_member(self, grant_id: str, member: str) -> None:
        """Remember an upload created under the grant."""

    async def purge(self, now: float) -> int:
        """Forget grants past ``keep_until``; returns how many."""
        ...


class RateLimiter(Protocol):
    async def hit(self, key: str, cost: float, *, rate: float, burst: float) -> float:
        """Token bucket ``key`` (``burst`` tokens, refilled at ``rate`` per second). Takes ``cost`` and
        returns 0 when the bucket had it; otherwise takes nothing and returns the seconds until it will."""
        ...

    async def debit(self, key: str, cost: float, *, rate: float, burst: float) -> float:
        """Take ``cost`` even if the bucket goes into debt; returns the seconds until it is out of debt
        (0 if it never was). For throttling a stream: the caller sleeps that long."""
        ...


class ConcurrencyLimiter(Protocol):
    async def acquire(self, key: str, limit: int) -> bool:
        """Take a slot under ``key`` if fewer than ``limit`` are held."""
        ...

    async def release(self, key: str) -> None: ...
