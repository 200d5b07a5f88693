"""The load generator: a process of its own that speaks tus to one server and times one scenario.

Usage (the orchestrator in :mod:`benchmarks.run` drives it)::

    python -m benchmarks.loadgen '{"port": 8080, "base": "/files/", "scenario": "single", ...}'

It prepares everything first (data, per-PATCH sha1 digests), prints ``READY``, waits for a line on stdin
(the orchestrator starts sampling the server then), runs the scenario and prints one JSON line.
Blocking sockets in threads: each PATCH body goes out in one ``sendall`` of a memoryview, so the client's
cost per byte is the kernel's copy (a sink run shows the client is not the bottleneck).

Scenarios: ``single`` (one upload of ``size`` in ``patch`` pieces), ``concurrent`` (``n`` uploads of
``size`` at once), ``small`` (``count`` uploads of ``size`` with ``workers`` connections), ``warmup``.
Every upload is POST (creation) then PATCHes, as tus-js-client and tuspy do by default.
"""

from __future__ import annotations

import base64
import json
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from . import data
from .httpclient import Connection, HttpError

TUS = {"Tus-Resumable": "1.0.0"}
_META = (
    "filename "
    + base64.b64encode(b"bench.bin").decode()
    + ",filetype "
    + base64.b64encode(b"application/octet-stream").decode()
)


@dataclass
class Target:
    port: int
    base: str
    checksum: bool = False
    digests: dict[tuple[int, int], str] = field(default_factory=dict)

    def prepare(
        self, shift: int, size: int, patch: int
    ) -> list[tuple[int, list[memoryview], dict[str, str]]]:
        """The PATCH requests of one upload: offset, body, extra headers (sha1 precomputed, untimed)."""
        out = []
        for offset, views in data.pieces(shift, size, patch):
            extra = {}
            if self.checksum:
                key = ((shift + offset) % data.BLOCK_SIZE, sum(len(v) for v in views))
                if key not in self.digests:
                    self.digests[key] = base64.b64encode(data.sha1_of(views)).decode()
                extra["Upload-Checksum"] = "sha1 " + self.digests[key]
            out.append((offset, views, extra))
        return out


def _path(location: str) -> str:
    if "://" in location:
        location = location.split("://", 1)[1]
        location = location[location.find("/") :]
    return location


def upload(
    conn: Connection,
    target: Target,
    size: int,
    plan: list[tuple[int, list[memoryview], dict[str, str]]],
    latencies: list[float] | None = None,
) -> str:
    """One tus upload; returns its path (the last segment is the upload id)."""
    created = conn.request("POST", target.base, {**TUS, "Upload-Length": str(size), "Upload-Metadata": _META})
    if created.status != 201:
        raise HttpError(f"POST answered {created.status}: {created.body[:200]!r}")
    path = _path(created.header("location"))
    for offset, views, extra in plan:
        t0 = time.perf_counter()
        hdrs = {
            **TUS,
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
            **extra,
        }
        r = conn.request("PATCH", path, hdrs, views)
        if latencies is not None:
            latencies.append(time.perf_counter() - t0)
        if r.status != 204 or int(r.header("upload-offset") or -1) != offset + sum(len(v) for v in views):
            raise HttpError(
                f"PATCH at {offset} answered {r.status} offset {r.header('upload-offset')}: {r.body[:200]!r}"
            )
    return path


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))] * 1000.0


def _run_threads(jobs: list[Any]) -> float:
    """Run callables in threads released together; returns the wall time until the last one ended."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(jobs) + 1)

    def wrap(job: Any) -> None:
        start.wait()
        try:
            job()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=wrap, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return elapsed


def scenario(spec: dict[str, Any], go: threading.Event | None = None) -> dict[str, Any]:
    target = Target(spec["port"], spec["base"], bool(spec.get("checksum")))
    kind, size = spec["scenario"], int(spec["size"])
    if kind == "small":
        count, workers = int(spec["count"]), int(spec.get("workers", 8))
        shifts = [i * 4099 for i in range(count)]
        plans = [target.prepare(s, size, size) for s in shifts]
    else:
        n = 1 if kind in ("single", "warmup") else int(spec["n"])
        shifts = [i * 1_048_583 for i in range(n)]
        plans = [target.prepare(s, size, int(spec["patch"])) for s in shifts]
    conns = [Connection("127.0.0.1", target.port) for _ in range(len(plans) if kind != "small" else workers)]
    paths: list[str] = [""] * len(plans)
    latencies: list[list[float]] = [[] for _ in conns]
    _ready(go)
    if kind == "small":
        cursor = iter(range(len(plans)))
        lock = threading.Lock()

        def worker(w: int) -> None:
            while True:
                with lock:
                    i = next(cursor, None)
                if i is None:
                    return
                paths[i] = upload(conns[w], target, size, plans[i], latencies[w])

        elapsed = _run_threads([lambda w=w: worker(w) for w in range(workers)])
    else:
        elapsed = _run_threads(
            [
                lambda i=i: paths.__setitem__(i, upload(conns[i], target, size, plans[i], latencies[i]))
                for i in range(len(plans))
            ]
        )
    for c in conns:
        c.close()
    flat = [x for lat in latencies for x in lat]
    total = size * len(plans)
    return {
        "elapsed": elapsed,
        "bytes": total,
        "uploads": len(plans),
        "mb_per_s": total / elapsed / 1e6,
        "uploads_per_s": len(plans) / elapsed,
        "patch_p50_ms": _pct(flat, 0.50),
        "patch_p99_ms": _pct(flat, 0.99),
        "patch_mean_ms": statistics.fmean(flat) * 1000.0,
        "ids": [p.rstrip("/").rsplit("/", 1)[-1] for p in paths],
        "shifts": shifts,
    }


def _ready(go: threading.Event | None) -> None:
    if go is not None:  # in-process use (tests, profiling)
        go.wait()
        return
    print("READY", flush=True)
    sys.stdin.readline()


def main() -> int:
    spec = json.loads(sys.argv[1])
    try:
        result = scenario(spec)
    except (HttpError, OSError) as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result), flush=True)
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main())
