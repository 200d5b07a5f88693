"""Build destinations from ``RELAYPACS_DESTINATIONS``: a JSON list, or ``@/path/file.json`` holding one.

Every destination is an object with:

* ``name`` (required, unique): how receipts, statuses, logs and the audit trail call it.
* ``type`` (required): ``"stowrs"``, ``"orthanc-rest"`` or ``"cstore"``.
* ``timeout`` (seconds, default 30): connect and read timeout of each network call.
* ``max_concurrency`` (default 4; 2 for cstore): deliveries to it running at once (worker threads).

``stowrs`` (DICOMweb STOW-RS, see ``stowrs.py``):

* ``url`` (required): the DICOMweb root, e.g. ``http://pacs:8042/dicom-web``.
* ``auth``: see below; none when absent.
* ``duplicate_check``: ``"qido"`` (default; QIDO-RS + WADO-RS hash comparison) or ``"none"``.
* ``verify_after_store`` (default false): retrieve each stored instance and compare its SHA-256.
* ``study_in_url`` (default false): POST to ``/studies/{StudyInstanceUID}``.
* ``single_part`` (default false): send ``application/dicom`` instead of ``multipart/related`` (AWS
  HealthImaging's documented request form).
* ``verify_tls``: true (default), false, or the path of a CA bundle.
* ``headers``: extra HTTP headers (no secrets here: use ``auth``).

``orthanc-rest`` (Orthanc's REST API, see ``orthanc.py``): ``url`` (the Orthanc root), ``auth``,
``verify_tls``.

``cstore`` (DIMSE C-STORE, see ``cstore.py``): ``host`` and ``port`` (required), ``called_aet``
(required: the PACS's AE title), ``calling_aet`` (default ``"RELAYPACS"``: ours, as registered at the
PACS), ``max_pdu`` (default 0: unlimited).

``auth`` objects; secrets are read from an environment variable (``*_env``: its name) or a file
(``*_file``: its path; surrounding whitespace stripped), never written in the JSON and never logged:

* ``{"type": "basic", "username": "...", "password_env" | "password_file": "..."}``
* ``{"type": "bearer", "token_env" | "token_file": "..."}``
* ``{"type": "oauth2", "token_url": "...", "client_id": "...",
  "client_secret_env" | "client_secret_file": "...", "scope": "..." (optional),
  "client_auth": "basic" (default) | "post"}``: RFC 6749 client credentials.
* ``{"type": "google", "key_file" | "key_env": "...", "scopes": "..." (optional), "subject": "..."
  (optional: a user to act for, domain-wide delegation)}``: a service-account JSON key (the file, or
  an env var holding the JSON).
* ``{"type": "aws-sigv4", "region": "...", "service": "medical-imaging" (default),
  "access_key_id_env": "...", "secret_access_key_env": "...", "session_token_env": "..." (optional)}``;
  without the key variables botocore's default chain is used (env, profile, role).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from requests.auth import AuthBase

from .auth import AwsSigV4, Basic, Bearer, GoogleServiceAccount, OAuth2ClientCredentials
from .base import Destination
from .cstore import CStoreDestination
from .orthanc import OrthancRestDestination
from .stowrs import StowRsDestination


class DestinationConfigError(ValueError):
    """The destinations JSON is wrong; the message names the destination and field (never a secret)."""


class _Spec:
    """One JSON object with typed getters that name the field in their errors."""

    def __init__(self, raw: Any, where: str, env: Mapping[str, str]) -> None:
        if not isinstance(raw, dict):
            raise DestinationConfigError(f"{where}: must be a JSON object")
        self.raw, self.where, self.env = raw, where, env

    def fail(self, field: str, problem: str) -> DestinationConfigError:
        return DestinationConfigError(f"{self.where}: {field} {problem}")

    def text(self, field: str, default: str | None = None) -> str:
        value = self.raw.get(field, default)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(field, "is required (a non-empty string)")
        return value.strip()

    def opt_str(self, field: str) -> str | None:
        return self.text(field) if self.raw.get(field) is not None else None

    def number(self, field: str, default: float, *, integer: bool = False) -> Any:
        value = self.raw.get(field, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise self.fail(field, "must be a non-negative number")
        if integer and int(value) != value:
            raise self.fail(field, "must be a whole number")
        return int(value) if integer else float(value)

    def flag(self, field: str, default: bool) -> bool:
        value = self.raw.get(field, default)
        if not isinstance(value, bool):
            raise self.fail(field, "must be true or false")
        return value

    def secret(self, field: str) -> str:
        """``<field>_env`` (a variable's name) or ``<field>_file`` (a path)."""
        if f"{field}_env" in self.raw:
            name = self.text(f"{field}_env")
            if not self.env.get(name):
                raise self.fail(f"{field}_env", f"names the variable {name}, which is not set")
            return self.env[name]
        if f"{field}_file" in self.raw:
            path = Path(self.text(f"{field}_file"))
            try:
                return path.read_text().strip()
            except OSError as exc:
                raise self.fail(f"{field}_file", f"cannot be read ({exc.strerror})") from exc
        raise self.fail(field, f"is required: give {field}_env or {field}_file")


def load_destinations(spec: str, env: Mapping[str, str] | None = None) -> list[Destination]:
    """Parse ``spec`` (JSON list or ``@path``) into destinations. ``env`` defaults to ``os.environ``
    (read now, at call time). Raises ``DestinationConfigError``; an empty spec gives ``[]``."""
    text = spec.strip()
    if not text:
        return []
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as exc:
            raise DestinationConfigError(f"cannot read the destinations file: {exc.strerror}") from exc
    try:
        items = json.loads(text)
    except ValueError as exc:
        raise DestinationConfigError(f"destinations are not valid JSON: {exc}") from exc
    if not isinstance(items, list):
        raise DestinationConfigError("destinations must be a JSON list of objects")
    env = os.environ if env is None else env
    destinations = [_destination(_Spec(item, f"destination #{i + 1}", env)) for i, item in enumerate(items)]
    names = [d.name for d in destinations]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DestinationConfigError(f"destination names must be unique: {', '.join(duplicates)}")
    return destinations


def _destination(s: _Spec) -> Destination:
    name = s.text("name")
    s.where = f"destination {name!r}"
    kind = s.text("type")
    timeout = s.number("timeout", 30.0)
    if kind == "stowrs":
        dup = s.text("duplicate_check", "qido")
        if dup not in ("qido", "none"):
            raise s.fail("duplicate_check", "must be 'qido' or 'none'")
        return StowRsDestination(
            name, s.text("url"), auth=_auth(s), timeout=timeout, verify_tls=_verify(s),
            duplicate_check=dup, verify_after_store=s.flag("verify_after_store", False),
            study_in_url=s.flag("study_in_url", False), single_part=s.flag("single_part", False),
            headers=_headers(s), max_concurrency=s.number("max_concurrency", 4, integer=True) or 1,
        )  # fmt: skip
    if kind == "orthanc-rest":
        return OrthancRestDestination(
            name, s.text("url"), auth=_auth(s), timeout=timeout, verify_tls=_verify(s),
            max_concurrency=s.number("max_concurrency", 4, integer=True) or 1,
        )  # fmt: skip
    if kind == "cstore":
        port = s.number("port", -1, integer=True) if "port" in s.raw else None
        if port is None or not 1 <= port <= 65535:
            raise s.fail("port", "is required (1-65535)")
        try:
            return CStoreDestination(
                name, s.text("host"), port, called_aet=s.text("called_aet"),
                calling_aet=s.text("calling_aet", "RELAYPACS"), timeout=timeout,
                max_pdu=s.number("max_pdu", 0, integer=True),
                max_concurrency=s.number("max_concurrency", 2, integer=True) or 1,
            )  # fmt: skip
        except ValueError as exc:
            raise DestinationConfigError(f"{s.where}: {exc}") from exc
    raise s.fail("type", "must be 'stowrs', 'orthanc-rest' or 'cstore'")


def _verify(s: _Spec) -> bool | str:
    value = s.raw.get("verify_tls", True)
    if isinstance(value, bool) or (isinstance(value, str) and value):
        return value
    raise s.fail("verify_tls", "must be true, false or a CA bundle path")


def _headers(s: _Spec) -> dict[str, str]:
    value = s.raw.get("headers", {})
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise s.fail("headers", "must be an object of strings")
    if any(k.lower() == "authorization" for k in value):
        raise s.fail("headers", "must not carry Authorization: use auth")
    return dict(value)


def _auth(s: _Spec) -> AuthBase | None:
    raw = s.raw.get("auth")
    if raw is None:
        return None
    a = _Spec(raw, f"{s.where} auth", s.env)
    builders: dict[str, Callable[[_Spec], AuthBase]] = {
        "basic": lambda a: Basic(a.text("username"), a.secret("password")),
        "bearer": lambda a: Bearer(a.secret("token")),
        "oauth2": _oauth2,
        "google": _google,
        "aws-sigv4": _sigv4,
    }
    kind = a.text("type")
    if kind not in builders:
        raise a.fail("type", f"must be one of {', '.join(builders)}")
    return builders[kind](a)


def _oauth2(a: _Spec) -> AuthBase:
    client_auth = a.text("client_auth", "basic")
    if client_auth not in ("basic", "post"):
        raise a.fail("client_auth", "must be 'basic' or 'post'")
    return OAuth2ClientCredentials(
        a.text("token_url"), a.text("client_id"), a.secret("client_secret"),
        scope=a.opt_str("scope"), client_auth=client_auth, timeout=a.number("timeout", 15.0),
    )  # fmt: skip


def _google(a: _Spec) -> AuthBase:
    try:
        key = json.loads(a.secret("key"))
    except ValueError as exc:
        raise a.fail("key", "is not a service-account JSON key") from exc
    if not isinstance(key, dict):
        raise a.fail("key", "is not a service-account JSON key")
    scopes = a.text("scopes", "https://www.googleapis.com/auth/cloud-healthcare")
    try:
        return GoogleServiceAccount(key, scopes=scopes, subject=a.opt_str("subject"))
    except ValueError as exc:
        raise a.fail("key", str(exc)) from exc


def _sigv4(a: _Spec) -> AuthBase:
    credentials = None
    if "access_key_id_env" in a.raw:
        from botocore.credentials import Credentials

        token = a.secret("session_token") if "session_token_env" in a.raw else None
        credentials = Credentials(a.secret("access_key_id"), a.secret("secret_access_key"), token)
    try:
        return AwsSigV4(
            a.text("region"), service=a.text("service", "medical-imaging"), credentials=credentials
        )
    except ValueError as exc:
        raise a.fail("credentials", str(exc)) from exc
