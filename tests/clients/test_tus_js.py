"""tus-js-client 4.x (the client inside Uppy) under Node: a multi-chunk upload arrives byte for byte, a
parallel upload (concatenation) too, and an upload survives a SIGKILL of the server mid-way, resuming from
the server's offset; on the local store and on S3."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .conftest import Relay, kill_and_restart, make_file

pytestmark = pytest.mark.node
CHUNK = 1024 * 1024


def node_upload(script: Path, relay: Relay, source: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            "node", str(script), "--endpoint", relay.server.files_url, "--file", str(source),
            "--header", f"Authorization=Bearer {relay.token}", "--metadata", f"filename={source.name}", *args,
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finish(proc: subprocess.Popen[str], timeout: float = 180) -> list[dict[str, Any]]:
    out, err = proc.communicate(timeout=timeout)
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert proc.returncode == 0, f"tus-js-client failed: {lines[-3:]} {err[-2000:]}"
    assert lines[-1]["event"] == "success"
    return lines


def upload_id_of(lines: list[dict[str, Any]]) -> str:
    return str(lines[-1]["url"]).rstrip("/").rsplit("/", 1)[1]


def test_multi_chunk_upload_is_byte_identical(relay: Relay, node_client: Path, tmp_path: Path) -> None:
    source = make_file(tmp_path / "series.bin", 6 * CHUNK + 4321)
    lines = finish(node_upload(node_client, relay, source, "--chunk-size", str(CHUNK)))
    patches = [e for e in lines if e["event"] == "request" and e["method"] == "PATCH"]
    assert [p["offset"] for p in patches] == [i * CHUNK for i in range(7)]
    upload_id = upload_id_of(lines)
    ids, data = relay.stored(upload_id)
    assert ids == [upload_id]
    assert data == source.read_bytes()
    head = relay.events("upload.finished")
    assert [e["upload_id"] for e in head] == [upload_id]


def test_parallel_upload_uses_concatenation(relay: Relay, node_client: Path, tmp_path: Path) -> None:
    source = make_file(tmp_path / "photo.bin", 3 * CHUNK + 99)
    lines = finish(
        node_upload(node_client, relay, source, "--parallel", "3", "--chunk-size", str(CHUNK // 2))
    )
    final_id = upload_id_of(lines)
    ids, data = relay.stored(final_id)
    assert data == source.read_bytes()
    assert len(ids) == 4, "three partial uploads and the final one"
    created = relay.events("upload.created")
    assert sum(bool(e["partial"]) for e in created) == 3
    assert sum(bool(e["final"]) for e in created) == 1


def test_resumes_after_the_server_is_killed(relay: Relay, node_client: Path, tmp_path: Path) -> None:
    source = make_file(tmp_path / "study.bin", 12 * CHUNK + 555)
    proc = node_upload(node_client, relay, source, "--chunk-size", str(CHUNK), "--delay-ms", "150")
    try:
        resumed = kill_and_restart(relay, threshold=3 * CHUNK)
        lines = finish(proc)
    finally:
        proc.kill()
    outcome = resumed()
    assert outcome.created == 1, "the client resumed its upload instead of starting a new one"
    assert outcome.first_start_after >= outcome.acknowledged >= 3 * CHUNK, outcome
    requests = [e for e in lines if e["event"] == "request"]
    assert [e["method"] for e in requests].count("POST") == 1
    retry_at = next(i for i, e in enumerate(lines) if e["event"] == "retry")
    resumed_patch = next(e for e in lines[retry_at:] if e["event"] == "request" and e["method"] == "PATCH")
    assert resumed_patch["offset"] == outcome.first_start_after, "the client continued at the server's offset"
    assert any(e["method"] == "HEAD" for e in lines[retry_at:] if e["event"] == "request")
    upload_id = upload_id_of(lines)
    ids, data = relay.stored(upload_id)
    assert ids == [upload_id]
    assert data == source.read_bytes()
