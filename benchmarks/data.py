"""The bytes every server receives: the same deterministic random data for every server and run.

An upload is named by a ``shift``: its byte at offset ``o`` is ``BLOCK[(shift + o) % BLOCK_SIZE]``, where
``BLOCK`` is 64 MiB from a seeded PRNG (incompressible, so SeaweedFS's compression does not flatter S3).
``doubled()`` holds the block twice, so any piece of up to 64 MiB at any shift is one contiguous memoryview:
the load generator sends slices of it without copying. Uploads of one scenario get different shifts, so
bytes that land in the wrong upload are caught by :func:`expected_sha256`.
"""

from __future__ import annotations

import functools
import hashlib
import random

MiB = 1024 * 1024
BLOCK_SIZE = 64 * MiB
SEED = 20260101


@functools.cache
def doubled() -> memoryview:
    block = random.Random(SEED).randbytes(BLOCK_SIZE)
    return memoryview(block + block)


def piece(shift: int, offset: int, length: int) -> memoryview:
    """Bytes ``offset .. offset+length`` of the upload named by ``shift`` (length <= 64 MiB)."""
    if length > BLOCK_SIZE:
        raise ValueError("a piece is at most 64 MiB")
    start = (shift + offset) % BLOCK_SIZE
    return doubled()[start : start + length]


def pieces(shift: int, size: int, patch_size: int) -> list[tuple[int, list[memoryview]]]:
    """(offset, body) of each PATCH of an upload of ``size`` bytes sent in ``patch_size`` pieces; a body is
    one or more memoryviews (more when a PATCH is longer than the 64 MiB block)."""
    out = []
    for o in range(0, size, patch_size):
        end = min(o + patch_size, size)
        out.append((o, [piece(shift, p, min(BLOCK_SIZE, end - p)) for p in range(o, end, BLOCK_SIZE)]))
    return out


def sha1_of(views: list[memoryview]) -> bytes:
    h = hashlib.sha1(usedforsecurity=False)
    for view in views:
        h.update(view)
    return h.digest()


@functools.cache
def expected_sha256(shift: int, size: int) -> str:
    """The sha256 of a whole upload, to compare with what a server stored."""
    h = hashlib.sha256()
    for _, views in pieces(shift, size, BLOCK_SIZE):
        for view in views:
            h.update(view)
    return h.hexdigest()
