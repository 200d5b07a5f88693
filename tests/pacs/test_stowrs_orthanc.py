"""STOW-RS into a real Orthanc: bytes unchanged, duplicates detected, errors classified."""

from __future__ import annotations

import hashlib
import threading
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import anyio
import numpy as np
import pydicom
import pytest

from relaypacs_tus.dicom.validate import validate_part10
from relaypacs_tus.pacs.auth import Basic
from relaypacs_tus.pacs.base import DeliveryError, DuplicateConflict, Instance, Receipt
from relaypacs_tus.pacs.stowrs import StowRsDestination
from tests.services.orthanc import OrthancServer

from .conftest import MakeInstance, rewrite

pytestmark = pytest.mark.orthanc


def stow(server: OrthancServer, **kwargs: object) -> StowRsDestination:
    password = str(kwargs.pop("password", server.password))
    auth = Basic(server.username, password)
    return StowRsDestination("orthanc", server.dicomweb_url, auth=auth, timeout=10, **kwargs)  # type: ignore[arg-type]


def deliver(destination: StowRsDestination, instance: Instance) -> Receipt:
    return anyio.run(destination.deliver, instance)


def stored_sha256(server: OrthancServer, sop: str) -> str:
    orthanc_id = server.find_instance(sop)
    assert orthanc_id is not None, "not in Orthanc"
    return hashlib.sha256(server.get_file(orthanc_id)).hexdigest()


@pytest.mark.parametrize(
    "source",
    ["CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "JPEG2000.dcm", "image_dfl.dcm"],
)
def test_instances_arrive_byte_identical(
    orthanc: OrthancServer, make_instance: MakeInstance, source: str
) -> None:
    instance = make_instance(source)
    receipt = deliver(stow(orthanc), instance)
    assert receipt.outcome == "stored"
    assert receipt.sop_instance_uid == instance.sop_instance_uid
    assert stored_sha256(orthanc, instance.sop_instance_uid) == instance.sha256


def test_a_wrapped_photo_is_filed_and_renders(
    orthanc: OrthancServer, make_photo: Callable[[], Instance]
) -> None:
    photo = make_photo()
    assert deliver(stow(orthanc), photo).outcome == "stored"
    assert stored_sha256(orthanc, photo.sop_instance_uid) == photo.sha256
    orthanc_id = orthanc.find_instance(photo.sop_instance_uid)
    tags = orthanc.instance_tags(str(orthanc_id))
    assert (tags["PatientID"], tags["Modality"], tags["SOPClassUID"]) == (
        "PHOTO-1",
        "XC",
        "1.2.840.10008.5.1.4.1.1.7",
    )
    preview = orthanc.http.get(f"{orthanc.url}/instances/{orthanc_id}/preview", timeout=10)
    assert preview.status_code == 200
    assert preview.headers["Content-Type"] == "image/png"


def test_the_same_instance_again_is_an_idempotent_success(
    orthanc: OrthancServer, make_instance: MakeInstance
) -> None:
    instance = make_instance()
    destination = stow(orthanc)
    deliver(destination, instance)
    before = orthanc.count_instances()
    again = deliver(destination, instance)
    assert again.outcome == "already_stored"
    assert again.details["verified_sha256"] is True
    assert orthanc.count_instances() == before


def test_same_uid_with_other_bytes_is_a_conflict_not_a_silent_drop(
    orthanc: OrthancServer, make_instance: MakeInstance, tmp_path: Path
) -> None:
    first = make_instance()
    deliver(stow(orthanc), first)
    other = rewrite(first, tmp_path / "other.dcm", PatientName="Someone^Else")
    with pytest.raises(DuplicateConflict) as caught:
        deliver(stow(orthanc), other)
    assert caught.value.transient is False
    assert caught.value.reason == "orthanc already holds a different instance with the same SOP Instance UID"
    assert "Someone" not in str(caught.value.details)
    assert stored_sha256(orthanc, first.sop_instance_uid) == first.sha256  # Orthanc kept the first copy


def test_same_uid_in_another_study_is_a_conflict(
    orthanc: OrthancServer, make_instance: MakeInstance, tmp_path: Path
) -> None:
    first = make_instance()
    deliver(stow(orthanc), first)
    elsewhere = rewrite(first, tmp_path / "moved.dcm", StudyInstanceUID=pydicom.uid.generate_uid())
    with pytest.raises(DuplicateConflict):
        deliver(stow(orthanc), elsewhere)
    assert orthanc.find_instances(first.sop_instance_uid) == [orthanc.find_instance(first.sop_instance_uid)]


def test_without_duplicate_check_orthanc_drops_silently_and_verification_catches_it(
    orthanc: OrthancServer, make_instance: MakeInstance, tmp_path: Path
) -> None:
    first = make_instance()
    deliver(stow(orthanc), first)
    other = rewrite(first, tmp_path / "other.dcm", PatientName="Someone^Else")
    # What Orthanc does (200, our SOP listed), and why "none" is only for PACSs that refuse duplicates:
    assert deliver(stow(orthanc, duplicate_check="none"), other).outcome == "stored"
    assert stored_sha256(orthanc, first.sop_instance_uid) == first.sha256
    with pytest.raises(DuplicateConflict):
        deliver(stow(orthanc, duplicate_check="none", verify_after_store=True), other)


def test_verify_after_store_proves_byte_exact_storage(
    orthanc: OrthancServer, make_instance: MakeInstance
) -> None:
    receipt = deliver(stow(orthanc, verify_after_store=True), make_instance())
    assert receipt.outcome == "stored"
    assert receipt.details["verified_sha256"] is True


def test_wrong_credentials_are_transient_and_say_so(
    orthanc: OrthancServer, make_instance: MakeInstance
) -> None:
    with pytest.raises(DeliveryError) as caught:
        deliver(stow(orthanc, password="wrong"), make_instance())
    assert caught.value.status == 401
    assert caught.value.transient is True
    assert "refused the relay's credentials" in caught.value.reason


def test_a_stopped_pacs_is_transient_and_delivery_works_after_restart(
    fresh_orthanc: OrthancServer, make_instance: MakeInstance
) -> None:
    instance = make_instance()
    destination = stow(fresh_orthanc)
    fresh_orthanc.stop()
    with pytest.raises(DeliveryError) as caught:
        deliver(destination, instance)
    assert caught.value.transient is True
    assert caught.value.reason == "could not connect to orthanc"
    fresh_orthanc.start()
    assert deliver(destination, instance).outcome == "stored"
    assert fresh_orthanc.count_instances() == 1


def test_refused_instances_are_permanent(
    orthanc: OrthancServer, make_instance: MakeInstance, tmp_path: Path
) -> None:
    good = make_instance()
    no_study = tmp_path / "nostudy.dcm"
    ds = pydicom.dcmread(good.path)
    del ds.StudyInstanceUID
    ds.save_as(no_study, enforce_file_format=True)
    broken = Instance(str(no_study), good.sop_class_uid, good.sop_instance_uid, "", good.series_instance_uid,
                      good.transfer_syntax_uid, no_study.stat().st_size, "0" * 64)  # fmt: skip
    with pytest.raises(DeliveryError) as caught:
        deliver(stow(orthanc, duplicate_check="none"), broken)
    assert caught.value.transient is False
    assert caught.value.reason == "orthanc: the PACS cannot understand the instance"  # FailureReason 0xC000
    assert caught.value.details["failure_reason"] == 0xC000


def test_study_in_url_mismatch_is_refused(orthanc: OrthancServer, make_instance: MakeInstance) -> None:
    instance = make_instance()
    wrong = Instance(**{**instance.__dict__, "study_instance_uid": pydicom.uid.generate_uid()})
    with pytest.raises(DeliveryError) as caught:
        deliver(stow(orthanc, study_in_url=True), wrong)
    assert (caught.value.status, caught.value.transient) == (409, False)
    assert caught.value.details["failure_reason"] == 272
    assert orthanc.find_instance(instance.sop_instance_uid) is None


def test_a_large_instance_is_streamed_not_loaded(
    orthanc: OrthancServer, make_instance: MakeInstance, tmp_path: Path
) -> None:
    base = pydicom.dcmread(make_instance().path)
    base.SOPInstanceUID = base.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    base.Rows, base.Columns = 3000, 4000
    base.PixelData = np.random.default_rng(3).integers(0, 4096, (3000, 4000), dtype=np.uint16).tobytes()
    path = tmp_path / "big.dcm"
    base.save_as(path, enforce_file_format=True)
    del base
    instance = Instance.from_info(path, validate_part10(path))
    destination = stow(orthanc)
    tracemalloc.start()
    try:
        receipt = deliver(destination, instance)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert receipt.outcome == "stored"
    assert instance.size > 24_000_000
    assert peak < 6_000_000, peak  # well under the file size: read and sent in blocks
    assert stored_sha256(orthanc, instance.sop_instance_uid) == instance.sha256


def test_concurrent_deliveries_are_bounded_and_all_arrive(
    orthanc: OrthancServer, make_instance: MakeInstance
) -> None:
    instances = [make_instance() for _ in range(6)]
    auth = Basic(orthanc.username, orthanc.password)
    destination = StowRsDestination("orthanc", orthanc.dicomweb_url, auth=auth, max_concurrency=2)
    active, peak, lock = 0, 0, threading.Lock()
    original = destination._deliver

    def counting(instance: Instance) -> Receipt:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        try:
            return original(instance)
        finally:
            with lock:
                active -= 1

    destination._deliver = counting  # type: ignore[method-assign]

    async def all_of_them() -> list[Receipt]:
        results: list[Receipt] = []
        async with anyio.create_task_group() as tg:
            for instance in instances:
                tg.start_soon(lambda i=instance: _collect(destination, i, results))
        return results

    receipts = anyio.run(all_of_them)
    assert sorted(r.sop_instance_uid for r in receipts) == sorted(i.sop_instance_uid for i in instances)
    assert peak <= 2
    for instance in instances:
        assert stored_sha256(orthanc, instance.sop_instance_uid) == instance.sha256


async def _collect(destination: StowRsDestination, instance: Instance, out: list[Receipt]) -> None:
    out.append(await destination.deliver(instance))
