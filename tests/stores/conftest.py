"""Fixtures for the store tests: every contract test runs against the local store and the S3 store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from .harness import StoreSpec, open_store


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def s3_spec(s3_server: Any, bucket: str, prefix: str = "uploads/") -> StoreSpec:
    return StoreSpec(
        kind="s3",
        endpoint_url=s3_server.endpoint_url,
        bucket=bucket,
        prefix=prefix,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        region=s3_server.region,
    )


@pytest.fixture(params=["local", "local-threaded", pytest.param("s3", marks=pytest.mark.s3)])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> StoreSpec:
    """Where a store keeps its uploads; open it (again, as a fresh instance) with ``open_store(spec)``."""
    if request.param.startswith("local"):
        return StoreSpec(kind=request.param, directory=str(tmp_path / "uploads"))
    server = request.getfixturevalue("s3_server")
    return s3_spec(server, request.getfixturevalue("s3_bucket"))


@pytest.fixture
def s3(s3_server: Any, s3_bucket: str) -> StoreSpec:
    """S3-only tests: a fresh bucket, keys under ``uploads/``."""
    return s3_spec(s3_server, s3_bucket)


@pytest.fixture
async def store(spec: StoreSpec) -> AsyncIterator[Any]:
    async with open_store(spec) as opened:
        yield opened
