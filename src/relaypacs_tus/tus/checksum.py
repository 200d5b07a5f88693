"""Streaming hashers for the checksum extension.

A :class:`ChecksumVerifier` is fed every byte of one PATCH body and is asked, before the store commits the
chunk, whether the digest matches ("Checksum": on mismatch the chunk MUST be discarded, 460). Callers feed
it in batches from a worker thread: hashlib releases the GIL for large buffers, so hashing runs beside the
event loop instead of blocking it.
"""

from __future__ import annotations

import hashlib
import hmac
import zlib
from typing import Protocol

from . import errors
from .headers import Checksum


class Hasher(Protocol):
    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...

    def digest(self) -> bytes: ...


class _Crc32:
    """CRC-32 (as zlib and RFC 1952 define it), digest in network byte order like tus-java-client."""

    __slots__ = ("_value",)

    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        self._value = zlib.crc32(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")


def new_hasher(algorithm: str) -> Hasher:
    """A fresh hasher for one of :data:`spec.CHECKSUM_ALGORITHMS`."""
    if algorithm == "crc32":
        return _Crc32()
    if algorithm in ("sha1", "sha256", "sha512", "md5"):
        # usedforsecurity=False: md5/sha1 here check integrity, and FIPS builds would refuse them otherwise.
        return hashlib.new(algorithm, usedforsecurity=False)
    raise errors.UnsupportedChecksumAlgorithm()


class ChecksumVerifier:
    """Hashes one chunk and compares it with the digest from ``Upload-Checksum``."""

    __slots__ = ("_expected", "_hasher", "algorithm", "bytes_seen")

    def __init__(self, checksum: Checksum) -> None:
        self.algorithm = checksum.algorithm
        self._expected = checksum.digest
        self._hasher = new_hasher(checksum.algorithm)
        self.bytes_seen = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._hasher.update(data)
        self.bytes_seen += len(data)

    def matches(self) -> bool:
        return hmac.compare_digest(self._hasher.digest(), self._expected)

    def verify(self) -> None:
        """Raise :class:`errors.ChecksumMismatch` unless the bytes fed so far match the digest."""
        if not self.matches():
            raise errors.ChecksumMismatch()
