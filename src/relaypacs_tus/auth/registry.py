"""Upload tokens' server-side side: issuing, consuming one use per created upload, describing.

An upload token's JWT carries only its id; its limits, allowed destinations and any patient/study
binding are kept here (a :class:`~relaypacs_tus.coordination.base.Grant` per token), so PHI never sits
in a URL or a JWT claim. Consumption is atomic in the grant registry and persisted before the upload is
created: a token past its count cannot create another upload, also after a restart.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..coordination.base import Grant, GrantRefused, GrantRegistry
from .tokens import AuthError, UploadTokenSigner

#: Upload-Metadata keys a binding may fix (contracts.md section 3/5); the pipeline enforces them.
BINDING_KEYS = frozenset({
    "patient_id", "patient_name", "patient_birth_date", "patient_sex", "accession_number",
    "study_instance_uid", "study_description",
})  # fmt: skip
_DATE = re.compile(r"[0-9]{8}")
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_DESTINATION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}")


class TokenRequestError(ValueError):
    """The body of ``POST /auth/upload-tokens`` is not acceptable; the message says why (no PHI)."""


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    """Server-wide bounds on what an upload token may allow."""

    default_ttl: int = 900
    max_ttl: int = 86400
    max_uploads: int = 1000
    resume_seconds: int = 86400  # how long after creation ends its uploads may still be resumed
    max_size: int = 0  # Tus-Max-Size; 0 = none


@dataclass(frozen=True, slots=True)
class TokenRequest:
    max_uploads: int = 1
    ttl_seconds: int = 900
    max_bytes_per_upload: int | None = None
    max_total_bytes: int | None = None
    destinations: tuple[str, ...] | None = None
    binding: dict[str, str] | None = None

    @classmethod
    def parse(cls, body: Mapping[str, Any], policy: TokenPolicy) -> TokenRequest:
        unknown = set(body) - {"max_uploads", "ttl_seconds", "max_bytes_per_upload", "max_total_bytes",
                               "destinations", "binding"}  # fmt: skip
        if unknown:
            raise TokenRequestError(f"unknown fields: {', '.join(sorted(unknown))}")
        ttl = _int(body.get("ttl_seconds"), "ttl_seconds", policy.default_ttl, 1, policy.max_ttl)
        uploads = _int(body.get("max_uploads"), "max_uploads", 1, 1, policy.max_uploads)
        per_upload = _opt_int(body.get("max_bytes_per_upload"), "max_bytes_per_upload", policy.max_size)
        total = _opt_int(body.get("max_total_bytes"), "max_total_bytes", 0)
        return cls(uploads, ttl, per_upload, total, _destinations(body.get("destinations")),
                   _binding(body.get("binding")))  # fmt: skip


def _int(value: Any, name: str, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise TokenRequestError(f"{name} must be an integer from {low} to {high}")
    return value


def _opt_int(value: Any, name: str, ceiling: int) -> int | None:
    if value is None:
        return None
    return _int(value, name, 0, 1, ceiling or 2**63 - 1)


def _destinations(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(v, str) and _DESTINATION.fullmatch(v) for v in value
    ):
        raise TokenRequestError("destinations must be a list of destination names")
    return tuple(value)


def _binding(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise TokenRequestError("binding must be an object with at least one field")
    unknown = set(value) - BINDING_KEYS
    if unknown:
        raise TokenRequestError(f"binding has unknown fields: {', '.join(sorted(unknown))}")
    out = {}
    for key, text in value.items():
        if not isinstance(text, str) or not 0 < len(text) <= 256 or any(ord(c) < 32 for c in text):
            raise TokenRequestError(f"binding.{key} must be a non-empty single-line string")
        out[key] = text
    # Checked by shape only; the messages name the field, never its value.
    if "patient_birth_date" in out and not _DATE.fullmatch(out["patient_birth_date"]):
        raise TokenRequestError("binding.patient_birth_date must be YYYYMMDD")
    if "patient_sex" in out and out["patient_sex"] not in ("M", "F", "O"):
        raise TokenRequestError("binding.patient_sex must be M, F or O")
    if "study_instance_uid" in out and not _UID.fullmatch(out["study_instance_uid"]):
        raise TokenRequestError("binding.study_instance_uid must be a DICOM UID")
    return out


@dataclass(frozen=True, slots=True)
class Issued:
    token: str
    token_id: str
    expires_at: float
    max_uploads: int


@dataclass(frozen=True, slots=True)
class Reservation:
    """One use taken from a token for a creation request; refunded if the creation fails."""

    token_id: str
    nbytes: int
    upload_cap: int | None  # the per-upload byte cap the engine enforces
    extra: dict[str, Any]  # kept in UploadInfo.extra (contracts.md section 5)


class UploadTokens:
    def __init__(
        self,
        grants: GrantRegistry,
        signer: UploadTokenSigner,
        policy: TokenPolicy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.grants = grants
        self.signer = signer
        self.policy = policy
        self._clock = clock

    async def issue(self, request: TokenRequest, issued_to: str) -> Issued:
        token_id = secrets.token_urlsafe(18)
        now = self._clock()
        expires_at = float(int(now + request.ttl_seconds))
        payload = {
            "issued_to": issued_to, "issued_at": now, "max_bytes_per_upload": request.max_bytes_per_upload,
            "destinations": list(request.destinations) if request.destinations is not None else None,
            "binding": request.binding,
        }  # fmt: skip
        grant = Grant(
            grant_id=token_id, max_uses=request.max_uploads, consume_until=expires_at,
            keep_until=expires_at + self.policy.resume_seconds, max_total_bytes=request.max_total_bytes,
            payload=payload,
        )  # fmt: skip
        await self.grants.create(grant)
        return Issued(self.signer.mint(token_id, expires_at), token_id, expires_at, request.max_uploads)

    async def grant(self, token_id: str) -> Grant:
        """The live record; :class:`AuthError` if unknown, forgotten or past its resume horizon."""
        try:
            grant = await self.grants.get(token_id)
        except KeyError:
            raise AuthError("invalid_token", "This upload link is not known to this server.") from None
        if self._clock() >= grant.keep_until:
            raise AuthError("expired", "This upload link has expired.")
        return grant

    async def reserve(self, token_id: str, declared_length: int | None) -> Reservation:
        """Take one use for an upload of ``declared_length`` bytes (None: deferred; the cap is reserved)."""
        grant = await self.grant(token_id)
        per_upload = grant.payload.get("max_bytes_per_upload")
        caps = [c for c in (per_upload, grant.remaining_bytes, self.policy.max_size or None) if c is not None]
        cap = min(caps) if caps else None
        if declared_length is not None and cap is not None and declared_length > cap:
            raise LimitExceeded(f"This upload link allows at most {cap} bytes for this upload.")
        nbytes = declared_length if declared_length is not None else (cap or 0)
        if grant.max_total_bytes is None:
            nbytes = 0  # nothing to account against
        try:
            await self.grants.consume(token_id, nbytes, self._clock())
        except GrantRefused as exc:
            if exc.code == "bytes":
                raise LimitExceeded(_refusal(exc)) from exc
            raise AuthError("token_used" if exc.code == "exhausted" else exc.code, _refusal(exc)) from exc
        except KeyError:
            raise AuthError("invalid_token", "This upload link is not known to this server.") from None
        extra = {"token_id": token_id, "binding": grant.payload.get("binding"),
                 "destinations": grant.payload.get("destinations")}  # fmt: skip
        return Reservation(token_id, nbytes, cap, extra)

    async def cancel(self, reservation: Reservation) -> None:
        await self.grants.refund(reservation.token_id, reservation.nbytes)

    async def attach(self, token_id: str, upload_id: str) -> None:
        await self.grants.add_member(token_id, upload_id)

    async def describe(self, token_id: str) -> dict[str, Any]:
        """``GET /auth/upload-tokens/current`` (contracts.md section 5)."""
        grant = await self.grant(token_id)
        creating = self._clock() < grant.consume_until
        return {
            "token_id": token_id,
            "expires_at": rfc3339(grant.consume_until),
            "remaining_uploads": grant.remaining_uses if creating else 0,
            "max_bytes_per_upload": grant.payload.get("max_bytes_per_upload"),
            "max_total_bytes": grant.max_total_bytes,
            "destinations": grant.payload.get("destinations"),
            "binding": grant.payload.get("binding"),
            "uploads": list(grant.members),
        }


class LimitExceeded(Exception):
    """A request is larger than a token allows (413); the message is for a user."""


def _refusal(exc: GrantRefused) -> str:
    return {
        "exhausted": "This upload link has already been used.",
        "expired": "This upload link has expired; ask for a new one.",
        "bytes": "This upload link has no room left for an upload of this size.",
    }.get(exc.code, exc.message)
