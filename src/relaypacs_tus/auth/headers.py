"""Security headers on every response (pure ASGI): CSP, X-Content-Type-Options, Referrer-Policy,
X-Frame-Options, and HSTS when the request came over HTTPS (served by us, or by a trusted proxy)."""

from __future__ import annotations

from .middleware import ASGIApp, Message, Receive, Scope, Send


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, csp: str, hsts_max_age: int = 31536000) -> None:
        self.app = app
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
