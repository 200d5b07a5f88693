"""Read what a test server stored through the store itself (local folder or S3), as the app would."""

from __future__ import annotations

import os

import anyio

from relaypacs_tus.app import open_store
from relaypacs_tus.settings import Settings
from tests.services.server import RelayServer


def stored(server: RelayServer, upload_id: str | None = None) -> tuple[list[str], bytes]:
    """Every upload id the server's store holds, and the bytes of ``upload_id`` (b"" when None)."""
    env = {**server.env, "RELAYPACS_DATA_DIR": str(server.data_dir)}
    settings = Settings.load(env)
    aws = {k: v for k, v in env.items() if k.startswith("AWS_")}
    saved = {k: os.environ.get(k) for k in aws}
    os.environ.update(aws)  # S3Store reads credentials the AWS way, like the server does

    async def read() -> tuple[list[str], bytes]:
        async with open_store(settings) as store:
            ids = sorted([i async for i in store.list_ids()])
            data = bytearray()
            if upload_id is not None:
                async for chunk in store.read(upload_id):
                    data += chunk
            return ids, bytes(data)

    try:
        return anyio.run(read)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
