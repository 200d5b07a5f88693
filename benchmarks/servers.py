"""The servers under test, each its own process on a free loopback port with its data in a temp dir, and
the sampler that reads their RSS and CPU time while a scenario runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from relaypacs_tus import serving

from .httpclient import Connection, HttpError

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "benchmarks" / "peers"
UVICORN_FAST = ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """One server under test. ``data_path(id)`` is where it keeps an upload's bytes (None: not a file)."""

    key: str
    label: str
    argv: Callable[[int, Path], list[str]]
    env: Callable[[int, Path], dict[str, str]] = lambda port, d: {}
    base: str = "/files/"
    uploads_subdir: str = ""  # where the bytes are below the data dir
    checksum: bool = False  # implements the tus checksum extension
    note: str = ""
    port: int = 0
    data_dir: Path = Path()
    proc: subprocess.Popen[bytes] | None = None
    idle_rss: int = 0
    log_path: Path = Path()
    extra: dict[str, object] = field(default_factory=dict)

    def data_path(self, upload_id: str) -> Path | None:
        return self.data_dir / self.uploads_subdir / upload_id

    def start(self, workdir: Path, timeout: float = 60.0) -> None:
        self.port = free_port()
        self.data_dir = workdir / self.key
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / f"{self.key}.log"
        env = {**os.environ, **self.env(self.port, self.data_dir)}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv(self.port, self.data_dir),
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited with {self.proc.returncode}: {self.log_tail()}")
            conn = Connection("127.0.0.1", self.port, timeout=2.0)
            try:
                if conn.request("OPTIONS", self.base, {"Tus-Resumable": "1.0.0"}).status < 500:
                    return
            except (HttpError, OSError):
                pass
            finally:
                conn.close()
            time.sleep(0.1)
        raise TimeoutError(f"{self.label} not ready after {timeout}s: {self.log_tail()}")

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def clear_data(self) -> None:
        """Delete the uploads of the last scenario (before writeback: the disk never sees most of them)."""
        root = self.data_dir / self.uploads_subdir
        for entry in os.scandir(root) if root.exists() else []:
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
            elif entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
                shutil.rmtree(entry.path, ignore_errors=True)

    def rss(self) -> int:
        return _tree_rss(psutil.Process(self.proc.pid)) if self.proc else 0


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def _tree_cpu(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


class Sampler:
    """Samples a process tree's RSS every ``interval`` s; also resets and reads the kernel's exact peak
    (VmHWM, via /proc/PID/clear_refs) so a spike between two samples is not missed."""

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak_sampled = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.cpu_start = self.cpu_end = 0.0
        self.rss_before = 0
        self.hwm: int | None = None

    def __enter__(self) -> Sampler:
        self.rss_before = _tree_rss(self.proc)
        self._reset_hwm()
        self.cpu_start = _tree_cpu(self.proc)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.cpu_end = _tree_cpu(self.proc)
        self.hwm = self._read_hwm()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.peak_sampled = max(self.peak_sampled, _tree_rss(self.proc))
                self.samples += 1
            self._stop.wait(self.interval)

    def _reset_hwm(self) -> None:
        with contextlib.suppress(OSError):
            Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")

    def _read_hwm(self) -> int | None:
        if self.proc.children(recursive=True):
            return None  # VmHWM is per process; a tree has no single peak
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    @property
    def peak(self) -> int:
        return max(self.peak_sampled, self.hwm or 0)

    @property
    def cpu_seconds(self) -> float:
        return self.cpu_end - self.cpu_start


#: What peers lack and would refuse this load (auth, rate limits) or add work after the response (the audit
#: log's SHA-256 of each finished upload) is off; everything else is the default `relaypacs-tus serve`.
BENCH_RELAYPACS_ENV = {
    "RELAYPACS_AUTH": "off",
    "RELAYPACS_AUDIT": "off",
    "RELAYPACS_LIMIT_CREATES": "0",
    "RELAYPACS_LIMIT_CREATES_PER_ADDRESS": "0",
    "RELAYPACS_LIMIT_CONCURRENT_UPLOADS": "0",
}


def _relaypacs_env(
    store: str, extra: Callable[[], dict[str, str]] | None = None
) -> Callable[[int, Path], dict[str, str]]:
    def env(port: int, d: Path) -> dict[str, str]:
        return {
            "RELAYPACS_HOST": "127.0.0.1",
            "RELAYPACS_PORT": str(port),
            "RELAYPACS_DATA_DIR": str(d),
            "RELAYPACS_STORE": store,
            **BENCH_RELAYPACS_ENV,
            **(extra() if extra else {}),
        }

    return env


def relaypacs(store: str = "local", s3_env: Callable[[], dict[str, str]] | None = None) -> Server:
    return Server(
        key=f"relaypacs-{store}",
        label=f"RelayPACS-tus ({store})",
        argv=lambda port, d: [sys.executable, "-m", "relaypacs_tus", "serve"],
        env=_relaypacs_env(store, s3_env),
        uploads_subdir="uploads",
        checksum=True,
        note="`relaypacs-tus serve` with its defaults (info logs on, access log off)",
    )


def tus_node() -> Server:
    return Server(
        key="tus-node",
        label="@tus/server 2.x",
        argv=lambda port, d: ["node", str(PEERS / "tus-node-server.mjs"), str(port), str(d)],
        base="/files",
        note="@tus/server + @tus/file-store, its README's standalone server",
    )


def _uvicorn(app: str) -> Callable[[int, Path], list[str]]:
    """A peer ASGI app from benchmarks/peers under uvicorn, set up as our server is (UVICORN_FAST)."""
    return lambda port, d: [
        sys.executable, "-m", "uvicorn", "--app-dir", str(PEERS), app,
        "--host", "127.0.0.1", "--port", str(port), *UVICORN_FAST,
    ]  # fmt: skip


def tuspyserver() -> Server:
    return Server(
        key="tuspyserver",
        label="tuspyserver 4.4.3",
        argv=_uvicorn("tuspyserver_app:app"),
        env=lambda port, d: {"BENCH_TUSPY_DIR": str(d)},
        base="/files",
        note="FastAPI + create_tus_router, uvicorn with uvloop + httptools, no access log",
    )


#: The malloc settings ``relaypacs-tus serve`` applies to itself (relaypacs_tus.serving.keep_body_memory),
#: given to the sinks as glibc environment variables: without them every body chunk's pages are faulted in
#: afresh, which cost the sink about 40% of its throughput here, and a sink is meant to be the limit.
SINK_MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(serving.MMAP_THRESHOLD),
    "MALLOC_TRIM_THRESHOLD_": str(serving.TRIM_THRESHOLD),
}


def sink() -> Server:
    return Server(
        key="sink",
        label="sink (raw ASGI)",
        argv=_uvicorn("sink:app"),
        env=lambda port, d: {"BENCH_SINK_DIR": str(d), **SINK_MALLOC_ENV},
        note="raw ASGI app, uvicorn with uvloop + httptools, no access log, our malloc settings; "
        "writes each body chunk, checks nothing",
    )


def sink_thread() -> Server:
    base = sink()
    return Server(
        key="sink-thread",
        label="sink, writes in a thread",
        argv=base.argv,
        env=lambda port, d: {"BENCH_SINK_DIR": str(d), "BENCH_SINK_THREAD": "1", **SINK_MALLOC_ENV},
        note="the same sink, but file writes go to a worker thread in 4 MiB batches (as the house rules "
        "require of a server): the limit for a Python server that keeps file I/O off its event loop",
    )
