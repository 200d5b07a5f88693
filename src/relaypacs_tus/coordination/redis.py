"""Coordination in Redis, for several server replicas: single-use grants, token-bucket rate limits and
concurrency slots shared by every replica. Each operation is one Lua script, so it is atomic in Redis.

Grants are hashes ``<prefix>grant:<id>`` that Redis expires at ``keep_until``; rate buckets and slots
expire when idle, so nothing needs purging. Time for the buckets is Redis's own clock (``TIME``), so
replicas with skewed clocks still share one rate.
"""

from __future__ import annotations

import json
import math
from typing import Any

import redis.asyncio as aioredis

from .base import Grant, GrantRefused

_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'doc', ARGV[1], 'max_uses', ARGV[2], 'used', ARGV[3], 'consume_until', ARGV[4],
           'max_total_bytes', ARGV[5], 'reserved_bytes', ARGV[6])
redis.call('EXPIREAT', KEYS[1], ARGV[7])
return 1
"""
_CONSUME = """
local g = redis.call('HMGET', KEYS[1], 'max_uses', 'used', 'consume_until', 'max_total_bytes',
                     'reserved_bytes')
if not g[1] then return 'unknown' end
if tonumber(ARGV[1]) >= tonumber(g[3]) then return 'expired' end
if tonumber(g[2]) >= tonumber(g[1]) then return 'exhausted' end
if g[4] ~= '' and tonumber(g[5]) + tonumber(ARGV[2]) > tonumber(g[4]) then return 'bytes' end
redis.call('HINCRBY', KEYS[1], 'used', 1)
redis.call('HINCRBY', KEYS[1], 'reserved_bytes', ARGV[2])
return 'ok'
"""
_REFUND = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local g = redis.call('HMGET', KEYS[1], 'used', 'reserved_bytes')
redis.call('HSET', KEYS[1], 'used', math.max(0, tonumber(g[1]) - 1),
           'reserved_bytes', math.max(0, tonumber(g[2]) - tonumber(ARGV[1])))
return 1
"""
_ADD_MEMBER = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('EXPIREAT', KEYS[2], redis.call('EXPIRETIME', KEYS[1]))
return 1
"""
# Token bucket: tokens and the last refill time (Redis clock, microseconds). ARGV: cost, rate, burst,
# debit (1 = take even into debt). Returns the seconds to wait, as a string (Lua numbers truncate).
_BUCKET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local cost, rate, burst, debit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4] == '1'
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or burst
local ts = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
elseif debit then
  tokens = tokens - cost
  wait = -tokens / rate
else
  wait = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
return tostring(wait)
"""
_ACQUIRE = """
local held = tonumber(redis.call('GET', KEYS[1]) or '0')
if held >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""
_RELEASE = """
local held = tonumber(redis.call('GET', KEYS[1]) or '0')
if held <= 1 then redis.call('DEL', KEYS[1]) else redis.call('DECR', KEYS[1]) end
return 1
"""


class RedisGrantRegistry:
    """:class:`~relaypacs_tus.coordination.base.GrantRegistry` in Redis."""

    def __init__(self, client: aioredis.Redis, prefix: str = "relaypacs:") -> None:
        self._r = client
        self._prefix = prefix
        self._create = client.register_script(_CREATE)
        self._consume = client.register_script(_CONSUME)
        self._refund = client.register_script(_REFUND)
        self._add = client.register_script(_ADD_MEMBER)

    def _key(self, grant_id: str) -> str:
        return f"{self._prefix}grant:{grant_id}"

    async def create(self, grant: Grant) -> None:
        doc = json.dumps({"keep_until": grant.keep_until, "payload": grant.payload}, separators=(",", ":"))
        total = "" if grant.max_total_bytes is None else str(grant.max_total_bytes)
        args: list[str | int | float] = [doc, grant.max_uses, grant.used, grant.consume_until, total,
                                         grant.reserved_bytes, math.ceil(grant.keep_until)]  # fmt: skip
        if not await self._create(keys=[self._key(grant.grant_id)], args=args):
            raise ValueError(f"grant {grant.grant_id} exists")

    async def get(self, grant_id: str) -> Grant:
        key = self._key(grant_id)
        data = await self._r.hgetall(key)
        if not data:
            raise KeyError(grant_id)
        members = await self._r.smembers(key + ":members")
        return _grant(grant_id, data, members)

    async def consume(self, grant_id: str, nbytes: int, now: float) -> Grant:
        verdict = _text(await self._consume(keys=[self._key(grant_id)], args=[now, nbytes]))
        if verdict == "unknown":
            raise KeyError(grant_id)
        if verdict != "ok":
            raise GrantRefused(verdict, f"grant refused: {verdict}")
        return await self.get(grant_id)

    async def refund(self, grant_id: str, nbytes: int) -> None:
        await self._refund(keys=[self._key(grant_id)], args=[nbytes])

    async def add_member(self, grant_id: str, member: str) -> None:
        key = self._key(grant_id)
        await self._add(keys=[key, key + ":members"], args=[member])

    async def purge(self, now: float) -> int:
        return 0  # Redis expires each grant at its keep_until


class RedisRateLimiter:
    """:class:`~relaypacs_tus.coordination.base.RateLimiter` shared by every replica."""

    def __init__(self, client: aioredis.Redis, prefix: str = "relaypacs:") -> None:
        self._prefix = prefix
        self._bucket = client.register_script(_BUCKET)

    async def hit(self, key: str, cost: float, *, rate: float, burst: float) -> float:
        return await self._run(key, cost, rate, burst, debit=False)

    async def debit(self, key: str, cost: float, *, rate: float, burst: float) -> float:
        return await self._run(key, cost, rate, burst, debit=True)

    async def _run(self, key: str, cost: float, rate: float, burst: float, *, debit: bool) -> float:
        args = [cost, rate, burst, "1" if debit else "0"]
        return float(_text(await self._bucket(keys=[f"{self._prefix}rate:{key}"], args=args)))


class RedisConcurrencyLimiter:
    """:class:`~relaypacs_tus.coordination.base.ConcurrencyLimiter` shared by every replica. A replica that
    dies holding slots leaks them until ``ttl`` seconds without activity on that key."""

    def __init__(self, client: aioredis.Redis, prefix: str = "relaypacs:", ttl: int = 3600) -> None:
        self._prefix = prefix
        self._ttl = ttl
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)

    async def acquire(self, key: str, limit: int) -> bool:
        return bool(await self._acquire(keys=[f"{self._prefix}slots:{key}"], args=[limit, self._ttl]))

    async def release(self, key: str) -> None:
        await self._release(keys=[f"{self._prefix}slots:{key}"], args=[])


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _grant(grant_id: str, data: dict[Any, Any], members: set[Any]) -> Grant:
    fields = {_text(k): _text(v) for k, v in data.items()}
    doc = json.loads(fields["doc"])
    return Grant(
        grant_id=grant_id,
        max_uses=int(fields["max_uses"]),
        consume_until=float(fields["consume_until"]),
        keep_until=float(doc["keep_until"]),
        max_total_bytes=int(fields["max_total_bytes"]) if fields.get("max_total_bytes") else None,
        used=int(fields["used"]),
        reserved_bytes=int(fields["reserved_bytes"]),
        members=tuple(sorted(_text(m) for m in members)),
        payload=dict(doc.get("payload") or {}),
    )
