"""Orthanc REST (POST /instances) into a real Orthanc: Success / AlreadyStored read right, conflicts found."""

from __future__ import annotations

import hashlib
from pathlib import Path

import anyio
import pydicom
import pytest

from relaypacs_tus.pacs.auth import Basic
from relaypacs_tus.pacs.base import DeliveryError, DuplicateConflict, Instance, Receipt
from relaypacs_tus.pacs.orthanc import OrthancRestDestination
from tests.services.orthanc import OrthancServer
from tests.services.ports import free_port

from .conftest import MakeInstance, rewrite

pytestmark = pytest.mark.orthanc


def rest(server: OrthancServer) -> OrthancRestDestination:
    return OrthancRestDestination(
        "pacs2", server.url, auth=Basic(server.username, server.password), timeout=10
    )


def deliver(dest: OrthancRestDestination, instance: Instance) -> Receipt:
    return anyio.run(dest.deliver, instance)


def test_stored_unchanged_then_already_stored(orthanc: OrthancServer, make_instance: MakeInstance) -> None:
    instance = make_instance("MR_small_RLE.dcm")
    first = deliver(rest(orthanc), instance)
    assert first.outcome == "stored"
    orthanc_id = orthanc.find_instance(instance.sop_instance_uid)
    assert first.details["orthanc_id"] == orthanc_id
    assert hashlib.sha256(orthanc.get_file(str(orthanc_id))).hexdigest() == instance.sha256
    again = deliver(rest(orthanc), instance)
    assert (again.outcome, again.details["verified_sha256"]) == ("already_stored", True)
    assert orthanc.find_instances(instance.sop_instance_uid) == [orthanc_id]


def test_other_bytes_under_the_same_uid_are_a_conflict(
    orthanc: OrthancServer, make_instance: MakeInstance, tmp_path: Path
) -> None:
    first = make_instance()
    deliver(rest(orthanc), first)
    for name, change in (
        ("same-study", {"PatientName": "X^Y"}),
        ("other-study", {"StudyInstanceUID": "1.2.3.999"}),
    ):
        other = rewrite(first, tmp_path / f"{name}.dcm", **change)
        with pytest.raises(DuplicateConflict) as caught:
            deliver(rest(orthanc), other)
        assert (
            caught.value.reason == "pacs2 already holds a different instance with the same SOP Instance UID"
        )
    assert len(orthanc.find_instances(first.sop_instance_uid)) == 1


def test_a_concurrent_first_copy_is_still_compared(
    orthanc: OrthancServer, make_instance: MakeInstance, tmp_path: Path
) -> None:
    """Lookup says "not there", then Orthanc answers AlreadyStored (another writer won the race)."""
    first = make_instance()
    other = rewrite(first, tmp_path / "other.dcm", PatientName="X^Y")
    dest = rest(orthanc)
    real_compare = dest._compare_existing
    calls = iter([None])

    def racing(instance: Instance) -> Receipt | None:
        result = next(calls, "real")
        if result is None:
            deliver(rest(orthanc), first)  # the other writer stores its copy just now
            return None
        return real_compare(instance)

    dest._compare_existing = racing  # type: ignore[method-assign]
    with pytest.raises(DuplicateConflict):
        deliver(dest, other)


def test_refusals_are_permanent_with_plain_reasons(
    orthanc: OrthancServer, make_instance: MakeInstance, tmp_path: Path
) -> None:
    text = tmp_path / "not.dcm"
    text.write_bytes(b"hello, not DICOM at all")
    fake = Instance(
        str(text), "1.2.3", "1.2.3.4.5", "1.2.3.6", "1.2.3.7", "1.2.840.10008.1.2.1", 23, "0" * 64
    )
    with pytest.raises(DeliveryError) as caught:
        deliver(rest(orthanc), fake)
    assert (caught.value.status, caught.value.transient) == (400, False)
    assert caught.value.reason == "pacs2 could not read the file as DICOM"

    good = make_instance()
    ds = pydicom.dcmread(good.path)
    del ds.StudyInstanceUID
    path = tmp_path / "nostudy.dcm"
    ds.save_as(path, enforce_file_format=True)
    no_study = Instance(**{**good.__dict__, "path": str(path)})
    with pytest.raises(DeliveryError) as caught:
        deliver(rest(orthanc), no_study)
    assert (caught.value.status, caught.value.transient) == (404, False)
    assert caught.value.reason == "pacs2 refused the instance: a required attribute is missing"


def test_unreachable_and_unauthorised_are_transient(
    orthanc: OrthancServer, make_instance: MakeInstance
) -> None:
    gone = OrthancRestDestination("pacs2", f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(DeliveryError) as caught:
        deliver(gone, make_instance())
    assert (caught.value.transient, caught.value.reason) == (True, "could not connect to pacs2")
    wrong = OrthancRestDestination("pacs2", orthanc.url, auth=Basic(orthanc.username, "nope"), timeout=5)
    with pytest.raises(DeliveryError) as caught:
        deliver(wrong, make_instance())
    assert (caught.value.status, caught.value.transient) == (401, True)
