"""Pure-ASGI authentication and limits in front of the tus endpoint and the status and token APIs.

Per request on a protected path: verify the bearer token (401/403 on failure, with ``Tus-Resumable`` and
``WWW-Authenticate``, never a trace), set ``scope["relaypacs.principal"]``; on creation, apply rate limits
(429 + Retry-After) and, with an upload token, take one use from it and set the per-upload byte cap and
the facts kept with the upload (contracts.md section 5); on PATCH, cap concurrent uploads per principal and
throttle body bytes per principal and per client address. Public paths (health, the PWA's files) and
OPTIONS (tus discovery; CORS preflights are answered further out) pass untouched.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import anyio
import structlog

from ..coordination.base import ConcurrencyLimiter, RateLimiter
from ..tus.routes import PRINCIPAL_SCOPE_KEY, UPLOAD_CAP_SCOPE_KEY, UPLOAD_EXTRA_SCOPE_KEY, ProxyTrust
from .policy import Authenticator, Limits, Rate, Route
from .registry import LimitExceeded, Reservation
from .tokens import AuthError, Identity

log = structlog.get_logger("relaypacs_tus.auth")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Audit = Callable[[str, dict[str, object]], Awaitable[None]]

IDENTITY_SCOPE_KEY = "relaypacs.identity"
REALM = "relaypacs-tus"


@dataclass(slots=True)
class AuthState:
    """What the middleware uses, filled in by the app's lifespan (which owns the clients behind it).
    Until ``ready``, protected requests get 503. ``authenticator`` None means authentication is off."""

    limiter: RateLimiter
    slots: ConcurrencyLimiter
    authenticator: Authenticator | None = None
    audit: Audit | None = None
    ready: bool = False


class AuthMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        state: AuthState,
        enabled: bool = True,
        base_path: str = "/files/",
        limits: Limits | None = None,
        protected_prefixes: tuple[str, ...] = ("/uploads/", "/batches/"),
        proxies: ProxyTrust | None = None,
    ) -> None:
        self.app = app
        self.state = state
        self.enabled = enabled
        self.base = "/" + base_path.strip("/") + "/"
        self.limits = limits or Limits()
        self.protected = protected_prefixes
        self.proxies = proxies or ProxyTrust()

    @property
    def authenticator(self) -> Authenticator | None:
        return self.state.authenticator if self.enabled else None

    @property
    def limiter(self) -> RateLimiter:
        return self.state.limiter

    @property
    def slots(self) -> ConcurrencyLimiter:
        return self.state.slots

    @property
    def audit(self) -> Audit | None:
        return self.state.audit

    # -- routing ---------------------------------------------------------------------------------------

    def classify(self, scope: Scope) -> Route:
        path, method = str(scope["path"]), _method(scope)
        if path in (self.base, self.base.rstrip("/")):
            return Route.PUBLIC if method == "OPTIONS" else Route.CREATE if method == "POST" else Route.UPLOAD
        if path.startswith(self.base):
            return Route.PUBLIC if method == "OPTIONS" else Route.UPLOAD
        if path.startswith(self.protected):
            return Route.STATUS
        if path.rstrip("/") == "/auth/upload-tokens/current":
            return Route.CURRENT
        if path == "/auth" or path.startswith("/auth/"):
            return Route.ISSUE
        return Route.PUBLIC

    # -- ASGI ------------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = self.classify(scope)
        if route is Route.PUBLIC:
            await self.app(scope, receive, send)
            return
        address = _client(scope, self.proxies)
        if not self.state.ready or (self.enabled and self.state.authenticator is None):
            await _respond(scope, send, 503, {"error": "starting", "message": "The server is starting."},
                           {"retry-after": "1"})  # fmt: skip
            return
        try:
            identity = await self._identify(scope, route)
        except AuthError as exc:
            await self._refuse_auth(scope, send, exc, route, address)
            return
        principal = identity.principal if identity else None
        scope[PRINCIPAL_SCOPE_KEY] = principal
        scope[IDENTITY_SCOPE_KEY] = identity
        await self._limited(scope, receive, send, route, identity, address)

    async def _identify(self, scope: Scope, route: Route) -> Identity | None:
        if self.authenticator is None:
            if route in (Route.ISSUE, Route.CURRENT):
                raise AuthError(
                    "auth_off", "Upload links are not available: authentication is off.", status=404
                )
            return None
        return await self.authenticator.identify(_header(scope, b"authorization"), route)

    async def _limited(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        route: Route,
        identity: Identity | None,
        address: str,
    ) -> None:
        subject = identity.principal if identity else f"address:{address}"
        streaming = _method(scope) == "PATCH" or (route is Route.CREATE and _has_body(scope))
        # Issuing upload links counts like creating uploads: a stolen caller token cannot mint without end.
        creates = route is Route.CREATE or (route is Route.ISSUE and _method(scope) == "POST")
        wait = await self._creation_wait(subject, address) if creates else 0.0
        if not wait and streaming:
            wait = await self._bytes_debt(subject, address)
        if wait:
            await self._too_many(scope, send, wait, subject, address, "rate")
            return
        # Concurrent uploads are capped per principal; with auth off there is none (an address may be a
        # whole clinic behind one NAT), and the per-address rates still apply.
        async with self._slot(identity.principal if streaming and identity else None) as granted:
            if not granted:
                await self._too_many(scope, send, 1.0, subject, address, "concurrent_uploads")
                return
            try:
                reservation = await self._reserve(scope, route, identity)
            except (AuthError, LimitExceeded) as exc:
                await self._refuse_reservation(scope, send, exc, route, address, identity)
                return
            status: dict[str, Any] = {}
            try:
                body = self._throttled(receive, subject, address) if streaming else receive
                await self.app(scope, body, _watch(send, status))
            finally:
                if reservation is not None:
                    with anyio.CancelScope(shield=True):
                        await self._settle(reservation, status)

    @contextlib.asynccontextmanager
    async def _slot(self, subject: str | None) -> AsyncIterator[bool]:
        """One of the principal's concurrent-upload slots (always granted when not capped)."""
        cap = self.limits.concurrent_per_principal
        if subject is None or not cap:
            yield True
            return
        key = f"uploads:{subject}"
        if not await self.slots.acquire(key, cap):
            yield False
            return
        try:
            yield True
        finally:
            with anyio.CancelScope(shield=True):
                await self.slots.release(key)

    # -- upload tokens ---------------------------------------------------------------------------------

    async def _reserve(self, scope: Scope, route: Route, identity: Identity | None) -> Reservation | None:
        if (
            route is not Route.CREATE
            or identity is None
            or identity.kind != "upload"
            or self.authenticator is None
        ):
            return None
        if (_header(scope, b"upload-concat") or "").strip().lower().startswith("final"):
            return None  # joins this token's own partial uploads: no new bytes, no new use
        length = _header(scope, b"upload-length")
        declared = int(length) if length is not None and length.strip().isdigit() else None
        assert identity.token_id is not None
        reservation = await self.authenticator.uploads.reserve(identity.token_id, declared)
        if reservation.upload_cap is not None:
            scope[UPLOAD_CAP_SCOPE_KEY] = reservation.upload_cap
        scope[UPLOAD_EXTRA_SCOPE_KEY] = reservation.extra
        return reservation

    async def _settle(self, reservation: Reservation, status: dict[str, Any]) -> None:
        assert self.authenticator is not None
        tokens = self.authenticator.uploads
        location, code = status.get("location"), int(status.get("status") or 500)
        try:
            if location:  # the upload exists, even if a creation-with-upload body then failed (460, 413...)
                await tokens.attach(reservation.token_id, str(location).rstrip("/").rsplit("/", 1)[-1])
            elif 400 <= code < 500:  # refused before anything was created: the use is given back
                await tokens.cancel(reservation)
            # A 5xx without Location may still have created the upload: the use stays taken.
        except Exception:  # bookkeeping must not turn a finished request into an error
            log.exception("auth.token_settle_failed", token_id=reservation.token_id)

    # -- limits ----------------------------------------------------------------------------------------

    async def _creation_wait(self, subject: str, address: str) -> float:
        waits = []
        for key, rate in ((f"create:{subject}", self.limits.creates_per_principal),
                          (f"create-addr:{address}", self.limits.creates_per_address)):  # fmt: skip
            if rate is not None:
                waits.append(await self.limiter.hit(key, 1, rate=rate.per_second, burst=rate.burst))
        return max(waits, default=0.0)

    def _byte_buckets(self, subject: str, address: str) -> list[tuple[str, Rate]]:
        pairs = ((f"bytes:{subject}", self.limits.bytes_per_principal),
                 (f"bytes-addr:{address}", self.limits.bytes_per_address))  # fmt: skip
        return [(k, r) for k, r in pairs if r is not None]

    async def _bytes_debt(self, subject: str, address: str) -> float:
        waits = [await self.limiter.hit(k, 0, rate=r.per_second, burst=r.burst)
                 for k, r in self._byte_buckets(subject, address)]  # fmt: skip
        debt = max(waits, default=0.0)
        return debt if debt > self.limits.max_debt_seconds else 0.0

    def _throttled(self, receive: Receive, subject: str, address: str) -> Receive:
        buckets = self._byte_buckets(subject, address)
        if not buckets:
            return receive

        async def throttled() -> Message:
            message = await receive()
            size = len(message.get("body", b"")) if message["type"] == "http.request" else 0
            if size:
                waits = [
                    await self.limiter.debit(k, size, rate=r.per_second, burst=r.burst) for k, r in buckets
                ]
                if max(waits):
                    await anyio.sleep(max(waits))
            return message

        return throttled

    # -- refusals --------------------------------------------------------------------------------------

    async def _refuse_auth(
        self, scope: Scope, send: Send, exc: AuthError, route: Route, address: str
    ) -> None:
        log.info("auth.refused", code=exc.code, route=route.value, method=_method(scope), client=address)
        await self._audit_failure(
            "auth.failure",
            address,
            {"code": exc.code, "route": route.value, "method": _method(scope), "client": address},
        )
        if exc.status == 404:
            await _respond(scope, send, 404, {"error": "not_found", "message": exc.message})
            return
        www = f'Bearer realm="{REALM}", error="{exc.bearer_error}", error_description="{exc.code}"'
        error = "insufficient_scope" if exc.status == 403 else "invalid_token"
        await _respond(scope, send, exc.status, {"error": error, "message": exc.message},
                       {"www-authenticate": www})  # fmt: skip

    async def _refuse_reservation(
        self, scope: Scope, send: Send, exc: Exception, route: Route, address: str, identity: Identity | None
    ) -> None:
        if isinstance(exc, AuthError):
            exc_token = identity.token_id if identity else None
            log.info("auth.token_refused", code=exc.code, token_id=exc_token, client=address)
            await self._audit_failure(
                "auth.failure",
                address,
                {
                    "code": exc.code,
                    "route": route.value,
                    "token_id": exc_token,
                    "client": address,
                    "principal": identity.principal if identity else None,
                },
            )
            www = f'Bearer realm="{REALM}", error="invalid_token", error_description="{exc.code}"'
            await _respond(scope, send, 401, {"error": "invalid_token", "message": exc.message},
                           {"www-authenticate": www})  # fmt: skip
            return
        await self._audit_failure(
            "upload.rejected",
            address,
            {
                "code": "token_byte_cap",
                "client": address,
                "principal": identity.principal if identity else None,
            },
        )
        await _respond(scope, send, 413, {"error": "too_large", "message": str(exc)})

    async def _too_many(
        self, scope: Scope, send: Send, wait: float, subject: str, address: str, kind: str
    ) -> None:
        retry = max(1, math.ceil(wait))
        log.info("limit.exceeded", limit=kind, principal=subject, client=address, retry_after=retry)
        await self._audit_failure(
            "limit.exceeded", address, {"limit": kind, "principal": subject, "client": address}
        )
        await _respond(scope, send, 429, {"error": "rate_limited",
                                          "message": f"Too many requests; retry in {retry} s."},
                       {"retry-after": str(retry)})  # fmt: skip

    async def _audit_failure(self, event: str, address: str, fields: dict[str, object]) -> None:
        """Failures are audited, but at most ~1/s per client address: an attacker must not be able to
        grow the audit log without bound."""
        if self.audit is None:
            return
        if await self.limiter.hit(f"audit:{address}", 1, rate=1.0, burst=20.0):
            log.info("audit.suppressed", audit_event=event, client=address)
            return
        try:
            await self.audit(event, {k: v for k, v in fields.items() if v is not None})
        except Exception:
            log.exception("audit.write_failed", audit_event=event)


# -- helpers -------------------------------------------------------------------------------------------


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _method(scope: Scope) -> str:
    override = _header(scope, b"x-http-method-override")
    return (override or str(scope.get("method", "GET"))).strip().upper()


def _client(scope: Scope, proxies: ProxyTrust) -> str:
    """The client's address: the peer, or, when the peer is a trusted proxy, the nearest address in
    ``X-Forwarded-For`` (or RFC 7239 ``Forwarded: for=``) that is not itself a trusted proxy."""
    client = scope.get("client")
    peer = str(client[0]) if client else "unknown"
    if not proxies.trusts(peer):
        return peer
    forwarded = _header(scope, b"x-forwarded-for") or ""
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    if not hops:
        rfc = _header(scope, b"forwarded") or ""
        hops = [p.split("=", 1)[1].strip('"[] ') for part in rfc.split(",") for p in part.split(";")
                if p.strip().lower().startswith("for=")]  # fmt: skip
    for hop in reversed(hops):
        if not proxies.trusts(hop):
            return hop
    return hops[0] if hops else peer


def _has_body(scope: Scope) -> bool:
    length = (_header(scope, b"content-length") or "").strip()
    return (bool(length) and length != "0") or "chunked" in (
        _header(scope, b"transfer-encoding") or ""
    ).lower()


def _watch(send: Send, status: dict[str, Any]) -> Send:
    async def watched(message: Message) -> None:
        if message["type"] == "http.response.start":
            status["status"] = message["status"]
            for key, value in message.get("headers", ()):
                if bytes(key).lower() == b"location":
                    status["location"] = bytes(value).decode("latin-1")
        await send(message)

    return watched


async def _respond(scope: Scope, send: Send, status: int, body: dict[str, str],
                   headers: dict[str, str] | None = None) -> None:  # fmt: skip
    data = b"" if _method(scope) == "HEAD" else json.dumps(body).encode()
    hdrs = {"content-type": "application/json", "cache-control": "no-store", "tus-resumable": "1.0.0",
            "content-length": str(len(data)), **(headers or {})}  # fmt: skip
    await send({"type": "http.response.start", "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in hdrs.items()]})  # fmt: skip
    with contextlib.suppress(OSError):
        await send({"type": "http.response.body", "body": data})
