"""Settings: built once at start-up from ``RELAYPACS_*`` variables and command-line flags, validated,
frozen. A bad value stops start-up with a message that names the variable. Nothing reads the environment
at import time.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


#: A DICOM UID (PS3.5 §9.1): digits and dots.
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")


class SettingsError(ValueError):
    """A setting has a bad value; the message names the variable."""


def _int(text: str) -> int:
    return int(text.replace("_", ""))


def _size(text: str) -> int:
    """Bytes, with an optional binary suffix: ``8MiB``, ``5GiB``, ``1024``."""
    units = {"kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4, "k": 1024, "m": 1024**2, "g": 1024**3}
    t = text.strip().lower().replace("_", "")
    for suffix, factor in sorted(units.items(), key=lambda kv: -len(kv[0])):
        if t.endswith(suffix):
            return int(float(t[: -len(suffix)]) * factor)
    return int(t)


def _bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def _opt(env: str, parse: Callable[[str], Any], doc: str) -> dict[str, Any]:
    return {"env": env, "parse": parse, "doc": doc}


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting, its environment variable and default. README's table is generated from this."""

    host: str = field(default="127.0.0.1", metadata=_opt("RELAYPACS_HOST", str, "address to listen on"))
    port: int = field(default=8080, metadata=_opt("RELAYPACS_PORT", _int, "TCP port (0 picks a free one)"))
    base_path: str = field(default="/files/", metadata=_opt("RELAYPACS_BASE_PATH", str, "tus endpoint path"))
    store: str = field(default="local", metadata=_opt("RELAYPACS_STORE", str, "`local` or `s3`"))
    data_dir: Path = field(
        default=Path("./data"), metadata=_opt("RELAYPACS_DATA_DIR", Path, "folder for uploads, records, audit")
    )
    s3_bucket: str = field(default="", metadata=_opt("RELAYPACS_S3_BUCKET", str, "bucket (store=s3)"))
    s3_prefix: str = field(default="", metadata=_opt("RELAYPACS_S3_PREFIX", str, "object key prefix"))
    s3_endpoint: str = field(
        default="", metadata=_opt("RELAYPACS_S3_ENDPOINT", str, "S3 endpoint URL (MinIO, SeaweedFS); empty = AWS")
    )
    s3_region: str = field(default="", metadata=_opt("RELAYPACS_S3_REGION", str, "region; empty = AWS default chain"))
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
        default=5.0, metadata=_opt("RELAYPACS_LOCK_TIMEOUT", float, "seconds to wait for a busy upload (then 423)")
    )
    cors_origins: str = field(
        default="*", metadata=_opt("RELAYPACS_CORS_ORIGINS", str, "comma-separated allowed origins; empty = no CORS")
    )
    trusted_proxies: str = field(
        default="",
        metadata=_opt("RELAYPACS_TRUSTED_PROXIES", str, "proxy IPs/CIDRs whose Forwarded headers are believed"),
    )
    enable_termination: bool = field(
        default=True, metadata=_opt("RELAYPACS_ENABLE_TERMINATION", _bool, "offer the termination extension")
    )
    enable_concatenation: bool = field(
        default=True, metadata=_opt("RELAYPACS_ENABLE_CONCATENATION", _bool, "offer concatenation")
    )
    log_level: str = field(default="info", metadata=_opt("RELAYPACS_LOG_LEVEL", str, "debug, info, warning, error"))
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
        metadata=_opt("RELAYPACS_HOOKS_ENABLED_EVENTS", str, "events sent to file/HTTP hooks (tusd's default)"),
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
        metadata=_opt("RELAYPACS_PIPELINE", str, "DICOM checks + delivery: `auto` (on with destinations), `on`, `off`"),
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
        metadata=_opt("RELAYPACS_ORG_ROOT", str, "UID root for UIDs we create; empty = pydicom's root"),
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

    def __post_init__(self) -> None:
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
            self.log_level in ("debug", "info", "warning", "error"), "RELAYPACS_LOG_LEVEL", self.log_level, "bad level"
        )
        self._check_hooks()
        self._check_pipeline()
        for item in filter(None, (s.strip() for s in self.trusted_proxies.split(","))):
            try:
                item == "*" or ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise SettingsError(f"RELAYPACS_TRUSTED_PROXIES: {item!r} is not an IP address or network") from None

    def _check_hooks(self) -> None:
        events = {"pre-create", "post-create", "post-receive", "pre-finish", "post-finish"}
        events |= {"pre-terminate", "post-terminate"}
        for name in filter(None, (n.strip() for n in self.hooks_enabled_events.split(","))):
            _check(name in events, "RELAYPACS_HOOKS_ENABLED_EVENTS", name, "is not a hook event")
        _check(
            not self.hooks_http or self.hooks_http.startswith(("http://", "https://")),
            "RELAYPACS_HOOKS_HTTP", self.hooks_http, "must be an http(s) URL",
        )  # fmt: skip
        _check(self.hooks_timeout > 0, "RELAYPACS_HOOKS_TIMEOUT", self.hooks_timeout, "must be > 0")
        _check(self.hooks_http_retry >= 0, "RELAYPACS_HOOKS_HTTP_RETRY", self.hooks_http_retry, "must be >= 0")
        _check(self.hooks_http_backoff >= 0, "RELAYPACS_HOOKS_HTTP_BACKOFF", self.hooks_http_backoff, "must be >= 0")

    def _check_pipeline(self) -> None:
        _check(self.pipeline in ("auto", "on", "off"), "RELAYPACS_PIPELINE", self.pipeline, "must be auto, on or off")
        for uid in filter(None, (u.strip() for u in self.allowed_sop_classes.split(","))):
            _check(bool(_UID.fullmatch(uid)), "RELAYPACS_ALLOWED_SOP_CLASSES", uid, "is not a UID")
        _check(
            not self.org_root or (bool(_UID.fullmatch(self.org_root.rstrip("."))) and len(self.org_root) <= 40),
            "RELAYPACS_ORG_ROOT", self.org_root, "must be a UID root of at most 40 characters",
        )  # fmt: skip
        _check(self.delivery_max_attempts >= 1, "RELAYPACS_DELIVERY_MAX_ATTEMPTS", self.delivery_max_attempts, ">= 1")
        _check(self.delivery_backoff > 0, "RELAYPACS_DELIVERY_BACKOFF", self.delivery_backoff, "must be > 0")
        _check(
            self.delivery_backoff_max >= self.delivery_backoff,
            "RELAYPACS_DELIVERY_BACKOFF_MAX", self.delivery_backoff_max, "must be >= RELAYPACS_DELIVERY_BACKOFF",
        )  # fmt: skip
        _check(self.pipeline_concurrency >= 1, "RELAYPACS_PIPELINE_CONCURRENCY", self.pipeline_concurrency, ">= 1")
        _check(
            self.pipeline_rescan_interval > 0,
            "RELAYPACS_PIPELINE_RESCAN_INTERVAL", self.pipeline_rescan_interval, "must be > 0",
        )  # fmt: skip

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


def _parse(f: dataclasses.Field[Any], raw: str) -> Any:
    try:
        return f.metadata["parse"](raw)
    except (ValueError, TypeError) as exc:
        raise SettingsError(f"{f.metadata['env']}: cannot use {raw!r}: {exc}") from None


def _check(ok: bool, env: str, value: object, why: str) -> None:
    if not ok:
        raise SettingsError(f"{env}={value!r} {why}")


def describe() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) for every setting, for README and ``--help``."""
    out = []
    for f in dataclasses.fields(Settings):
        default = f.default if f.default is not dataclasses.MISSING else ""
        out.append((f.metadata["env"], str(default), f.metadata["doc"]))
    return out
