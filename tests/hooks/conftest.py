"""Fixtures for hook tests: hook programs written to a folder, and a real HTTP hook endpoint."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from relaypacs_tus.tus.events import HookEvent, HookType, HTTPRequest
from relaypacs_tus.tus.store import UploadInfo
from tests.services.ports import free_port
from tests.services.waiting import wait_until


def make_event(kind: HookType = HookType.PRE_FINISH, **upload: object) -> HookEvent:
    info = UploadInfo(
        id="0123456789abcdef0123456789abcdef",
        size=10,
        offset=10,
        metadata={"filename": "scan.dcm", "filetype": "application/dicom"},
        storage={"Type": "filestore", "Path": "/tmp/none", "InfoPath": "/tmp/none.info"},
    )
    for key, value in upload.items():
        setattr(info, key, value)
    request = HTTPRequest("PATCH", f"/files/{info.id}", "127.0.0.1:50000", {"Tus-Resumable": ["1.0.0"]})
    return HookEvent(kind, info, request)


def write_program(directory: Path, name: str, python_body: str) -> Path:
    """A hook program in Python (run by this interpreter), executable like a tusd hook."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!{sys.executable}\nimport json, os, sys, time, subprocess\n{python_body}\n")
    path.chmod(0o755)
    return path


@dataclass
class HookEndpoint:
    """A real HTTP server; ``answers`` is consumed one per request: (status, body, held). A held answer
    is sent only once ``released`` is set (the fixture sets it at teardown): an endpoint that hangs for
    as long as the test needs, whatever the client's timeout."""

    url: str
    answers: list[tuple[int, bytes, bool]] = field(default_factory=list)
    requests: list[dict[str, object]] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def hook_endpoint() -> Iterator[HookEndpoint]:
    port = free_port()
    endpoint = HookEndpoint(url=f"http://127.0.0.1:{port}/hooks")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            endpoint.requests.append({"headers": dict(self.headers), "body": json.loads(body)})
            status, answer, held = endpoint.answers.pop(0) if endpoint.answers else (200, b"", False)
            if held:
                endpoint.released.wait()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield endpoint
    endpoint.released.set()
    server.shutdown()
    server.server_close()


wait_for = wait_until
