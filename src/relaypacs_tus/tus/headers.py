"""One strict parser per tus header. Each returns a typed value or raises a catalogued error.

Strictness is deliberate: a lenient parser (tusd skips bad metadata pairs silently) loses data the client
thinks it sent. Rules cite protocol.md sections.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from . import errors, spec

_DIGITS = re.compile(r"[0-9]{1,19}")
#: HTTP optional whitespace (RFC 9110 5.6.3). Not str.strip(): that also eats U+0085 and U+00A0, which
#: arrive as latin-1 header bytes, and would make the HEAD echo differ from what was sent.
_OWS = " \t"
# protocol.md "Upload-Metadata": a key MUST NOT contain spaces or commas and MUST NOT be empty; it SHOULD
# be ASCII. We also refuse control characters, so a key can never smuggle a header line.
_META_KEY = re.compile(r"[\x21-\x2b\x2d-\x7e]+")
_B64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
#: Upper bound on one header value we parse; the HTTP server bounds the whole header block too.
MAX_HEADER_LENGTH = 8192


def _non_negative(value: str, error: type[errors.TusError]) -> int:
    value = value.strip(_OWS)
    if not _DIGITS.fullmatch(value):
        raise error()
    number = int(value)
    if number > spec.MAX_INT64:
        raise error()
    return number


def parse_upload_length(value: str) -> int:
    """``Upload-Length``: a non-negative decimal integer ("Core Protocol / Headers")."""
    return _non_negative(value, errors.InvalidUploadLength)


def parse_upload_offset(value: str) -> int:
    """``Upload-Offset``: a non-negative decimal integer ("Core Protocol / Headers")."""
    return _non_negative(value, errors.InvalidOffset)


def parse_defer_length(value: str) -> bool:
    """``Upload-Defer-Length``: its only allowed value is 1 ("creation-defer-length"); else 400."""
    if value.strip(_OWS) != "1":
        raise errors.InvalidDeferLength()
    return True


@dataclass(frozen=True, slots=True)
class Metadata:
    """Parsed ``Upload-Metadata``: the header exactly as sent, and its decoded pairs in order."""

    raw: str
    pairs: tuple[tuple[str, bytes | None], ...]

    def as_text(self) -> dict[str, str]:
        """Values decoded as UTF-8 (invalid bytes replaced); a key sent without a value maps to ""."""
        return {k: (v or b"").decode("utf-8", "replace") for k, v in self.pairs}


def parse_metadata(value: str) -> Metadata:
    """``Upload-Metadata`` ("creation"): comma-separated ``key base64value`` pairs, keys unique."""
    if len(value) > MAX_HEADER_LENGTH:
        raise errors.InvalidMetadata("Upload-Metadata is too long")
    raw = value.strip(_OWS)
    pairs: list[tuple[str, bytes | None]] = []
    seen: set[str] = set()
    if not raw:
        return Metadata(raw="", pairs=())
    for element in raw.split(","):
        parts = element.strip(_OWS).split(" ")
        if len(parts) > 2 or not parts[0]:
            raise errors.InvalidMetadata("Upload-Metadata pairs must be 'key base64value'")
        key = parts[0]
        if not _META_KEY.fullmatch(key):
            raise errors.InvalidMetadata("Upload-Metadata keys must be printable ASCII without spaces")
        if key in seen:
            raise errors.InvalidMetadata(f"Upload-Metadata key {key!r} appears twice")
        seen.add(key)
        pairs.append((key, _decode_b64(parts[1]) if len(parts) == 2 else None))
    return Metadata(raw=raw, pairs=tuple(pairs))


def _decode_b64(text: str) -> bytes:
    if not _B64.fullmatch(text):
        raise errors.InvalidMetadata("Upload-Metadata values must be base64")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:  # pragma: no cover - the regex already rejects these
        raise errors.InvalidMetadata("Upload-Metadata values must be base64") from exc


def format_metadata(pairs: dict[str, str]) -> str:
    """Serialise text values as an ``Upload-Metadata`` header (used by hooks that change metadata)."""
    items = []
    for key, val in pairs.items():
        if not _META_KEY.fullmatch(key):
            raise errors.InvalidMetadata(f"metadata key {key!r} is not a valid tus key")
        items.append(f"{key} {base64.b64encode(val.encode()).decode()}" if val else key)
    return ",".join(items)


@dataclass(frozen=True, slots=True)
class Checksum:
    """``Upload-Checksum``: the algorithm name and the expected digest bytes."""

    algorithm: str
    digest: bytes


_DIGEST_SIZES = {"sha1": 20, "sha256": 32, "sha512": 64, "md5": 16, "crc32": 4}


def parse_checksum(value: str) -> Checksum:
    """``Upload-Checksum: <algorithm> <base64 digest>`` ("Checksum"); unknown algorithms get 400."""
    parts = value.strip(_OWS).split(" ")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise errors.InvalidChecksum("Upload-Checksum must be '<algorithm> <base64 digest>'")
    algorithm = parts[0].lower()
    if algorithm not in spec.CHECKSUM_ALGORITHMS:
        raise errors.UnsupportedChecksumAlgorithm(
            f"unsupported checksum algorithm; use one of {','.join(spec.CHECKSUM_ALGORITHMS)}"
        )
    if not _B64.fullmatch(parts[1]):
        raise errors.InvalidChecksum("Upload-Checksum digest must be base64")
    digest = base64.b64decode(parts[1])
    if len(digest) != _DIGEST_SIZES[algorithm]:
        raise errors.InvalidChecksum(f"a {algorithm} digest has {_DIGEST_SIZES[algorithm]} bytes")
    return Checksum(algorithm=algorithm, digest=digest)


@dataclass(frozen=True, slots=True)
class Concat:
    """``Upload-Concat`` ("Concatenation"): ``partial``, or ``final`` with the partial upload URLs."""

    is_partial: bool
    urls: tuple[str, ...] = ()

    @property
    def is_final(self) -> bool:
        return not self.is_partial


def parse_concat(value: str) -> Concat:
    """``partial`` or ``final;<url> <url> ...``; a final upload names at least one partial."""
    text = value.strip(_OWS)
    if text == "partial":
        return Concat(is_partial=True)
    if text.startswith("final;"):
        urls = tuple(u for u in text[len("final;") :].split(" ") if u)
        if not urls:
            raise errors.InvalidConcat("Upload-Concat: final; must list at least one partial upload")
        if any(any(c in u for c in "\r\n\t,") for u in urls):
            raise errors.InvalidConcat()
        return Concat(is_partial=False, urls=urls)
    raise errors.InvalidConcat("Upload-Concat must be 'partial' or 'final;<url> ...'")


def parse_tus_resumable(value: str | None) -> str:
    """``Tus-Resumable`` must name a supported version ("Core Protocol"); else 412."""
    if value is None or value.strip(_OWS) not in spec.SUPPORTED_VERSIONS:
        raise errors.UnsupportedVersion(headers={spec.TUS_VERSION_HEADER: ",".join(spec.SUPPORTED_VERSIONS)})
    return value.strip(_OWS)


def is_offset_octet_stream(content_type: str | None) -> bool:
    """True when the media type (parameters ignored, case-insensitive) is offset+octet-stream."""
    if content_type is None:
        return False
    return content_type.split(";", 1)[0].strip(_OWS).lower() == spec.OFFSET_OCTET_STREAM


def format_http_date(epoch_seconds: float) -> str:
    """An RFC 9110 IMF-fixdate, as ``Upload-Expires`` requires ("Expiration")."""
    return format_datetime(datetime.fromtimestamp(epoch_seconds, UTC), usegmt=True)
