"""Names and constants of the tus 1.0.0 protocol.

Every value here is quoted from the tus resumable upload protocol, version 1.0.0 (``protocol.md``);
section names are given in the comments so a reader can check them.
"""

from __future__ import annotations

from typing import Final

#: "Core Protocol / Headers / Tus-Resumable": the version this server speaks.
TUS_VERSION: Final = "1.0.0"
#: "Tus-Version": the versions supported, in order of preference.
SUPPORTED_VERSIONS: Final = (TUS_VERSION,)

#: "Core Protocol / Requests / PATCH": the only media type a PATCH body may have.
OFFSET_OCTET_STREAM: Final = "application/offset+octet-stream"

# Header names, spelled as protocol.md spells them.
TUS_RESUMABLE: Final = "Tus-Resumable"
TUS_VERSION_HEADER: Final = "Tus-Version"
TUS_EXTENSION: Final = "Tus-Extension"
TUS_MAX_SIZE: Final = "Tus-Max-Size"
TUS_CHECKSUM_ALGORITHM: Final = "Tus-Checksum-Algorithm"
UPLOAD_OFFSET: Final = "Upload-Offset"
UPLOAD_LENGTH: Final = "Upload-Length"
UPLOAD_DEFER_LENGTH: Final = "Upload-Defer-Length"
UPLOAD_METADATA: Final = "Upload-Metadata"
UPLOAD_EXPIRES: Final = "Upload-Expires"
UPLOAD_CHECKSUM: Final = "Upload-Checksum"
UPLOAD_CONCAT: Final = "Upload-Concat"
X_HTTP_METHOD_OVERRIDE: Final = "X-HTTP-Method-Override"

# Extension names ("Protocol Extensions").
CREATION: Final = "creation"
CREATION_WITH_UPLOAD: Final = "creation-with-upload"
CREATION_DEFER_LENGTH: Final = "creation-defer-length"
EXPIRATION: Final = "expiration"
CHECKSUM: Final = "checksum"
CHECKSUM_TRAILER: Final = "checksum-trailer"
TERMINATION: Final = "termination"
CONCATENATION: Final = "concatenation"
CONCATENATION_UNFINISHED: Final = "concatenation-unfinished"

#: The extensions this engine implements, in the order they are advertised. ``checksum-trailer`` is
#: absent on purpose: ASGI servers (uvicorn) do not pass request trailers to the application.
IMPLEMENTED_EXTENSIONS: Final = (
    CREATION,
    CREATION_WITH_UPLOAD,
    CREATION_DEFER_LENGTH,
    EXPIRATION,
    CHECKSUM,
    TERMINATION,
    CONCATENATION,
    CONCATENATION_UNFINISHED,
)

#: "Checksum / Tus-Checksum-Algorithm": sha1 MUST be supported; the others are the IANA "Hash Function
#: Textual Names" that clients (tuspy, tus-java-client) send.
CHECKSUM_ALGORITHMS: Final = ("sha1", "sha256", "sha512", "md5", "crc32")

#: "Checksum": the status for a checksum mismatch; it has no reason phrase in RFC 9110.
STATUS_CHECKSUM_MISMATCH: Final = 460

#: Largest Upload-Length / Upload-Offset accepted: a signed 64-bit integer, as tusd and S3 allow.
MAX_INT64: Final = 2**63 - 1
