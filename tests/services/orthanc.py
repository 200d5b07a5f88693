"""A real Orthanc PACS (Debian's ``orthanc`` + ``orthanc-dicomweb``) and dcmtk's ``storescp``, for tests.

Orthanc runs as a child process with its own config in a temp dir: free HTTP and DICOM ports on
loopback, HTTP basic auth on, DICOMweb plugin loaded, ``OverwriteInstances`` false (Orthanc's default:
it keeps the first copy of a SOP Instance UID). Ready means ``GET /system`` answers with this run's
unique ``Name`` (a stale Orthanc on the port cannot fool it), the DICOMweb plugin answers and the DICOM
port accepts connections. Stop: SIGTERM, then SIGKILL after a timeout.

Fixtures: session ``orthanc`` (shared; tests use fresh UIDs), function ``fresh_orthanc`` (its own
storage; ``stop()``/``start()`` keep ports and data), function ``storescp`` (a second C-STORE target
that writes what it receives to ``out_dir``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from .ports import free_port, wait_for_port
from .waiting import wait_until

_PLUGIN_CANDIDATES = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/libOrthancDicomWeb.so.1.7",
    "/usr/local/share/orthanc/plugins/libOrthancDicomWeb.so",
)


def orthanc_binary() -> str:
    found = os.environ.get("ORTHANC_BIN") or shutil.which("Orthanc") or "/usr/sbin/Orthanc"
    if not os.access(found, os.X_OK):
        pytest.fail("Orthanc is not installed (apt-get install orthanc orthanc-dicomweb, or set ORTHANC_BIN)")
    return found


def dicomweb_plugin() -> str:
    env = os.environ.get("ORTHANC_DICOMWEB_PLUGIN")
    for candidate in ([env] if env else []) + list(_PLUGIN_CANDIDATES):
        if candidate and os.path.isfile(candidate):
            return candidate
    pytest.fail("the Orthanc DICOMweb plugin is not installed (apt-get install orthanc-dicomweb)")


def _port_accepts(port: int) -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class OrthancServer:
    """One Orthanc process. Ports, credentials and storage survive ``stop()``/``start()``."""

    def __init__(
        self,
        state_dir: Path,
        *,
        aet: str = "ORTHANC",
        username: str = "relay",
        password: str | None = None,
        overwrite: bool = False,
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.aet, self.username = aet, username
        self.password = password or secrets.token_urlsafe(12)
        self.overwrite = overwrite
        self.extra_config = dict(extra_config or {})
        self.http_port, self.dicom_port = free_port(), free_port()
        self.dicom_host = "127.0.0.1"
        self.name = f"relaypacs-test-{os.getpid()}-{secrets.token_hex(4)}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = requests.Session()
        self.http.auth = (self.username, self.password)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "orthanc.log"

    def _write_config(self) -> Path:
        storage = self.state_dir / "storage"
        config_dir = self.state_dir / "config"
        storage.mkdir(parents=True, exist_ok=True)
        config_dir.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": self.name,
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "Plugins": [dicomweb_plugin()],
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.aet,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {self.username: self.password},
            "OverwriteInstances": self.overwrite,
            "WebDavEnabled": False,
            "SaveJobs": False,
            "DicomWeb": {
                "Enable": True,
                "Root": "/dicom-web/",
                "EnableWado": True,
                "WadoRoot": "/wado",
                "Ssl": False,
            },
            **self.extra_config,
        }
        (config_dir / "orthanc.json").write_text(json.dumps(config, indent=2))
        return config_dir

    def start(self, timeout: float = 30.0) -> OrthancServer:
        if self.is_running():
            return self
        for port in (self.http_port, self.dicom_port):
            if _port_accepts(port):
                raise RuntimeError(f"port {port} is already in use; cannot start Orthanc there")
        config_dir = self._write_config()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [orthanc_binary(), str(config_dir)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the terminal does not hit it
            )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.proc.returncode}:\n{self._log_tail()}")
            return self._answers_as_us() and _port_accepts(self.dicom_port)

        try:
            wait_until(ready, timeout, what="Orthanc to answer")
        except AssertionError:
            self.stop()
            raise TimeoutError(f"Orthanc not ready after {timeout}s:\n{self._log_tail()}") from None

    def _answers_as_us(self) -> bool:
        try:
            system = self.http.get(f"{self.url}/system", timeout=2)
            plugin = self.http.get(f"{self.url}/plugins/dicom-web", timeout=2)
        except requests.RequestException:
            return False
        ours = system.status_code == 200 and system.json().get("Name") == self.name
        return ours and plugin.status_code == 200

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL."""
        if not self.is_running():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    # --- what a test asks the PACS ---------------------------------------------------------------

    def find_instance(self, sop_instance_uid: str) -> str | None:
        """Orthanc's id of the (first) instance with this SOP Instance UID, or None."""
        r = self.http.post(f"{self.url}/tools/lookup", data=sop_instance_uid, timeout=10)
        r.raise_for_status()
        ids = [item["ID"] for item in r.json() if item.get("Type") == "Instance"]
        return ids[0] if ids else None

    def find_instances(self, sop_instance_uid: str) -> list[str]:
        r = self.http.post(f"{self.url}/tools/lookup", data=sop_instance_uid, timeout=10)
        r.raise_for_status()
        return [item["ID"] for item in r.json() if item.get("Type") == "Instance"]

    def get_file(self, orthanc_id: str) -> bytes:
        r = self.http.get(f"{self.url}/instances/{orthanc_id}/file", timeout=30)
        r.raise_for_status()
        return r.content

    def instance_tags(self, orthanc_id: str) -> dict[str, Any]:
        r = self.http.get(f"{self.url}/instances/{orthanc_id}/simplified-tags", timeout=10)
        r.raise_for_status()
        return dict(r.json())

    def count_instances(self) -> int:
        r = self.http.get(f"{self.url}/statistics", timeout=10)
        r.raise_for_status()
        return int(r.json()["CountInstances"])

    def delete_all(self) -> None:
        r = self.http.get(f"{self.url}/patients", timeout=10)
        r.raise_for_status()
        for patient in r.json():
            self.http.delete(f"{self.url}/patients/{patient}", timeout=30).raise_for_status()


class StoreScp:
    """dcmtk ``storescp``: accepts any called AE, compressed contexts too (``+xa``), and writes each
    instance to ``out_dir`` as ``<modality>.<SOPInstanceUID>`` (a duplicate overwrites the file)."""

    def __init__(self, out_dir: Path, aet: str = "STORESCP") -> None:
        self.out_dir, self.aet = out_dir, aet
        self.host, self.port = "127.0.0.1", free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> StoreScp:
        binary = shutil.which("storescp") or pytest.fail("storescp is not installed (apt-get install dcmtk)")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.out_dir.parent / f"storescp-{self.port}.log", "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            [binary, "-aet", self.aet, "+xa", "-od", str(self.out_dir), str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_for_port(self.port, timeout=15)
        return self

    def files(self) -> list[Path]:
        return sorted(p for p in self.out_dir.iterdir() if p.is_file())

    def file_for(self, sop_instance_uid: str) -> Path | None:
        matches = [p for p in self.files() if p.name.endswith("." + sop_instance_uid)]
        return matches[0] if matches else None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    server = OrthancServer(tmp_path_factory.mktemp("orthanc"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fresh_orthanc(tmp_path: Path) -> Iterator[OrthancServer]:
    """A started Orthanc of the test's own (own storage and ports); the test may stop and start it."""
    server = OrthancServer(tmp_path / "orthanc")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def storescp(tmp_path: Path) -> Iterator[StoreScp]:
    scp = StoreScp(tmp_path / "storescp-out").start()
    try:
        yield scp
    finally:
        scp.stop()
