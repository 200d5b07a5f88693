"""C-STORE to a real Orthanc, dcmtk's storescp and an in-process SCP answering every DIMSE status."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import anyio
import pydicom
import pytest
from pynetdicom import evt

from relaypacs_tus.pacs.base import DeliveryError, DuplicateConflict, Instance, Receipt
from relaypacs_tus.pacs.cstore import CStoreDestination
from tests.services.orthanc import OrthancServer, StoreScp
from tests.services.ports import free_port

from .conftest import DimseScp, MakeInstance, dataset_bytes


def cstore(port: int, called: str, host: str = "127.0.0.1", **kwargs: object) -> CStoreDestination:
    return CStoreDestination(
        "legacy", host, port, called_aet=called, calling_aet="RELAYPACS", timeout=5, **kwargs
    )  # type: ignore[arg-type]


def deliver(dest: CStoreDestination, instance: Instance) -> Receipt:
    return anyio.run(dest.deliver, instance)


SOURCES = [
    "CT_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "JPEG2000.dcm",
    "MR_small_RLE.dcm",
]


def same_content(received: Path | bytes, sent: str) -> bool:
    """Element by element (DCMTK-based receivers re-encode what they store, e.g. drop trailing padding)."""
    import io

    theirs = pydicom.dcmread(io.BytesIO(received) if isinstance(received, bytes) else received)
    ours = pydicom.dcmread(sent)
    strip = {0xFFFCFFFC}
    return [e for e in theirs if e.tag not in strip] == [e for e in ours if e.tag not in strip]


@pytest.mark.parametrize("source", SOURCES)
def test_the_data_set_goes_over_the_wire_byte_for_byte(
    dimse_scp: DimseScp, make_instance: MakeInstance, source: str
) -> None:
    instance = make_instance(source)
    assert deliver(cstore(dimse_scp.port, dimse_scp.aet), instance).outcome == "stored"
    assert dimse_scp.received == [
        (instance.sop_instance_uid, hashlib.sha256(dataset_bytes(instance.path)).hexdigest())
    ]


@pytest.mark.orthanc
@pytest.mark.parametrize("source", ["CT_small.dcm", "MR_small_implicit.dcm", "JPEG2000.dcm"])
def test_orthanc_stores_it(orthanc: OrthancServer, make_instance: MakeInstance, source: str) -> None:
    instance = make_instance(source)
    receipt = deliver(cstore(orthanc.dicom_port, orthanc.aet), instance)
    assert (receipt.outcome, receipt.details["dimse_status"]) == ("stored", "0x0000")
    assert same_content(
        orthanc.get_file(str(orthanc.find_instance(instance.sop_instance_uid))), instance.path
    )


@pytest.mark.orthanc
def test_photo_goes_over_c_store_in_jpeg_baseline(
    orthanc: OrthancServer, make_photo: Callable[[], Instance]
) -> None:
    photo = make_photo()
    assert deliver(cstore(orthanc.dicom_port, orthanc.aet), photo).outcome == "stored"
    tags = orthanc.instance_tags(str(orthanc.find_instance(photo.sop_instance_uid)))
    assert tags["PatientID"] == "PHOTO-1"


@pytest.mark.orthanc
def test_an_sop_class_the_pacs_does_not_take_is_permanent(
    orthanc: OrthancServer, make_instance: MakeInstance, tmp_path: Path
) -> None:
    instance = make_instance(SOPClassUID="1.2.826.0.1.3680043.10.9999.1")  # UnknownSopClassAccepted: false
    with pytest.raises(DeliveryError) as caught:
        deliver(cstore(orthanc.dicom_port, orthanc.aet), instance)
    assert caught.value.transient is False
    assert caught.value.reason.startswith("legacy does not accept")


def test_storescp_receives_the_file(storescp: StoreScp, make_instance: MakeInstance) -> None:
    instance = make_instance("MR_small_RLE.dcm")
    assert deliver(cstore(storescp.port, storescp.aet), instance).outcome == "stored"
    received = storescp.file_for(instance.sop_instance_uid)
    assert received is not None
    assert same_content(received, instance.path)


@pytest.mark.parametrize(
    ("status", "transient", "words"),
    [
        (0xA700, True, "the PACS is out of resources"),
        (0xA900, False, "found the data set invalid for its SOP class"),
        (0xC000, False, "cannot understand the instance"),
        (0x0122, False, "does not accept this kind of DICOM object"),
        (0x0110, False, "could not process the instance"),
        (0xFE00, True, "cancelled the store"),
    ],
)
def test_failure_statuses(
    dimse_scp: DimseScp, make_instance: MakeInstance, status: int, transient: bool, words: str
) -> None:
    dimse_scp.status = status
    with pytest.raises(DeliveryError) as caught:
        deliver(cstore(dimse_scp.port, dimse_scp.aet), make_instance())
    assert (caught.value.status, caught.value.transient) == (status, transient)
    assert words in caught.value.reason


def test_warning_and_duplicate_statuses(dimse_scp: DimseScp, make_instance: MakeInstance) -> None:
    dimse_scp.status = 0xB000
    instance = make_instance()
    receipt = deliver(cstore(dimse_scp.port, dimse_scp.aet), instance)
    assert receipt.outcome == "stored_with_warnings"
    assert receipt.warnings == ("the PACS stored the instance with warning status 0xb000",)
    assert dimse_scp.received[-1] == (
        instance.sop_instance_uid,
        hashlib.sha256(dataset_bytes(instance.path)).hexdigest(),
    )
    dimse_scp.status = 0x0111
    with pytest.raises(DuplicateConflict):
        deliver(cstore(dimse_scp.port, dimse_scp.aet), make_instance())


def test_an_abort_during_the_store_is_transient(dimse_scp: DimseScp, make_instance: MakeInstance) -> None:
    def abort(event: evt.Event) -> int:
        event.assoc.abort()  # A-ABORT instead of a C-STORE response
        return 0x0000

    dimse_scp.status = abort
    with pytest.raises(DeliveryError) as caught:
        deliver(cstore(dimse_scp.port, dimse_scp.aet), make_instance())
    assert caught.value.transient is True
    assert caught.value.reason == "legacy ended the association before answering"


def test_a_failing_scp_handler_is_a_permanent_failure(
    dimse_scp: DimseScp, make_instance: MakeInstance
) -> None:
    def broken(event: evt.Event) -> int:
        raise RuntimeError("disk full")  # pynetdicom answers 0xC211 (Cannot understand)

    dimse_scp.status = broken
    with pytest.raises(DeliveryError) as caught:
        deliver(cstore(dimse_scp.port, dimse_scp.aet), make_instance())
    assert (caught.value.status, caught.value.transient) == (0xC211, False)


def test_rejected_association_and_refused_connection(make_instance: MakeInstance, tmp_path: Path) -> None:
    from pynetdicom import AE, StoragePresentationContexts

    ae = AE(ae_title="STRICT")
    ae.supported_contexts = StoragePresentationContexts
    ae.require_called_aet = True
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False)
    try:
        with pytest.raises(DeliveryError) as caught:
            deliver(cstore(port, "WRONGAET"), make_instance())
        assert caught.value.transient is False  # rejected-permanent
        assert "rejected the association" in caught.value.reason
    finally:
        server.shutdown()
    with pytest.raises(DeliveryError) as caught:
        deliver(cstore(free_port(), "ANY"), make_instance())
    assert (caught.value.transient, caught.value.reason) == (True, "could not connect to legacy")


def test_ae_titles_are_checked() -> None:
    with pytest.raises(ValueError, match="called_aet"):
        CStoreDestination("x", "h", 104, called_aet="A" * 17)
    with pytest.raises(ValueError, match="calling_aet"):
        CStoreDestination("x", "h", 104, called_aet="PACS", calling_aet="BAD\\AET")


@pytest.mark.orthanc
def test_ae_titles_are_what_a_strict_pacs_checks(tmp_path: Path, make_instance: MakeInstance) -> None:
    """Orthanc checking both AE titles: only our configured calling AE at the right called AE gets in."""
    strict = OrthancServer(tmp_path / "strict", aet="STRICTPACS")
    strict.extra_config = {
        "DicomCheckCalledAet": True,
        "DicomAlwaysAllowEcho": False,
        "DicomAlwaysAllowStore": False,
        "DicomModalities": {"relay": ["RELAYPACS", "127.0.0.1", 11112]},
    }
    strict.start()
    try:
        with pytest.raises(DeliveryError) as caught:
            deliver(cstore(strict.dicom_port, "ORTHANC"), make_instance())
        assert caught.value.transient is False
        assert "Called AE title not recognised" in caught.value.reason
        other = CStoreDestination(
            "legacy", "127.0.0.1", strict.dicom_port, called_aet="STRICTPACS", calling_aet="STRANGER"
        )
        with pytest.raises(DeliveryError) as caught:
            deliver(other, make_instance())
        assert "Calling AE title not recognised" in caught.value.reason
        assert deliver(cstore(strict.dicom_port, "STRICTPACS"), make_instance()).outcome == "stored"
        assert strict.count_instances() == 1
    finally:
        strict.stop()
