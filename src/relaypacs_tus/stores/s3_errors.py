"""Translate botocore / aiohttp failures into the tus error catalogue, at the store's boundary.

Only two outcomes reach the engine: "it is not there" (the caller names the error: UploadNotFound,
KeyError, ...) and :class:`errors.StoreUnavailable` (503, the client may retry) for everything else:
connection failures, timeouts, 5xx, throttling, and refusals that mean the store is misconfigured
(AccessDenied, NoSuchBucket). Each is logged with the S3 error code only, never object contents.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import aiohttp
import structlog
from botocore.exceptions import BotoCoreError, ClientError

from ..tus import errors

log = structlog.get_logger("relaypacs_tus.stores.s3")

#: Error codes S3 servers use for "no such object" (HEAD answers a bare 404).
NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
NO_SUCH_UPLOAD = "NoSuchUpload"
#: A conditional write lost (If-None-Match / If-Match).
PRECONDITION_FAILED = frozenset({"PreconditionFailed", "412"})


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def http_status(exc: ClientError) -> int | None:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None


class BucketUnavailable(errors.StoreUnavailable):
    """The configured bucket is missing or not ours; raised when the store opens."""


@contextlib.contextmanager
def translated(
    action: str,
    *,
    missing: Callable[[], Exception] | None = None,
    codes: frozenset[str] = NOT_FOUND,
) -> Iterator[None]:
    """Run S3 calls; "not found" (any of ``codes``) becomes ``missing()`` if given, all else 503."""
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        if missing is not None and code in codes:
            raise missing() from exc
        log.warning("s3.request_failed", action=action, code=code, status=http_status(exc))
        raise errors.StoreUnavailable() from exc
    except (BotoCoreError, aiohttp.ClientError, TimeoutError, OSError) as exc:
        log.warning("s3.unreachable", action=action, error=type(exc).__name__)
        raise errors.StoreUnavailable() from exc
