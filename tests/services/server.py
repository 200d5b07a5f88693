"""Runs the real ``relaypacs-tus serve`` as a subprocess for tests: start, SIGKILL, restart on the same
port and data, read its JSON log lines. Fixture: ``relay_server`` (a factory).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .ports import free_port
from .waiting import wait_until


class RelayServer:
    """One server process. ``env`` adds RELAYPACS_* settings; the data dir and port survive restarts."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"
        self.scheme = "http"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def files_url(self) -> str:
        return self.base_url + self.env.get("RELAYPACS_BASE_PATH", "/files/")

    def start(self, timeout: float = 30.0) -> RelayServer:
        env = {
            **os.environ,
            "RELAYPACS_DATA_DIR": str(self.data_dir),
            "RELAYPACS_PORT": str(self.port),
            **self.env,
        }
        env.setdefault("RELAYPACS_LOG_LEVEL", "info")
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "relaypacs_tus", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        try:
            wait_until(self._ready, timeout, what="the server's /readyz")
        except AssertionError as exc:
            raise TimeoutError(f"server not ready after {timeout}s:\n{self.log_text()[-3000:]}") from exc

    def _ready(self) -> bool:
        """/readyz answers 200; a server process that exited fails the wait at once."""
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
        try:
            return httpx.get(self.base_url + "/readyz", timeout=1.0, verify=False).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks run, exactly like a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self, *, kill: bool = True) -> RelayServer:
        self.kill() if kill else self.stop()
        return self.start()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_events(self) -> list[dict[str, object]]:
        events = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                try:
                    events.append(json.loads(line))
                except ValueError:
                    continue
        return events


@pytest.fixture
def relay_server(tmp_path: Path) -> Iterator[type[RelayServer]]:
    """Factory: ``relay_server(env={...}).start()``; every server started is stopped afterwards."""
    started: list[RelayServer] = []
    counter = iter(range(1000))

    class _Tracked(RelayServer):
        def __init__(
            self, env: dict[str, str] | None = None, data_dir: Path | None = None, port: int | None = None
        ):
            super().__init__(data_dir or tmp_path / f"relay{next(counter)}", env, port)
            started.append(self)

    yield _Tracked
    for server in started:
        server.stop()
