"""STOW-RS delivery (DICOM PS3.18 §10.5) with the Part 10 bytes passed through unchanged.

dicomweb-client's ``store_instances`` re-serialises pydicom Datasets, so the relay POSTs the file's own
bytes through the client's ``requests`` session, streamed from disk with a ``Content-Length``:
``Content-Type: multipart/related; type="application/dicom"; boundary=<uuid4 hex>`` (a boundary of
letters and digits only: Orthanc answers 415 to one containing ``=``), ``Accept: application/dicom+json``
(Azure answers 406 otherwise; Google sends XML). dicomweb-client also runs the QIDO-RS searches.

Success means HTTP 200/202 **and** our SOP Instance UID in ReferencedSOPSequence (0008,1199): Orthanc
answers 200 with an empty sequence for several malformed requests. FailureReason (0008,1197) values are
mapped to plain reasons and transient/permanent (PS3.18 Annex I, Table I.2-2; Azure and Google codes).
A 202 or a WarningReason (0008,1196) gives ``stored_with_warnings``.

Duplicate SOP Instance UIDs, per destination (``duplicate_check``):

* ``"qido"`` (default): before sending, QIDO-RS ``/instances?SOPInstanceUID=``; when the PACS already has
  the UID, WADO-RS retrieves it (``transfer-syntax=*``: as stored) and its SHA-256 is compared with
  ours: equal -> ``already_stored`` without sending, different -> ``DuplicateConflict``. Needed for
  Orthanc (keeps the first copy and still answers 200 listing the SOP) and dcm4chee (default overwrite
  policy NEVER: same). The same comparison settles Azure's 45070 / Google's 409 "already exists".
* ``"none"``: for PACSs without QIDO-RS by SOP Instance UID, or that transcode on store (AWS
  HealthImaging stores most transfer syntaxes as HTJ2K, so bytes never compare equal). Then only the
  PACS's own signals count: Azure 45070 and Google 409/272 "already exists" become ``DuplicateConflict``
  (the bytes cannot be compared); a PACS that silently keeps the first copy cannot be detected.

``verify_after_store`` additionally retrieves every stored instance and compares hashes (catches a
concurrent writer, and proves byte-exact storage), at the cost of downloading it once.
"""

from __future__ import annotations

import uuid
from typing import Any

import anyio
import requests
import structlog
from dicomweb_client.api import DICOMwebClient

from .base import (
    ALREADY_STORED,
    STORED,
    STORED_WITH_WARNINGS,
    DeliveryError,
    DuplicateConflict,
    Instance,
    Receipt,
)
from .http import (
    FileBody,
    boundary_of,
    hash_single_part,
    http_error,
    json_body,
    multipart_body,
    raise_for_transport,
)
from .stow_status import StowOutcome, failure_reason, parse_stow_response, warning_text

log = structlog.get_logger(__name__)

_RETRIEVE_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'


class StowRsDestination:
    """A DICOMweb STOW-RS endpoint. ``url`` is the DICOMweb root (``…/dicom-web``, Azure ``…/v2``,
    Google ``…/dicomWeb``, dcm4chee ``…/aets/<AET>/rs``). ``timeout`` bounds connect and each read
    (seconds). ``study_in_url`` POSTs to ``/studies/{StudyInstanceUID}`` (the PACS then checks the study).
    ``single_part`` sends the file alone as ``Content-Type: application/dicom`` (AWS HealthImaging's
    documented form; Azure takes it too; Orthanc answers 415).
    ``verify_tls``: True, False or a CA bundle path. ``max_concurrency``: deliveries at once."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        auth: requests.auth.AuthBase | None = None,
        timeout: float = 30.0,
        verify_tls: bool | str = True,
        duplicate_check: str = "qido",
        verify_after_store: bool = False,
        study_in_url: bool = False,
        single_part: bool = False,
        headers: dict[str, str] | None = None,
        max_concurrency: int = 4,
    ) -> None:
        if duplicate_check not in ("qido", "none"):
            raise ValueError("duplicate_check must be 'qido' or 'none'")
        self.name, self.url = name, url.rstrip("/")
        self.duplicate_check, self.verify_after_store = duplicate_check, verify_after_store
        self.study_in_url, self.single_part = study_in_url, single_part
        self._timeout = timeout
        self._session = requests.Session()
        self._session.auth = auth
        self._session.verify = verify_tls
        self._session.headers.update(headers or {})
        self._client = DICOMwebClient(self.url, session=self._session, timeout=timeout)
        self._client.set_http_retry_params(retry=False)  # the pipeline retries, with backoff, durably
        self._limiter = anyio.CapacityLimiter(max_concurrency)

    async def deliver(self, instance: Instance) -> Receipt:
        return await anyio.to_thread.run_sync(self._deliver, instance, limiter=self._limiter)

    async def aclose(self) -> None:
        self._session.close()

    # --- blocking part (worker thread) -----------------------------------------------------------

    def _deliver(self, instance: Instance) -> Receipt:
        if self.duplicate_check == "qido":
            existing = self._compare_existing(instance)
            if existing is not None:
                return existing
        outcome = self._post(instance)
        if outcome.already_exists:
            return self._settle_already_exists(instance, outcome)
        receipt = self._receipt(instance, outcome)
        if self.verify_after_store:
            self._verify(instance, receipt)
        log.info("delivery.stored", destination=self.name, sop_instance_uid=instance.sop_instance_uid,
                 outcome=receipt.outcome, size=instance.size)  # fmt: skip
        return receipt

    def _post(self, instance: Instance) -> StowOutcome:
        boundary = uuid.uuid4().hex
        url = f"{self.url}/studies" + (f"/{instance.study_instance_uid}" if self.study_in_url else "")
        content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
        if self.single_part:
            content_type = "application/dicom"
        headers = {"Content-Type": content_type, "Accept": "application/dicom+json"}
        body_stream = FileBody(instance.path) if self.single_part else multipart_body(instance.path, boundary)
        with body_stream as body:
            try:
                response = self._session.post(url, data=body, headers=headers, timeout=self._timeout)
            except requests.RequestException as exc:
                raise raise_for_transport(exc, self.name) from exc
        return parse_stow_response(response.status_code, json_body(response), instance.sop_instance_uid)

    def _receipt(self, instance: Instance, outcome: StowOutcome) -> Receipt:
        status = outcome.status
        details: dict[str, Any] = {"http_status": status}
        if outcome.failure is not None:
            reason, transient = failure_reason(outcome.failure)
            details["failure_reason"] = outcome.failure
            raise DeliveryError(f"{self.name}: {reason}", transient=transient, status=status, details=details)
        if status not in (200, 202):
            raise http_error(self.name, status, "refused the instance", details)
        if not outcome.referenced:
            raise DeliveryError(
                f"{self.name} answered success but did not list the instance as stored",
                transient=False,
                status=status,
                details=details,
            )
        warnings = tuple(warning_text(code) for code in outcome.warnings)
        if status == 202 and not warnings:
            warnings = ("the PACS stored the instance with warnings (HTTP 202)",)
        outcome_word = STORED_WITH_WARNINGS if warnings else STORED
        return Receipt(self.name, instance.sop_instance_uid, outcome_word, warnings, details)

    # --- duplicate SOP Instance UIDs -------------------------------------------------------------

    def _compare_existing(self, instance: Instance) -> Receipt | None:
        """``already_stored`` when the PACS holds identical bytes; ``DuplicateConflict`` when it holds
        different ones; ``None`` when it does not have the UID."""
        locations = self._find(instance.sop_instance_uid)
        if not locations:
            return None
        for study, series in locations:
            digest = self._retrieve_sha256(study, series, instance.sop_instance_uid)
            if digest != instance.sha256:
                raise self._conflict(instance, {"stored_sha256": digest})
        return Receipt(
            self.name, instance.sop_instance_uid, ALREADY_STORED, details={"verified_sha256": True}
        )

    def _settle_already_exists(self, instance: Instance, outcome: StowOutcome) -> Receipt:
        details: dict[str, object] = {"http_status": outcome.status, "failure_reason": outcome.failure}
        if self.duplicate_check == "none":
            raise DuplicateConflict(
                f"{self.name} already holds an instance with this SOP Instance UID; "
                "the bytes could not be compared",
                status=outcome.status,
                details=details,
            )
        existing = self._compare_existing(instance)
        if existing is None:
            raise DeliveryError(
                f"{self.name} reported the instance as already stored but cannot find it",
                transient=True,
                status=outcome.status,
                details=details,
            )
        return existing

    def _verify(self, instance: Instance, receipt: Receipt) -> None:
        existing = self._compare_existing(instance)  # raises DuplicateConflict on a difference
        if existing is None:
            raise DeliveryError(
                f"{self.name} listed the instance as stored but cannot find it", transient=True
            )
        receipt.details["verified_sha256"] = True

    def _conflict(self, instance: Instance, details: dict[str, object]) -> DuplicateConflict:
        log.warning(
            "delivery.duplicate_conflict", destination=self.name, sop_instance_uid=instance.sop_instance_uid
        )
        return DuplicateConflict(
            f"{self.name} already holds a different instance with the same SOP Instance UID",
            details=details,
        )

    def _find(self, sop_instance_uid: str) -> list[tuple[str, str]]:
        try:
            found = self._client.search_for_instances(
                search_filters={"SOPInstanceUID": sop_instance_uid},
                fields=["StudyInstanceUID", "SeriesInstanceUID"],
            )
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            what = "refused the QIDO-RS search for the instance (without QIDO-RS use duplicate_check none)"
            raise http_error(self.name, status, what) from exc
        except requests.RequestException as exc:
            raise raise_for_transport(exc, self.name) from exc
        return [(_first(item, "0020000D"), _first(item, "0020000E")) for item in found]

    def _retrieve_sha256(self, study: str, series: str, sop: str) -> str | None:
        url = f"{self.url}/studies/{study}/series/{series}/instances/{sop}"
        try:
            with self._session.get(
                url, headers={"Accept": _RETRIEVE_ACCEPT}, stream=True, timeout=self._timeout
            ) as response:
                if response.status_code != 200:
                    raise http_error(self.name, response.status_code, "refused to return the stored instance")
                boundary = boundary_of(response.headers.get("Content-Type", ""))
                if boundary is None:
                    raise DeliveryError(
                        f"{self.name} returned the stored instance in an unexpected form", transient=False
                    )
                return hash_single_part(response.iter_content(1024 * 1024), boundary)
        except requests.RequestException as exc:
            raise raise_for_transport(exc, self.name) from exc


def _first(item: dict[str, Any], tag: str) -> str:
    values = item.get(tag, {}).get("Value") or [""]
    return str(values[0])
