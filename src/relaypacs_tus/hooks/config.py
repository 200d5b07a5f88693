"""Pipeline settings as plain values (the app builds them from Settings; hook programs from theirs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    work_dir: Path
    allowed_sop_classes: frozenset[str] | None = None
    org_root: str | None = None
    max_attempts: int = 8
    backoff: float = 2.0
    backoff_max: float = 300.0
    max_image_size: int = 64 * 1024**2  # a wrapped photo is kept as a document: bound it
    concurrency: int = 4
