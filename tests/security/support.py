"""Helpers shared by the auth, audit and security tests: tokens as an identity provider (or an attacker)
would make them, a server with JWT auth on, and tus requests with a bearer token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import jwt

from tests.services.server import RelayServer
from tests.services.waiting import wait_until as wait_until  # re-exported for the tests here

SECRET = "test-secret-that-is-long-enough-for-hs256!"
ISSUER = "https://idp.example.test/realms/radiology"
AUDIENCE = "relaypacs-tus"
ROLES = ("relaypacs.upload", "relaypacs.issue")
TUS = {"Tus-Resumable": "1.0.0"}
#: Recognisable PHI that must never show up in a log line or an audit entry.
PATIENT_NAME = "Zebediah^Quuxmarrow"
PATIENT_ID = "PID-7731-QXZ"


def jwt_env(**extra: str) -> dict[str, str]:
    """Settings for a server with JWT auth on, a known HS256 secret and our test issuer."""
    return {
        "RELAYPACS_AUTH": "jwt",
        "RELAYPACS_AUTH_SECRET": SECRET,
        "RELAYPACS_AUTH_ISSUER": ISSUER,
        "RELAYPACS_AUTH_LEEWAY": "5",
        **extra,
    }


def caller_token(
    sub: str = "alice",
    roles: Iterable[str] = ROLES,
    *,
    key: Any = SECRET,
    algorithm: str = "HS256",
    exp_in: float = 300,
    headers: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    now = int(time.time())
    payload = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "iat": now,
        "exp": int(now + exp_in),
        "roles": list(roles),
    }
    payload.update(claims)
    return jwt.encode(
        {k: v for k, v in payload.items() if v is not None}, key, algorithm=algorithm, headers=headers
    )


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: dict[str, Any], hmac_key: bytes | None = None) -> str:
    """A token made by hand (what pyjwt refuses to make): alg none, or HMAC under an arbitrary key."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    signature = (
        b"" if hmac_key is None else hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    )
    return f"{signing_input}.{b64url(signature)}"


def claims(sub: str = "mallory", exp_in: float = 300) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "iat": now,
        "exp": now + int(exp_in),
        "roles": list(ROLES),
    }


def bearer(token: str) -> dict[str, str]:
    return {**TUS, "Authorization": f"Bearer {token}"}


def client() -> httpx.Client:
    return httpx.Client(timeout=20.0, verify=False)


def create(
    http: httpx.Client,
    server: RelayServer,
    token: str | None,
    *,
    length: int | None = 10,
    metadata: str | None = None,
    extra: dict[str, str] | None = None,
) -> httpx.Response:
    headers = bearer(token) if token else dict(TUS)
    if length is None:
        headers["Upload-Defer-Length"] = "1"
    else:
        headers["Upload-Length"] = str(length)
    if metadata:
        headers["Upload-Metadata"] = metadata
    headers.update(extra or {})
    return http.post(server.files_url, headers=headers)


def patch(
    http: httpx.Client, url: str, token: str, body: bytes, offset: int = 0, **extra: str
) -> httpx.Response:
    headers = {
        **bearer(token),
        "Upload-Offset": str(offset),
        "Content-Type": "application/offset+octet-stream",
    }
    headers.update(extra)
    return http.patch(url, headers=headers, content=body)


def issue(http: httpx.Client, server: RelayServer, caller: str, **body: Any) -> dict[str, Any]:
    response = http.post(
        server.base_url + "/auth/upload-tokens", json=body, headers={"Authorization": f"Bearer {caller}"}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def meta(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def audit_entries(server: RelayServer) -> list[dict[str, Any]]:
    entries = []
    for path in sorted((server.data_dir / "audit").glob("*.jsonl")):
        entries += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return entries


def audit_text(server: RelayServer) -> str:
    return "".join(p.read_text() for p in sorted((server.data_dir / "audit").glob("*.jsonl")))


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``relaypacs-tus ...`` as a user runs it."""
    import os

    return subprocess.run(
        [sys.executable, "-m", "relaypacs_tus", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def assert_401(response: httpx.Response, *, code: str | None = None) -> None:
    """A proper refusal: 401, Tus-Resumable, WWW-Authenticate, a readable JSON body, no stack trace."""
    assert response.status_code == 401, (response.status_code, response.text)
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    if response.request.method != "HEAD":
        body = response.json()
        assert body["error"] == "invalid_token"
        assert body["message"]
        assert "Traceback" not in response.text
        assert 'File "' not in response.text
    if code is not None:
        assert f'error_description="{code}"' in response.headers["WWW-Authenticate"]


def upload_path(url: str) -> Path:
    return Path(url.rstrip("/").rsplit("/", 1)[1])
