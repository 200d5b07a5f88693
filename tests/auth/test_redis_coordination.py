"""Several replicas share single-use tokens and rate limits through a real Redis (RELAYPACS_REDIS_URL)."""

from __future__ import annotations

import time

import anyio
import pytest
import redis.asyncio as aioredis

from relaypacs_tus.coordination.base import Grant, GrantRefused
from relaypacs_tus.coordination.redis import RedisConcurrencyLimiter, RedisGrantRegistry, RedisRateLimiter
from tests.security.support import assert_401, caller_token, client, create, issue, jwt_env

pytestmark = pytest.mark.redis


def test_grants_are_atomic_and_expire(redis_server) -> None:
    redis_server.flush()

    async def run() -> None:
        async with aioredis.from_url(redis_server.url) as r:
            grants = RedisGrantRegistry(r)
            now = time.time()
            await grants.create(
                Grant(
                    "grant-aaaa",
                    max_uses=3,
                    consume_until=now + 60,
                    keep_until=now + 120,
                    max_total_bytes=100,
                    payload={"binding": {"patient_id": "P"}},
                )
            )
            with pytest.raises(ValueError, match="exists"):
                await grants.create(Grant("grant-aaaa", max_uses=1, consume_until=now, keep_until=now + 1))
            results: list[str] = []

            async def take() -> None:
                try:
                    await grants.consume("grant-aaaa", 30, time.time())
                    results.append("ok")
                except GrantRefused as exc:
                    results.append(exc.code)

            async with anyio.create_task_group() as tg:
                for _ in range(10):
                    tg.start_soon(take)
            assert sorted(results) == ["exhausted"] * 7 + ["ok"] * 3
            await grants.refund("grant-aaaa", 30)
            with pytest.raises(GrantRefused) as refused:
                await grants.consume("grant-aaaa", 50, time.time())
            assert refused.value.code == "bytes"
            await grants.add_member("grant-aaaa", "u1")
            grant = await grants.get("grant-aaaa")
            assert (grant.used, grant.reserved_bytes, grant.members) == (2, 60, ("u1",))
            assert grant.payload == {"binding": {"patient_id": "P"}}
            with pytest.raises(GrantRefused) as late:
                await grants.consume("grant-aaaa", 1, now + 61)
            assert late.value.code == "expired"
            with pytest.raises(KeyError):
                await grants.get("grant-missing")
            assert 0 < await r.ttl("relaypacs:grant:grant-aaaa") <= 121

    anyio.run(run)


def test_rate_buckets_and_slots(redis_server) -> None:
    redis_server.flush()

    async def run() -> None:
        async with aioredis.from_url(redis_server.url) as r:
            rates, slots = RedisRateLimiter(r), RedisConcurrencyLimiter(r)
            waits = [await rates.hit("k", 1, rate=1.0, burst=3) for _ in range(4)]
            assert waits[:3] == [0.0, 0.0, 0.0]
            assert waits[3] > 0
            assert await rates.debit("d", 10, rate=1.0, burst=4) > 5  # 6 tokens of debt: ~6 s
            assert await rates.hit("d", 0, rate=1.0, burst=4) > 5  # still in debt
            assert [await slots.acquire("s", 2) for _ in range(3)] == [True, True, False]
            await slots.release("s")
            assert await slots.acquire("s", 2)

    anyio.run(run)


def test_two_replicas_share_tokens_and_limits(relay_server, redis_server) -> None:
    redis_server.flush()
    shared = jwt_env(
        RELAYPACS_REDIS_URL=redis_server.url,
        RELAYPACS_LIMIT_CREATES="4/min",
        RELAYPACS_UPLOAD_TOKEN_KEY="a-shared-upload-token-key-of-32-bytes!",
    )
    a = relay_server(env=shared).start()
    b = relay_server(env=shared).start()
    with client() as http:
        link = issue(http, a, caller_token("alice"))["token"]
        assert create(http, a, link).status_code == 201
        assert_401(create(http, b, link), code="token_used")  # the other replica knows it was used
        bob = caller_token("bob")
        statuses = [create(http, server, bob).status_code for server in (a, b, a, b, a)]
        assert statuses == [201, 201, 201, 201, 429]  # one bucket across both replicas
