"""Serves the built PWA (client/, ``npm run build``) at ``/``.

* Any GET for a page of the app (``/``, ``/progress``: no file extension, not an API path) answers with
  ``index.html``, so the app's own routes survive a reload (SPA fallback). A missing file or an unknown
  API path stays a 404: a tus client or a script must never receive the app's HTML.
* ``index.html``, ``sw.js`` and the other un-hashed files are ``Cache-Control: no-cache`` so a new
  release reaches phones; ``/assets/*`` (content-hashed names) are immutable for a year.
* Security headers on every answer: a Content-Security-Policy that allows only this origin (no inline
  script; images also from ``blob:``/``data:`` for Uppy's thumbnails), ``X-Content-Type-Options: nosniff``,
  ``Referrer-Policy: no-referrer`` (an upload link's URL never leaves the page), no framing.
* ``GET /app-config.json``: what the app needs to know about this server: the tus endpoint path and
  whether uploads need a bearer token (so it can ask for an upload link before anything is sent).

When the app has not been built, the server still starts; it logs ``pwa.not_built`` once and answers
``/`` with a 404 that says how to build it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import anyio
import structlog
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

log = structlog.get_logger("relaypacs_tus.web")

#: Where ``npm run build`` publishes the app inside the package (client/scripts/publish.mjs).
PACKAGED_WEB_DIR = Path(__file__).parent / "static"

#: Paths the server answers itself; never the app's HTML, whatever follows them.
DEFAULT_API_PREFIXES = ("/files/", "/uploads/", "/batches/", "/auth/", "/healthz", "/readyz", "/metrics")

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "worker-src 'self'",
        "manifest-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=(), payment=()",
}

NO_CACHE = "no-cache"
IMMUTABLE = "public, max-age=31536000, immutable"
NOT_BUILT = (
    "The RelayPACS web app is not installed on this server.\n"
    "Build it with `npm ci && npm run build` in client/, or point RELAYPACS_WEB_DIR at a built copy.\n"
)
_MEDIA_TYPES = {".webmanifest": "application/manifest+json", ".js": "text/javascript; charset=utf-8"}


def resolve_web_dir(configured: Path | None) -> Path:
    """The configured folder, else the one inside the installed package."""
    return configured if configured is not None else PACKAGED_WEB_DIR


def is_built(web_dir: Path) -> bool:
    return (web_dir / "index.html").is_file()


class PwaFiles(StaticFiles):
    """StaticFiles with the SPA fallback, cache policy and security headers described above."""

    def __init__(
        self,
        directory: Path,
        api_prefixes: Sequence[str] = DEFAULT_API_PREFIXES,
        csp: str = CONTENT_SECURITY_POLICY,
    ) -> None:
        super().__init__(directory=directory, check_dir=False, follow_symlink=False)
        self.root = directory
        self.api_prefixes = tuple(api_prefixes)
        self.csp = csp
        self._built = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._built:
            self._built = await anyio.to_thread.run_sync(is_built, self.root)
            if not self._built:
                response = PlainTextResponse(NOT_BUILT, status_code=404, headers=self.headers_for(NO_CACHE))
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    async def get_response(self, path: str, scope: Scope) -> Response:
        request_path: str = scope["path"]
        if request_path.startswith(self.api_prefixes) or request_path.rstrip("/") in self.api_prefixes:
            return self._plain("not found", 404)
        try:
            response = await super().get_response(path or "index.html", scope)
            served = path or "index.html"
        except HTTPException as exc:
            if exc.status_code != 404 or not self._is_page(request_path):
                text = "not found" if exc.status_code == 404 else str(exc.detail)
                return self._plain(text, exc.status_code)
            response = await super().get_response("index.html", scope)
            served = "index.html"
        response.headers.update(self.headers_for(IMMUTABLE if served.startswith("assets/") else NO_CACHE))
        suffix = Path(served).suffix
        if suffix in _MEDIA_TYPES and response.status_code == 200:
            response.headers["content-type"] = _MEDIA_TYPES[suffix]
        return response

    def headers_for(self, cache_control: str) -> dict[str, str]:
        return {**SECURITY_HEADERS, "Content-Security-Policy": self.csp, "Cache-Control": cache_control}

    def _plain(self, text: str, status: int) -> Response:
        return PlainTextResponse(text + "\n", status_code=status, headers=self.headers_for(NO_CACHE))

    @staticmethod
    def _is_page(request_path: str) -> bool:
        """A route of the app (``/progress``), not a file (``/icons/x.png``, ``/assets/x.js``)."""
        last = request_path.rstrip("/").rsplit("/", 1)[-1]
        return "." not in last and not request_path.startswith("/assets/")


def pwa_routes(
    web_dir: Path | None,
    *,
    tus_endpoint: str,
    auth_required: bool,
    csp: str = CONTENT_SECURITY_POLICY,
    api_prefixes: Sequence[str] = DEFAULT_API_PREFIXES,
) -> list[BaseRoute]:
    """Routes for the app; mount them LAST, since ``/`` matches every path the API routes did not."""
    root = resolve_web_dir(web_dir)
    prefixes = tuple(dict.fromkeys((*api_prefixes, "/" + tus_endpoint.strip("/") + "/")))
    if is_built(root):
        log.info("pwa.serving", web_dir=str(root))
    else:
        log.warning(
            "pwa.not_built",
            web_dir=str(root),
            hint="run `npm ci && npm run build` in client/, or set RELAYPACS_WEB_DIR to a built copy",
        )

    files = PwaFiles(root, prefixes, csp)

    async def app_config(request: Request) -> Response:
        body = {"tus_endpoint": tus_endpoint, "auth_required": auth_required}
        return JSONResponse(body, headers=files.headers_for(NO_CACHE))

    return [
        Route("/app-config.json", app_config, methods=["GET"], name="pwa_config"),
        Mount("/", app=files, name="pwa"),
    ]


__all__ = ["DEFAULT_API_PREFIXES", "PACKAGED_WEB_DIR", "PwaFiles", "pwa_routes", "resolve_web_dir"]
