"""HTTP plumbing shared by the STOW-RS and Orthanc REST destinations (requests, in worker threads).

* ``FileBody`` / ``multipart_body``: a request body streamed from the Part 10 file with a known length
  (so ``Content-Length`` is sent, not chunked), seekable so a request can be re-sent (401 refresh) and
  SigV4 can hash it. Memory does not grow with the file.
* ``hash_response`` / ``hash_single_part``: SHA-256 of what a PACS returns, streamed, to compare the
  stored bytes with ours (duplicate SOP Instance UID detection).
* ``raise_for_transport`` / ``http_error``: requests exceptions and HTTP statuses -> ``DeliveryError``
  with plain reasons and the transient/permanent verdict.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator
from typing import Any

import requests

from .base import DeliveryError

_BLOCK = 1024 * 1024

# Statuses where trying again later can help (RFC 9110 §15: 408, 425, 429 and 5xx except 501/505).
_TRANSIENT = {408, 425, 429, 500, 502, 503, 504, 507, 509}
# Refused credentials are transient: the instance is fine, and retries succeed once the relay's
# configuration is fixed (an operator's job, not the uploader's).
_AUTH = {401, 403, 407}


class FileBody(io.RawIOBase):
    """``prefix`` + the file at ``path`` + ``suffix`` as one readable, seekable stream with a length."""

    def __init__(self, path: str | os.PathLike[str], prefix: bytes = b"", suffix: bytes = b"") -> None:
        super().__init__()
        self._fp = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._prefix, self._suffix = prefix, suffix
        self._file_size = os.fstat(self._fp.fileno()).st_size
        self._pos = 0

    def __len__(self) -> int:
        return len(self._prefix) + self._file_size + len(self._suffix)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self)}[whence]
        self._pos = max(0, min(len(self), base + offset))
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        chunk = self._read_at(self._pos, len(view))
        view[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)

    def _read_at(self, pos: int, size: int) -> bytes:
        p, f = len(self._prefix), self._file_size
        if pos < p:
            return self._prefix[pos : pos + size]
        if pos < p + f:
            self._fp.seek(pos - p)
            return self._fp.read(min(size, p + f - pos))
        return self._suffix[pos - p - f : pos - p - f + size]

    def close(self) -> None:
        self._fp.close()
        super().close()


def multipart_body(path: str | os.PathLike[str], boundary: str) -> FileBody:
    """One PS3.10 file as a ``multipart/related`` body (RFC 2387, PS3.18 §8.6.1.2): CRLF line breaks,
    the part's own ``Content-Type: application/dicom`` (Orthanc stores nothing without it)."""
    prefix = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode("ascii")
    suffix = f"\r\n--{boundary}--\r\n".encode("ascii")
    return FileBody(path, prefix, suffix)


def hash_response(response: requests.Response) -> str:
    """Hex SHA-256 of a streamed response body (``stream=True``), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    for block in response.iter_content(_BLOCK):
        digest.update(block)
    return digest.hexdigest()


def boundary_of(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.strip().lower() == "boundary":
            return value.strip().strip('"')
    return None


def hash_single_part(chunks: Iterator[bytes], boundary: str) -> str | None:
    """SHA-256 of the body of the first part of a ``multipart/related`` stream (a WADO-RS instance),
    without holding it in memory: everything after the part's header block and before the next
    ``CRLF--boundary``. ``None`` when the stream holds no complete part."""
    opener, closer = b"--" + boundary.encode(), b"\r\n--" + boundary.encode()
    buffer, digest, in_body = b"", hashlib.sha256(), False
    for chunk in chunks:
        buffer += chunk
        if not in_body:
            start = buffer.find(opener)
            header_end = buffer.find(b"\r\n\r\n", start) if start >= 0 else -1
            if header_end < 0:
                continue
            buffer, in_body = buffer[header_end + 4 :], True
        end = buffer.find(closer)
        if end >= 0:
            digest.update(buffer[:end])
            return digest.hexdigest()
        keep = len(closer) - 1  # a delimiter may straddle two chunks
        digest.update(buffer[:-keep] if len(buffer) > keep else b"")
        buffer = buffer[-keep:] if len(buffer) > keep else buffer
    return None


def json_body(response: requests.Response) -> Any:
    """The body as JSON whatever the Content-Type says (Orthanc's error answers have none); ``None``
    when it is not JSON."""
    try:
        return json.loads(response.content or b"null")
    except ValueError:
        return None


def raise_for_transport(exc: requests.RequestException, destination: str) -> DeliveryError:
    """A ``DeliveryError`` for a request that got no HTTP answer."""
    if isinstance(exc, requests.exceptions.SSLError):
        return DeliveryError(
            f"the TLS connection to {destination} failed (check its certificate)", transient=True
        )
    if isinstance(exc, requests.Timeout):
        return DeliveryError(f"{destination} did not answer in time", transient=True)
    if isinstance(exc, requests.ConnectionError):
        return DeliveryError(f"could not connect to {destination}", transient=True)
    return DeliveryError(f"the request to {destination} failed", transient=True)


def http_error(
    destination: str, status: int, what: str, details: dict[str, object] | None = None
) -> DeliveryError:
    """A ``DeliveryError`` for an HTTP status we cannot treat as success."""
    if status in _AUTH:
        reason = f"{destination} refused the relay's credentials (HTTP {status}); check its configuration"
        return DeliveryError(reason, transient=True, status=status, details=details)
    transient = status in _TRANSIENT or (status >= 500 and status not in (501, 505))
    return DeliveryError(
        f"{destination} {what} (HTTP {status})", transient=transient, status=status, details=details
    )
