"""The S3 ceiling: aioboto3 alone putting the same bytes as multipart uploads into the same SeaweedFS.

Run by :mod:`benchmarks.run` like the load generator (a process of its own, ``READY`` / a line on stdin /
one JSON line)::

    python -m benchmarks.s3direct '{"scenario": "single", "size": ..., "part": 8388608, "endpoint": ...}'

Each upload is one multipart upload whose parts go up one at a time, in order, as a tus PATCH stream
reaches the S3 store; ``concurrent`` runs ``n`` of them at once, ``small`` runs ``count`` uploads of one
part each with ``workers`` at once. Parts are prepared before timing and the client uses the same botocore
settings as the S3 store (path-style, checksums only where required, no payload signing), so the figure
is what the client library and the server reach with no tus server in between.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
import uuid
from typing import Any

from . import data


async def _upload(s3: Any, bucket: str, key: str, parts: list[bytes], latencies: list[float]) -> None:
    mp = await s3.create_multipart_upload(Bucket=bucket, Key=key)
    done = []
    for number, body in enumerate(parts, start=1):
        t0 = time.perf_counter()
        resp = await s3.upload_part(
            Bucket=bucket, Key=key, UploadId=mp["UploadId"], PartNumber=number, Body=body
        )
        latencies.append(time.perf_counter() - t0)
        done.append({"PartNumber": number, "ETag": resp["ETag"]})
    await s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=mp["UploadId"], MultipartUpload={"Parts": done}
    )


def _plan(spec: dict[str, Any]) -> list[tuple[str, list[bytes]]]:
    size, part, kind = int(spec["size"]), int(spec.get("part", spec["size"])), spec["scenario"]
    cache: dict[tuple[int, int], bytes] = {}
    if kind == "small":
        shifts = [i * 4099 for i in range(int(spec["count"]))]
    else:
        shifts = [i * 1_048_583 for i in range(1 if kind == "single" else int(spec["n"]))]
    plans = []
    for shift in shifts:
        parts = []
        for offset, views in data.pieces(shift, size, part):
            key = ((shift + offset) % data.BLOCK_SIZE, sum(len(v) for v in views))
            if key not in cache:
                cache[key] = b"".join(views)
            parts.append(cache[key])
        plans.append((f"direct-{uuid.uuid4().hex}", parts))
    return plans


async def _run(spec: dict[str, Any]) -> dict[str, Any]:
    import aioboto3

    from relaypacs_tus.stores.s3 import client_config

    plans = _plan(spec)
    session = aioboto3.Session(
        aws_access_key_id=spec["access_key"],
        aws_secret_access_key=spec["secret_key"],
        region_name=spec["region"],
    )
    config = client_config(endpoint_url=spec["endpoint"])
    async with session.client("s3", endpoint_url=spec["endpoint"], config=config) as s3:
        await s3.head_bucket(Bucket=spec["bucket"])  # connect before timing
        latencies: list[float] = []
        print("READY", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        workers = int(spec.get("workers", len(plans))) if spec["scenario"] == "small" else len(plans)
        queue = list(reversed(plans))

        async def worker() -> None:
            while queue:
                key, parts = queue.pop()
                await _upload(s3, spec["bucket"], key, parts, latencies)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(workers)))
        elapsed = time.perf_counter() - t0
    total = sum(len(p) for _, parts in plans for p in parts)
    ordered = sorted(latencies)
    return {
        "elapsed": elapsed,
        "bytes": total,
        "uploads": len(plans),
        "mb_per_s": total / elapsed / 1e6,
        "uploads_per_s": len(plans) / elapsed,
        "patch_p50_ms": ordered[round(0.50 * (len(ordered) - 1))] * 1000.0,
        "patch_p99_ms": ordered[round(0.99 * (len(ordered) - 1))] * 1000.0,
        "patch_mean_ms": statistics.fmean(ordered) * 1000.0,
        "keys": [k for k, _ in plans],
    }


def main() -> int:
    spec = json.loads(sys.argv[1])
    try:
        result = asyncio.run(_run(spec))
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result), flush=True)
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main())
