"""Doubles for what cannot run here, following the real services' documented wire behaviour:

* an OAuth 2.0 token endpoint: RFC 6749 §4.4 client credentials (client authentication by HTTP Basic
  with form-urlencoded id/secret, §2.3.1, or in the body) and RFC 7523 §2.1 JWT bearer grants (Google's
  service-account flow), answers per §5.1 / §5.2 (JSON, ``Cache-Control: no-store``, ``invalid_client``
  with 401 + ``WWW-Authenticate`` when Basic was used);
* a cloud STOW-RS service in the style of the Azure DICOM service (PS3.18 §10.5; Azure's conformance
  statement): bearer tokens (RFC 6750 §3.1 ``invalid_token`` on 401), ``Accept: application/dicom+json``
  required (406), multipart/related type="application/dicom" required (415), 200 with
  ReferencedSOPSequence, 409 + FailedSOPSequence/45070 for a SOP Instance UID already stored;
* the same endpoint behind AWS SigV4 (HealthImaging's service name ``medical-imaging``), verifying the
  signature by recomputing it from the received request.

Time comes from a shared ``FakeClock`` so token expiry is proven without sleeping.
"""

from __future__ import annotations

import base64
import hashlib
import io
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import jwt
import pydicom
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.services.ports import free_port

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class CloudPacs:
    """State and knobs of the fake token endpoint + STOW-RS service."""

    clock: FakeClock
    client_id: str = "relay-client"
    client_secret: str = "s3cr:et/+="  # characters that §2.3.1's form-urlencoding changes
    token_lifetime: int = 300
    google_public_key: Any = None
    google_issuer: str = "relay@project.iam.gserviceaccount.com"
    aws_secret: str = ""
    aws_key_id: str = ""
    tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry (fake clock)
    issued: list[str] = field(default_factory=list)  # grant types, in order
    stored: dict[str, str] = field(default_factory=dict)  # SOP Instance UID -> sha256 of the part
    requests: list[dict[str, str]] = field(default_factory=list)  # headers of each STOW request
    scripted: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # next answers, if any
    base_url: str = ""

    def revoke_all(self) -> None:
        self.tokens.clear()


def _oauth_error(code: str, status: int = 400, basic: bool = False) -> JSONResponse:
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if basic and status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="token"'
    return JSONResponse({"error": code}, status_code=status, headers=headers)


def _client_from_request(request: Request, form: dict[str, str]) -> tuple[str | None, str | None, bool]:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        raw = base64.b64decode(header[6:]).decode()
        user, _, password = raw.partition(":")
        return unquote_plus(user), unquote_plus(password), True
    return form.get("client_id"), form.get("client_secret"), False


def build_app(pacs: CloudPacs) -> Starlette:
    async def token(request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0] != "application/x-www-form-urlencoded":
            return _oauth_error("invalid_request")
        form = dict(parse_qsl((await request.body()).decode("ascii"), keep_blank_values=True))
        grant = form.get("grant_type")
        if grant == "client_credentials":
            client_id, secret, basic = _client_from_request(request, form)
            if client_id != pacs.client_id or secret != pacs.client_secret:
                return _oauth_error("invalid_client", 401, basic)
        elif grant == JWT_BEARER:
            try:
                claims = jwt.decode(
                    form.get("assertion", ""), pacs.google_public_key, algorithms=["RS256"],
                    audience=f"{pacs.base_url}/token", issuer=pacs.google_issuer,
                    options={"require": ["exp", "iat"], "verify_exp": False, "verify_iat": False},
                )  # fmt: skip
            except jwt.PyJWTError:
                return _oauth_error("invalid_grant")
            if not claims["iat"] <= pacs.clock() < claims["exp"] or claims["exp"] - claims["iat"] > 3600:
                return _oauth_error("invalid_grant")  # RFC 7523 §3: exp in the future, short-lived
            if not claims.get("scope"):
                return _oauth_error("invalid_scope")  # Google's service-account assertion names its scopes
        else:
            return _oauth_error("unsupported_grant_type")
        value = secrets.token_urlsafe(24)
        pacs.tokens[value] = pacs.clock() + pacs.token_lifetime
        pacs.issued.append(grant)
        body = {"access_token": value, "token_type": "Bearer", "expires_in": pacs.token_lifetime}
        return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    async def stow(request: Request) -> Response:
        pacs.requests.append(dict(request.headers))
        denied = _check_auth(pacs, request, await request.body())
        if denied is not None:
            return denied
        if request.headers.get("accept") != "application/dicom+json":
            return Response(status_code=406)
        content_type = request.headers.get("content-type", "")
        if content_type == "application/dicom" and pacs.aws_secret:  # HealthImaging's single-part form
            return _store(pacs, [await request.body()])
        boundary = _boundary(content_type)
        if not content_type.startswith("multipart/related") or 'type="application/dicom"' not in content_type:
            return Response(status_code=415)
        if pacs.scripted:
            status, body = pacs.scripted.pop(0)
            return JSONResponse(body, status_code=status, media_type="application/dicom+json")
        return _store(pacs, _parts(await request.body(), boundary or ""))

    return Starlette(
        routes=[Route("/token", token, methods=["POST"]), Route("/v2/studies", stow, methods=["POST"])]
    )


def _check_auth(pacs: CloudPacs, request: Request, body: bytes) -> Response | None:
    header = request.headers.get("authorization", "")
    if pacs.aws_secret:
        return None if verify_sigv4(pacs, request, body) else Response(status_code=403)
    value = header[7:] if header.lower().startswith("bearer ") else ""
    if pacs.tokens.get(value, 0) <= pacs.clock():
        challenge = 'Bearer error="invalid_token"' if value else "Bearer"
        return Response(status_code=401, headers={"WWW-Authenticate": challenge})
    return None


def verify_sigv4(pacs: CloudPacs, request: Request, body: bytes) -> bool:
    """Recompute the SigV4 signature from what arrived (the headers the client says it signed)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    auth = request.headers.get("authorization", "")
    fields = dict(part.strip().split("=", 1) for part in auth.removeprefix("AWS4-HMAC-SHA256 ").split(","))
    key_id, _date, region, service, _ = fields["Credential"].split("/")
    signed = fields["SignedHeaders"].split(";")
    headers = {name: request.headers[name] for name in signed}
    url = f"http://{request.headers['host']}{request.url.path}"
    aws = AWSRequest(method=request.method, url=url, headers=headers, data=body)
    aws.context["timestamp"] = request.headers["x-amz-date"]
    signer = SigV4Auth(Credentials(pacs.aws_key_id, pacs.aws_secret), service, region)
    expected = signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws)
    return key_id == pacs.aws_key_id and service == "medical-imaging" and fields["Signature"] == expected


def _boundary(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key == "boundary":
            return value.strip('"')
    return None


def _parts(body: bytes, boundary: str) -> list[bytes]:
    out = []
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        headers, _, content = chunk.partition(b"\r\n\r\n")
        if b"content-type: application/dicom" in headers.lower():
            out.append(content[:-2] if content.endswith(b"\r\n") else content)
    return out


def _sop_item(sop_class: str, sop: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    item = {"00081150": {"vr": "UI", "Value": [sop_class]}, "00081155": {"vr": "UI", "Value": [sop]}}
    return {**item, **(extra or {})}


def _store(pacs: CloudPacs, parts: list[bytes]) -> Response:
    referenced, failed = [], []
    for part in parts:
        ds = pydicom.dcmread(io.BytesIO(part), stop_before_pixels=True)
        sop, sop_class = str(ds.SOPInstanceUID), str(ds.SOPClassUID)
        if sop in pacs.stored:  # Azure: 45070, "already stored; delete first", whatever the bytes
            failed.append(_sop_item(sop_class, sop, {"00081197": {"vr": "US", "Value": [45070]}}))
            continue
        pacs.stored[sop] = hashlib.sha256(part).hexdigest()
        referenced.append(_sop_item(sop_class, sop))
    body = {"00081198": {"vr": "SQ", "Value": failed}, "00081199": {"vr": "SQ", "Value": referenced}}
    status = 200 if not failed else (409 if not referenced else 202)
    return JSONResponse(body, status_code=status, media_type="application/dicom+json")


@contextmanager
def serve(pacs: CloudPacs) -> Iterator[str]:
    """Run the fake on a free loopback port in a thread; yields its base URL."""
    port = free_port()
    pacs.base_url = f"http://127.0.0.1:{port}"
    server = uvicorn.Server(uvicorn.Config(build_app(pacs), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the fake cloud PACS did not start")
        time.sleep(0.01)
    try:
        yield pacs.base_url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
