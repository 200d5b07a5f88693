"""In-process coordination for one server (the embedded default).

Grants are kept in memory and written through to a :class:`~relaypacs_tus.tus.store.Documents` store
(the upload store's capability, or a local folder) before an operation returns, so a used upload token
stays used across a restart or a SIGKILL. Several replicas need :mod:`.redis` instead: this lock is
per process.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

import anyio

from ..tus.store import Documents
from .base import Grant, GrantRefused

GRANT_PREFIX = "auth/grants/"
_GRANT_ID = re.compile(r"[A-Za-z0-9_\-]{8,128}")


def _key(grant_id: str) -> str:
    if not _GRANT_ID.fullmatch(grant_id):
        raise KeyError(grant_id)
    return f"{GRANT_PREFIX}{grant_id}.json"


class MemoryGrantRegistry:
    """:class:`~relaypacs_tus.coordination.base.GrantRegistry` in memory, written through to documents."""

    def __init__(self, documents: Documents | None = None) -> None:
        self._documents = documents
        self._grants: dict[str, Grant] = {}
        self._lock = anyio.Lock()

    async def create(self, grant: Grant) -> None:
        async with self._lock:
            try:
                await self._load(grant.grant_id)
            except KeyError:
                await self._store(grant)
                return
        raise ValueError(f"grant {grant.grant_id} exists")

    async def get(self, grant_id: str) -> Grant:
        async with self._lock:
            return await self._load(grant_id)

    async def consume(self, grant_id: str, nbytes: int, now: float) -> Grant:
        async with self._lock:
            grant = await self._load(grant_id)
            if now >= grant.consume_until:
                raise GrantRefused("expired", "this upload link has expired")
            if grant.remaining_uses <= 0:
                raise GrantRefused("exhausted", "this upload link has already been used")
            remaining = grant.remaining_bytes
            if remaining is not None and nbytes > remaining:
                raise GrantRefused("bytes", "this upload link has no room left for that many bytes")
            used = Grant.from_json({**grant.to_json(), "used": grant.used + 1,
                                    "reserved_bytes": grant.reserved_bytes + nbytes})  # fmt: skip
            await self._store(used)
            return used

    async def refund(self, grant_id: str, nbytes: int) -> None:
        async with self._lock:
            grant = await self._load(grant_id)
            data = grant.to_json()
            data["used"] = max(0, grant.used - 1)
            data["reserved_bytes"] = max(0, grant.reserved_bytes - nbytes)
            await self._store(Grant.from_json(data))

    async def add_member(self, grant_id: str, member: str) -> None:
        async with self._lock:
            grant = await self._load(grant_id)
            if member not in grant.members:
                await self._store(Grant.from_json({**grant.to_json(), "members": [*grant.members, member]}))

    async def purge(self, now: float) -> int:
        async with self._lock:
            gone = [g for g in self._grants.values() if g.keep_until <= now]
            for grant in gone:
                del self._grants[grant.grant_id]
            if self._documents is None:
                return len(gone)
            keys = [k async for k in self._documents.list_documents(GRANT_PREFIX)]
            count = 0
            for key in keys:
                try:
                    grant = Grant.from_json(json.loads(await self._documents.get_document(key)))
                except (KeyError, ValueError, TypeError):
                    continue
                if grant.keep_until <= now:
                    await self._documents.delete_document(key)
                    count += 1
            return max(count, len(gone))

    async def _load(self, grant_id: str) -> Grant:
        key = _key(grant_id)
        grant = self._grants.get(grant_id)
        if grant is None and self._documents is not None:
            grant = Grant.from_json(json.loads(await self._documents.get_document(key)))
            self._grants[grant_id] = grant
        if grant is None:
            raise KeyError(grant_id)
        return grant

    async def _store(self, grant: Grant) -> None:
        if self._documents is not None:
            data = json.dumps(grant.to_json(), separators=(",", ":"), sort_keys=True).encode()
            await self._documents.put_document(_key(grant.grant_id), data)
        self._grants[grant.grant_id] = grant


class MemoryRateLimiter:
    """Token buckets in memory. Idle full buckets are dropped so memory stays bounded by active keys."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill time)
        self._max_keys = max_keys

    def _refill(self, key: str, rate: float, burst: float) -> float:
        now = self._clock()
        tokens, last = self._buckets.get(key, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self._max_keys:
            self._drop_full(rate, burst, now)
        return tokens

    def _drop_full(self, rate: float, burst: float, now: float) -> None:
        for key, (tokens, last) in list(self._buckets.items()):
            if tokens + (now - last) * rate >= burst:
                del self._buckets[key]

    async def hit(self, key: str, cost: float, *, rate: float, burst: float) -> float:
        tokens = self._refill(key, rate, burst)
        if tokens >= cost:
            self._buckets[key] = (tokens - cost, self._clock())
            return 0.0
        return (cost - tokens) / rate

    async def debit(self, key: str, cost: float, *, rate: float, burst: float) -> float:
        tokens = self._refill(key, rate, burst) - cost
        self._buckets[key] = (tokens, self._clock())
        return 0.0 if tokens >= 0 else -tokens / rate


class MemoryConcurrencyLimiter:
    def __init__(self) -> None:
        self._held: dict[str, int] = {}

    async def acquire(self, key: str, limit: int) -> bool:
        held = self._held.get(key, 0)
        if held >= limit:
            return False
        self._held[key] = held + 1
        return True

    async def release(self, key: str) -> None:
        held = self._held.get(key, 0) - 1
        if held > 0:
            self._held[key] = held
        else:
            self._held.pop(key, None)
