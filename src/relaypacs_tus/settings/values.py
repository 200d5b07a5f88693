"""Parsers for setting values, and the error that names a bad variable."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

#: A DICOM UID (PS3.5 §9.1): digits and dots.
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")


class SettingsError(ValueError):
    """A setting has a bad value; the message names the variable."""


def _int(text: str) -> int:
    return int(text.replace("_", ""))


def _size(text: str) -> int:
    """Bytes, with an optional binary suffix: ``8MiB``, ``5GiB``, ``1024``."""
    units = {
        "kib": 1024,
        "mib": 1024**2,
        "gib": 1024**3,
        "tib": 1024**4,
        "k": 1024,
        "m": 1024**2,
        "g": 1024**3,
    }
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


_PERIODS = {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "hour": 3600.0}
DEFAULT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; worker-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def parse_rate(text: str) -> tuple[float, float] | None:
    """``"120/min"``, ``"20MiB/s"``, ``"5/s"`` -> (per second, burst = the count per period); ``"0"``,
    ``"off"`` or ``""`` -> None (no limit)."""
    t = text.strip().lower()
    if t in ("", "0", "off", "none"):
        return None
    amount, sep, period = t.partition("/")
    if not sep or period not in _PERIODS:
        raise ValueError("expected N/s, N/min or N/h (e.g. 120/min, 20MiB/s)")
    count = float(_size(amount))
    if count <= 0:
        raise ValueError("the amount must be > 0")
    return count / _PERIODS[period], count


def _rate(text: str) -> str:
    parse_rate(text)
    return text.strip()


def _opt(env: str, parse: Callable[[str], Any], doc: str) -> dict[str, Any]:
    return {"env": env, "parse": parse, "doc": doc}


def _parse(f: dataclasses.Field[Any], raw: str) -> Any:
    try:
        return f.metadata["parse"](raw)
    except (ValueError, TypeError) as exc:
        raise SettingsError(f"{f.metadata['env']}: cannot use {raw!r}: {exc}") from None


def _check(ok: bool, env: str, value: object, why: str) -> None:
    if not ok:
        raise SettingsError(f"{env}={value!r} {why}")
