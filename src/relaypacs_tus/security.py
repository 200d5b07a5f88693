"""Wiring of the security layer from settings (like app.py, this module may import every layer): keys,
caller-token verification, upload tokens over the grant registry, limits, the audit log. The app's
lifespan opens it; the CLI uses the same functions to mint tokens and verify the audit log.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import structlog

from .audit import AuditLog, DocumentSink, FileSink
from .audit.log import Sink
from .auth.jwks import JwksKeys
from .auth.middleware import AuthState
from .auth.policy import Authenticator, Limits, Rate
from .auth.registry import TokenPolicy, UploadTokens
from .auth.tokens import CallerVerifier, UploadTokenSigner, load_or_create_secret, secret_from
from .coordination.base import GrantRegistry
from .coordination.memory import MemoryConcurrencyLimiter, MemoryGrantRegistry, MemoryRateLimiter
from .settings import Settings, SettingsError, parse_rate
from .tus.routes import ProxyTrust
from .tus.store import Documents, UploadStore

log = structlog.get_logger("relaypacs_tus.security")


def auth_dir(settings: Settings) -> Path:
    return settings.data_dir / "auth"


def caller_secret(settings: Settings) -> bytes | None:
    """The HS256 secret for caller JWTs: configured, or (with no JWKS either) generated in the data dir so
    ``relaypacs-tus token`` works with no identity provider."""
    configured = secret_from(settings.auth_secret, settings.auth_secret_file, "RELAYPACS_AUTH_SECRET")
    if configured is not None or settings.auth_jwks:
        return configured
    return load_or_create_secret(auth_dir(settings) / "caller.key")


def upload_token_key(settings: Settings) -> bytes:
    configured = secret_from(
        settings.upload_token_key, settings.upload_token_key_file, "RELAYPACS_UPLOAD_TOKEN_KEY"
    )
    return configured or load_or_create_secret(auth_dir(settings) / "upload-token.key")


def audit_key(settings: Settings) -> bytes:
    configured = secret_from(settings.audit_key, settings.audit_key_file, "RELAYPACS_AUDIT_KEY")
    return configured or load_or_create_secret(auth_dir(settings) / "audit.key")


def _rate(text: str) -> Rate | None:
    parsed = parse_rate(text)
    return Rate(*parsed) if parsed else None


def limits(settings: Settings) -> Limits:
    return Limits(
        creates_per_principal=_rate(settings.limit_creates),
        creates_per_address=_rate(settings.limit_creates_per_address),
        bytes_per_principal=_rate(settings.limit_bytes),
        bytes_per_address=_rate(settings.limit_bytes_per_address),
        concurrent_per_principal=settings.limit_concurrent_uploads,
    )


def proxies(settings: Settings) -> ProxyTrust:
    return ProxyTrust.parse(settings.trusted_proxies)


def token_policy(settings: Settings) -> TokenPolicy:
    return TokenPolicy(
        default_ttl=settings.upload_token_ttl,
        max_ttl=settings.upload_token_max_ttl,
        max_uploads=settings.upload_token_max_uploads,
        resume_seconds=settings.upload_token_resume,
        max_size=settings.max_size,
    )


def documents(settings: Settings, store: UploadStore) -> Documents:
    """Where grants live: the store's documents (so S3 deployments keep them in the bucket), else a
    local folder in the data dir."""
    if isinstance(store, Documents):
        return store
    from .stores.local import LocalStore

    return LocalStore(settings.data_dir / "state")


def audit_sink(settings: Settings, store: UploadStore | None) -> Sink | None:
    mode = settings.audit
    if mode == "off":
        return None
    if mode == "store" or (mode == "auto" and settings.store == "s3"):
        if store is None or not isinstance(store, Documents):
            raise SettingsError("RELAYPACS_AUDIT=store needs a store with documents (local or s3)")
        return DocumentSink(store)
    return FileSink(Path(settings.audit_dir) if settings.audit_dir else settings.data_dir / "audit")


def upload_tokens(settings: Settings, grants: GrantRegistry) -> UploadTokens:
    signer = UploadTokenSigner(upload_token_key(settings), settings.auth_audience, settings.auth_leeway)
    return UploadTokens(grants, signer, token_policy(settings))


def new_state() -> AuthState:
    """The in-process limiter and slots (one replica); a Redis implementation replaces them for several."""
    return AuthState(limiter=MemoryRateLimiter(), slots=MemoryConcurrencyLimiter())


@contextlib.asynccontextmanager
async def open_security(settings: Settings, store: UploadStore, state: AuthState) -> AsyncIterator[AuthState]:
    """Open the audit log and (RELAYPACS_AUTH=jwt) the verifiers; fill ``state``; purge old grants."""
    async with contextlib.AsyncExitStack() as stack, anyio.create_task_group() as tg:
        sink = audit_sink(settings, store)
        if sink is not None:
            audit = AuditLog(sink, audit_key(settings))
            await audit.open()
            state.audit = audit
        grants = await _coordination(settings, store, state, stack)
        if settings.auth == "jwt":
            client = await stack.enter_async_context(httpx.AsyncClient(follow_redirects=False))
            state.authenticator = Authenticator(
                caller=_caller_verifier(settings, client),
                uploads=upload_tokens(settings, grants),
                upload_role=settings.auth_upload_role,
                issue_role=settings.auth_issue_role,
            )
            tg.start_soon(_purge_grants, grants, max(60.0, float(settings.sweep_interval)))
        else:
            log.warning("auth.off", detail="RELAYPACS_AUTH=off: anyone who can reach this server may upload")
        state.ready = True
        try:
            yield state
        finally:
            state.ready = False
            tg.cancel_scope.cancel()


async def _coordination(
    settings: Settings, store: UploadStore, state: AuthState, stack: contextlib.AsyncExitStack
) -> GrantRegistry:
    """In-process grants (written through to the store's documents), or, with RELAYPACS_REDIS_URL, grants,
    rate buckets and slots in Redis so every replica sees the same ones."""
    if not settings.redis_url:
        return MemoryGrantRegistry(documents(settings, store))
    import redis.asyncio as aioredis

    from .coordination.redis import RedisConcurrencyLimiter, RedisGrantRegistry, RedisRateLimiter

    client = aioredis.from_url(settings.redis_url, socket_timeout=5.0, socket_connect_timeout=5.0)
    stack.push_async_callback(client.aclose)
    await client.ping()  # fail at start-up, not at the first upload
    state.limiter = RedisRateLimiter(client)
    state.slots = RedisConcurrencyLimiter(client)
    log.info("coordination.redis", url=settings.redis_url.split("@")[-1])
    return RedisGrantRegistry(client)


@contextlib.asynccontextmanager
async def open_grants(settings: Settings, store: UploadStore) -> AsyncIterator[GrantRegistry]:
    """The grant registry alone (for ``relaypacs-tus token --upload``): the one the server uses."""
    async with contextlib.AsyncExitStack() as stack:
        yield await _coordination(settings, store, new_state(), stack)


def _caller_verifier(settings: Settings, client: httpx.AsyncClient) -> CallerVerifier:
    keys = None
    if settings.auth_jwks:
        keys = JwksKeys(
            settings.auth_jwks,
            client=client,
            timeout=settings.auth_jwks_timeout,
            min_refresh_interval=settings.auth_jwks_min_refresh,
        )
    return CallerVerifier(
        audience=settings.auth_audience,
        issuers=tuple(i.strip() for i in settings.auth_issuer.split(",") if i.strip()),
        secret=caller_secret(settings),
        keys=keys,
        algorithms=frozenset(a.strip() for a in settings.auth_algorithms.split(",") if a.strip()),
        leeway=settings.auth_leeway,
        role_claim=settings.auth_role_claim,
    )


async def _purge_grants(grants: GrantRegistry, interval: float) -> None:
    while True:
        await anyio.sleep(interval)
        try:
            purged = await grants.purge(time.time())
            if purged:
                log.info("auth.grants_purged", count=purged)
        except Exception:
            log.exception("auth.grants_purge_failed")
