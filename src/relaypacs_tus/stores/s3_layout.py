"""How the S3 store reads its objects back into an offset: pure rules, no network.

Objects of one upload (like tusd's s3store):

* ``<prefix><id>.info``: the :class:`UploadInfo` JSON plus an ``"S3"`` section (:class:`S3State`): the
  multipart UploadId, part numbers that must never count (``DiscardedParts``) and, while a checksum chunk
  is being written, the first part number of that chunk (``PendingFromPart``).
* one multipart upload on ``<prefix><id>``, completed into that object by ``finish``. It is created with the
  upload's first part and recorded in ``.info`` before that part is sent; an upload whose bytes all
  arrive in the buffer of one part, completing it, never gets one: it is PUT as ``<prefix><id>`` whole;
* ``<prefix><id>.part``: received bytes that do not fill a 5 MiB part yet (the tail). Its user metadata
  ``next-part`` is the part number that was next when it was written: the tail holds the bytes that come
  before part ``next-part``.

Why this survives a SIGKILL at any point without a write per PATCH:

* An append that continues from a tail reads it back and uploads it at the start of its first part, whose
  number is >= the tail's ``next-part``. From the moment that part exists, the old tail is stale:
  **a tail counts only if no counted part has a number >= its next-part**. Writing a tail is one PUT, so
  the tail and the parts are never counted twice nor lost.
* A checksum chunk is all-or-nothing. Before its first part is uploaded, ``PendingFromPart = N`` is written
  into ``.info``. After the digest is verified the new tail is written (its next-part is > N) and then the
  marker is cleared; without a new tail the marker is cleared first and the old tail then deleted. So
  while the marker is set, a tail with next-part > N means "verified, roll forward"; anything else means
  "not verified, roll back": parts >= N are discarded and the previous tail, untouched, counts again.
* Part numbers are never reused (SeaweedFS lists both copies of a re-uploaded number): new parts start
  above every number listed, discarded or pending.
* ``<prefix><id>`` with the upload's size means complete, whatever ``.info`` says: it appears in one
  request (CompleteMultipartUpload, or the one PUT of an upload without a multipart upload), and ``.info``
  says "finished" only once the engine saved the info after it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

#: S3's minimum size of every part but the last one.
MIN_PART_SIZE = 5 * 1024 * 1024
#: S3's highest part number.
MAX_PART_NUMBER = 10_000
#: Part numbers kept free for discarded checksum chunks when choosing a part size for a known length.
PART_NUMBER_HEADROOM = 1_000


class LayoutError(Exception):
    """The objects contradict each other (e.g. two different parts under one number): never guess."""


@dataclass(frozen=True, slots=True)
class Part:
    """One listed part of the multipart upload."""

    number: int
    size: int
    etag: str
    modified: float = 0.0


@dataclass(frozen=True, slots=True)
class Tail:
    """The ``.part`` object: bytes before part ``next_part`` that do not fill a part yet."""

    size: int
    etag: str
    next_part: int
    modified: float = 0.0


@dataclass(slots=True)
class S3State:
    """The ``"S3"`` section of ``.info``: what the objects alone cannot tell after a crash."""

    multipart_id: str | None = None
    discarded: list[tuple[int, int]] = field(default_factory=list)  # inclusive ranges of part numbers
    pending_from: int | None = None  # first part number of a checksum chunk not verified yet

    def copy(self) -> S3State:
        return S3State(self.multipart_id, list(self.discarded), self.pending_from)

    def is_discarded(self, number: int) -> bool:
        return any(lo <= number <= hi for lo, hi in self.discarded)

    def discard(self, lo: int, hi: int) -> None:
        if hi >= lo:
            self.discarded.append((lo, hi))

    def to_json(self) -> dict[str, Any]:
        return {
            "MultipartUploadId": self.multipart_id,
            "DiscardedParts": [[lo, hi] for lo, hi in self.discarded],
            "PendingFromPart": self.pending_from,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> S3State:
        data = data or {}
        return cls(
            multipart_id=data.get("MultipartUploadId"),
            discarded=[(int(lo), int(hi)) for lo, hi in data.get("DiscardedParts", [])],
            pending_from=data.get("PendingFromPart"),
        )


@dataclass(frozen=True, slots=True)
class View:
    """The upload as the objects say it is, with any interrupted checksum chunk resolved."""

    parts: tuple[Part, ...]  # the parts that count, by number
    tail: Tail | None  # the tail if it counts
    stale_tail: bool  # a .part object exists but does not count (delete it when convenient)
    state: S3State  # the state with the pending chunk settled (write it back before changing anything)
    settled: bool  # state differs from the stored one (a pending chunk was rolled forward or back)
    next_part: int  # the number for the next part uploaded

    @property
    def offset(self) -> int:
        return sum(p.size for p in self.parts) + (self.tail.size if self.tail else 0)

    @property
    def modified(self) -> float:
        times = [p.modified for p in self.parts] + ([self.tail.modified] if self.tail else [])
        return max(times, default=0.0)


def unique_parts(listed: list[Part], state: S3State) -> dict[int, Part]:
    """Parts by number. Identical copies of one number (a retried request) collapse; different copies of a
    number that counts raise :class:`LayoutError` (SeaweedFS keeps both; neither can be told newer)."""
    by_number: dict[int, Part] = {}
    for part in listed:
        seen = by_number.get(part.number)
        if seen is None:
            by_number[part.number] = part
        elif (seen.etag, seen.size) != (part.etag, part.size) and not state.is_discarded(part.number):
            raise LayoutError(f"part {part.number} was uploaded twice with different content")
        elif part.modified > seen.modified:
            by_number[part.number] = part
    return by_number


def resolve(stored: S3State, listed: list[Part], tail: Tail | None) -> View:
    """Apply the rules of this module to what was listed. Raises :class:`LayoutError` on contradictions."""
    state = stored.copy()
    by_number = unique_parts(listed, state)
    settled = False
    if state.pending_from is not None:
        start = state.pending_from
        if tail is None or tail.next_part <= start:  # never verified: roll back
            state.discard(start, max([start, *by_number]))
        state.pending_from = None
        settled = True
    counted = tuple(p for n, p in sorted(by_number.items()) if not state.is_discarded(n))
    tail_counts = tail is not None and not any(p.number >= tail.next_part for p in counted)
    highest = max(
        [0, *by_number, *(hi for _, hi in state.discarded), *([tail.next_part - 1] if tail else [])]
    )
    return View(
        parts=counted,
        tail=tail if tail_counts else None,
        stale_tail=tail is not None and not tail_counts,
        state=state,
        settled=settled,
        next_part=highest + 1,
    )


def part_size_for(size: int | None, base: int) -> int:
    """The part size for an upload: ``base``, or larger when ``size`` would need too many part numbers."""
    if size is None:
        return base
    needed = math.ceil(size / (MAX_PART_NUMBER - PART_NUMBER_HEADROOM))
    mib = 1024 * 1024
    return max(base, math.ceil(needed / mib) * mib, MIN_PART_SIZE)
