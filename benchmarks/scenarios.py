"""What one benchmark run measures: the scenarios (full and ``--quick`` sizes) and the server configs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    spec: dict[str, Any]  # for benchmarks.loadgen / benchmarks.s3direct
    metric: str = "mb_per_s"  # or "uploads_per_s"

    @property
    def unit(self) -> str:
        return "MB/s" if self.metric == "mb_per_s" else "uploads/s"


def scenarios(quick: bool, *, s3: bool = False) -> list[Scenario]:
    """The local-store plan; ``s3``: the same but 300 small uploads (100 quick), because every small upload
    costs several S3 requests and SeaweedFS shares the 2 cores (2,000 would take minutes per column)."""
    size = 256 * MiB if quick else GiB
    n, each = (8, 16 * MiB) if quick else (32, 32 * MiB)
    count = (100 if quick else 300) if s3 else (300 if quick else 2000)
    label = "256 MiB" if quick else "1 GiB"
    return [
        Scenario(
            "single-8",
            f"one {label} upload, 8 MiB PATCHes",
            {"scenario": "single", "size": size, "patch": 8 * MiB},
        ),
        Scenario(
            "single-64",
            f"one {label} upload, 64 MiB PATCHes",
            {"scenario": "single", "size": size, "patch": 64 * MiB},
        ),
        Scenario(
            "concurrent",
            f"{n} concurrent {each // MiB} MiB uploads (8 MiB PATCHes), aggregate",
            {"scenario": "concurrent", "n": n, "size": each, "patch": 8 * MiB},
        ),
        Scenario(
            "small",
            f"{count} uploads of 4 KiB (POST + PATCH, 8 connections)",
            {"scenario": "small", "size": 4096, "count": count, "workers": 8},
            metric="uploads_per_s",
        ),
    ]


@dataclass(frozen=True)
class Config:
    """One column of the report: a server (key in servers.py) with or without sha1 Upload-Checksum."""

    key: str
    server: str
    label: str
    checksum: bool = False
    peer: bool = False
    s3: bool = False
    direct: bool = False  # aioboto3 alone (benchmarks.s3direct), no tus server
    notes: list[str] = field(default_factory=list)


LOCAL_CONFIGS = [
    Config("ours", "relaypacs-local", "RelayPACS-tus (local)"),
    Config("ours+sha1", "relaypacs-local", "RelayPACS-tus (local) + sha1", checksum=True),
    Config("tus-node", "tus-node", "@tus/server 2.x", peer=True),
    Config("tuspyserver", "tuspyserver", "tuspyserver 4.4.3", peer=True),
    Config("sink", "sink", "sink (raw ASGI)"),
    Config("sink+sha1", "sink", "sink (raw ASGI) + sha1", checksum=True),
    Config("sink-thread", "sink-thread", "sink, writes in a thread"),
    Config("sink-thread+sha1", "sink-thread", "sink, writes in a thread + sha1", checksum=True),
]
S3_CONFIGS = [
    Config("ours-s3", "relaypacs-s3", "RelayPACS-tus (S3)", s3=True),
    Config("ours-s3+sha1", "relaypacs-s3", "RelayPACS-tus (S3) + sha1", checksum=True, s3=True),
    Config("aioboto3", "aioboto3", "aioboto3 alone (S3)", s3=True, direct=True),
]
