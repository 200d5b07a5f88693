"""Verify caller JWTs and mint/verify upload tokens (RFC 7519 JWTs, pyjwt).

Algorithms are pinned per key: HS256 only with the shared secret, RS256/ES256 only with a JWKS key whose
type matches (so a public key can never be used as an HMAC secret: the HS/RS confusion attack). ``exp``,
``iss``, ``aud`` and ``sub`` are required; ``alg: none`` is never accepted.

Upload tokens are JWTs this server signs (HS256, its own key) with header ``typ`` :data:`UPLOAD_TOKEN_TYP`
and claim ``rpt: "upload"``; their limits and any patient binding live server-side, keyed by ``jti``.
"""

from __future__ import annotations

import base64
import os
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import jwt

UPLOAD_TOKEN_TYP = "relaypacs-upload+jwt"  # noqa: S105 - a JOSE "typ" value, not a secret
UPLOAD_KIND_CLAIM = "rpt"
CALLER_ALGORITHMS = frozenset({"HS256", "RS256", "ES256"})
MIN_SECRET_BYTES = 32  # RFC 7518 3.2: an HS256 key must be at least as long as the hash output


class AuthError(Exception):
    """A request's credentials are refused. ``message`` is safe and readable for a user; ``code`` is
    stable (``missing_token``, ``invalid_token``, ``expired``, ``wrong_kind``, ``token_used``,
    ``insufficient_scope``)."""

    def __init__(self, code: str, message: str, *, status: int = 401) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    @property
    def bearer_error(self) -> str:
        """RFC 6750 3.1 error code for ``WWW-Authenticate``."""
        return "insufficient_scope" if self.status == 403 else "invalid_token"


@dataclass(frozen=True, slots=True)
class Identity:
    """Who made a request. ``principal`` owns the uploads it creates (opaque, compared for equality)."""

    kind: str  # "caller" | "upload"
    principal: str
    subject: str
    roles: frozenset[str] = frozenset()
    token_id: str | None = None
    expires_at: float = 0.0
    claims: dict[str, Any] = field(default_factory=dict)


class KeySource(Protocol):
    """Public keys for RS256/ES256 caller tokens (see :mod:`.jwks`)."""

    async def key_for(self, kid: str | None, alg: str) -> jwt.PyJWK: ...


def load_or_create_secret(path: Path) -> bytes:
    """A random 32-byte key kept in ``path`` (mode 0600, created on first use; a race keeps the first)."""
    try:
        return _decode_secret(path.read_text().strip(), str(path))
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _decode_secret(path.read_text().strip(), str(path))
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    return _decode_secret(text, str(path))


def _decode_secret(text: str, where: str) -> bytes:
    data = text.encode()
    if len(data) < MIN_SECRET_BYTES:
        raise ValueError(f"{where}: a secret must be at least {MIN_SECRET_BYTES} bytes")
    return data


def secret_from(value: str, file: str, where: str) -> bytes | None:
    """A secret given inline or as a file (``*_FILE``, e.g. a Docker/Kubernetes secret)."""
    if file:
        return _decode_secret(Path(file).read_text().strip(), where + "_FILE")
    if value:
        return _decode_secret(value, where)
    return None


def _roles(claims: dict[str, Any], claim_path: str) -> frozenset[str]:
    """Roles from a claim given as a dotted path (``roles``, ``realm_access.roles``, ``scope``): a list of
    strings or one space-separated string (OAuth 2.0 ``scope``)."""
    value: Any = claims
    for part in claim_path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list | tuple):
        return frozenset(str(v) for v in value)
    return frozenset()


def _translate(exc: jwt.PyJWTError) -> AuthError:
    if isinstance(exc, jwt.ExpiredSignatureError):
        return AuthError("expired", "Your sign-in has expired; sign in again.")
    if isinstance(exc, jwt.InvalidAudienceError):
        return AuthError("invalid_token", "This token was not issued for this server (audience).")
    if isinstance(exc, jwt.InvalidIssuerError):
        return AuthError("invalid_token", "This token comes from an issuer this server does not trust.")
    if isinstance(exc, jwt.ImmatureSignatureError):
        return AuthError("invalid_token", "This token is not valid yet.")
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return AuthError("invalid_token", f"This token lacks the required claim {exc.claim!r}.")
    return AuthError("invalid_token", "This token is not valid.")


def _header(token: str) -> dict[str, Any]:
    try:
        return dict(jwt.get_unverified_header(token))
    except jwt.PyJWTError as exc:
        raise AuthError("invalid_token", "The Authorization header does not hold a valid token.") from exc


def is_upload_token(token: str) -> bool:
    """By the (unverified) header alone; verification then uses the matching key only."""
    return _header(token).get("typ") == UPLOAD_TOKEN_TYP


@dataclass(frozen=True, slots=True)
class CallerVerifier:
    """Verifies tokens issued to callers by the hospital's identity provider (or ``relaypacs-tus token``)."""

    audience: str
    issuers: tuple[str, ...]
    secret: bytes | None = None
    keys: KeySource | None = None
    algorithms: frozenset[str] = CALLER_ALGORITHMS
    leeway: float = 30.0
    role_claim: str = "roles"

    async def verify(self, token: str) -> Identity:
        header = _header(token)
        alg = str(header.get("alg", ""))
        if header.get("typ") == UPLOAD_TOKEN_TYP:
            raise AuthError("wrong_kind", "An upload link cannot be used here; sign in instead.")
        if alg not in self.algorithms:
            raise AuthError("invalid_token", "This token's signing algorithm is not accepted.")
        key = await self._key(alg, header.get("kid"))
        try:
            claims = jwt.decode(
                token, key, algorithms=[alg], audience=self.audience, issuer=list(self.issuers),
                leeway=self.leeway, options={"require": ["exp", "iss", "aud", "sub"]},
            )  # fmt: skip
        except jwt.PyJWTError as exc:
            raise _translate(exc) from exc
        if claims.get(UPLOAD_KIND_CLAIM) is not None:
            raise AuthError("wrong_kind", "An upload link cannot be used here; sign in instead.")
        subject = str(claims["sub"])
        return Identity(
            kind="caller",
            principal=f"jwt:{claims['iss']}:{subject}",
            subject=subject,
            roles=_roles(claims, self.role_claim),
            expires_at=float(claims["exp"]),
            claims=claims,
        )

    async def _key(self, alg: str, kid: object) -> Any:
        if alg.startswith("HS"):
            if self.secret is None:
                raise AuthError("invalid_token", "This server does not accept shared-secret tokens.")
            return self.secret
        if self.keys is None:
            raise AuthError("invalid_token", "This server does not accept public-key tokens.")
        jwk = await self.keys.key_for(str(kid) if kid is not None else None, alg)
        return jwk.key


@dataclass(frozen=True, slots=True)
class UploadTokenSigner:
    """Mints and verifies upload tokens with this server's own HS256 key."""

    key: bytes
    audience: str
    leeway: float = 30.0
    clock: Callable[[], float] = time.time

    @property
    def issuer(self) -> str:
        return self.audience

    def mint(self, token_id: str, expires_at: float) -> str:
        now = int(self.clock())
        claims = {
            "iss": self.issuer, "aud": self.audience, "sub": f"upload-token:{token_id}", "jti": token_id,
            "iat": now, "nbf": now, "exp": int(expires_at), UPLOAD_KIND_CLAIM: "upload",
        }  # fmt: skip
        return jwt.encode(claims, self.key, algorithm="HS256", headers={"typ": UPLOAD_TOKEN_TYP})

    def verify(self, token: str) -> Identity:
        """Signature, issuer and audience are checked; ``exp`` is returned, not enforced, because resuming
        an upload outlives the token's creation window (the caller decides with the server-side record)."""
        if _header(token).get("typ") != UPLOAD_TOKEN_TYP:
            raise AuthError("wrong_kind", "This needs an upload link's token.")
        try:
            claims = jwt.decode(
                token, self.key, algorithms=["HS256"], audience=self.audience, issuer=self.issuer,
                leeway=self.leeway, options={"require": ["exp", "iss", "aud", "jti"], "verify_exp": False},
            )  # fmt: skip
        except jwt.PyJWTError as exc:
            raise _translate(exc) from exc
        if claims.get(UPLOAD_KIND_CLAIM) != "upload":
            raise AuthError("wrong_kind", "This needs an upload link's token.")
        token_id = str(claims["jti"])
        return Identity(
            kind="upload",
            principal=f"upload-token:{token_id}",
            subject=str(claims.get("sub", "")),
            token_id=token_id,
            expires_at=float(claims["exp"]),
            claims=claims,
        )


def mint_caller_token(
    secret: bytes,
    *,
    subject: str,
    issuer: str,
    audience: str,
    roles: Sequence[str],
    ttl: float,
    role_claim: str = "roles",
    clock: Callable[[], float] = time.time,
) -> str:
    """An HS256 caller token, as an identity provider would issue it (for scripts and tests)."""
    now = int(clock())
    claims: dict[str, Any] = {"iss": issuer, "aud": audience, "sub": subject, "iat": now}
    claims["exp"] = int(now + ttl)
    target = claims
    parts = role_claim.split(".")
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = list(roles)
    return jwt.encode(claims, secret, algorithm="HS256")
