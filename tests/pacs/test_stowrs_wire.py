"""What goes over the wire to a STOW-RS service, and how each documented answer is classified."""

from __future__ import annotations

import re

import anyio
import pytest

from relaypacs_tus.pacs.auth import Bearer
from relaypacs_tus.pacs.base import DeliveryError, DuplicateConflict, Instance, Receipt
from relaypacs_tus.pacs.stowrs import StowRsDestination

from .conftest import MakeInstance
from .fakes import CloudPacs


def destination(pacs: CloudPacs, **kwargs: object) -> StowRsDestination:
    token = "static-token"
    pacs.tokens[token] = pacs.clock() + 10_000
    return StowRsDestination("cloud", f"{pacs.base_url}/v2", auth=Bearer(token), timeout=10,
                             duplicate_check="none", **kwargs)  # type: ignore[arg-type]  # fmt: skip


def deliver(dest: StowRsDestination, instance: Instance) -> Receipt:
    return anyio.run(dest.deliver, instance)


def body(
    referenced: list[str] = (), failed: dict[str, int] | None = None, warning: int | None = None
) -> dict:  # type: ignore[assignment,type-arg]
    ref = [{"00081155": {"vr": "UI", "Value": [uid]}} for uid in referenced]
    fail = [{"00081155": {"vr": "UI", "Value": [uid]}, "00081197": {"vr": "US", "Value": [code]}}
            for uid, code in (failed or {}).items()]  # fmt: skip
    out = {"00081199": {"vr": "SQ", "Value": ref}, "00081198": {"vr": "SQ", "Value": fail}}
    if warning is not None:
        out["00081196"] = {"vr": "US", "Value": [warning]}
    return out


def test_request_headers_and_body_follow_ps3_18(cloud_pacs: CloudPacs, make_instance: MakeInstance) -> None:
    instance = make_instance()
    receipt = deliver(destination(cloud_pacs), instance)
    assert receipt.outcome == "stored"
    headers = cloud_pacs.requests[-1]
    assert re.fullmatch(
        r'multipart/related; type="application/dicom"; boundary=[0-9a-f]{32}', headers["content-type"]
    )
    assert headers["accept"] == "application/dicom+json"
    assert int(headers["content-length"]) > instance.size  # streamed with a length, not chunked
    assert "transfer-encoding" not in headers
    assert cloud_pacs.stored[instance.sop_instance_uid] == instance.sha256  # the part is our file, unchanged


@pytest.mark.parametrize(
    ("status", "answer", "transient", "words"),
    [
        (200, body(), False, "answered success but did not list the instance"),
        (503, {}, True, "refused the instance (HTTP 503)"),
        (429, {}, True, "(HTTP 429)"),
        (400, body(), False, "(HTTP 400)"),
        (409, {"failed": 0xA700}, True, "the PACS is out of resources"),
        (409, {"failed": 0xC122}, False, "does not accept the instance's transfer syntax"),
        (409, {"failed": 0x0122}, False, "does not accept this kind of DICOM object"),
        (409, {"failed": 0xA900}, False, "found the data set invalid for its SOP class"),
        (409, {"failed": 45071}, True, "still processing an earlier copy"),
    ],
)
def test_answers_are_classified(
    cloud_pacs: CloudPacs,
    make_instance: MakeInstance,
    status: int,
    answer: dict,
    transient: bool,
    words: str,  # type: ignore[type-arg]
) -> None:
    instance = make_instance()
    if "failed" in answer:
        answer = body(failed={instance.sop_instance_uid: answer["failed"]})
    cloud_pacs.scripted.append((status, answer))
    with pytest.raises(DeliveryError) as caught:
        deliver(destination(cloud_pacs), instance)
    assert caught.value.transient is transient
    assert words in caught.value.reason
    assert caught.value.status == status


def test_warnings_are_recorded(cloud_pacs: CloudPacs, make_instance: MakeInstance) -> None:
    instance = make_instance()
    cloud_pacs.scripted.append((202, body([instance.sop_instance_uid], warning=0xB000)))
    receipt = deliver(destination(cloud_pacs), instance)
    assert receipt.outcome == "stored_with_warnings"
    assert receipt.warnings == ("the PACS changed some attributes when it stored the instance (coercion)",)
    plain_202 = make_instance()
    cloud_pacs.scripted.append((202, body([plain_202.sop_instance_uid])))
    assert deliver(destination(cloud_pacs), plain_202).outcome == "stored_with_warnings"


def test_azure_already_stored_without_comparison_is_a_conflict(
    cloud_pacs: CloudPacs, make_instance: MakeInstance
) -> None:
    instance = make_instance()
    dest = destination(cloud_pacs)
    deliver(dest, instance)
    with pytest.raises(DuplicateConflict) as caught:
        deliver(dest, instance)  # 409 + FailureReason 45070: the bytes cannot be compared here
    assert caught.value.status == 409
    assert "could not be compared" in caught.value.reason


def test_google_409_already_exists_is_a_conflict(cloud_pacs: CloudPacs, make_instance: MakeInstance) -> None:
    instance = make_instance()
    answer = body(failed={instance.sop_instance_uid: 272})
    answer["00081198"]["Value"][0]["00090097"] = {
        "vr": "LO", "Value": ["An instance already exists with the same UIDs but the DICOM files differ"]
    }  # fmt: skip
    cloud_pacs.scripted.append((409, answer))
    with pytest.raises(DuplicateConflict):
        deliver(destination(cloud_pacs), instance)


def test_a_pacs_that_is_gone_is_transient(make_instance: MakeInstance) -> None:
    from tests.services.ports import free_port

    dest = StowRsDestination("gone", f"http://127.0.0.1:{free_port()}/dicom-web", timeout=2)
    with pytest.raises(DeliveryError) as caught:
        deliver(dest, make_instance())
    assert (caught.value.transient, caught.value.reason) == (True, "could not connect to gone")
