"""Token endpoints (contracts.md section 5).

``POST /auth/upload-tokens``: a caller JWT with the issuing role gets a scoped, short-lived upload token
and a link for the PWA. ``GET /auth/upload-tokens/current``: the PWA, holding an upload token, reads its
limits and binding to pre-fill and lock its form. The middleware has already authenticated both.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .middleware import IDENTITY_SCOPE_KEY
from .registry import TokenRequest, TokenRequestError, UploadTokens, rfc3339
from .tokens import AuthError, Identity

log = structlog.get_logger("relaypacs_tus.auth")

Audit = Callable[[str, dict[str, object]], Awaitable[None]]
MAX_BODY = 16 * 1024


class TokenEndpoints:
    def __init__(
        self,
        tokens: Callable[[], UploadTokens],
        *,
        base_path: str = "/files/",
        public_url: str = "",
        audit: Callable[[], Audit | None] = lambda: None,
    ) -> None:
        self._tokens = tokens  # the lifespan builds the registry; routes exist before it
        self.base_path = "/" + base_path.strip("/") + "/"
        self.public_url = public_url.rstrip("/")
        self._audit = audit

    def routes(self) -> list[Route]:
        return [
            Route("/auth/upload-tokens", self.issue, methods=["POST"], name="upload_tokens"),
            Route("/auth/upload-tokens/current", self.current, methods=["GET"], name="upload_token_current"),
        ]

    async def issue(self, request: Request) -> Response:
        identity = _identity(request)
        try:
            body = await _json_body(request)
            token_request = TokenRequest.parse(body, self._tokens().policy)
        except TokenRequestError as exc:
            return _error(400, "invalid_request", str(exc))
        issued = await self._tokens().issue(token_request, identity.principal)
        log.info("auth.token_issued", token_id=issued.token_id, principal=identity.principal)
        audit = self._audit()
        if audit is not None:
            await audit(
                "token.issued",
                {
                    "principal": identity.principal,
                    "token_id": issued.token_id,
                    "max_uploads": issued.max_uploads,
                    "expires_at": rfc3339(issued.expires_at),
                    "bound": token_request.binding is not None,
                    "destinations": list(token_request.destinations or ()) or None,
                    "client": _client(request),
                    "max_bytes_per_upload": token_request.max_bytes_per_upload,
                },
            )
        root = self.public_url or str(request.base_url).rstrip("/")
        payload = {
            "token": issued.token, "token_id": issued.token_id, "expires_at": rfc3339(issued.expires_at),
            "max_uploads": issued.max_uploads, "upload_url": root + self.base_path,
            "link": f"{root}/#token={issued.token}",
        }  # fmt: skip
        return JSONResponse(payload, status_code=201, headers={"Cache-Control": "no-store"})

    async def current(self, request: Request) -> Response:
        identity = _identity(request)
        assert identity.token_id is not None
        try:
            view = await self._tokens().describe(identity.token_id)
        except AuthError as exc:
            return _error(401, "invalid_token", exc.message)
        return JSONResponse(view, headers={"Cache-Control": "no-store"})


def _identity(request: Request) -> Identity:
    identity = request.scope.get(IDENTITY_SCOPE_KEY)
    if not isinstance(identity, Identity):  # the middleware is missing: refuse rather than serve
        raise RuntimeError("token endpoints need the auth middleware in front of them")
    return identity


async def _json_body(request: Request) -> dict[str, object]:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise TokenRequestError("request body is too large")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise TokenRequestError("request body must be JSON") from None
    if not isinstance(body, dict):
        raise TokenRequestError("request body must be a JSON object")
    return body


def _error(status: int, error: str, message: str) -> Response:
    return JSONResponse({"error": error, "message": message}, status_code=status)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"
