"""The server starts on embedded defaults and a real tus client (tuspy) uploads a file intact."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from tusclient import client


def test_tuspy_upload_arrives_intact(relay_server, tmp_path: Path) -> None:
    server = relay_server().start()
    # Auth is on by default: mint a token with the key the server generated in its data dir (README).
    token = subprocess.run(
        [sys.executable, "-m", "relaypacs_tus", "token", "--data-dir", str(server.data_dir)],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    source = tmp_path / "scan.bin"
    source.write_bytes(bytes(range(256)) * 12_000)
    tus = client.TusClient(server.files_url, headers={"Authorization": f"Bearer {token}"})
    uploader = tus.uploader(
        str(source), chunk_size=256 * 1024, upload_checksum=True, metadata={"filename": "scan.bin"}
    )
    uploader.upload()
    upload_id = uploader.url.rsplit("/", 1)[1]
    stored = server.data_dir / "uploads" / upload_id
    assert hashlib.sha256(stored.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()
