"""Opening either store from a small JSON-able description, so a test and a child process (that a test
SIGKILLs mid-append) open the very same storage. Also bodies, digests and raw inspection helpers."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import zlib
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any

import aioboto3

from relaypacs_tus.stores.local import LocalStore
from relaypacs_tus.stores.s3 import S3Store, client_config
from relaypacs_tus.tus import errors
from relaypacs_tus.tus.checksum import ChecksumVerifier
from relaypacs_tus.tus.headers import Checksum
from relaypacs_tus.tus.store import UploadStore

MiB = 1024 * 1024
PART = 5 * MiB  # the smallest part size S3 allows: tests cross part boundaries cheaply


@dataclass(frozen=True)
class StoreSpec:
    kind: str  # "local" | "local-threaded" (RELAYPACS_LOCAL_INLINE_IO=false) | "s3"
    directory: str = ""
    endpoint_url: str = ""
    bucket: str = ""
    prefix: str = ""
    access_key: str = ""
    secret_key: str = ""
    region: str = ""
    part_size: int = PART

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> StoreSpec:
        return cls(**json.loads(text))

    def session(self) -> aioboto3.Session:
        return aioboto3.Session(
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key, region_name=self.region
        )


@contextlib.asynccontextmanager
async def open_store(spec: StoreSpec) -> AsyncIterator[Any]:
    """A new store instance over the storage ``spec`` names (as a new process would open it)."""
    if spec.kind.startswith("local"):
        store: UploadStore = LocalStore(spec.directory, inline_io=spec.kind == "local")
        try:
            yield store
        finally:
            await store.aclose()
        return
    async with S3Store.open(
        bucket=spec.bucket,
        prefix=spec.prefix,
        endpoint_url=spec.endpoint_url,
        region=spec.region,
        part_size=spec.part_size,
        session=spec.session(),
    ) as s3:
        yield s3


@contextlib.asynccontextmanager
async def raw_client(spec: StoreSpec) -> AsyncIterator[Any]:
    """A plain aioboto3 client on the same server, for looking at the objects behind the store's back."""
    async with spec.session().client(
        "s3", endpoint_url=spec.endpoint_url, config=client_config(endpoint_url=spec.endpoint_url)
    ) as client:
        yield client


async def stored_bytes(spec: StoreSpec, upload_id: str) -> int:
    """Bytes physically present for an upload, whatever counts (local: data file; S3: parts + tail)."""
    if spec.kind.startswith("local"):
        return os.path.getsize(os.path.join(spec.directory, upload_id))
    key = spec.prefix + upload_id
    async with raw_client(spec) as s3:
        info = json.loads(await (await s3.get_object(Bucket=spec.bucket, Key=key + ".info"))["Body"].read())
        multipart_id = info["S3"]["MultipartUploadId"]  # None until the upload's first part
        total = 0
        if multipart_id is not None:
            resp = await s3.list_parts(Bucket=spec.bucket, Key=key, UploadId=multipart_id)
            total = sum(int(p["Size"]) for p in resp.get("Parts", []))
        with contextlib.suppress(Exception):
            total += int((await s3.head_object(Bucket=spec.bucket, Key=key + ".part"))["ContentLength"])
        return total


def pattern(n: int, seed: int = 0) -> bytes:
    """``n`` reproducible, incompressible-looking bytes."""
    import random

    return random.Random(seed).randbytes(n)


def digest(data: bytes, algorithm: str) -> bytes:
    if algorithm == "crc32":
        return zlib.crc32(data).to_bytes(4, "big")
    return hashlib.new(algorithm, data).digest()


def verifier_for(data: bytes, algorithm: str = "sha256") -> ChecksumVerifier:
    return ChecksumVerifier(Checksum(algorithm=algorithm, digest=digest(data, algorithm)))


def wrong_verifier(algorithm: str = "sha256") -> ChecksumVerifier:
    return ChecksumVerifier(Checksum(algorithm=algorithm, digest=digest(b"not it", algorithm)))


async def body(
    data: bytes, *, chunk: int = 256 * 1024, fail_after: int | None = None
) -> AsyncIterator[bytes]:
    """The body of a PATCH; with ``fail_after`` the client "disconnects" after that many bytes."""
    end = len(data) if fail_after is None else fail_after
    for start in range(0, end, chunk):
        yield data[start : min(start + chunk, end)]
    if fail_after is not None:
        raise errors.ClientDisconnected()


async def read_all(store: Any, upload_id: str) -> bytes:
    out = bytearray()
    async for chunk in store.read(upload_id):
        out += chunk
    return bytes(out)
