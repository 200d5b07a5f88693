"""Validation of a whole Settings object: each rule names the variable it guards."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from .values import _UID, SettingsError, _check, parse_rate

if TYPE_CHECKING:
    from . import Settings


def validate(self: Settings) -> None:
    """Raise SettingsError naming the first bad variable."""
    _check(self.store in ("local", "s3"), "RELAYPACS_STORE", self.store, "must be 'local' or 's3'")
    _check(0 <= self.port <= 65535, "RELAYPACS_PORT", self.port, "must be 0..65535")
    _check(self.base_path.startswith("/"), "RELAYPACS_BASE_PATH", self.base_path, "must start with /")
    _check(self.store != "s3" or bool(self.s3_bucket), "RELAYPACS_S3_BUCKET", "", "is required when store=s3")
    _check(self.s3_part_size >= 5 * 1024**2, "RELAYPACS_S3_PART_SIZE", self.s3_part_size, "must be >= 5MiB")
    _check(self.s3_part_size <= 5 * 1024**3, "RELAYPACS_S3_PART_SIZE", self.s3_part_size, "must be <= 5GiB")
    _check(self.max_size >= 0, "RELAYPACS_MAX_SIZE", self.max_size, "must be >= 0")
    _check(self.expiration >= 0, "RELAYPACS_EXPIRATION", self.expiration, "must be >= 0")
    _check(self.sweep_interval > 0, "RELAYPACS_SWEEP_INTERVAL", self.sweep_interval, "must be > 0")
    _check(self.network_timeout > 0, "RELAYPACS_NETWORK_TIMEOUT", self.network_timeout, "must be > 0")
    _check(self.lock_timeout >= 0, "RELAYPACS_LOCK_TIMEOUT", self.lock_timeout, "must be >= 0")
    _check(self.log_format in ("json", "console"), "RELAYPACS_LOG_FORMAT", self.log_format, "json or console")
    _check(
        self.log_level in ("debug", "info", "warning", "error"),
        "RELAYPACS_LOG_LEVEL",
        self.log_level,
        "bad level",
    )
    _check_hooks(self)
    _check_pipeline(self)
    _check_auth(self)
    for item in filter(None, (s.strip() for s in self.trusted_proxies.split(","))):
        try:
            item == "*" or ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise SettingsError(
                f"RELAYPACS_TRUSTED_PROXIES: {item!r} is not an IP address or network"
            ) from None


def _check_hooks(self: Settings) -> None:
    events = {"pre-create", "post-create", "post-receive", "pre-finish", "post-finish"}
    events |= {"pre-terminate", "post-terminate"}
    for name in filter(None, (n.strip() for n in self.hooks_enabled_events.split(","))):
        _check(name in events, "RELAYPACS_HOOKS_ENABLED_EVENTS", name, "is not a hook event")
    url = self.hooks_http
    http_ok = not url or url.startswith(("http://", "https://"))
    _check(http_ok, "RELAYPACS_HOOKS_HTTP", url, "must be an http(s) URL")
    _check(self.hooks_timeout > 0, "RELAYPACS_HOOKS_TIMEOUT", self.hooks_timeout, "must be > 0")
    _check(self.hooks_http_retry >= 0, "RELAYPACS_HOOKS_HTTP_RETRY", self.hooks_http_retry, ">= 0")
    _check(self.hooks_http_backoff >= 0, "RELAYPACS_HOOKS_HTTP_BACKOFF", self.hooks_http_backoff, ">= 0")


def _check_pipeline(self: Settings) -> None:
    _check(self.pipeline in ("auto", "on", "off"), "RELAYPACS_PIPELINE", self.pipeline, "auto, on or off")
    for uid in filter(None, (u.strip() for u in self.allowed_sop_classes.split(","))):
        _check(bool(_UID.fullmatch(uid)), "RELAYPACS_ALLOWED_SOP_CLASSES", uid, "is not a UID")
    root = self.org_root
    root_ok = not root or (bool(_UID.fullmatch(root.rstrip("."))) and len(root) <= 40)
    _check(root_ok, "RELAYPACS_ORG_ROOT", root, "must be a UID root of at most 40 characters")
    attempts, backoff, most = self.delivery_max_attempts, self.delivery_backoff, self.delivery_backoff_max
    _check(attempts >= 1, "RELAYPACS_DELIVERY_MAX_ATTEMPTS", attempts, "must be >= 1")
    _check(backoff > 0, "RELAYPACS_DELIVERY_BACKOFF", backoff, "must be > 0")
    _check(most >= backoff, "RELAYPACS_DELIVERY_BACKOFF_MAX", most, "must be >= the first delay")
    concurrency, rescan = self.pipeline_concurrency, self.pipeline_rescan_interval
    _check(concurrency >= 1, "RELAYPACS_PIPELINE_CONCURRENCY", concurrency, "must be >= 1")
    _check(rescan > 0, "RELAYPACS_PIPELINE_RESCAN_INTERVAL", rescan, "must be > 0")


def _check_auth(self: Settings) -> None:
    _check(self.auth in ("jwt", "off"), "RELAYPACS_AUTH", self.auth, "must be 'jwt' or 'off'")
    for alg in (a.strip() for a in self.auth_algorithms.split(",")):
        _check(
            alg in ("HS256", "RS256", "ES256"),
            "RELAYPACS_AUTH_ALGORITHMS",
            alg,
            "is not HS256, RS256 or ES256",
        )
    for name, secret in (("RELAYPACS_AUTH_SECRET", self.auth_secret), ("RELAYPACS_UPLOAD_TOKEN_KEY",
                         self.upload_token_key), ("RELAYPACS_AUDIT_KEY", self.audit_key)):  # fmt: skip
        if secret and len(secret.encode()) < 32:
            raise SettingsError(f"{name} must be at least 32 bytes (its value is not shown)")
    _check(bool(self.auth_audience), "RELAYPACS_AUTH_AUDIENCE", "", "must not be empty")
    _check(bool(self.auth_issuer.strip(", ")), "RELAYPACS_AUTH_ISSUER", "", "must not be empty")
    _check(self.auth_leeway >= 0, "RELAYPACS_AUTH_LEEWAY", self.auth_leeway, "must be >= 0")
    _check(self.auth_jwks_timeout > 0, "RELAYPACS_AUTH_JWKS_TIMEOUT", self.auth_jwks_timeout, "must be > 0")
    _check(self.upload_token_ttl > 0, "RELAYPACS_UPLOAD_TOKEN_TTL", self.upload_token_ttl, "must be > 0")
    _check(
        self.upload_token_max_ttl >= self.upload_token_ttl,
        "RELAYPACS_UPLOAD_TOKEN_MAX_TTL", self.upload_token_max_ttl, ">= RELAYPACS_UPLOAD_TOKEN_TTL",
    )  # fmt: skip
    _check(
        self.upload_token_max_uploads >= 1,
        "RELAYPACS_UPLOAD_TOKEN_MAX_UPLOADS",
        self.upload_token_max_uploads,
        ">= 1",
    )
    _check(
        self.upload_token_resume >= 0,
        "RELAYPACS_UPLOAD_TOKEN_RESUME",
        self.upload_token_resume,
        "must be >= 0",
    )
    _check(
        self.audit in ("auto", "folder", "store", "off"),
        "RELAYPACS_AUDIT",
        self.audit,
        "auto/folder/store/off",
    )
    _check(
        self.limit_concurrent_uploads >= 0,
        "RELAYPACS_LIMIT_CONCURRENT_UPLOADS",
        self.limit_concurrent_uploads,
        ">= 0",
    )
    _check(self.max_header_size >= 4096, "RELAYPACS_MAX_HEADER_SIZE", self.max_header_size, "must be >= 4KiB")
    _check(
        not self.redis_url or self.redis_url.startswith(("redis://", "rediss://", "unix://")),
        "RELAYPACS_REDIS_URL", self.redis_url.split("@")[-1],
        "must be a redis://, rediss:// or unix:// URL",
    )  # fmt: skip
    _check(self.header_timeout > 0, "RELAYPACS_HEADER_TIMEOUT", self.header_timeout, "must be > 0")
    _check(self.max_connections >= 0, "RELAYPACS_MAX_CONNECTIONS", self.max_connections, "must be >= 0")
    _check(
        bool(self.tls_cert) == bool(self.tls_key),
        "RELAYPACS_TLS_KEY",
        self.tls_key,
        "and RELAYPACS_TLS_CERT go together",
    )
    for name, rate in (("RELAYPACS_LIMIT_BYTES", self.limit_bytes), ("RELAYPACS_LIMIT_BYTES_PER_ADDRESS",
                       self.limit_bytes_per_address)):  # fmt: skip
        parsed = parse_rate(rate)
        _check(parsed is None or parsed[0] >= 65536, name, rate, "must be >= 64KiB/s (or 0 = off)")
