"""Security headers on every response (pure ASGI): CSP, X-Content-Type-Options, Referrer-Policy,
X-Frame-Options, and HSTS when the request came over HTTPS (served by us, or by a trusted proxy).

Also the exact bound on a request's header block: h11's ``max_incomplete_event_size`` only bounds what
it buffers per read, so a block up to about twice that size gets through; this answers it 431
(RFC 6585 section 5) before any other layer parses a header."""

from __future__ import annotations

from .middleware import ASGIApp, Message, Receive, Scope, Send


class SecurityHeaders:
    def __init__(
        self, app: ASGIApp, *, csp: str, hsts_max_age: int = 31536000, max_header_size: int = 0
    ) -> None:
        self.app = app
        self.max_header_size = max_header_size
        self.fixed = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
        ]
        if csp:
            self.fixed.append((b"content-security-policy", csp.encode("latin-1")))
        self.hsts = f"max-age={hsts_max_age}; includeSubDomains".encode() if hsts_max_age > 0 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.max_header_size and _header_bytes(scope) > self.max_header_size:
            await _too_large(send, self.fixed)
            return
        extra = list(self.fixed)
        if self.hsts is not None and scope.get("scheme") == "https":
            extra.append((b"strict-transport-security", self.hsts))

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {bytes(k).lower() for k, _ in message.get("headers", ())}
                added = [(k, v) for k, v in extra if k not in present]
                message["headers"] = [*message.get("headers", ()), *added]
            await send(message)

        await self.app(scope, receive, with_headers)


def _header_bytes(scope: Scope) -> int:
    return sum(len(k) + len(v) + 4 for k, v in scope.get("headers", ()))


async def _too_large(send: Send, headers: list[tuple[bytes, bytes]]) -> None:
    body = b'{"error": "headers_too_large", "message": "The request headers are too large."}'
    await send({"type": "http.response.start", "status": 431, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"tus-resumable", b"1.0.0"), (b"connection", b"close"), *headers,
    ]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})
