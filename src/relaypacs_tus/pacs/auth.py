"""How the relay authenticates to an HTTP PACS: ``requests`` auth objects, used inside worker threads.

* ``Basic``: RFC 7617 (Orthanc ``RegisteredUsers``, most on-premises archives).
* ``Bearer``: a static RFC 6750 token (a long-lived API key some gateways issue).
* ``OAuth2ClientCredentials``: RFC 6749 §4.4 (Azure Health Data Services DICOM with Entra ID,
  dcm4chee-arc behind Keycloak). Client authentication by HTTP Basic (§2.3.1, the id and secret
  form-urlencoded first, as that section requires) or in the form body.
* ``GoogleServiceAccount``: RFC 7523 §2.1 JWT bearer grant, the assertion signed RS256 with the service
  account's key (Google Cloud Healthcare API).
* ``AwsSigV4``: AWS Signature Version 4 by botocore's signer, service ``medical-imaging``
  (AWS HealthImaging), credentials from botocore's usual chain unless given.

Tokens are cached until shortly before ``expires_in`` runs out, refreshed under a lock, and a 401 from
the PACS drops the cached token and re-sends the request once with a new one (a token revoked early).
No secret or token is ever logged or put into an error reason.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote_plus

import jwt
import requests
from requests.auth import AuthBase, HTTPBasicAuth

from .base import DeliveryError

Clock = Callable[[], float]
_RETRIED = "_relaypacs_auth_retried"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_HEALTHCARE_SCOPE = "https://www.googleapis.com/auth/cloud-healthcare"


class Basic(HTTPBasicAuth):
    """HTTP Basic authentication (RFC 7617)."""


class Bearer(AuthBase):
    """A static bearer token (RFC 6750 §2.1)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self._token}"
        return r


class _TokenAuth(AuthBase):
    """A bearer token fetched from a token endpoint, cached, refreshed before it expires."""

    def __init__(self, token_url: str, *, timeout: float, clock: Clock) -> None:
        self.token_url = token_url
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self._session = requests.Session()

    def _request_token(self) -> tuple[dict[str, str], AuthBase | None]:
        """The form fields (and client auth) of the token request."""
        raise NotImplementedError

    def token(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._refresh_at:
                self._token, lifetime = self._fetch()
                # refresh a little early: a token must not expire between signing and the PACS reading it
                margin = min(60.0, lifetime * 0.1)
                self._refresh_at = self._clock() + lifetime - margin
            return self._token

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def _fetch(self) -> tuple[str, float]:
        form, client_auth = self._request_token()
        try:
            response = self._session.post(
                self.token_url,
                data=form,
                auth=client_auth,
                headers={"Accept": "application/json"},
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            raise DeliveryError("could not reach the token endpoint", transient=True) from exc
        return _parse_token_response(response)

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.token()}"
        r.register_hook("response", self._retry_on_401)  # type: ignore[no-untyped-call]
        return r

    def _retry_on_401(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        request = response.request
        if response.status_code != 401 or getattr(request, _RETRIED, False):
            return response
        self.invalidate()
        response.content  # noqa: B018 - drain, so the connection can be reused
        response.close()
        again = request.copy()
        requests.utils.rewind_body(again)
        again.headers["Authorization"] = f"Bearer {self.token()}"
        setattr(again, _RETRIED, True)
        retried: requests.Response = response.connection.send(again, **kwargs)
        retried.history.append(response)
        retried.request = again
        return retried


def _parse_token_response(response: requests.Response) -> tuple[str, float]:
    """RFC 6749 §5.1 (success) / §5.2 (error). Reasons carry the error code, never the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict):
        code = body.get("error") if isinstance(body, dict) else None
        what = f" ({code})" if isinstance(code, str) and code.isascii() and len(code) < 64 else ""
        # transient whatever the code: the instance is fine; the relay's configuration needs fixing
        raise DeliveryError(
            f"the token endpoint refused the relay's request{what} (HTTP {response.status_code})",
            transient=True,
            status=response.status_code,
        )
    token, kind = body.get("access_token"), str(body.get("token_type", ""))
    if not isinstance(token, str) or not token or kind.lower() != "bearer":
        raise DeliveryError("the token endpoint answered without a bearer access token", transient=True)
    expires_in = body.get("expires_in")
    lifetime = float(expires_in) if isinstance(expires_in, int | float | str) and str(expires_in) else 3600.0
    return token, lifetime


class OAuth2ClientCredentials(_TokenAuth):
    """RFC 6749 §4.4 client credentials grant. ``scope``: space-separated (Azure:
    ``https://dicom.healthcareapis.azure.com/.default``). ``client_auth``: "basic" (§2.3.1, the default
    every server must support) or "post" (id and secret in the form body)."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = None,
        client_auth: str = "basic",
        extra: Mapping[str, str] | None = None,
        timeout: float = 15.0,
        clock: Clock = time.time,
    ) -> None:
        super().__init__(token_url, timeout=timeout, clock=clock)
        if client_auth not in ("basic", "post"):
            raise ValueError("client_auth must be 'basic' or 'post'")
        self._client_id, self._secret = client_id, client_secret
        self._scope, self._client_auth, self._extra = scope, client_auth, dict(extra or {})

    def _request_token(self) -> tuple[dict[str, str], AuthBase | None]:
        form = {"grant_type": "client_credentials", **self._extra}
        if self._scope:
            form["scope"] = self._scope
        if self._client_auth == "post":
            return {**form, "client_id": self._client_id, "client_secret": self._secret}, None
        return form, HTTPBasicAuth(quote_plus(self._client_id), quote_plus(self._secret))


class GoogleServiceAccount(_TokenAuth):
    """RFC 7523 JWT bearer grant with a Google service-account key (the JSON key file's fields
    ``client_email``, ``private_key``, ``private_key_id``, ``token_uri``)."""

    def __init__(
        self,
        key: Mapping[str, str],
        *,
        scopes: str = GOOGLE_HEALTHCARE_SCOPE,
        timeout: float = 15.0,
        clock: Clock = time.time,
        lifetime: int = 3600,
        subject: str | None = None,
    ) -> None:
        missing = [k for k in ("client_email", "private_key", "token_uri") if not key.get(k)]
        if missing:
            raise ValueError(f"service account key lacks {', '.join(missing)}")
        super().__init__(key["token_uri"], timeout=timeout, clock=clock)
        self._issuer, self._private_key = key["client_email"], key["private_key"]
        self._key_id, self._scopes, self._lifetime = key.get("private_key_id"), scopes, lifetime
        self._subject = subject

    def assertion(self) -> str:
        """The signed JWT (RFC 7523 §3: iss, aud = the token endpoint, exp, iat; Google adds scope).
        ``sub`` only with a ``subject`` (domain-wide delegation): Google's documented service-account
        assertion has none, the account acting as itself."""
        now = int(self._clock())
        claims: dict[str, object] = {
            "iss": self._issuer,
            "scope": self._scopes,
            "aud": self.token_url,
            "iat": now,
            "exp": now + self._lifetime,
            "jti": uuid.uuid4().hex,
        }
        if self._subject:
            claims["sub"] = self._subject
        headers = {"kid": self._key_id} if self._key_id else None
        return jwt.encode(claims, self._private_key, algorithm="RS256", headers=headers)

    def _request_token(self) -> tuple[dict[str, str], AuthBase | None]:
        return {"grant_type": JWT_BEARER_GRANT, "assertion": self.assertion()}, None


class AwsSigV4(AuthBase):
    """AWS Signature Version 4 by botocore's ``SigV4Auth``. Signs the method, path, query, ``host``,
    ``content-type`` and ``x-amz-*`` headers and the SHA-256 of the body (read from the seekable body
    stream, then rewound). ``credentials``: botocore credentials; ``None`` uses botocore's default chain
    (environment, profile, container/instance role), refreshed as botocore refreshes them."""

    _SIGNED = ("host", "content-type", "content-md5")

    def __init__(self, region: str, *, service: str = "medical-imaging", credentials: Any = None) -> None:
        import botocore.session

        self.region, self.service = region, service
        self._credentials = credentials or botocore.session.Session().get_credentials()
        if self._credentials is None:
            raise ValueError("no AWS credentials found (environment, profile or role)")

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        frozen = self._credentials.get_frozen_credentials()
        headers = {
            k: v for k, v in r.headers.items() if k.lower() in self._SIGNED or k.lower().startswith("x-amz-")
        }
        aws = AWSRequest(method=r.method, url=r.url, headers=headers, data=r.body)
        SigV4Auth(frozen, self.service, self.region).add_auth(aws)
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if name in aws.headers:
                r.headers[name] = aws.headers[name]
        return r
