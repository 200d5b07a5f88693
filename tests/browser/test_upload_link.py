"""Upload links (QR codes): a ward clerk issues a single-use link bound to a patient/study; a phone opens
it, the form is filled in and locked, a wound photo goes into the right study; the link then stops
working with a clear message."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import httpx
import pytest

from .conftest import DESKTOP, PHONE
from .helpers import jpeg_photo, upload_id_for, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.orthanc]

BINDING = {
    "patient_id": "PX-24680",
    "patient_name": "Abara^Nkechi",
    "patient_birth_date": "19830514",
    "patient_sex": "F",
    "accession_number": "ACC-5150",
    "study_instance_uid": "1.2.826.0.1.3680043.10.543.24680",
    "study_description": "Wound photo right shin",
}


def caller_token(relay: Any) -> str:
    """A staff JWT with the issuing role, minted with the key the server keeps in its data dir."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "relaypacs_tus",
            "token",
            "--data-dir",
            str(relay.data_dir),
            "--sub",
            "clerk-7",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stdout.strip().splitlines()[-1]


def issue_link(relay: Any, binding: dict[str, str]) -> dict[str, Any]:
    response = httpx.post(
        f"{relay.base_url}/auth/upload-tokens",
        headers={"Authorization": f"Bearer {caller_token(relay)}"},
        json={"max_uploads": 1, "ttl_seconds": 900, "binding": binding},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_link_locks_the_form_and_works_once(
    start_relay: Any, open_app: Any, orthanc: Any, screenshots: Any
) -> None:
    relay = start_relay(auth="jwt")
    issued = issue_link(relay, BINDING)
    link = issued["link"]
    assert link.startswith(relay.base_url + "/#token=")

    phone = open_app(relay.base_url, PHONE, path=link.removeprefix(relay.base_url))
    page = phone.page
    page.locator('[data-token-state="active"]').wait_for()
    assert "#token" not in page.url, "the token must leave the address bar"
    # The bound patient/study is shown to be checked, not typed: no field for it can be edited.
    summary = page.get_by_test_id("locked-summary").inner_text()
    for text in ("ABARA, Nkechi", "PX-24680", "1983", "Female", "ACC-5150", "Wound photo right shin"):
        assert text in summary, (text, summary)
    for field in ("#patientId", "#familyName", "#givenName", "#birthDate", "#sex", "#accessionNumber"):
        assert page.locator(field).count() == 0, f"{field} is editable although the link sets it"
    page.fill("#bodyPart", "leg")  # what the link leaves open stays editable
    assert page.locator("#bodyPart").input_value() == "LEG"

    photo = jpeg_photo("shin-wound.jpg", 1024, 768)
    phone.add(photo)
    phone.screenshot(screenshots / "upload-link-phone.png")
    phone.start()
    phone.wait_state(photo.name, "delivered")

    status = httpx.get(
        f"{relay.base_url}/uploads/{upload_id_for(relay, len(photo.data))}/status",
        headers={"Authorization": f"Bearer {issued['token']}"},
        timeout=10,
    ).json()
    found = wait_for(lambda: orthanc.find_instance(status["sop_instance_uid"]), 30, "the photo in Orthanc")
    tags = orthanc.instance_tags(found)
    assert tags["PatientID"] == "PX-24680"
    assert tags["PatientName"] == "Abara^Nkechi"
    assert tags["StudyInstanceUID"] == BINDING["study_instance_uid"]
    assert tags["BodyPartExamined"] == "LEG"

    # The same link a second time (another phone, or the same QR code scanned again).
    again = open_app(relay.base_url, DESKTOP, path=link.removeprefix(relay.base_url))
    message = again.page.get_by_test_id("token-message")
    message.wait_for()
    assert "already been used" in message.inner_text()
    assert again.page.locator("#patientId").input_value() == ""  # no patient data for a spent link
    again.add(jpeg_photo("second-try.jpg", 320, 240))
    again.start()
    assert "already been used" in again.page.get_by_test_id("upload-problem").inner_text()
    created = [e for e in relay.log_events() if e.get("event") == "upload.created"]
    assert len(created) == 1, json.dumps(created)


def test_server_that_needs_a_token_asks_for_one(start_relay: Any, open_app: Any) -> None:
    relay = start_relay(auth="jwt")
    app = open_app(relay.base_url, DESKTOP)
    app.page.locator('[data-token-state="needed"]').wait_for()
    app.page.get_by_label("Upload token or link").fill("not-a-token")
    app.page.get_by_role("button", name="Use").click()
    app.page.locator('[data-token-state="invalid"]').wait_for()
    assert app.page.get_by_test_id("token-message").inner_text().strip() != ""
