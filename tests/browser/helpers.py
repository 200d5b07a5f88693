"""Helpers for the browser tests: test images, driving the app like a user, reading the server's log."""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from typing import Any

from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from tests.services.waiting import wait_until

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]  # fmt: skip
MiB = 1024 * 1024


@dataclass(frozen=True)
class Patient:
    patient_id: str
    family: str
    given: str
    birth_date: str  # YYYY-MM-DD
    sex: str = "F"
    accession: str = ""
    study_description: str = ""
    body_part: str = ""

    @property
    def dicom_name(self) -> str:
        return f"{self.family}^{self.given}"

    def phi(self) -> list[str]:
        """Strings that must not stay in the browser once the work is done."""
        return [self.patient_id, self.family, self.given, self.birth_date, self.birth_date.replace("-", "")]


@dataclass(frozen=True)
class SampleFile:
    name: str
    mime: str
    data: bytes
    sop_instance_uid: str = ""

    def payload(self) -> dict[str, Any]:
        return {"name": self.name, "mimeType": self.mime, "buffer": self.data}

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def dicom_file(name: str, patient: Patient, megabytes: float = 1.0) -> SampleFile:
    """A valid Part 10 MR image for ``patient``, about ``megabytes`` big (random 16-bit pixels)."""
    side = max(16, int((megabytes * MiB / 2) ** 0.5))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(name, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName = patient.patient_id, patient.dicom_name
    ds.PatientBirthDate, ds.PatientSex = patient.birth_date.replace("-", ""), patient.sex
    ds.AccessionNumber, ds.Modality, ds.InstanceNumber = patient.accession, "MR", 1
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.SeriesNumber = "20261130", "101500", "1", 1
    ds.Rows = ds.Columns = side
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = os.urandom(side * side * 2)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return SampleFile(name, "application/dicom", buf.getvalue(), ds.SOPInstanceUID)


def jpeg_photo(name: str, width: int = 1200, height: int = 900) -> SampleFile:
    """A camera-like JPEG (noise, so it does not compress to nothing)."""
    buf = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(buf, "JPEG", quality=90)
    return SampleFile(name, "image/jpeg", buf.getvalue())


def wait_for(condition: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``condition()`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    return wait_until(condition, timeout, what, interval)


# -- the server's JSON log ---------------------------------------------------------------------------


def events(relay: Any, name: str, **match: Any) -> list[dict[str, Any]]:
    return [
        e
        for e in relay.log_events()
        if e.get("event") == name and all(e.get(k) == v for k, v in match.items())
    ]


def upload_id_for(relay: Any, size: int, timeout: float = 30) -> str:
    """The id of the one upload created with this size (sizes are unique within a test)."""
    created = wait_for(
        lambda: events(relay, "upload.created", size=size), timeout, f"an upload of {size} bytes"
    )
    assert len(created) == 1, f"expected one upload of {size} bytes, the server created {len(created)}"
    return str(created[0]["upload_id"])


def patch_starts(relay: Any, upload_id: str) -> list[tuple[str, int, int]]:
    """(event, start offset, end offset) of every PATCH the server logged for the upload, in order."""
    out = []
    for e in relay.log_events():
        if e.get("upload_id") != upload_id:
            continue
        if e.get("event") == "upload.patch":
            end = int(e["offset"])
            out.append(("patch", end - int(e["received"]), end))
        elif e.get("event") == "upload.patch_failed":
            out.append(("failed", -1, int(e.get("kept", 0))))
    return out


def assert_resumed_without_restart(relay: Any, upload_id: str, size: int) -> list[tuple[str, int, int]]:
    """The PATCHes start at 0 once, then each starts where the server's offset was: nothing re-sent from 0,
    nothing skipped, and the last one ends at the size."""
    log = patch_starts(relay, upload_id)
    patches = [p for p in log if p[0] == "patch"]
    assert patches, f"no PATCH logged for {upload_id}"
    assert patches[0][1] == 0, log
    assert all(start > 0 for _, start, _ in patches[1:]), f"an upload restarted from zero: {log}"
    known = 0
    for kind, start, end in log:
        if kind == "failed":
            known += end  # bytes the server kept from an interrupted PATCH
            continue
        assert start >= known, f"PATCH from {start} re-sends bytes the server had (offset {known}): {log}"
        known = end
    assert known == size, f"the upload ended at {known} of {size}: {log}"
    return log


# -- the app, as a user drives it ----------------------------------------------------------------------

STORAGE_DUMP_JS = """async () => {
  const out = {localStorage: {...localStorage}, sessionStorage: {...sessionStorage}, idb: {}, caches: {}};
  const plain = (v) => JSON.parse(JSON.stringify(v, (k, x) => x instanceof Blob ? `<blob ${x.size}>` : x));
  const done = (r) => new Promise((ok, bad) => { r.onsuccess = () => ok(r.result); r.onerror = bad });
  for (const info of await indexedDB.databases()) {
    const db = await done(indexedDB.open(info.name));
    out.idb[info.name] = {};
    for (const store of db.objectStoreNames) {
      out.idb[info.name][store] = plain(await done(db.transaction(store).objectStore(store).getAll()));
    }
    db.close();
  }
  for (const name of await caches.keys()) {
    const cache = await caches.open(name);
    out.caches[name] = {};
    for (const request of await cache.keys()) {
      const response = await cache.match(request);
      const type = response.headers.get('content-type') || '';
      const text = /text|json|javascript/.test(type) || request.url.endsWith('.js');
      out.caches[name][request.url] = text ? await response.text() : `<${type}>`;
    }
  }
  return out;
}"""


class UploadApp:
    """The PWA in one browser tab."""

    def __init__(self, page: Any, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.console_errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
        page.on("pageerror", lambda e: self.console_errors.append(str(e)))

    def open(self, path: str = "/") -> None:
        self.page.goto(self.base_url + path)
        self.page.get_by_role("heading", level=1).wait_for()

    def wait_for_service_worker(self) -> None:
        # Polled from here: the app's CSP forbids the eval that page.wait_for_function relies on.
        wait_for(
            lambda: self.page.evaluate("navigator.serviceWorker.controller !== null"),
            20,
            "the service worker",
        )

    def fill(self, patient: Patient) -> None:
        p = self.page
        p.fill("#patientId", patient.patient_id)
        p.fill("#familyName", patient.family)
        p.fill("#givenName", patient.given)
        p.fill("#birthDate", patient.birth_date)
        p.select_option("#sex", patient.sex)
        p.fill("#accessionNumber", patient.accession)
        p.fill("#studyDescription", patient.study_description)
        p.fill("#bodyPart", patient.body_part)

    def add(self, *files: SampleFile) -> None:
        self.page.locator("input.uppy-Dashboard-input").first.set_input_files([f.payload() for f in files])
        self.page.locator(".uppy-Dashboard-Item").nth(len(files) - 1).wait_for()

    def start(self) -> None:
        self.page.get_by_test_id("start-upload").click()

    def card(self, name: str) -> Any:
        return self.page.locator(f'[data-testid="file-card"][data-name="{name}"]')

    def card_state(self, name: str) -> dict[str, str]:
        card = self.card(name)
        return {
            "phase": card.get_attribute("data-phase") or "",
            "state": card.get_attribute("data-state") or "",
            "text": card.inner_text(),
        }

    def wait_state(self, name: str, state: str, timeout: float = 60) -> None:
        """Wait for a pipeline state (delivered, rejected ...) on the file's card."""
        self.card(name).and_(self.page.locator(f'[data-state="{state}"]')).wait_for(timeout=timeout * 1000)

    def wait_phase(self, name: str, phase: str, timeout: float = 60) -> None:
        self.card(name).and_(self.page.locator(f'[data-phase="{phase}"]')).wait_for(timeout=timeout * 1000)

    def uploaded_fraction(self, name: str) -> float:
        bar = self.card(name).locator("progress")
        if bar.count() == 0:
            return 0.0
        return float(bar.get_attribute("value") or 0)

    def storage(self) -> dict[str, Any]:
        result: dict[str, Any] = self.page.evaluate(STORAGE_DUMP_JS)
        return result

    def screenshot(self, path: Any) -> None:
        self.page.screenshot(path=str(path), full_page=True)


def storage_text(dump: dict[str, Any]) -> str:
    return json.dumps(dump, ensure_ascii=False)
