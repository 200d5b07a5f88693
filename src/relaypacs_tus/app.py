"""Wiring: ``create_app(settings)`` builds the Starlette app. Only this module (and the CLI) imports every
layer. The lifespan owns every client (S3, background tasks) and closes them on shutdown.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyio
import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import __version__
from .audit.hooks import AuditingHooks, upload_fields
from .auth.headers import SecurityHeaders
from .auth.middleware import AuthMiddleware, AuthState
from .auth.registry import UploadTokens
from .auth.routes import TokenEndpoints
from .hooks.config import PipelineConfig
from .hooks.runner import parse_events
from .hooks.service import HookConfig, open_hook_service
from .security import limits, new_state, open_security, proxies
from .settings import Settings
from .tus import errors, spec
from .tus.engine import Engine, EngineConfig
from .tus.events import Hooks
from .tus.locks import MemoryLocker
from .tus.routes import ProxyTrust, TusEndpoint
from .tus.store import UploadStore
from .web.pwa import pwa_routes
from .web.status import StatusApi

log = structlog.get_logger("relaypacs_tus.app")

#: Request headers a browser tus client sends (Uppy/tus-js-client) and our auth needs.
CORS_ALLOW_HEADERS = [
    "Authorization", "Content-Type", "Tus-Resumable", "Upload-Length", "Upload-Offset", "Upload-Metadata",
    "Upload-Defer-Length", "Upload-Concat", "Upload-Checksum", "X-HTTP-Method-Override", "X-Requested-With",
]  # fmt: skip
#: Response headers a browser client must be able to read.
CORS_EXPOSE_HEADERS = [
    "Location", "Upload-Offset", "Upload-Length", "Upload-Metadata", "Upload-Expires", "Upload-Defer-Length",
    "Upload-Concat", "Tus-Version", "Tus-Resumable", "Tus-Extension", "Tus-Max-Size",
    "Tus-Checksum-Algorithm", "Retry-After", "WWW-Authenticate",
]  # fmt: skip


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        max_size=settings.max_size,
        expiration=float(settings.expiration),
        network_timeout=settings.network_timeout,
        enable_termination=settings.enable_termination,
        enable_concatenation=settings.enable_concatenation,
    )


@contextlib.asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[UploadStore]:
    """The configured store, closed on exit."""
    if settings.store == "s3":
        from .stores.s3 import S3Store

        async with S3Store.open(
            bucket=settings.s3_bucket,
            prefix=settings.s3_prefix,
            endpoint_url=settings.s3_endpoint or None,
            region=settings.s3_region or None,
            part_size=settings.s3_part_size,
        ) as s3:
            yield s3
        return
    from .stores.local import LocalStore

    local = LocalStore(settings.data_dir / "uploads", inline_io=settings.local_inline_io)
    try:
        yield local
    finally:
        await local.aclose()


def hook_config(settings: Settings) -> HookConfig:
    """Hooks and the DICOM pipeline from settings (the pipeline only when enabled)."""
    pipeline = None
    if settings.pipeline_enabled:
        sop_classes = frozenset(u.strip() for u in settings.allowed_sop_classes.split(",") if u.strip())
        pipeline = PipelineConfig(
            work_dir=settings.data_dir / "work",
            allowed_sop_classes=sop_classes or None,
            org_root=settings.org_root or None,
            max_attempts=settings.delivery_max_attempts,
            backoff=settings.delivery_backoff,
            backoff_max=settings.delivery_backoff_max,
            concurrency=settings.pipeline_concurrency,
        )
    return HookConfig(
        hooks_dir=settings.hooks_dir,
        hooks_http=settings.hooks_http,
        enabled_events=parse_events(settings.hooks_enabled_events),
        timeout=settings.hooks_timeout,
        http_retry=settings.hooks_http_retry,
        http_backoff=settings.hooks_http_backoff,
        pipeline=pipeline,
        destinations=settings.destinations,
        rescan_interval=settings.pipeline_rescan_interval,
    )


class Runtime:
    """What the lifespan builds; routes reach the engine through it once start-up has finished."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.ready = False


def create_app(settings: Settings) -> Starlette:
    runtime = Runtime()
    endpoint = _LateEndpoint(runtime, settings)
    status = StatusApi()
    auth_state = new_state()
    token_endpoints = TokenEndpoints(
        lambda: _uploads(auth_state), base_path=settings.base_path, public_url=settings.public_url,
        audit=lambda: auth_state.audit,
    )  # fmt: skip

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with (
            open_store(settings) as store,
            open_security(settings, store, auth_state),
            open_hook_service(store, hook_config(settings), audit=auth_state.audit) as hook_service,
            anyio.create_task_group() as tg,
        ):
            hooks: Hooks = hook_service.hooks
            if auth_state.audit is not None:  # records the upload lifecycle, then defers to the hooks
                hashing = settings.audit_hash_uploads
                hooks = AuditingHooks(hooks, auth_state.audit, store, hash_uploads=hashing)
            engine = Engine(
                store,
                config=engine_config(settings),
                locker=MemoryLocker(acquire_timeout=settings.lock_timeout),
                hooks=hooks,
                spawn=lambda job: tg.start_soon(job),
            )
            status.bind(store, hook_service.records)
            runtime.engine = engine
            endpoint.bind(engine)
            tg.start_soon(_sweeper, engine, settings.sweep_interval, auth_state)
            runtime.ready = True
            log.info("server.started", store=store.name, base_path=settings.base_path, version=__version__)
            try:
                yield
            finally:
                runtime.ready = False
                tg.cancel_scope.cancel()
        log.info("server.stopped")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__})

    async def readyz(request: Request) -> Response:
        if not runtime.ready or runtime.engine is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        try:
            await runtime.engine.store.get("0" * 32)
        except errors.UploadNotFound:
            pass
        except errors.TusError:
            return JSONResponse({"status": "store unavailable"}, status_code=503)
        return JSONResponse({"status": "ready"})

    routes = [Route("/healthz", healthz), Route("/readyz", readyz), *status.routes(), *endpoint.routes()]
    routes += token_endpoints.routes()
    # The PWA LAST: it is mounted at / and would shadow any route added after it.
    pwa = pwa_routes(
        settings.web_dir,
        tus_endpoint=settings.base_path,
        auth_required=settings.auth != "off",
        csp=settings.content_security_policy,
    )
    return Starlette(routes=[*routes, *pwa], middleware=_middleware(settings, auth_state), lifespan=lifespan)


def _uploads(state: AuthState) -> UploadTokens:
    if state.authenticator is None:
        raise RuntimeError("upload tokens need RELAYPACS_AUTH=jwt")
    return state.authenticator.uploads


def _middleware(settings: Settings, auth_state: AuthState) -> list[Middleware]:
    """Outermost first: security headers on every answer; CORS outside auth (preflights need no token,
    and 401/429 answers still carry CORS headers a browser needs to read them); then auth and limits."""
    stack = [
        Middleware(
            SecurityHeaders,
            csp=settings.content_security_policy,
            hsts_max_age=settings.hsts_max_age,
            max_header_size=settings.max_header_size,
        )
    ]
    auth = Middleware(
        AuthMiddleware, state=auth_state, enabled=settings.auth == "jwt", base_path=settings.base_path,
        limits=limits(settings), proxies=proxies(settings),
    )  # fmt: skip
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if not origins:
        return [*stack, auth]
    return [
        *stack,
        Middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=CORS_ALLOW_HEADERS,
            expose_headers=CORS_EXPOSE_HEADERS,
            max_age=86400,
        ),
        auth,
    ]


class _LateEndpoint(TusEndpoint):
    """A :class:`TusEndpoint` whose engine arrives when the lifespan has opened the store."""

    def __init__(self, runtime: Runtime, settings: Settings) -> None:
        super().__init__(
            _NotReady(),  # type: ignore[arg-type]
            base_path=settings.base_path,
            proxies=ProxyTrust.parse(settings.trusted_proxies),
        )

    def bind(self, engine: Engine) -> None:
        self.engine = engine


class _NotReady:
    """Stands in for the engine before start-up finishes: every call answers 503."""

    config = EngineConfig()

    def __getattr__(self, name: str) -> object:
        async def unavailable(*args: object, **kwargs: object) -> object:
            raise errors.StoreUnavailable("server is starting")

        return unavailable


async def _sweeper(engine: Engine, interval: int, auth_state: AuthState) -> None:
    """Expire idle unfinished uploads ("expiration") every ``interval`` seconds (and audit each)."""
    while True:
        try:
            expired = await engine.sweep()
            if expired:
                log.info("sweep.done", expired=len(expired))
            audit = auth_state.audit
            if audit is not None:
                for info in expired:
                    await audit("upload.expired", upload_fields(info))
        except Exception:
            log.exception("sweep.failed")
        await anyio.sleep(interval)


__all__ = ["create_app", "open_store", "spec"]
