"""The trivial sink: the machine's limit for "receive an HTTP body in Python and put it on disk".

A raw ASGI app (no framework) for uvicorn with httptools + uvloop and no access log: the fastest a Python
ASGI server gets, so comparing a tus server with it is fair. It answers just enough tus for the load
generator (POST -> 201 + Location, PATCH -> 204 + Upload-Offset) and checks nothing: no offsets, no
headers, no locks, no info file. Bodies are appended to ``$BENCH_SINK_DIR/<id>`` with plain ``os.write``
of each received chunk on the event loop thread (page-cache writes of <= 256 KiB take microseconds; this
was faster here than batching or a worker thread).

Run: ``BENCH_SINK_DIR=/tmp/x uvicorn --app-dir benchmarks/peers sink:app --loop uvloop --http httptools
--no-access-log --port P``.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

DIRECTORY = os.environ.get("BENCH_SINK_DIR", "/tmp/bench-sink")
_HDRS = [(b"tus-resumable", b"1.0.0")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            os.makedirs(DIRECTORY, exist_ok=True)
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    method, path = scope["method"], scope["path"]
    if method == "POST":
        upload_id = uuid.uuid4().hex
        os.close(os.open(os.path.join(DIRECTORY, upload_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        await _drain(receive)
        await _answer(send, 201, [(b"location", f"/files/{upload_id}".encode()), (b"upload-offset", b"0")])
        return
    if method == "PATCH":
        name = os.path.join(DIRECTORY, path.rsplit("/", 1)[-1])
        fd = os.open(name, os.O_WRONLY | os.O_APPEND)
        try:
            more = True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body = message.get("body", b"")
                if body:
                    os.write(fd, body)
                more = message.get("more_body", False)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        await _answer(send, 204, [(b"upload-offset", str(size).encode())])
        return
    await _drain(receive)
    await _answer(send, 204 if method == "OPTIONS" else 405, [])


async def _drain(receive: Any) -> None:
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False) and message["type"] == "http.request"


async def _answer(send: Any, status: int, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": _HDRS + headers})
    await send({"type": "http.response.body", "body": b""})
