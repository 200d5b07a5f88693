"""The trivial sink: the machine's limit for "receive an HTTP body in Python and put it on disk".

A raw ASGI app (no framework) for uvicorn with httptools + uvloop and no access log: the fastest a Python
ASGI server gets, so comparing a tus server with it is fair. It answers just enough tus for the load
generator (POST -> 201 + Location, PATCH -> 204 + Upload-Offset) and checks nothing: no offsets, no
headers, no locks, no info file. Bodies are appended to ``$BENCH_SINK_DIR/<id>`` with plain ``os.write``
of each received chunk on the event loop thread (page-cache writes of <= 256 KiB take microseconds; this
was faster here than batching or a worker thread).

A PATCH with ``Upload-Checksum: sha1 <base64>`` is hashed as it is written (on the loop, chunk by chunk)
and answered 460 if the digest differs (nothing is rolled back): the machine's limit for "receive, write
and sha1" next to the server's ``+ sha1`` column.

With ``BENCH_SINK_THREAD=1`` it writes the way the house rules require of a server ("file I/O runs in a
worker thread"): chunks gathered into 4 MiB batches, each batch written (one ``os.write`` per chunk) in
the default executor while the loop waits. That column is the limit for any Python server that keeps
file I/O off its event loop. With a sha1 checksum, a second worker hashes each batch while the first
writes it (the fastest of the ways tried here: hashing after each write in the same worker lost 9% more).

Run: ``BENCH_SINK_DIR=/tmp/x uvicorn --app-dir benchmarks/peers sink:app --loop uvloop --http httptools
--no-access-log --port P``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

DIRECTORY = os.environ.get("BENCH_SINK_DIR", "/tmp/bench-sink")
THREAD = os.environ.get("BENCH_SINK_THREAD") == "1"
BATCH = 4 * 1024 * 1024
_HDRS = [(b"tus-resumable", b"1.0.0")]
_HASHER = ThreadPoolExecutor(1, thread_name_prefix="sink-hash")  # beside the default executor's writer


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
        if THREAD:
            await asyncio.get_running_loop().run_in_executor(None, _create, upload_id)
        else:
            _create(upload_id)
        await _drain(receive)
        await _answer(send, 201, [(b"location", f"/files/{upload_id}".encode()), (b"upload-offset", b"0")])
        return
    if method == "PATCH":
        name = os.path.join(DIRECTORY, path.rsplit("/", 1)[-1])
        expected = _expected_sha1(scope)
        sha1 = hashlib.sha1() if expected is not None else None
        fd = os.open(name, os.O_WRONLY | os.O_APPEND)
        try:
            body = _body_in_thread(receive, fd, sha1) if THREAD else _body_on_loop(receive, fd, sha1)
            if not await body:
                return
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if sha1 is not None and sha1.digest() != expected:
            await _answer(send, 460, [])
            return
        await _answer(send, 204, [(b"upload-offset", str(size).encode())])
        return
    await _drain(receive)
    await _answer(send, 204 if method == "OPTIONS" else 405, [])


def _expected_sha1(scope: dict[str, Any]) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"upload-checksum":
            algorithm, _, digest = value.decode().partition(" ")
            return base64.b64decode(digest) if algorithm == "sha1" else None
    return None


async def _body_on_loop(receive: Any, fd: int, sha1: Any) -> bool:
    """Each chunk written (and hashed) as it arrives; False if the client went away."""
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return False
        body = message.get("body", b"")
        if body:
            os.write(fd, body)
            if sha1 is not None:
                sha1.update(body)
        more = message.get("more_body", False)
    return True


async def _body_in_thread(receive: Any, fd: int, sha1: Any) -> bool:
    """4 MiB batches, each written in a worker thread (and hashed in another) while the loop waits."""
    loop = asyncio.get_running_loop()
    batch: list[bytes] = []
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return False
        body = message.get("body", b"")
        more = message.get("more_body", False)
        if body:
            batch.append(body)
            size += len(body)
        if batch and (size >= BATCH or not more):
            hashed = None if sha1 is None else loop.run_in_executor(_HASHER, _hash_all, sha1, batch)
            await loop.run_in_executor(None, _write_all, fd, batch)
            if hashed is not None:
                await hashed
            batch, size = [], 0
    return True


def _create(upload_id: str) -> None:
    os.close(os.open(os.path.join(DIRECTORY, upload_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _write_all(fd: int, chunks: list[bytes]) -> None:
    for chunk in chunks:
        os.write(fd, chunk)


def _hash_all(sha1: Any, chunks: list[bytes]) -> None:
    for chunk in chunks:
        sha1.update(chunk)


async def _drain(receive: Any) -> None:
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False) and message["type"] == "http.request"


async def _answer(send: Any, status: int, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": _HDRS + headers})
    await send({"type": "http.response.body", "body": b""})
