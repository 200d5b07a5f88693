"""Orthanc REST delivery: ``POST /instances`` with the raw Part 10 bytes (Orthanc stores them unchanged).

Orthanc answers ``{"ID", "Status": "Success" | "AlreadyStored", ...}``. With its default
``OverwriteInstances: false`` a second copy of a SOP Instance UID is dropped and reported as
``AlreadyStored`` whatever its bytes, and Orthanc's identity is Patient+Study+Series+SOP, so the same SOP
Instance UID under another study becomes a *second* instance. So before sending, the relay asks
``POST /tools/lookup`` for the UID: for each instance found, ``GET /instances/{id}/file`` is hashed
(streamed) and compared with ours. Equal -> ``already_stored`` (nothing sent); different ->
``DuplicateConflict``. An ``AlreadyStored`` answer to the POST itself (a concurrent writer) gets the
same comparison. Errors: 400 "Bad file format", 404 "Inexistent tag" (a required tag is missing) and
other 4xx are permanent; 5xx, timeouts and refused connections transient.
"""

from __future__ import annotations

from typing import Any

import anyio
import requests
import structlog

from .base import ALREADY_STORED, STORED, DeliveryError, DuplicateConflict, Instance, Receipt
from .http import FileBody, hash_response, http_error, json_body, raise_for_transport

log = structlog.get_logger(__name__)


class OrthancRestDestination:
    """An Orthanc server's REST API at ``url`` (its root, e.g. ``http://pacs:8042``). ``auth``: usually
    ``Basic``. ``timeout``: seconds for connect and each read. ``max_concurrency``: deliveries at once."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        auth: requests.auth.AuthBase | None = None,
        timeout: float = 30.0,
        verify_tls: bool | str = True,
        max_concurrency: int = 4,
    ) -> None:
        self.name, self.url = name, url.rstrip("/")
        self._timeout = timeout
        self._session = requests.Session()
        self._session.auth = auth
        self._session.verify = verify_tls
        self._limiter = anyio.CapacityLimiter(max_concurrency)

    async def deliver(self, instance: Instance) -> Receipt:
        return await anyio.to_thread.run_sync(self._deliver, instance, limiter=self._limiter)

    async def aclose(self) -> None:
        self._session.close()

    def _deliver(self, instance: Instance) -> Receipt:
        existing = self._compare_existing(instance)
        if existing is not None:
            return existing
        answer = self._post(instance)
        status, orthanc_id = answer.get("Status"), str(answer.get("ID", ""))
        if status == "AlreadyStored":
            existing = self._compare_existing(instance)
            if existing is None:
                raise DeliveryError(f"{self.name} reported the instance as already stored but cannot find it",
                                    transient=True)  # fmt: skip
            return existing
        if status != "Success":
            raise DeliveryError(
                f"{self.name} did not store the instance (status {status!s:.32})", transient=False
            )
        log.info("delivery.stored", destination=self.name, sop_instance_uid=instance.sop_instance_uid,
                 size=instance.size)  # fmt: skip
        return Receipt(self.name, instance.sop_instance_uid, STORED, details={"orthanc_id": orthanc_id})

    def _post(self, instance: Instance) -> dict[str, Any]:
        try:
            with FileBody(instance.path) as body:
                response = self._session.post(
                    f"{self.url}/instances",
                    data=body,
                    headers={"Content-Type": "application/dicom", "Accept": "application/json"},
                    timeout=self._timeout,
                )
        except requests.RequestException as exc:
            raise raise_for_transport(exc, self.name) from exc
        answer = json_body(response)
        if response.status_code != 200 or not isinstance(answer, dict):
            raise self._error(response.status_code, answer)
        return answer

    def _error(self, status: int, answer: Any) -> DeliveryError:
        message = str(answer.get("Message", "")) if isinstance(answer, dict) else ""
        details: dict[str, object] = {"http_status": status, "orthanc_message": message[:80]}
        if status == 400:
            reason = f"{self.name} could not read the file as DICOM"
            return DeliveryError(reason, transient=False, status=status, details=details)
        if status == 404 and message == "Inexistent tag":
            return DeliveryError(f"{self.name} refused the instance: a required attribute is missing",
                                 transient=False, status=status, details=details)  # fmt: skip
        return http_error(self.name, status, "refused the instance", details)

    def _compare_existing(self, instance: Instance) -> Receipt | None:
        ids = self._lookup(instance.sop_instance_uid)
        if not ids:
            return None
        for orthanc_id in ids:
            digest = self._stored_sha256(orthanc_id)
            if digest != instance.sha256:
                log.warning("delivery.duplicate_conflict", destination=self.name,
                            sop_instance_uid=instance.sop_instance_uid)  # fmt: skip
                raise DuplicateConflict(
                    f"{self.name} already holds a different instance with the same SOP Instance UID",
                    details={"orthanc_id": orthanc_id, "stored_sha256": digest},
                )
        details: dict[str, object] = {"orthanc_id": ids[0], "verified_sha256": True}
        return Receipt(self.name, instance.sop_instance_uid, ALREADY_STORED, details=details)

    def _lookup(self, sop_instance_uid: str) -> list[str]:
        try:
            response = self._session.post(
                f"{self.url}/tools/lookup", data=sop_instance_uid, timeout=self._timeout
            )
        except requests.RequestException as exc:
            raise raise_for_transport(exc, self.name) from exc
        found = json_body(response)
        if response.status_code != 200 or not isinstance(found, list):
            raise http_error(self.name, response.status_code, "refused to look the instance up")
        return [
            str(item["ID"]) for item in found if isinstance(item, dict) and item.get("Type") == "Instance"
        ]

    def _stored_sha256(self, orthanc_id: str) -> str:
        try:
            with self._session.get(
                f"{self.url}/instances/{orthanc_id}/file", stream=True, timeout=self._timeout
            ) as response:
                if response.status_code != 200:
                    raise http_error(self.name, response.status_code, "refused to return the stored instance")
                return hash_response(response)
        except requests.RequestException as exc:
            raise raise_for_transport(exc, self.name) from exc
