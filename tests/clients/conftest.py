"""Real tus clients against the real server, on the local store and on S3 (SeaweedFS).

``relay`` starts a server for the parametrized store with auth on (the clients carry a token minted with
``relaypacs-tus token``); helpers read the server's JSON log and the stored bytes through the store itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.services.server import RelayServer
from tests.services.waiting import missing
from tests.tus.storeview import stored

JS_DIR = Path(__file__).parent / "js"


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@dataclass
class Relay:
    """A started server, its bearer token, and ways to look at what it stored."""

    server: RelayServer
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def events(self, name: str, since: int = 0) -> list[dict[str, Any]]:
        return [e for e in self.server.log_events()[since:] if e.get("event") == name]

    def stored(self, upload_id: str) -> tuple[list[str], bytes]:
        """Every upload id the store holds, and the bytes of ``upload_id``, read through the store."""
        return stored(self.server, upload_id)


@pytest.fixture
def relay(relay_server: Callable[..., RelayServer], store_kind: str, request: pytest.FixtureRequest) -> Relay:
    env: dict[str, str] = {"RELAYPACS_MAX_SIZE": "1GiB"}
    if store_kind == "s3":
        s3 = request.getfixturevalue("s3_server")
        env.update(s3.env(request.getfixturevalue("s3_bucket")))
    server = relay_server(env=env).start()
    token = subprocess.run(
        [sys.executable, "-m", "relaypacs_tus", "token", "--data-dir", str(server.data_dir)],
        check=True, capture_output=True, text=True, env={**os.environ, **env},
    ).stdout.strip()  # fmt: skip
    return Relay(server, token)


def make_file(path: Path, size: int) -> Path:
    """Deterministic, non-repeating content, so a misplaced chunk cannot go unnoticed."""
    block = bytearray()
    counter = 0
    while len(block) < size:
        block += counter.to_bytes(8, "big") * 4
        counter += 1
    path.write_bytes(bytes(block[:size]))
    return path


def wait_for_offset(relay: Relay, threshold: int, timeout: float = 60.0) -> int:
    """Wait until the server has acknowledged at least ``threshold`` bytes of some upload."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        offsets = [int(e["offset"]) for e in relay.events("upload.patch")]
        if offsets and max(offsets) >= threshold:
            return max(offsets)
        time.sleep(0.02)
    raise AssertionError(f"the server never reached offset {threshold}:\n{relay.server.log_text()[-2000:]}")


@dataclass
class KillResult:
    acknowledged: int  # the highest offset the old process confirmed before SIGKILL
    first_start_after: int  # where the first PATCH after the restart began
    created: int  # uploads created across both processes


def kill_and_restart(relay: Relay, threshold: int) -> Callable[[], KillResult]:
    """SIGKILL the server once it passed ``threshold``, restart it on the same port and data; the returned
    function (call it after the client finished) says where the upload resumed."""
    wait_for_offset(relay, threshold)
    relay.server.kill()
    before = len(relay.server.log_events())
    acknowledged = max(int(e["offset"]) for e in relay.events("upload.patch"))
    relay.server.start()

    def result() -> KillResult:
        after = relay.events("upload.patch", since=before)
        assert after, "no PATCH reached the restarted server"
        first = after[0]
        return KillResult(
            acknowledged=acknowledged,
            first_start_after=int(first["offset"]) - int(first["received"]),
            created=len(relay.events("upload.created")),
        )

    return result


@pytest.fixture
def node_client() -> Path:
    """tests/clients/js with its node_modules (CI runs ``npm ci`` there first)."""
    if not (JS_DIR / "node_modules" / "tus-js-client").is_dir():
        missing("tus-js-client is not installed: run `npm ci` in tests/clients/js")
    return JS_DIR / "upload.js"
