"""The engine's inputs and outputs: its configuration and the parsed calls the HTTP adapter makes.

Plain data, no behaviour beyond derived properties, so the adapter and tests build them freely.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from . import spec
from .headers import Checksum, Metadata
from .store import UploadInfo


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Protocol limits. ``max_size`` 0 means no limit; ``expiration`` 0 turns the extension off."""

    max_size: int = 0
    expiration: float = 24 * 3600.0
    network_timeout: float = 60.0
    enable_termination: bool = True
    enable_concatenation: bool = True

    @property
    def extensions(self) -> tuple[str, ...]:
        off = set()
        if not self.expiration:
            off.add(spec.EXPIRATION)
        if not self.enable_termination:
            off.add(spec.TERMINATION)
        if not self.enable_concatenation:
            off |= {spec.CONCATENATION, spec.CONCATENATION_UNFINISHED}
        return tuple(e for e in spec.IMPLEMENTED_EXTENSIONS if e not in off)


@dataclass(slots=True)
class Creation:
    """A parsed creation request (POST)."""

    length: int | None
    deferred: bool = False
    metadata: Metadata = field(default_factory=lambda: Metadata(raw="", pairs=()))
    partial: bool = False
    final_of: tuple[str, ...] = ()  # upload ids named by Upload-Concat: final;...
    concat_header: str = ""
    body: AsyncIterator[bytes] | None = None  # creation-with-upload
    content_length: int | None = None
    checksum: Checksum | None = None
    max_size: int | None = None  # a per-upload cap set by the auth layer (upload token byte cap)
    extra: dict[str, object] = field(
        default_factory=dict
    )  # app facts stored with the upload (token, binding)


@dataclass(slots=True)
class Patch:
    """A parsed PATCH request."""

    offset: int
    body: AsyncIterator[bytes]
    length: int | None = None  # Upload-Length sent to end a deferred length
    content_length: int | None = None
    checksum: Checksum | None = None


@dataclass(slots=True)
class Outcome:
    """What the adapter answers with: the upload after the call, plus headers a hook added."""

    info: UploadInfo
    headers: dict[str, str] = field(default_factory=dict)
