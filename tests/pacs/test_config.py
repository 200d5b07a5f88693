"""load_destinations: the RELAYPACS_DESTINATIONS JSON, with secrets from the environment or files."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from relaypacs_tus.pacs.auth import AwsSigV4, Basic, Bearer, OAuth2ClientCredentials
from relaypacs_tus.pacs.config import DestinationConfigError, load_destinations
from relaypacs_tus.pacs.cstore import CStoreDestination
from relaypacs_tus.pacs.orthanc import OrthancRestDestination
from relaypacs_tus.pacs.stowrs import StowRsDestination
from tests.services.orthanc import OrthancServer

from .conftest import MakeInstance

EXAMPLE = [
    {"name": "orthanc", "type": "stowrs", "url": "http://h:8042/dicom-web", "timeout": 30,
     "auth": {"type": "basic", "username": "u", "password_env": "ORTHANC_PASSWORD"}},
    {"name": "pacs2", "type": "orthanc-rest", "url": "http://h2:8042",
     "auth": {"type": "bearer", "token_file": "TOKEN"}},
    {"name": "legacy", "type": "cstore", "host": "h", "port": 104, "called_aet": "PACS",
     "calling_aet": "RELAYPACS"},
    {"name": "azure", "type": "stowrs", "url": "https://ws-dicom.dicom.azurehealthcareapis.com/v2",
     "duplicate_check": "none", "auth": {"type": "oauth2", "token_url": "https://login/tenant/oauth2/v2.0/token",
     "client_id": "cid", "client_secret_env": "AZ_SECRET", "scope": "https://dicom.healthcareapis.azure.com/.default",
     "client_auth": "post"}},
    {"name": "aws", "type": "stowrs", "url": "https://dicom-medical-imaging.us-east-1.amazonaws.com/datastore/d1",
     "duplicate_check": "none", "auth": {"type": "aws-sigv4", "region": "us-east-1",
     "access_key_id_env": "AK", "secret_access_key_env": "SK"}},
]  # fmt: skip
ENV = {"ORTHANC_PASSWORD": "pw-secret", "AZ_SECRET": "az-secret", "AK": "AKID", "SK": "sk-secret"}


def example(tmp_path: Path) -> list[dict[str, object]]:
    (tmp_path / "TOKEN").write_text("tok-secret\n")
    items = json.loads(json.dumps(EXAMPLE))
    items[1]["auth"]["token_file"] = str(tmp_path / "TOKEN")
    return items


def test_the_documented_example_builds_every_kind(tmp_path: Path) -> None:
    destinations = load_destinations(json.dumps(example(tmp_path)), env=ENV)
    orthanc, pacs2, legacy, azure, aws = destinations
    assert [d.name for d in destinations] == ["orthanc", "pacs2", "legacy", "azure", "aws"]
    assert isinstance(orthanc, StowRsDestination)
    assert isinstance(orthanc._session.auth, Basic)
    assert orthanc._session.auth.password == "pw-secret"
    assert isinstance(pacs2, OrthancRestDestination)
    assert isinstance(pacs2._session.auth, Bearer)
    assert isinstance(legacy, CStoreDestination)
    assert (legacy.host, legacy.port, legacy.called_aet, legacy.calling_aet) == (
        "h",
        104,
        "PACS",
        "RELAYPACS",
    )
    assert isinstance(azure, StowRsDestination)
    assert azure.duplicate_check == "none"
    assert isinstance(azure._session.auth, OAuth2ClientCredentials)
    assert isinstance(aws._session.auth, AwsSigV4)  # type: ignore[attr-defined]
    assert aws._session.auth.service == "medical-imaging"  # type: ignore[attr-defined]


def test_a_file_spec_and_an_empty_spec(tmp_path: Path) -> None:
    spec = tmp_path / "destinations.json"
    spec.write_text(json.dumps(example(tmp_path)))
    assert len(load_destinations(f"@{spec}", env=ENV)) == 5
    assert load_destinations("  ", env=ENV) == []


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d[0].pop("url"), "destination 'orthanc': url is required"),
        (
            lambda d: d[0].update(type="ftp"),
            "destination 'orthanc': type must be 'stowrs', 'orthanc-rest' or 'cstore'",
        ),
        (
            lambda d: d[0]["auth"].update(password_env="MISSING"),
            "password_env names the variable MISSING, which is not set",
        ),
        (
            lambda d: d[0]["auth"].pop("password_env"),
            "password is required: give password_env or password_file",
        ),
        (lambda d: d[2].update(port=70000), "destination 'legacy': port is required (1-65535)"),
        (lambda d: d[2].update(called_aet="X" * 17), "called_aet must be 1 to 16 characters"),
        (lambda d: d[1].update(name="orthanc"), "destination names must be unique: orthanc"),
        (lambda d: d[3]["auth"].update(client_auth="jwt"), "client_auth must be 'basic' or 'post'"),
        (lambda d: d[0].update(timeout="soon"), "timeout must be a non-negative number"),
        (lambda d: d[0].update(headers={"Authorization": "Bearer x"}), "must not carry Authorization"),
        (lambda d: d[0].update(duplicate_check="md5"), "duplicate_check must be 'qido' or 'none'"),
    ],
)
def test_errors_name_the_destination_and_field_never_a_secret(tmp_path: Path, mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    items = example(tmp_path)
    mutate(items)
    with pytest.raises(DestinationConfigError) as caught:
        load_destinations(json.dumps(items), env=ENV)
    assert message in str(caught.value)
    for secret in ("pw-secret", "az-secret", "sk-secret", "tok-secret"):
        assert secret not in str(caught.value)


def test_not_json_or_not_a_list() -> None:
    with pytest.raises(DestinationConfigError, match="not valid JSON"):
        load_destinations("[{", env={})
    with pytest.raises(DestinationConfigError, match="must be a JSON list"):
        load_destinations('{"name": "x"}', env={})
    with pytest.raises(DestinationConfigError, match="cannot read the destinations file"):
        load_destinations("@/nonexistent/destinations.json", env={})


@pytest.mark.orthanc
def test_configured_destinations_deliver(orthanc: OrthancServer, make_instance: MakeInstance) -> None:
    spec = json.dumps([
        {"name": "web", "type": "stowrs", "url": orthanc.dicomweb_url,
         "auth": {"type": "basic", "username": orthanc.username, "password_env": "PW"}},
        {"name": "rest", "type": "orthanc-rest", "url": orthanc.url,
         "auth": {"type": "basic", "username": orthanc.username, "password_env": "PW"}},
        {"name": "dimse", "type": "cstore", "host": orthanc.dicom_host, "port": orthanc.dicom_port,
         "called_aet": orthanc.aet},
    ])  # fmt: skip
    destinations = load_destinations(spec, env={"PW": orthanc.password})

    async def each() -> list[str]:
        outcomes = []
        for destination in destinations:
            outcomes.append((await destination.deliver(make_instance())).outcome)
            await destination.aclose()
        return outcomes

    assert anyio.run(each) == ["stored", "stored", "stored"]
