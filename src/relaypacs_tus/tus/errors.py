"""The tus error catalogue: each error names its HTTP status, a stable code and a short message.

The HTTP adapter turns a :class:`TusError` into a response; nothing else decides a status. Codes follow
tusd's ``ERR_*`` names where tusd has one, so operators who know tusd recognise them.
"""

from __future__ import annotations


class TusError(Exception):
    """A request the protocol refuses. ``status`` is the HTTP status the client receives."""

    status: int = 500
    code: str = "ERR_INTERNAL_SERVER_ERROR"
    message: str = "internal server error"

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None) -> None:
        self.message = message or type(self).message
        self.headers: dict[str, str] = dict(headers or {})
        #: Set when the request created an upload before failing (creation-with-upload, concatenation),
        #: so the adapter can still send its Location and the client can resume it.
        self.upload_id: str | None = None
        super().__init__(self.message)


class InvalidHeader(TusError):
    """A tus header is malformed (400)."""

    status = 400
    code = "ERR_INVALID_HEADER"
    message = "invalid header"


class InvalidUploadLength(InvalidHeader):
    code = "ERR_INVALID_UPLOAD_LENGTH"
    message = "Upload-Length must be a non-negative integer"


class InvalidOffset(InvalidHeader):
    code = "ERR_INVALID_OFFSET"
    message = "Upload-Offset must be a non-negative integer"


class InvalidMetadata(InvalidHeader):
    code = "ERR_INVALID_METADATA"
    message = "Upload-Metadata is malformed"


class InvalidDeferLength(InvalidHeader):
    code = "ERR_INVALID_UPLOAD_DEFER_LENGTH"
    message = "Upload-Defer-Length must be 1"


class InvalidConcat(InvalidHeader):
    code = "ERR_INVALID_CONCAT"
    message = "Upload-Concat is malformed"


class InvalidChecksum(InvalidHeader):
    code = "ERR_INVALID_CHECKSUM"
    message = "Upload-Checksum is malformed"


class UnsupportedChecksumAlgorithm(InvalidHeader):
    """protocol.md "Checksum": an algorithm the server does not support gets 400."""

    code = "ERR_UNSUPPORTED_CHECKSUM_ALGORITHM"
    message = "unsupported checksum algorithm"


class LengthAlreadySet(InvalidHeader):
    code = "ERR_UPLOAD_LENGTH_ALREADY_SET"
    message = "Upload-Length was already set and cannot change"


class MissingLength(InvalidHeader):
    code = "ERR_MISSING_UPLOAD_LENGTH"
    message = "Upload-Length or Upload-Defer-Length: 1 is required"


class NotPartial(InvalidHeader):
    """A final upload names an upload that was not created with ``Upload-Concat: partial``."""

    code = "ERR_UPLOAD_NOT_PARTIAL"
    message = "Upload-Concat names an upload that is not a partial upload"


class Forbidden(TusError):
    status = 403
    code = "ERR_FORBIDDEN"
    message = "forbidden"


class ModifyFinal(Forbidden):
    """protocol.md "Concatenation": a PATCH to a final upload gets 403."""

    code = "ERR_MODIFY_FINAL"
    message = "a final upload cannot be modified"


class UploadNotFound(TusError):
    status = 404
    code = "ERR_UPLOAD_NOT_FOUND"
    message = "upload not found"


class MethodNotAllowed(TusError):
    status = 405
    code = "ERR_METHOD_NOT_ALLOWED"
    message = "method not allowed"


class RequestTimeout(TusError):
    """The client sent no body bytes within the network timeout; what arrived is kept."""

    status = 408
    code = "ERR_READ_TIMEOUT"
    message = "timeout while reading the request body"


class OffsetMismatch(TusError):
    """protocol.md "PATCH": Upload-Offset differs from the upload's offset (409)."""

    status = 409
    code = "ERR_MISMATCHED_OFFSET"
    message = "Upload-Offset does not match the upload's offset"


class UploadGone(TusError):
    """protocol.md "Expiration" / "Termination": the upload expired or was terminated (410)."""

    status = 410
    code = "ERR_UPLOAD_GONE"
    message = "upload expired or terminated"


class LengthRequired(TusError):
    status = 411
    code = "ERR_LENGTH_REQUIRED"
    message = "Upload-Length must be sent with the first PATCH of a deferred-length upload"


class UnsupportedVersion(TusError):
    """protocol.md "Tus-Resumable": 412, and the response carries Tus-Version."""

    status = 412
    code = "ERR_UNSUPPORTED_VERSION"
    message = "unsupported or missing Tus-Resumable version"


class MaxSizeExceeded(TusError):
    """protocol.md "Tus-Max-Size" / "creation": the upload is larger than the server allows (413)."""

    status = 413
    code = "ERR_MAX_SIZE_EXCEEDED"
    message = "upload is larger than the maximum size"


class UploadSizeExceeded(TusError):
    """More bytes than Upload-Length leaves room for (413); bytes before the excess are kept."""

    status = 413
    code = "ERR_UPLOAD_SIZE_EXCEEDED"
    message = "body exceeds the remaining Upload-Length"


class InvalidContentType(TusError):
    """protocol.md "PATCH": the body must be application/offset+octet-stream (415)."""

    status = 415
    code = "ERR_INVALID_CONTENT_TYPE"
    message = "Content-Type must be application/offset+octet-stream"


class UploadLocked(TusError):
    """Another request holds the upload and did not let go in time (423)."""

    status = 423
    code = "ERR_UPLOAD_LOCKED"
    message = "upload is in use by another request"


class ChecksumMismatch(TusError):
    """protocol.md "Checksum": 460; the chunk was discarded and the offset is unchanged."""

    status = 460
    code = "ERR_CHECKSUM_MISMATCH"
    message = "checksum mismatch; the chunk was discarded"


class UploadRejected(TusError):
    """A pre-* hook refused the request; its status and body reach the client unchanged."""

    status = 400
    code = "ERR_UPLOAD_REJECTED"
    message = "upload rejected by server"

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        body: str | None = None,
    ) -> None:
        super().__init__(message, headers=headers)
        if status is not None:
            self.status = status
        self.body = body


class UploadStopped(UploadRejected):
    code = "ERR_UPLOAD_STOPPED"
    message = "upload has been stopped by server"


class TerminationRejected(UploadRejected):
    code = "ERR_UPLOAD_TERMINATION_REJECTED"
    message = "upload termination has been rejected by server"


class ExtensionDisabled(TusError):
    status = 400
    code = "ERR_EXTENSION_DISABLED"
    message = "this extension is disabled on this server"


class HookFailed(TusError):
    """A blocking (pre-*) hook failed or timed out, so the request could not be decided (500, as tusd)."""

    status = 500
    code = "ERR_HOOK_FAILED"
    message = "a server hook failed; try again later"


class StoreUnavailable(TusError):
    """The storage backend failed; the client may retry (503)."""

    status = 503
    code = "ERR_STORE_UNAVAILABLE"
    message = "storage is unavailable; retry later"


class UploadInterrupted(TusError):
    """Another request for the same upload asked this one to let go; its bytes so far are kept."""

    status = 400
    code = "ERR_UPLOAD_INTERRUPTED"
    message = "upload has been interrupted by another request for this upload"


class ClientDisconnected(TusError):
    """The client went away mid-body; what arrived is kept (unless a checksum was sent)."""

    status = 400
    code = "ERR_CLIENT_DISCONNECTED"
    message = "client disconnected before the body was complete"
