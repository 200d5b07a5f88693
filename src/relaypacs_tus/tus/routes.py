"""The only Starlette adapter for tus: parses requests into engine calls and errors into responses.

Routes: ``{base}`` (POST creation, OPTIONS) and ``{base}{id}`` (HEAD, PATCH, DELETE, OPTIONS).
``X-HTTP-Method-Override`` replaces the method ("Core Protocol": the actual method MUST be ignored).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import structlog
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from . import errors, headers, spec
from .engine import Creation, Engine, Outcome, Patch
from .events import HTTPRequest
from .store import UploadInfo

log = structlog.get_logger("relaypacs_tus.tus")

#: ASGI scope key where the auth layer leaves the authenticated principal (an opaque string).
PRINCIPAL_SCOPE_KEY = "relaypacs.principal"
#: ASGI scope key for a per-upload byte cap the auth layer imposes on creation (an int).
UPLOAD_CAP_SCOPE_KEY = "relaypacs.upload_max_size"
#: ASGI scope key for facts the auth layer wants kept with a new upload (UploadInfo.extra; a dict).
UPLOAD_EXTRA_SCOPE_KEY = "relaypacs.upload_extra"
Handler = Callable[[Request], Awaitable[Response]]
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


@dataclass(frozen=True, slots=True)
class ProxyTrust:
    """Which peers may set X-Forwarded-Proto/Host and Forwarded; nobody by default."""

    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    trust_all: bool = False

    @classmethod
    def parse(cls, spec_text: str) -> ProxyTrust:
        items = [s.strip() for s in spec_text.split(",") if s.strip()]
        if "*" in items:
            return cls(trust_all=True)
        return cls(networks=tuple(ipaddress.ip_network(i, strict=False) for i in items))

    def trusts(self, host: str | None) -> bool:
        if self.trust_all:
            return True
        if not host or not self.networks:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in net for net in self.networks)


class TusEndpoint:
    """Holds the engine and adapter settings; :meth:`routes` gives the Starlette routes."""

    def __init__(
        self, engine: Engine, *, base_path: str = "/files/", proxies: ProxyTrust | None = None
    ) -> None:
        self.engine = engine
        self.base_path = "/" + base_path.strip("/") + "/"
        self.proxies = proxies or ProxyTrust()

    def routes(self) -> list[Route]:
        # Every method reaches the dispatcher, which answers 405 itself (X-HTTP-Method-Override may turn a
        # POST into a PATCH, so Starlette's per-method routing cannot decide).
        methods = ["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS", "PUT"]
        return [
            Route(self.base_path, self._collection, methods=methods, name="tus_collection"),
            Route(self.base_path.rstrip("/"), self._collection, methods=methods),
            # ``path`` (not ``str``) so that ids with "/" ("../", "%2F") reach the engine and get its tus 404.
            Route(self.base_path + "{upload_id:path}", self._resource, methods=methods, name="tus_upload"),
        ]

    # -- dispatch --------------------------------------------------------------------------------------

    async def _collection(self, request: Request) -> Response:
        method = _method(request)
        handlers: dict[str, Handler] = {"POST": self._post, "OPTIONS": self._options}
        return await self._dispatch(request, method, handlers)

    async def _resource(self, request: Request) -> Response:
        method = _method(request)
        handlers: dict[str, Handler] = {
            "HEAD": self._head,
            "PATCH": self._patch,
            "DELETE": self._delete,
            "OPTIONS": self._options,
        }
        return await self._dispatch(request, method, handlers)

    async def _dispatch(self, request: Request, method: str, handlers: dict[str, Handler]) -> Response:
        try:
            handler = handlers.get(method)
            if handler is None:
                raise errors.MethodNotAllowed(headers={"Allow": ", ".join(handlers)})
            if method != "OPTIONS":
                headers.parse_tus_resumable(_single(request, spec.TUS_RESUMABLE))
            response = await handler(request)
        except errors.TusError as exc:
            response = self._error(exc, method)
            if exc.upload_id is not None and method == "POST":
                response.headers["Location"] = self._location(request, exc.upload_id)
        except ClientDisconnect:
            response = self._error(errors.ClientDisconnected(), method)
        response.headers[spec.TUS_RESUMABLE] = spec.TUS_VERSION
        return response

    def _error(self, exc: errors.TusError, method: str) -> Response:
        if exc.status >= 500:
            log.error("tus.error", code=exc.code, status=exc.status)
        body = getattr(exc, "body", None) or f"{exc.code}: {exc.message}\n"
        hdrs = dict(exc.headers)
        if isinstance(exc, errors.UnsupportedVersion):
            hdrs[spec.TUS_VERSION_HEADER] = ",".join(spec.SUPPORTED_VERSIONS)
        if method == "HEAD":
            return Response(status_code=exc.status, headers={**hdrs, "Cache-Control": "no-store"})
        hdrs.setdefault("Content-Type", "text/plain; charset=utf-8")
        return Response(body, status_code=exc.status, headers=hdrs)

    # -- handlers --------------------------------------------------------------------------------------

    async def _options(self, request: Request) -> Response:
        cfg = self.engine.config
        hdrs = {
            spec.TUS_VERSION_HEADER: ",".join(spec.SUPPORTED_VERSIONS),
            spec.TUS_EXTENSION: ",".join(cfg.extensions),
            spec.TUS_CHECKSUM_ALGORITHM: ",".join(spec.CHECKSUM_ALGORITHMS),
        }
        if cfg.max_size:
            hdrs[spec.TUS_MAX_SIZE] = str(cfg.max_size)
        return Response(status_code=204, headers=hdrs)

    async def _head(self, request: Request) -> Response:
        info = await self.engine.head(
            request.path_params["upload_id"], _hook_request(request), _principal(request)
        )
        hdrs = self._upload_headers(info)
        hdrs["Cache-Control"] = "no-store"
        return Response(status_code=200, headers=hdrs)

    async def _post(self, request: Request) -> Response:
        creation = self._parse_creation(request)
        outcome = await self.engine.create(creation, _hook_request(request), _principal(request))
        info = outcome.info
        hdrs = {"Location": self._location(request, info.id), **outcome.headers}
        if not info.is_final:
            hdrs[spec.UPLOAD_OFFSET] = str(info.offset)
        if info.concat_header:
            hdrs[spec.UPLOAD_CONCAT] = info.concat_header
        if info.expires_at is not None:
            hdrs[spec.UPLOAD_EXPIRES] = headers.format_http_date(info.expires_at)
        return Response(status_code=201, headers=hdrs)

    def _parse_creation(self, request: Request) -> Creation:
        h = request.headers
        length = _single(request, spec.UPLOAD_LENGTH)
        defer = _single(request, spec.UPLOAD_DEFER_LENGTH)
        creation = Creation(
            length=headers.parse_upload_length(length) if length is not None else None,
            deferred=headers.parse_defer_length(defer) if defer is not None else False,
            metadata=headers.parse_metadata(",".join(h.getlist(spec.UPLOAD_METADATA))),
            max_size=request.scope.get(UPLOAD_CAP_SCOPE_KEY),
            extra=dict(request.scope.get(UPLOAD_EXTRA_SCOPE_KEY) or {}),
        )
        concat = _single(request, spec.UPLOAD_CONCAT)
        if concat is not None:
            parsed = headers.parse_concat(concat)
            creation.partial = parsed.is_partial
            creation.final_of = tuple(self._id_from_url(u) for u in parsed.urls)
            creation.concat_header = concat.strip()
        if headers.is_offset_octet_stream(h.get("content-type")) and _has_body(request):
            creation.body = _stream(request)
            creation.content_length = _content_length(request)
            creation.checksum = _checksum(request)
        return creation

    async def _patch(self, request: Request) -> Response:
        h = request.headers
        if not headers.is_offset_octet_stream(h.get("content-type")):
            raise errors.InvalidContentType()
        offset = _single(request, spec.UPLOAD_OFFSET)
        if offset is None:
            raise errors.InvalidOffset("Upload-Offset is required")
        length = _single(request, spec.UPLOAD_LENGTH)
        patch = Patch(
            offset=headers.parse_upload_offset(offset),
            body=_stream(request),
            length=headers.parse_upload_length(length) if length is not None else None,
            content_length=_content_length(request),
            checksum=_checksum(request),
        )
        outcome = await self.engine.append(
            request.path_params["upload_id"], patch, _hook_request(request), _principal(request)
        )
        hdrs = {spec.UPLOAD_OFFSET: str(outcome.info.offset), **outcome.headers}
        if outcome.info.expires_at is not None:
            hdrs[spec.UPLOAD_EXPIRES] = headers.format_http_date(outcome.info.expires_at)
        return Response(status_code=204, headers=hdrs)

    async def _delete(self, request: Request) -> Response:
        await self.engine.terminate(
            request.path_params["upload_id"], _hook_request(request), _principal(request)
        )
        return Response(status_code=204)

    # -- helpers ---------------------------------------------------------------------------------------

    def _upload_headers(self, info: UploadInfo) -> dict[str, str]:
        hdrs: dict[str, str] = {}
        # "Concatenation": HEAD of a final upload SHOULD NOT carry Upload-Offset until it is concatenated.
        if not info.is_final or info.finished:
            hdrs[spec.UPLOAD_OFFSET] = str(info.offset)
        if info.size is not None:
            hdrs[spec.UPLOAD_LENGTH] = str(info.size)
        elif not info.is_final:
            hdrs[spec.UPLOAD_DEFER_LENGTH] = "1"
        if info.metadata_header:
            hdrs[spec.UPLOAD_METADATA] = info.metadata_header
        if info.concat_header:
            hdrs[spec.UPLOAD_CONCAT] = info.concat_header
        if info.expires_at is not None:
            hdrs[spec.UPLOAD_EXPIRES] = headers.format_http_date(info.expires_at)
        return hdrs

    def _location(self, request: Request, upload_id: str) -> str:
        scheme, host = request.url.scheme, request.headers.get("host", "")
        if self.proxies.trusts(request.client.host if request.client else None):
            scheme, host = _forwarded(request, scheme, host)
        if not _HOST.fullmatch(host):  # no usable Host: the address we listen on (never the bad value)
            server = request.scope.get("server") or ("localhost", None)
            host = f"{server[0]}:{server[1]}" if server[1] else str(server[0])
        root = request.scope.get("root_path", "").rstrip("/")
        return f"{scheme}://{host}{root}{self.base_path}{upload_id}"

    def _id_from_url(self, url: str) -> str:
        path = url.split("://", 1)[-1]
        path = path[path.find("/") :] if "://" in url else path
        marker = path.rfind(self.base_path)
        if marker < 0:
            raise errors.InvalidConcat("Upload-Concat names a URL that is not an upload of this server")
        return path[marker + len(self.base_path) :].split("?", 1)[0].strip("/")


def _method(request: Request) -> str:
    override = request.headers.get(spec.X_HTTP_METHOD_OVERRIDE)
    return (override or request.method).strip().upper()


def _single(request: Request, name: str) -> str | None:
    """A header that may appear once. Repeated lines that disagree are refused rather than guessed at
    (first or last?), which is how request smuggling between a proxy and a server starts."""
    values = request.headers.getlist(name)
    if len(set(values)) > 1:
        raise errors.InvalidHeader(f"{name} was sent more than once with different values")
    return values[0] if values else None


def _principal(request: Request) -> str | None:
    value = request.scope.get(PRINCIPAL_SCOPE_KEY)
    return str(value) if value is not None else None


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return (length is not None and length.strip() not in ("", "0")) or "chunked" in request.headers.get(
        "transfer-encoding", ""
    ).lower()


def _content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise errors.InvalidHeader("Content-Length must be an integer") from None


def _checksum(request: Request) -> headers.Checksum | None:
    value = _single(request, spec.UPLOAD_CHECKSUM)
    return headers.parse_checksum(value) if value is not None else None


async def _stream(request: Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except ClientDisconnect:
        raise errors.ClientDisconnected() from None


def _forwarded(request: Request, scheme: str, host: str) -> tuple[str, str]:
    """RFC 7239 ``Forwarded`` first, then ``X-Forwarded-Proto``/``X-Forwarded-Host`` (first hop)."""
    forwarded = request.headers.get("forwarded")
    if forwarded:
        first = forwarded.split(",", 1)[0]
        for pair in first.split(";"):
            key, _, value = pair.strip().partition("=")
            value = value.strip().strip('"')
            if key.lower() == "proto" and value in ("http", "https"):
                scheme = value
            elif key.lower() == "host" and value:
                host = value
        return scheme, host
    proto = request.headers.get("x-forwarded-proto", "").split(",", 1)[0].strip().lower()
    fwd_host = request.headers.get("x-forwarded-host", "").split(",", 1)[0].strip()
    return (proto if proto in ("http", "https") else scheme), (fwd_host or host)


def _hook_request(request: Request) -> HTTPRequest:
    """tusd's ``HTTPRequest`` for the hooks; built for every tus request, so from the raw scope."""
    header: dict[str, list[str]] = {}
    for key, value in request.scope["headers"]:
        header.setdefault(_canonical(key), []).append(value.decode("latin-1"))
    client = request.scope.get("client")
    path = request.scope["path"]  # ASGI: the full path, root_path included
    query = request.scope.get("query_string", b"").decode("latin-1")
    return HTTPRequest(
        method=_method(request),
        uri=path + (f"?{query}" if query else ""),
        remote_addr=f"{client[0]}:{client[1]}" if client else "",
        header=header,
    )


@functools.lru_cache(maxsize=512)
def _canonical(key: bytes) -> str:
    """``upload-offset`` -> ``Upload-Offset``, as Go's net/http names headers (tusd's hooks see those)."""
    return "-".join(p.capitalize() for p in key.decode("latin-1").split("-"))


__all__ = [
    "PRINCIPAL_SCOPE_KEY",
    "UPLOAD_CAP_SCOPE_KEY",
    "UPLOAD_EXTRA_SCOPE_KEY",
    "Outcome",
    "ProxyTrust",
    "TusEndpoint",
]
