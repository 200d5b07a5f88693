"""How long wrap_image takes for a ~5 MB camera JPEG (target: well under 50 ms; no decode, no re-encode).

Run: .venv/bin/python benchmarks/dicom_wrap.py [--size-mb 5] [--runs 20]
Prints wall time (median, best, worst) and this process's CPU time of wrapping (orientation 1: bytes
encapsulated as they are, hashed, fsynced), and, for comparison, an EXIF-rotated photo (lossless jpegtran
transform, a child process: its CPU is not counted) and validate_part10 on the output.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from relaypacs_tus.dicom.secondary_capture import PatientStudy, SeriesPlacement, new_uid, wrap_image
from relaypacs_tus.dicom.validate import validate_part10


def make_jpeg(path: Path, size_mb: float, orientation: int = 1) -> Path:
    """Noise compresses badly, so the file size tracks the pixel count: grow until it is big enough."""
    rng = np.random.default_rng(7)
    side = 1000
    while True:
        pixels = rng.integers(0, 255, (side * 3 // 4, side, 3), dtype=np.uint8)
        im = Image.fromarray(pixels)
        exif = im.getexif()
        if orientation != 1:
            exif[0x0112] = orientation
        im.save(path, "JPEG", quality=92, exif=exif)
        if path.stat().st_size >= size_mb * 1_000_000:
            return path
        side = int(side * 1.3)


def timed(fn: Callable[[], object], runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU milliseconds per run (CPU time is less disturbed by other processes on a shared box)."""
    fn()  # warm the page cache and imports
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    patient = PatientStudy(patient_id="BENCH-1", patient_name="Bench^Mark")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        photo = make_jpeg(d / "photo.jpg", args.size_mb)
        rotated = make_jpeg(d / "rotated.jpg", args.size_mb, orientation=6)
        place = SeriesPlacement(new_uid(None), new_uid(None), 1)

        def wrap(src: Path) -> Callable[[], object]:
            return lambda: wrap_image(src, d / "out.dcm", patient=patient, placement=place, org_root=None)

        plain = timed(wrap(photo), args.runs)
        validate = timed(lambda: validate_part10(d / "out.dcm"), args.runs)
        turned = timed(wrap(rotated), max(3, args.runs // 4))
        mb = photo.stat().st_size / 1_000_000
        print(f"JPEG {mb:.1f} MB, {args.runs} runs")
        rows = (
            ("wrap (orientation 1)", plain),
            ("validate_part10 of the result", validate),
            ("wrap (EXIF orientation 6, jpegtran)", turned),
        )
        for label, (wall, cpu) in rows:
            print(f"  {label:38s} wall median {statistics.median(wall):6.1f} ms (best {min(wall):6.1f}, "
                  f"worst {max(wall):6.1f})   cpu median {statistics.median(cpu):6.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
