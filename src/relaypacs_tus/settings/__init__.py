"""Settings: built once at start-up from ``RELAYPACS_*`` variables and command-line flags, validated,
frozen. A bad value stops start-up with a message that names the variable. Nothing reads the environment
at import time. Value parsers live in :mod:`.values`, cross-field rules in :mod:`.checks`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checks import validate
from .values import (
    DEFAULT_CSP,
    SettingsError,
    _bool,
    _int,
    _opt,
    _parse,
    _rate,
    _size,
    parse_rate,
)

__all__ = ["DEFAULT_CSP", "Settings", "SettingsError", "describe", "parse_rate"]


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting, its environment variable and default. README's table is generated from this."""

    host: str = field(default="127.0.0.1", metadata=_opt("RELAYPACS_HOST", str, "address to listen on"))
    port: int = field(default=8080, metadata=_opt("RELAYPACS_PORT", _int, "TCP port (0 picks a free one)"))
    base_path: str = field(default="/files/", metadata=_opt("RELAYPACS_BASE_PATH", str, "tus endpoint path"))
    store: str = field(default="local", metadata=_opt("RELAYPACS_STORE", str, "`local` or `s3`"))
    data_dir: Path = field(
        default=Path("./data"),
        metadata=_opt("RELAYPACS_DATA_DIR", Path, "folder for uploads, records, audit"),
    )
    local_inline_io: bool = field(
        default=True,
        metadata=_opt(
            "RELAYPACS_LOCAL_INLINE_IO", _bool,
            "local store: small file operations on the event loop; false on a network filesystem",
        ),
    )  # fmt: skip
    s3_bucket: str = field(default="", metadata=_opt("RELAYPACS_S3_BUCKET", str, "bucket (store=s3)"))
    s3_prefix: str = field(default="", metadata=_opt("RELAYPACS_S3_PREFIX", str, "object key prefix"))
    s3_endpoint: str = field(
        default="",
        metadata=_opt("RELAYPACS_S3_ENDPOINT", str, "S3 endpoint URL (MinIO, SeaweedFS); empty = AWS"),
    )
    s3_region: str = field(
        default="", metadata=_opt("RELAYPACS_S3_REGION", str, "region; empty = AWS default chain")
    )
    s3_part_size: int = field(
        default=8 * 1024**2, metadata=_opt("RELAYPACS_S3_PART_SIZE", _size, "multipart part size (>= 5MiB)")
    )
    max_size: int = field(
        default=5 * 1024**3, metadata=_opt("RELAYPACS_MAX_SIZE", _size, "Tus-Max-Size in bytes; 0 = no limit")
    )
    expiration: int = field(
        default=24 * 3600,
        metadata=_opt("RELAYPACS_EXPIRATION", _int, "seconds an idle unfinished upload lives; 0 = never"),
    )
    sweep_interval: int = field(
        default=300, metadata=_opt("RELAYPACS_SWEEP_INTERVAL", _int, "seconds between expiry sweeps")
    )
    network_timeout: float = field(
        default=60.0, metadata=_opt("RELAYPACS_NETWORK_TIMEOUT", float, "seconds a PATCH may send nothing")
    )
    lock_timeout: float = field(
        default=5.0,
        metadata=_opt("RELAYPACS_LOCK_TIMEOUT", float, "seconds to wait for a busy upload (then 423)"),
    )
    cors_origins: str = field(
        default="*",
        metadata=_opt("RELAYPACS_CORS_ORIGINS", str, "comma-separated allowed origins; empty = no CORS"),
    )
    trusted_proxies: str = field(
        default="",
        metadata=_opt(
            "RELAYPACS_TRUSTED_PROXIES", str, "proxy IPs/CIDRs whose Forwarded headers are believed"
        ),
    )
    enable_termination: bool = field(
        default=True, metadata=_opt("RELAYPACS_ENABLE_TERMINATION", _bool, "offer the termination extension")
    )
    enable_concatenation: bool = field(
        default=True, metadata=_opt("RELAYPACS_ENABLE_CONCATENATION", _bool, "offer concatenation")
    )
    log_level: str = field(
        default="info", metadata=_opt("RELAYPACS_LOG_LEVEL", str, "debug, info, warning, error")
    )
    log_format: str = field(default="json", metadata=_opt("RELAYPACS_LOG_FORMAT", str, "`json` or `console`"))
    hooks_dir: str = field(
        default="",
        metadata=_opt("RELAYPACS_HOOKS_DIR", str, "folder of tusd-style hook programs; empty = none"),
    )
    hooks_http: str = field(
        default="",
        metadata=_opt("RELAYPACS_HOOKS_HTTP", str, "URL receiving tusd-style HTTP hooks; empty = none"),
    )
    hooks_enabled_events: str = field(
        default="pre-create,post-create,post-receive,post-terminate,post-finish",
        metadata=_opt(
            "RELAYPACS_HOOKS_ENABLED_EVENTS", str, "events sent to file/HTTP hooks (tusd's default)"
        ),
    )
    hooks_timeout: float = field(
        default=30.0,
        metadata=_opt("RELAYPACS_HOOKS_TIMEOUT", float, "seconds one hook program or HTTP call may take"),
    )
    hooks_http_retry: int = field(
        default=3,
        metadata=_opt("RELAYPACS_HOOKS_HTTP_RETRY", _int, "HTTP hook retries on 5xx/network errors"),
    )
    hooks_http_backoff: float = field(
        default=1.0,
        metadata=_opt("RELAYPACS_HOOKS_HTTP_BACKOFF", float, "first HTTP hook retry delay (doubles)"),
    )
    pipeline: str = field(
        default="auto",
        metadata=_opt(
            "RELAYPACS_PIPELINE", str, "DICOM checks + delivery: `auto` (on with destinations), `on`, `off`"
        ),
    )
    destinations: str = field(
        default="",
        metadata=_opt("RELAYPACS_DESTINATIONS", str, "PACS destinations: JSON list or @/path/file.json"),
    )
    allowed_sop_classes: str = field(
        default="",
        metadata=_opt("RELAYPACS_ALLOWED_SOP_CLASSES", str, "comma-separated SOP Class UIDs; empty = any"),
    )
    org_root: str = field(
        default="",
        metadata=_opt(
            "RELAYPACS_ORG_ROOT", str, "UID root for UIDs we create; empty = 2.25.<UUID> (PS3.5 B.2)"
        ),
    )
    delivery_max_attempts: int = field(
        default=8,
        metadata=_opt("RELAYPACS_DELIVERY_MAX_ATTEMPTS", _int, "tries per destination before failing"),
    )
    delivery_backoff: float = field(
        default=2.0,
        metadata=_opt("RELAYPACS_DELIVERY_BACKOFF", float, "first retry delay in seconds (doubles)"),
    )
    delivery_backoff_max: float = field(
        default=300.0,
        metadata=_opt("RELAYPACS_DELIVERY_BACKOFF_MAX", float, "longest retry delay in seconds"),
    )
    pipeline_concurrency: int = field(
        default=4,
        metadata=_opt("RELAYPACS_PIPELINE_CONCURRENCY", _int, "uploads processed at once"),
    )
    pipeline_rescan_interval: float = field(
        default=60.0,
        metadata=_opt("RELAYPACS_PIPELINE_RESCAN_INTERVAL", float, "seconds between record rescans"),
    )
    # -- auth, audit, limits, transport (auth engineer) ---------------------------------------------------
    auth: str = field(
        default="jwt",
        metadata=_opt("RELAYPACS_AUTH", str, "`jwt` (every tus/status request needs a token) or `off`"),
    )
    auth_secret: str = field(
        default="",
        metadata=_opt(
            "RELAYPACS_AUTH_SECRET", str, "HS256 secret of caller JWTs (>= 32 bytes); empty = generated"
        ),
    )
    auth_secret_file: str = field(
        default="", metadata=_opt("RELAYPACS_AUTH_SECRET_FILE", str, "file holding RELAYPACS_AUTH_SECRET")
    )
    auth_jwks: str = field(
        default="", metadata=_opt("RELAYPACS_AUTH_JWKS", str, "JWKS file or URL: the IdP's RS256/ES256 keys")
    )
    auth_jwks_timeout: float = field(
        default=5.0, metadata=_opt("RELAYPACS_AUTH_JWKS_TIMEOUT", float, "seconds one JWKS fetch may take")
    )
    auth_jwks_min_refresh: float = field(
        default=60.0,
        metadata=_opt("RELAYPACS_AUTH_JWKS_MIN_REFRESH", float, "least seconds between JWKS refetches"),
    )
    auth_algorithms: str = field(
        default="HS256,RS256,ES256",
        metadata=_opt(
            "RELAYPACS_AUTH_ALGORITHMS", str, "accepted JWT algorithms (subset of HS256,RS256,ES256)"
        ),
    )
    auth_issuer: str = field(
        default="relaypacs-tus",
        metadata=_opt("RELAYPACS_AUTH_ISSUER", str, "accepted `iss` (comma-separated)"),
    )
    auth_audience: str = field(
        default="relaypacs-tus",
        metadata=_opt("RELAYPACS_AUTH_AUDIENCE", str, "required `aud` of every token"),
    )
    auth_leeway: float = field(
        default=30.0,
        metadata=_opt("RELAYPACS_AUTH_LEEWAY", float, "seconds of clock skew allowed (exp, nbf)"),
    )
    auth_role_claim: str = field(
        default="roles",
        metadata=_opt(
            "RELAYPACS_AUTH_ROLE_CLAIM", str, "claim holding roles (dotted path, e.g. realm_access.roles)"
        ),
    )
    auth_upload_role: str = field(
        default="relaypacs.upload",
        metadata=_opt("RELAYPACS_AUTH_UPLOAD_ROLE", str, "role a caller JWT needs to upload; empty = any"),
    )
    auth_issue_role: str = field(
        default="relaypacs.issue",
        metadata=_opt("RELAYPACS_AUTH_ISSUE_ROLE", str, "role needed to issue upload tokens; empty = any"),
    )
    upload_token_key: str = field(
        default="",
        metadata=_opt(
            "RELAYPACS_UPLOAD_TOKEN_KEY", str, "HS256 key signing upload tokens; empty = generated"
        ),
    )
    upload_token_key_file: str = field(
        default="",
        metadata=_opt("RELAYPACS_UPLOAD_TOKEN_KEY_FILE", str, "file holding RELAYPACS_UPLOAD_TOKEN_KEY"),
    )
    upload_token_ttl: int = field(
        default=900,
        metadata=_opt("RELAYPACS_UPLOAD_TOKEN_TTL", _int, "default seconds an upload token may create"),
    )
    upload_token_max_ttl: int = field(
        default=86400,
        metadata=_opt("RELAYPACS_UPLOAD_TOKEN_MAX_TTL", _int, "longest ttl_seconds a caller may ask"),
    )
    upload_token_max_uploads: int = field(
        default=1000, metadata=_opt("RELAYPACS_UPLOAD_TOKEN_MAX_UPLOADS", _int, "largest max_uploads allowed")
    )
    upload_token_resume: int = field(
        default=86400,
        metadata=_opt(
            "RELAYPACS_UPLOAD_TOKEN_RESUME", _int, "seconds after its ttl a token may still resume"
        ),
    )
    public_url: str = field(
        default="",
        metadata=_opt("RELAYPACS_PUBLIC_URL", str, "external base URL for links; empty = from request"),
    )
    audit: str = field(
        default="auto",
        metadata=_opt("RELAYPACS_AUDIT", str, "`auto`, `folder`, `store` (documents, e.g. S3), `off`"),
    )
    audit_dir: str = field(
        default="", metadata=_opt("RELAYPACS_AUDIT_DIR", str, "audit folder; empty = <data dir>/audit")
    )
    audit_key: str = field(
        default="",
        metadata=_opt("RELAYPACS_AUDIT_KEY", str, "HMAC key of the audit chain; empty = generated"),
    )
    audit_key_file: str = field(
        default="", metadata=_opt("RELAYPACS_AUDIT_KEY_FILE", str, "file holding RELAYPACS_AUDIT_KEY")
    )
    audit_hash_uploads: bool = field(
        default=True,
        metadata=_opt("RELAYPACS_AUDIT_HASH_UPLOADS", _bool, "record each finished upload's SHA-256"),
    )
    limit_creates: str = field(
        default="1000/min",
        metadata=_opt("RELAYPACS_LIMIT_CREATES", _rate, "uploads created per principal; 0 = off"),
    )
    limit_creates_per_address: str = field(
        default="3000/min",
        metadata=_opt("RELAYPACS_LIMIT_CREATES_PER_ADDRESS", _rate, "uploads created per client address"),
    )
    limit_bytes: str = field(
        default="0", metadata=_opt("RELAYPACS_LIMIT_BYTES", _rate, "PATCH bytes per principal, e.g. 20MiB/s")
    )
    limit_bytes_per_address: str = field(
        default="0",
        metadata=_opt("RELAYPACS_LIMIT_BYTES_PER_ADDRESS", _rate, "PATCH bytes per client address"),
    )
    limit_concurrent_uploads: int = field(
        default=16,
        metadata=_opt(
            "RELAYPACS_LIMIT_CONCURRENT_UPLOADS", _int, "simultaneous PATCHes per principal; 0 = off"
        ),
    )
    max_header_size: int = field(
        default=64 * 1024, metadata=_opt("RELAYPACS_MAX_HEADER_SIZE", _size, "largest request header block")
    )
    header_timeout: float = field(
        default=30.0,
        metadata=_opt(
            "RELAYPACS_HEADER_TIMEOUT", float, "seconds a client may take to send a request's headers"
        ),
    )
    max_connections: int = field(
        default=1000,
        metadata=_opt("RELAYPACS_MAX_CONNECTIONS", _int, "open connections before 503; 0 = no cap"),
    )
    redis_url: str = field(
        default="",
        metadata=_opt(
            "RELAYPACS_REDIS_URL", str, "Redis for tokens/limits shared by replicas; empty = in-process"
        ),
    )
    tls_cert: str = field(
        default="", metadata=_opt("RELAYPACS_TLS_CERT", str, "PEM certificate (chain): serve HTTPS")
    )
    tls_key: str = field(
        default="", metadata=_opt("RELAYPACS_TLS_KEY", str, "PEM private key for RELAYPACS_TLS_CERT")
    )
    hsts_max_age: int = field(
        default=31536000,
        metadata=_opt("RELAYPACS_HSTS_MAX_AGE", _int, "HSTS max-age when serving HTTPS; 0 = off"),
    )
    content_security_policy: str = field(
        default=DEFAULT_CSP,
        metadata=_opt("RELAYPACS_CONTENT_SECURITY_POLICY", str, "CSP header of every response"),
    )
    web_dir: Path | None = field(
        default=None,
        metadata=_opt(
            "RELAYPACS_WEB_DIR", Path, "built PWA served at / (client/dist); unset = the package's web/static"
        ),
    )

    def __post_init__(self) -> None:
        validate(self)

    @property
    def pipeline_enabled(self) -> bool:
        return self.pipeline == "on" or (self.pipeline == "auto" and bool(self.destinations.strip()))

    @classmethod
    def load(cls, env: Mapping[str, str], overrides: Mapping[str, Any] | None = None) -> Settings:
        """Build from an environment mapping, then apply ``overrides`` (command-line values, not None)."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f.metadata["env"])
            if raw is not None:
                values[f.name] = _parse(f, raw)
        for name, value in (overrides or {}).items():
            if value is not None:
                f = next(x for x in dataclasses.fields(cls) if x.name == name)
                values[name] = _parse(f, value) if isinstance(value, str) else value
        return cls(**values)


def describe() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) for every setting, for README and ``--help``."""
    out = []
    for f in dataclasses.fields(Settings):
        default = f.default if f.default is not dataclasses.MISSING else ""
        out.append((f.metadata["env"], str(default), f.metadata["doc"]))
    return out
