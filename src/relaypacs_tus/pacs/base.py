"""What every PACS destination shares: the instance to send, the receipt, the errors, the protocol.

A destination delivers one DICOM Part 10 file and either returns a ``Receipt`` or raises a
``DeliveryError`` that says, in plain words without PHI, what went wrong and whether trying again later
can help (``transient``). Delivery is idempotent: delivering the same instance again succeeds without a
second copy in the PACS; the same SOP Instance UID with *different* bytes is a ``DuplicateConflict``,
never a silent success.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..dicom.validate import InstanceInfo

STORED = "stored"
ALREADY_STORED = "already_stored"
STORED_WITH_WARNINGS = "stored_with_warnings"


class DeliveryError(Exception):
    """Delivery failed. ``reason``: plain words, no PHI, safe to show. ``transient``: a later retry may
    succeed (connection refused, timeouts, 5xx, 429, DIMSE A7xx). ``status``: the HTTP or DIMSE status
    when there was one. ``details``: machine-readable facts (failure reason codes, the destination)."""

    def __init__(
        self,
        reason: str,
        *,
        transient: bool,
        status: int | None = None,
        details: dict[str, object] | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient
        self.status = status
        self.details = dict(details or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, transient={self.transient}, status={self.status})"


class DuplicateConflict(DeliveryError):
    """The PACS already holds an instance with this SOP Instance UID, and its bytes differ from ours.

    Permanent: somebody must decide which copy is right (often a re-used UID or a wrong-patient fix).
    """

    def __init__(self, reason: str, *, status: int | None = None, details: dict[str, object] | None = None):
        super().__init__(reason, transient=False, status=status, details=details)


@dataclass(frozen=True)
class Instance:
    """One Part 10 file ready to deliver, with the identity the validator or the SC writer found."""

    path: str
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    size: int
    sha256: str

    @classmethod
    def from_info(cls, path: str | os.PathLike[str], info: InstanceInfo) -> Instance:
        return cls(
            path=os.fspath(path),
            sop_class_uid=info.sop_class_uid,
            sop_instance_uid=info.sop_instance_uid,
            study_instance_uid=info.study_instance_uid,
            series_instance_uid=info.series_instance_uid,
            transfer_syntax_uid=info.transfer_syntax_uid,
            size=info.size,
            sha256=info.sha256,
        )


@dataclass(frozen=True)
class Receipt:
    """Proof of delivery. ``outcome``: "stored" | "already_stored" (an identical copy was already there)
    | "stored_with_warnings" (``warnings`` say why, in plain words). ``details``: e.g. the PACS's own id
    of the instance, the HTTP/DIMSE status, whether the stored bytes were verified."""

    destination: str
    sop_instance_uid: str
    outcome: str
    warnings: tuple[str, ...] = ()
    details: dict[str, object] = field(default_factory=dict)


@runtime_checkable
class Destination(Protocol):
    """A PACS we deliver to. ``deliver`` is idempotent and raises ``DeliveryError``; ``aclose`` frees
    connections (the app's lifespan calls it)."""

    name: str

    async def deliver(self, instance: Instance) -> Receipt: ...

    async def aclose(self) -> None: ...
