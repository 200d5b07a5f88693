"""The PWA against our real server and a real Orthanc: a nurse fills the form, adds a DICOM file and a
phone photo, uploads; both arrive in the PACS under the right patient; nothing is left in the browser."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .conftest import DESKTOP, PHONE
from .helpers import Patient, dicom_file, jpeg_photo, storage_text, upload_id_for, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.orthanc]

ALBERTA = Patient(
    "PX-93817", "Testperson", "Alberta", "1961-04-12", "F", "ACC-2231", "Wound check left heel", "FOOT"
)


def status_of(relay: Any, upload_id: str) -> dict[str, Any]:
    response = httpx.get(f"{relay.base_url}/uploads/{upload_id}/status", timeout=10)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def orthanc_tags(orthanc: Any, sop_instance_uid: str) -> dict[str, Any]:
    found = wait_for(
        lambda: orthanc.find_instance(sop_instance_uid), 30, f"instance {sop_instance_uid} in Orthanc"
    )
    tags: dict[str, Any] = orthanc.instance_tags(found)
    return tags


def test_dicom_and_photo_arrive_in_orthanc_under_the_patient(
    start_relay: Any, open_app: Any, orthanc: Any, screenshots: Any
) -> None:
    relay = start_relay()
    app = open_app(relay.base_url, DESKTOP)
    scan = dicom_file("mr-head-0001.dcm", ALBERTA, megabytes=2)
    photo = jpeg_photo("wound-heel.jpg")

    app.fill(ALBERTA)
    app.add(scan, photo)
    app.screenshot(screenshots / "upload-desktop.png")
    app.start()

    app.wait_state(scan.name, "delivered")
    app.wait_state(photo.name, "delivered")
    assert "Delivered to orthanc" in app.card(scan.name).inner_text()
    app.screenshot(screenshots / "progress-desktop.png")

    stored = orthanc.get_file(orthanc.find_instance(scan.sop_instance_uid))
    assert stored == scan.data, "the DICOM file reached Orthanc changed"
    tags = orthanc_tags(orthanc, scan.sop_instance_uid)
    assert tags["PatientID"] == ALBERTA.patient_id

    photo_status = status_of(relay, upload_id_for(relay, len(photo.data)))
    assert photo_status["kind"] == "jpeg"
    assert photo_status["state"] == "delivered"
    tags = orthanc_tags(orthanc, photo_status["sop_instance_uid"])
    assert tags["PatientID"] == ALBERTA.patient_id
    assert tags["PatientName"] == ALBERTA.dicom_name
    assert tags["PatientBirthDate"] == "19610412"
    assert tags["AccessionNumber"] == ALBERTA.accession
    assert tags["StudyDescription"] == ALBERTA.study_description
    assert tags["BodyPartExamined"] == "FOOT"
    assert app.console_errors == []


def test_nothing_about_a_delivered_file_stays_in_browser_storage(start_relay: Any, open_app: Any) -> None:
    relay = start_relay()
    app = open_app(relay.base_url, DESKTOP)
    patient = Patient(
        "PX-55120", "Nobleza", "Imelda", "1948-11-02", "F", "ACC-9001", "Pressure ulcer", "SKIN"
    )
    scan = dicom_file("ct-phi-0001.dcm", patient, megabytes=1)
    photo = jpeg_photo("ulcer-sacrum.jpg", 800, 600)
    app.fill(patient)
    app.add(scan, photo)

    # While files wait, they and the form are kept on the device (that is what survives a reload) ...
    def kept() -> bool:
        text = storage_text(app.storage())
        return patient.patient_id in text and "<blob" in text

    wait_for(kept, 10, "the form and files to be kept in IndexedDB")
    app.start()
    app.wait_state(scan.name, "delivered")
    app.wait_state(photo.name, "delivered")

    # ... and once delivered, nothing about them remains (Golden Retriever writes its snapshot throttled).
    secrets = [*patient.phi(), scan.name, photo.name, "Pressure ulcer"]

    def clean() -> dict[str, Any] | None:
        dump = app.storage()
        text = storage_text(dump)
        return None if any(s in text for s in secrets) else dump

    dump = wait_for(clean, 10, "the browser's storage to hold no PHI")
    assert dump["localStorage"] == {}
    assert set(dump["sessionStorage"]) <= {"relaypacs.token"}
    assert dump["idb"]["relaypacs"] == {"form": [], "uploads": []}
    assert dump["idb"]["uppy-blobs"]["files"] == []
    assert all(not url.startswith(relay.base_url + "/files") for c in dump["caches"].values() for url in c)
    # The page still tells the user what happened (from memory only).
    assert "Delivered" in app.card(scan.name).inner_text()


def test_invalid_file_shows_the_servers_reason(start_relay: Any, open_app: Any, screenshots: Any) -> None:
    relay = start_relay()
    app = open_app(relay.base_url, DESKTOP)
    patient = Patient("PX-10001", "Ramos", "Celia", "1977-02-28")
    bogus = dicom_file("broken-0001.dcm", patient)
    broken = type(bogus)(bogus.name, bogus.mime, b"this is a referral letter, not an image\n" * 200)
    app.fill(patient)
    app.add(broken)
    app.start()

    app.card(broken.name).and_(app.page.locator('[data-phase="refused"], [data-state="rejected"]')).wait_for(
        timeout=30_000
    )
    shown = app.card(broken.name).get_by_test_id("file-detail").inner_text()
    reason = status_of(relay, upload_id_for(relay, len(broken.data)))["reason"]
    assert reason, "the server gave no reason"
    assert reason.strip().rstrip(".").lower() in shown.lower(), (shown, reason)
    assert "Rejected" in app.card(broken.name).get_by_test_id("file-state").inner_text()
    app.screenshot(screenshots / "progress-rejected-desktop.png")


def test_form_is_checked_before_anything_is_sent(start_relay: Any, open_app: Any) -> None:
    relay = start_relay()
    app = open_app(relay.base_url, DESKTOP)
    app.add(jpeg_photo("photo-0001.jpg", 320, 240))
    app.page.fill("#patientId", "PX\\1")
    app.page.fill("#birthDate", "2999-01-01")
    app.page.get_by_test_id("start-upload").focus()
    app.page.keyboard.press("Enter")  # keyboard only

    summary = app.page.get_by_test_id("error-summary")
    summary.wait_for()
    # Focus goes to the summary (screen readers announce it); its links take focus to the field.
    wait_for(
        lambda: app.page.evaluate("document.activeElement?.dataset?.testid") == "error-summary", 5, "focus"
    )
    summary.get_by_role("link", name="Family name: Enter the family name.").press("Enter")
    assert app.page.evaluate("document.activeElement.id") == "familyName"
    text = summary.inner_text()
    assert "Enter the family name" in text
    assert "cannot be in the future" in text
    assert "backslash" in text
    assert app.page.locator("#familyName").get_attribute("aria-invalid") == "true"
    assert app.page.get_by_role("heading", name="Send images").is_visible()  # still on the Upload page
    assert [e for e in relay.log_events() if e.get("event") == "upload.created"] == []


def test_phone_width_layout(start_relay: Any, open_app: Any, screenshots: Any) -> None:
    """360 px: no sideways scrolling, the main button reachable; screenshots of both pages."""
    relay = start_relay()
    app = open_app(relay.base_url, PHONE)
    patient = Patient("PX-36000", "Okafor", "Chidi", "1990-07-15", "M", "", "Laceration forearm", "ARM")
    photo = jpeg_photo("forearm.jpg", 640, 480)
    app.fill(patient)
    app.add(photo)
    width = app.page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the Upload page is {width}px wide on a {PHONE['width']}px screen"
    app.screenshot(screenshots / "upload-phone.png")
    app.start()
    app.wait_state(photo.name, "delivered")
    width = app.page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the Progress page is {width}px wide"
    app.screenshot(screenshots / "progress-phone.png")
