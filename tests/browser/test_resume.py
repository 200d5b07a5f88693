"""Interrupted uploads resume from the server's offset: network loss, a page reload, a server restart.

Uploads are slowed with Chromium's own network emulation (CDP) so they can be interrupted mid-way. The
server's JSON log is the witness: one upload created per file, and every PATCH after an interruption
starts where the server's offset was (never again from zero). The bytes that reach Orthanc are checked.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import DESKTOP
from .helpers import (
    MiB,
    Patient,
    SampleFile,
    UploadApp,
    assert_resumed_without_restart,
    dicom_file,
    events,
    upload_id_for,
    wait_for,
)
from .netproxy import CuttableProxy

pytestmark = [pytest.mark.browser, pytest.mark.orthanc]

PATIENT = Patient("PX-70707", "Lindqvist", "Maja", "1955-09-30", "F", "ACC-7070", "MR knee", "KNEE")
CHUNK = 5 * MiB  # client/src/services/uploader.ts CHUNK_SIZE


class Network:
    """Chromium's network emulation for one page (one CDP session: offline and throttling must share it)."""

    def __init__(self, app: UploadApp) -> None:
        self.cdp = app.page.context.new_cdp_session(app.page)
        self.cdp.send("Network.enable")
        self.upload_rate = -1

    def _apply(self, offline: bool) -> None:
        conditions = {
            "offline": offline,
            "latency": 0,
            "downloadThroughput": -1,
            "uploadThroughput": self.upload_rate,
        }
        self.cdp.send("Network.emulateNetworkConditions", conditions)

    def throttle(self, bytes_per_second: int) -> None:
        self.upload_rate = bytes_per_second
        self._apply(False)

    def offline(self) -> None:
        self._apply(True)

    def online(self) -> None:
        self._apply(False)


def start_slow_upload(app: UploadApp, scan: SampleFile, rate: int = 2 * MiB) -> Network:
    network = Network(app)
    app.fill(PATIENT)
    app.add(scan)
    network.throttle(rate)
    app.start()
    return network


def first_chunk_stored(relay: Any, upload_id: str) -> None:
    wait_for(lambda: events(relay, "upload.patch", upload_id=upload_id), 60, "the first chunk on the server")


def assert_delivered_intact(app: UploadApp, orthanc: Any, scan: SampleFile, timeout: float = 120) -> None:
    app.wait_state(scan.name, "delivered", timeout)
    stored = orthanc.get_file(orthanc.find_instance(scan.sop_instance_uid))
    assert stored == scan.data, "the bytes in the PACS differ from the file that was picked"


def test_network_drop_resumes_from_the_servers_offset(start_relay: Any, open_app: Any, orthanc: Any) -> None:
    relay = start_relay()
    proxy = CuttableProxy(relay.port)
    try:
        app = open_app(proxy.base_url, DESKTOP)
        scan = dicom_file("mr-knee-drop.dcm", PATIENT, megabytes=12)
        start_slow_upload(app, scan)
        upload_id = upload_id_for(relay, len(scan.data))
        first_chunk_stored(relay, upload_id)
        # The network goes in the middle of the second chunk, and comes back once the server noticed.
        wait_for(
            lambda: app.uploaded_fraction(scan.name) > (CHUNK + MiB) / len(scan.data), 30, "the 2nd chunk"
        )
        proxy.cut()
        wait_for(
            lambda: events(relay, "upload.patch_failed", upload_id=upload_id),
            30,
            "the server to see the drop",
        )
        proxy.restore()

        assert_delivered_intact(app, orthanc, scan)
    finally:
        proxy.close()
    log = assert_resumed_without_restart(relay, upload_id, len(scan.data))
    kept = [end for kind, _, end in log if kind == "failed"]
    resumed = [start for kind, start, _ in log if kind == "patch" and start % CHUNK]
    assert kept, f"the drop did not happen mid-PATCH: {log}"
    assert kept[0] > 0, f"the server kept nothing of the interrupted PATCH: {log}"
    assert resumed, f"no PATCH resumed from the server's own (mid-chunk) offset: {log}"
    assert len(events(relay, "upload.created")) == 1


def test_offline_waits_for_the_network(start_relay: Any, open_app: Any, orthanc: Any) -> None:
    relay = start_relay()
    app = open_app(relay.base_url, DESKTOP)
    scan = dicom_file("mr-knee-offline.dcm", PATIENT, megabytes=1)
    network = Network(app)
    app.fill(PATIENT)
    app.add(scan)
    network.offline()
    app.page.get_by_test_id("offline-banner").wait_for()
    app.start()
    app.card(scan.name).get_by_text("continues when the network is back").wait_for()
    network.online()
    assert_delivered_intact(app, orthanc, scan)
    assert len(events(relay, "upload.created")) == 1


def test_reload_restores_form_and_file_and_completes(start_relay: Any, open_app: Any, orthanc: Any) -> None:
    relay = start_relay()
    app = open_app(relay.base_url, DESKTOP)
    app.wait_for_service_worker()
    scan = dicom_file("mr-knee-reload.dcm", PATIENT, megabytes=12)
    start_slow_upload(app, scan)
    upload_id = upload_id_for(relay, len(scan.data))
    first_chunk_stored(relay, upload_id)

    app.page.reload()
    app.page.get_by_role("heading", level=1).wait_for()
    app.page.get_by_role("link", name="Upload").click()
    assert app.page.locator("#patientId").input_value() == PATIENT.patient_id
    assert app.page.locator("#familyName").input_value() == PATIENT.family
    assert app.page.locator("#birthDate").input_value() == PATIENT.birth_date
    app.page.get_by_role("link", name="Progress").click()

    assert_delivered_intact(app, orthanc, scan)
    assert_resumed_without_restart(relay, upload_id, len(scan.data))
    assert len(events(relay, "upload.created")) == 1


def test_server_restart_mid_upload_completes(start_relay: Any, open_app: Any, orthanc: Any) -> None:
    relay = start_relay()
    app = open_app(relay.base_url, DESKTOP)
    scan = dicom_file("mr-knee-restart.dcm", PATIENT, megabytes=12)
    start_slow_upload(app, scan)
    upload_id = upload_id_for(relay, len(scan.data))
    first_chunk_stored(relay, upload_id)

    relay.restart()  # SIGKILL mid-PATCH, then the same port and data

    assert_delivered_intact(app, orthanc, scan)
    assert_resumed_without_restart(relay, upload_id, len(scan.data))
    assert len(events(relay, "upload.created")) == 1


def test_app_opens_offline_with_the_form_and_files_kept(
    start_relay: Any, open_app: Any, orthanc: Any
) -> None:
    """The Workbox precache serves the app shell without a network; Dexie and Golden Retriever give back
    the form and the picked file; the upload then goes once the network is back."""
    relay = start_relay()
    app = open_app(relay.base_url, DESKTOP)
    app.wait_for_service_worker()
    scan = dicom_file("mr-knee-offline-shell.dcm", PATIENT, megabytes=1)
    app.fill(PATIENT)
    app.add(scan)
    wait_for(lambda: "<blob" in json.dumps(app.storage()["idb"].get("uppy-blobs", {})), 10, "the file kept")

    app.page.context.set_offline(True)
    app.page.reload()
    app.page.get_by_role("heading", name="Send images").wait_for()
    app.page.get_by_test_id("offline-banner").wait_for()
    assert app.page.locator("#patientId").input_value() == PATIENT.patient_id
    app.page.locator(".uppy-Dashboard-Item").first.wait_for()

    app.page.context.set_offline(False)
    app.start()
    assert_delivered_intact(app, orthanc, scan)


def test_discard_mid_upload_terminates_it_and_leaves_nothing(start_relay: Any, open_app: Any) -> None:
    relay = start_relay()
    app = open_app(relay.base_url, DESKTOP)
    scan = dicom_file("mr-knee-discard.dcm", PATIENT, megabytes=12)
    start_slow_upload(app, scan)
    upload_id = upload_id_for(relay, len(scan.data))
    first_chunk_stored(relay, upload_id)

    app.page.get_by_role("link", name="Upload").click()
    app.page.get_by_test_id("discard").click()
    wait_for(
        lambda: events(relay, "upload.terminated", upload_id=upload_id), 30, "the upload to be terminated"
    )
    assert app.page.locator("#patientId").input_value() == ""

    def clean() -> bool:
        text = json.dumps(app.storage())
        return not any(s in text for s in [*PATIENT.phi(), scan.name, "<blob"])

    wait_for(clean, 10, "the browser's storage to hold nothing of the discarded upload")
    assert app.card(scan.name).count() == 0
