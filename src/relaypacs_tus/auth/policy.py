"""What each route asks of a request: which token kind and role (:class:`Authenticator`), and the
rate, byte and concurrency limits (:class:`Limits`) the middleware applies."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .registry import UploadTokens
from .tokens import AuthError, CallerVerifier, Identity, is_upload_token


class Route(enum.Enum):
    PUBLIC = "public"
    CREATE = "create"  # POST to the tus collection
    UPLOAD = "upload"  # HEAD/PATCH/DELETE/... on an upload
    STATUS = "status"  # the status API
    ISSUE = "issue"  # POST /auth/upload-tokens and other caller-only auth routes
    CURRENT = "current"  # GET /auth/upload-tokens/current


@dataclass(frozen=True, slots=True)
class Rate:
    per_second: float
    burst: float


@dataclass(frozen=True, slots=True)
class Limits:
    creates_per_principal: Rate | None = None
    creates_per_address: Rate | None = None
    bytes_per_principal: Rate | None = None
    bytes_per_address: Rate | None = None
    concurrent_per_principal: int = 0  # simultaneous PATCH bodies; 0 = no cap
    max_debt_seconds: float = 2.0  # bytes/s debt beyond which a new PATCH is refused instead of throttled


@dataclass(frozen=True, slots=True)
class Authenticator:
    """Which tokens each route takes. ``upload_role``/``issue_role`` empty = any valid caller token."""

    caller: CallerVerifier
    uploads: UploadTokens
    upload_role: str = "relaypacs.upload"
    issue_role: str = "relaypacs.issue"

    async def identify(self, authorization: str | None, route: Route) -> Identity:
        token = _bearer(authorization)
        if is_upload_token(token):
            identity = self.uploads.signer.verify(token)
            if route in (Route.ISSUE,):
                raise AuthError("wrong_kind", "An upload link cannot issue upload links; sign in instead.")
            assert identity.token_id is not None
            await self.uploads.grant(identity.token_id)  # known, and within its resume horizon
            return identity
        identity = await self.caller.verify(token)
        if route is Route.CURRENT:
            raise AuthError("wrong_kind", "This needs an upload link's token.")
        role = self.issue_role if route is Route.ISSUE else self.upload_role
        if role and role not in identity.roles:
            raise AuthError("insufficient_scope", f"Your account lacks the role {role!r}.", status=403)
        return identity


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise AuthError("missing_token", "Sign in first: this request needs an Authorization: Bearer token.")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("invalid_token", "The Authorization header must be 'Bearer <token>'.")
    return token.strip()
