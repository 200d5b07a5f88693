"""Authentication to cloud PACSs: OAuth2 client credentials, Google service accounts (RFC 7523), AWS SigV4."""

from __future__ import annotations

import datetime as dt
import json

import anyio
import pytest
import requests
from botocore.credentials import Credentials
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from relaypacs_tus.pacs.auth import AwsSigV4, GoogleServiceAccount, OAuth2ClientCredentials
from relaypacs_tus.pacs.base import DeliveryError, Instance, Receipt
from relaypacs_tus.pacs.stowrs import StowRsDestination

from .conftest import MakeInstance
from .fakes import JWT_BEARER, CloudPacs


def stow(pacs: CloudPacs, auth: requests.auth.AuthBase, single_part: bool = False) -> StowRsDestination:
    url = f"{pacs.base_url}/v2"
    return StowRsDestination(
        "cloud", url, auth=auth, timeout=10, duplicate_check="none", single_part=single_part
    )


def deliver(dest: StowRsDestination, instance: Instance) -> Receipt:
    return anyio.run(dest.deliver, instance)


def oauth(pacs: CloudPacs, client_auth: str = "basic", secret: str | None = None) -> OAuth2ClientCredentials:
    return OAuth2ClientCredentials(
        f"{pacs.base_url}/token", pacs.client_id, secret or pacs.client_secret,
        scope="https://dicom.healthcareapis.azure.com/.default", client_auth=client_auth, clock=pacs.clock,
    )  # fmt: skip


@pytest.mark.parametrize("client_auth", ["basic", "post"])
def test_client_credentials_token_is_fetched_once_and_reused(
    cloud_pacs: CloudPacs, make_instance: MakeInstance, client_auth: str
) -> None:
    dest = stow(cloud_pacs, oauth(cloud_pacs, client_auth))
    for _ in range(3):
        assert deliver(dest, make_instance()).outcome == "stored"
    assert cloud_pacs.issued == ["client_credentials"]


def test_an_expiring_token_is_refreshed_before_use(
    cloud_pacs: CloudPacs, make_instance: MakeInstance
) -> None:
    dest = stow(cloud_pacs, oauth(cloud_pacs))
    deliver(dest, make_instance())
    cloud_pacs.clock.advance(cloud_pacs.token_lifetime - 10)  # inside the refresh margin, not yet expired
    deliver(dest, make_instance())
    assert cloud_pacs.issued == ["client_credentials", "client_credentials"]
    assert not any(r.get("authorization", "").endswith("expired") for r in cloud_pacs.requests)


def test_a_revoked_token_gets_one_retry_with_a_new_one(
    cloud_pacs: CloudPacs, make_instance: MakeInstance
) -> None:
    dest = stow(cloud_pacs, oauth(cloud_pacs))
    deliver(dest, make_instance())
    cloud_pacs.revoke_all()  # the PACS forgets it early: 401, then a fresh token and the body re-sent
    instance = make_instance()
    assert deliver(dest, instance).outcome == "stored"
    assert cloud_pacs.stored[instance.sop_instance_uid] == instance.sha256
    assert len(cloud_pacs.issued) == 2


def test_refused_client_credentials_are_reported_without_secrets(
    cloud_pacs: CloudPacs, make_instance: MakeInstance
) -> None:
    with pytest.raises(DeliveryError) as caught:
        deliver(stow(cloud_pacs, oauth(cloud_pacs, secret="wrong-secret")), make_instance())
    assert caught.value.reason == "the token endpoint refused the relay's request (invalid_client) (HTTP 401)"
    assert caught.value.transient is True
    assert "wrong-secret" not in repr(caught.value)


def _service_account(pacs: CloudPacs) -> dict[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pacs.google_public_key = key.public_key()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "type": "service_account",
        "client_email": pacs.google_issuer,
        "private_key_id": "k1",
        "private_key": pem.decode(),
        "token_uri": f"{pacs.base_url}/token",
    }


def test_google_service_account_jwt_bearer_grant(cloud_pacs: CloudPacs, make_instance: MakeInstance) -> None:
    auth = GoogleServiceAccount(_service_account(cloud_pacs), clock=cloud_pacs.clock)
    dest = stow(cloud_pacs, auth)
    deliver(dest, make_instance())
    cloud_pacs.clock.advance(cloud_pacs.token_lifetime + 1)
    deliver(dest, make_instance())
    assert cloud_pacs.issued == [JWT_BEARER, JWT_BEARER]
    import jwt

    header = jwt.get_unverified_header(auth.assertion())
    assert (header["alg"], header["kid"]) == ("RS256", "k1")


def test_a_service_account_key_from_another_account_is_refused(
    cloud_pacs: CloudPacs, make_instance: MakeInstance
) -> None:
    key = _service_account(cloud_pacs)
    _service_account(cloud_pacs)  # the endpoint now trusts another key
    with pytest.raises(DeliveryError) as caught:
        deliver(stow(cloud_pacs, GoogleServiceAccount(key, clock=cloud_pacs.clock)), make_instance())
    assert "(invalid_grant)" in caught.value.reason


# --- AWS Signature Version 4 ----------------------------------------------------------------------


def test_sigv4_reproduces_the_published_example(monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS's documented example (IAM ListUsers, AKIDEXAMPLE, 20150830T123600Z, us-east-1): the signing key
    c4afb1cc..., canonical request hash f536975d..., signature 5d672d79..., through the adapter's own path."""
    import botocore.auth

    monkeypatch.setattr(
        botocore.auth, "get_current_datetime", lambda *a, **k: dt.datetime(2015, 8, 30, 12, 36, 0)
    )
    auth = AwsSigV4(
        "us-east-1",
        service="iam",
        credentials=Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
    )
    request = requests.Request(
        "GET", "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}, auth=auth,
    ).prepare()  # fmt: skip
    assert request.headers["X-Amz-Date"] == "20150830T123600Z"
    assert request.headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, "
        "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
    )


def test_sigv4_signed_stow_is_verified_by_the_receiver(
    cloud_pacs: CloudPacs, make_instance: MakeInstance
) -> None:
    cloud_pacs.aws_key_id, cloud_pacs.aws_secret = "AKIDTEST", "secret/key+value"
    creds = Credentials(cloud_pacs.aws_key_id, cloud_pacs.aws_secret, "session-token")
    instance = make_instance()
    assert deliver(stow(cloud_pacs, AwsSigV4("us-east-1", credentials=creds)), instance).outcome == "stored"
    sent = cloud_pacs.requests[-1]
    assert sent["x-amz-security-token"] == "session-token"
    assert "/us-east-1/medical-imaging/aws4_request" in sent["authorization"]
    assert cloud_pacs.stored[instance.sop_instance_uid] == instance.sha256  # the body survived hashing
    wrong = Credentials(cloud_pacs.aws_key_id, "another-secret")
    with pytest.raises(DeliveryError) as caught:
        deliver(stow(cloud_pacs, AwsSigV4("us-east-1", credentials=wrong)), make_instance())
    assert caught.value.status == 403


def test_google_key_fields_are_checked() -> None:
    with pytest.raises(ValueError, match="private_key"):
        GoogleServiceAccount(json.loads('{"client_email": "a@b", "token_uri": "http://x/token"}'))
