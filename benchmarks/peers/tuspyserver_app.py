"""tuspyserver 4.4.3 as its README runs it: a FastAPI app with ``create_tus_router`` (local files).

Run: ``BENCH_TUSPY_DIR=/tmp/x uvicorn --app-dir benchmarks/peers tuspyserver_app:app --loop uvloop
--http httptools --no-access-log --port P`` (the same uvicorn set-up as our server and the sink).
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from tuspyserver import create_tus_router

app = FastAPI()
app.include_router(
    create_tus_router(
        prefix="files",
        files_dir=os.environ.get("BENCH_TUSPY_DIR", "/tmp/bench-tuspyserver"),
        max_size=5 * 1024**3,  # the same cap as RelayPACS-tus's default Tus-Max-Size
    )
)
