"""Benchmark (not a test): time from the final PATCH's answer to the instance being retrievable in a real
Orthanc, for a 1 MB and a 100 MB DICOM file and a 5 MB phone JPEG (median and p95).

    .venv/bin/python -m benchmarks.pipeline [--runs 7] [--out benchmarks/results/pipeline.json]

Runs the real server (local store, DICOM pipeline, STOW-RS to Orthanc) and a real Orthanc on free
loopback ports. Each upload gets fresh UIDs. The clock starts when tuspy's last PATCH has been answered
(pre-finish validation or wrapping is inside that PATCH and so outside the figure; it is reported apart)
and stops when Orthanc's /tools/lookup finds the SOP Instance UID.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pydicom
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from tests.e2e.conftest import pipeline_env
from tests.services.orthanc import OrthancServer
from tests.services.server import RelayServer
from tusclient import client

MB = 1_000_000


def dicom_of_size(path: Path, size: int) -> Path:
    """A valid CT image of about ``size`` bytes (16-bit pixels), with fresh UIDs."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    columns = 1024
    rows = max(1, size // (columns * 2))
    ds.Rows, ds.Columns = rows, columns
    ds.PixelData = np.random.default_rng(rows).integers(0, 4096, rows * columns, dtype=np.uint16).tobytes()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.save_as(path, enforce_file_format=True)
    return path


def jpeg_of_size(path: Path, size: int) -> Path:
    """A camera-like JPEG of about ``size`` bytes (noisy content compresses like a real photo's detail)."""
    side = 1000
    while True:
        noise = np.random.default_rng(side).integers(0, 256, (side * 3 // 4, side, 3), dtype=np.uint8)
        out = io.BytesIO()
        Image.fromarray(noise, "RGB").save(out, "JPEG", quality=85)
        if out.tell() >= size:
            path.write_bytes(out.getvalue())
            return path
        side = int(side * (size / out.tell()) ** 0.5) + 16


def one_run(
    server: RelayServer, orthanc: OrthancServer, path: Path, meta: dict[str, str]
) -> tuple[float, float]:
    """(seconds the upload took including the final PATCH, seconds from its answer to retrievable)."""
    uploader = client.TusClient(server.files_url).uploader(
        str(path), chunk_size=8 * 1024 * 1024, metadata=meta
    )
    started = time.perf_counter()
    uploader.upload()
    answered = time.perf_counter()
    upload_id = str(uploader.url).rsplit("/", 1)[1]
    sop = None
    while True:
        if sop is None:
            status = httpx.get(f"{server.base_url}/uploads/{upload_id}/status", timeout=10).json()
            sop = status["sop_instance_uid"]
            if status["state"] in ("rejected", "failed"):
                raise RuntimeError(f"upload {upload_id} {status['state']}: {status['reason']}")
        if sop is not None and orthanc.find_instance(sop) is not None:
            return answered - started, time.perf_counter() - answered
        time.sleep(0.005)


def measure(
    name: str, make: Callable[[Path], Path], meta: dict[str, str], runs: int, server: RelayServer,
    orthanc: OrthancServer, work: Path,
) -> dict[str, object]:  # fmt: skip
    latencies, uploads, size = [], [], 0
    for i in range(runs):
        path = make(work / f"{name}-{i}")
        size = path.stat().st_size
        upload, latency = one_run(server, orthanc, path, meta)
        uploads.append(upload)
        latencies.append(latency)
        path.unlink()
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    return {
        "case": name, "bytes": size, "runs": runs, "median_s": round(statistics.median(latencies), 4),
        "p95_s": round(p95, 4), "upload_median_s": round(statistics.median(uploads), 4),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="relaypacs-bench-") as tmp:
        work = Path(tmp)
        orthanc = OrthancServer(work / "orthanc").start()
        server = RelayServer(work / "relay", pipeline_env(orthanc, RELAYPACS_LOG_LEVEL="warning")).start()
        try:
            cases = [
                ("dicom-1MB", lambda p: dicom_of_size(p.with_suffix(".dcm"), MB), {"filename": "a.dcm"}),
                ("dicom-100MB", lambda p: dicom_of_size(p.with_suffix(".dcm"), 100 * MB),
                 {"filename": "b.dcm"}),
                ("jpeg-5MB", lambda p: jpeg_of_size(p.with_suffix(".jpg"), 5 * MB),
                 {"filename": "c.jpg", "patient_id": "BENCH"}),
            ]  # fmt: skip
            results = [
                measure(name, make, meta, args.runs, server, orthanc, work) for name, make, meta in cases
            ]
        finally:
            server.stop()
            orthanc.stop()
    for row in results:
        print(json.dumps(row))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
