"""Public keys for RS256/ES256 caller tokens from a JWKS (RFC 7517) file or URL.

Keys are cached. An unknown ``kid`` triggers a refresh (key rotation at the identity provider), but at
most once per ``min_refresh_interval`` so a flood of tokens with made-up kids cannot turn into a flood of
requests to the identity provider. Every fetch has a timeout; a failed fetch keeps the old keys.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import jwt
import structlog

from .tokens import AuthError

log = structlog.get_logger("relaypacs_tus.auth")

#: The JOSE key type (and curve) each pinned algorithm needs (RFC 7518 3.1).
KEY_TYPES: dict[str, tuple[str, str | None]] = {"RS256": ("RSA", None), "ES256": ("EC", "P-256")}


class JwksError(Exception):
    """The JWKS could not be fetched or parsed."""


class JwksKeys:
    """:class:`~relaypacs_tus.auth.tokens.KeySource` over a JWKS file path or ``http(s)://`` URL."""

    def __init__(
        self,
        source: str,
        *,
        client: httpx.AsyncClient | None = None,
        timeout: float = 5.0,
        min_refresh_interval: float = 60.0,
        max_age: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self._client = client
        self._timeout = timeout
        self._min_interval = min_refresh_interval
        self._max_age = max_age
        self._clock = clock
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = anyio.Lock()
        self.fetches = 0

    @property
    def is_url(self) -> bool:
        return self.source.startswith(("http://", "https://"))

    async def key_for(self, kid: str | None, alg: str) -> jwt.PyJWK:
        stale = self._fetched_at is None or self._clock() - self._fetched_at > self._max_age
        if stale or kid not in self._keys:
            await self._refresh(force=stale)
        key = self._keys.get(kid)
        if key is None and kid is None and len(self._keys) == 1:
            key = next(iter(self._keys.values()))
        if key is None:
            raise AuthError("invalid_token", "This token was signed with a key this server does not know.")
        kty, crv = KEY_TYPES.get(alg, ("?", None))
        data = key._jwk_data  # the parsed JWK; pyjwt keeps it here
        if data.get("kty") != kty or (crv and data.get("crv") != crv) or data.get("alg", alg) != alg:
            raise AuthError("invalid_token", "This token's algorithm does not match its signing key.")
        if data.get("use", "sig") != "sig":
            raise AuthError("invalid_token", "This token's key is not a signing key.")
        return key

    async def _refresh(self, *, force: bool) -> None:
        async with self._lock:
            now = self._clock()
            if not force and self._fetched_at is not None and now - self._fetched_at < self._min_interval:
                return
            self._fetched_at = now  # also on failure: the interval limits retries too
            try:
                self._keys = _parse(await self._fetch())
            except JwksError as exc:
                log.warning("auth.jwks_failed", source=self._describe(), error=str(exc))
                return
            log.info("auth.jwks_loaded", source=self._describe(), keys=len(self._keys))

    async def _fetch(self) -> dict[str, Any]:
        self.fetches += 1
        try:
            if self.is_url:
                client = self._client or httpx.AsyncClient()
                try:
                    response = await client.get(self.source, timeout=self._timeout)
                    response.raise_for_status()
                    return dict(response.json())
                finally:
                    if self._client is None:
                        await client.aclose()
            with anyio.fail_after(self._timeout):
                return dict(json.loads(await anyio.Path(self.source).read_text()))
        except (httpx.HTTPError, OSError, ValueError, TimeoutError) as exc:
            raise JwksError(f"{type(exc).__name__}: {exc}") from exc

    def _describe(self) -> str:
        return self.source.split("?", 1)[0]


def _parse(document: dict[str, Any]) -> dict[str | None, jwt.PyJWK]:
    keys: dict[str | None, jwt.PyJWK] = {}
    for data in document.get("keys", []):
        if not isinstance(data, dict) or data.get("kty") not in ("RSA", "EC"):
            continue  # symmetric keys never come from a JWKS: that would reopen key confusion
        try:
            keys[data.get("kid")] = jwt.PyJWK(data)
        except jwt.PyJWTError:
            continue
    if not keys:
        raise JwksError("no usable RSA or EC signing keys")
    return keys
