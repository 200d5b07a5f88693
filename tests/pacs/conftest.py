"""Fixtures for the delivery tests: instances with fresh UIDs, the fake cloud PACS, an in-process
pynetdicom Storage SCP that answers any DIMSE status."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt

from relaypacs_tus.dicom.secondary_capture import PatientStudy, SeriesPlacement, new_uid, wrap_image
from relaypacs_tus.dicom.validate import validate_part10
from relaypacs_tus.pacs.base import Instance
from tests.dicom.factories import dicom_file, jpeg_file
from tests.services.ports import free_port

from .fakes import CloudPacs, FakeClock, serve

MakeInstance = Callable[..., Instance]


@pytest.fixture
def make_instance(tmp_path: Path) -> MakeInstance:
    """``make_instance(source="CT_small.dcm", **attributes)``: a validated Part 10 file with fresh UIDs."""
    counter = iter(range(1_000_000))

    def make(source: str = "CT_small.dcm", **attributes: Any) -> Instance:
        path = dicom_file(tmp_path / "instances" / f"{next(counter)}.dcm", source, **attributes)
        return Instance.from_info(path, validate_part10(path))

    return make


@pytest.fixture
def make_photo(tmp_path: Path) -> Callable[[], Instance]:
    """A JPEG photo wrapped as Secondary Capture (JPEG Baseline transfer syntax)."""
    counter = iter(range(1_000_000))

    def make() -> Instance:
        n = next(counter)
        src = jpeg_file(tmp_path / "photos" / f"{n}.jpg")
        out = tmp_path / "photos" / f"{n}.dcm"
        place = SeriesPlacement(new_uid(None), new_uid(None), 1)
        info = wrap_image(
            src, out, patient=PatientStudy(patient_id="PHOTO-1"), placement=place, org_root=None
        )
        return Instance.from_info(out, info)

    return make


def rewrite(instance: Instance, path: Path, **attributes: Any) -> Instance:
    """The same SOP Instance UID (and study/series) with other bytes."""
    import pydicom

    ds = pydicom.dcmread(instance.path)
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    return Instance.from_info(path, validate_part10(path))


def dataset_bytes(path: str | Path) -> bytes:
    """A Part 10 file without its preamble and File Meta group: what C-STORE carries."""
    data = Path(path).read_bytes()
    group_length = int.from_bytes(data[140:144], "little")  # (0002,0000) UL, PS3.10 §7.1
    return data[144 + group_length :]


@pytest.fixture
def cloud_pacs() -> Iterator[CloudPacs]:
    pacs = CloudPacs(clock=FakeClock())
    with serve(pacs):
        yield pacs


@dataclass
class DimseScp:
    """An in-process Storage SCP: answers ``status`` (an int, or a callable of the C-STORE event) to
    every C-STORE and records what it received."""

    port: int
    aet: str
    status: int | Callable[[evt.Event], int] = 0x0000
    received: list[tuple[str, str]] = field(default_factory=list)  # (SOP Instance UID, sha256 of data set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, event: evt.Event) -> int:
        dataset = event.dataset
        raw = event.request.DataSet.getvalue()  # the data set bytes as they arrived
        with self.lock:
            self.received.append((str(dataset.SOPInstanceUID), hashlib.sha256(raw).hexdigest()))
        return self.status(event) if callable(self.status) else self.status


@pytest.fixture
def dimse_scp() -> Iterator[DimseScp]:
    ae = AE(ae_title="TESTSCP")
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    scp = DimseScp(port=free_port(), aet="TESTSCP")
    server = ae.start_server(
        ("127.0.0.1", scp.port), block=False, evt_handlers=[(evt.EVT_C_STORE, scp.handle)]
    )
    try:
        yield scp
    finally:
        server.shutdown()
