"""DIMSE C-STORE delivery (PS3.4 Annex B, PS3.7 §9.1.1) for legacy PACS, with pynetdicom in a thread.

One association per instance, proposing exactly one presentation context: the instance's SOP class
with its own transfer syntax (no transcoding, so the data set bytes on the wire are the file's; the
File Meta Information is not part of a C-STORE, PS3.10 §7.1). What the receiver writes is its own
encoding: DCMTK-based SCPs (Orthanc, storescp) re-encode, e.g. drop Data Set Trailing Padding, so
byte identity at the far end needs STOW-RS or Orthanc REST. The data set is streamed from the file
in PDU-sized chunks (pynetdicom ``STORE_SEND_CHUNKED_DATASET``), so memory does not grow with it.

Outcomes: status 0x0000 -> ``stored``; Warning statuses (0x0001, 0x0107, 0x0116, 0xBxxx) ->
``stored_with_warnings``; Failure statuses -> ``DeliveryError`` (0xA7xx out of resources and 0xFE00
cancel are transient; 0xA9xx, 0xCxxx, 0x0122, 0x0124 ... permanent); 0x0111 -> ``DuplicateConflict``.
Association rejected: transient or permanent as the A-ASSOCIATE-RJ result says (PS3.8 §9.3.4); no
accepted presentation context: permanent (the PACS does not take this SOP class / transfer syntax);
connection refused, timeouts and aborts: transient.

Duplicates: C-STORE cannot tell them apart. Orthanc and dcmtk's storescp answer 0x0000 to a second
copy of a SOP Instance UID whatever its bytes (Orthanc keeps the first, storescp overwrites), so a
different-bytes collision is *not detected* over DIMSE; only a PACS that answers 0x0111 is reported.
Where a PACS also speaks DICOMweb or REST, deliver there (or add that destination) to get detection.
"""

from __future__ import annotations

import anyio
import structlog
from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom import AE, _config, build_context
from pynetdicom.association import Association

from .base import STORED, STORED_WITH_WARNINGS, DeliveryError, DuplicateConflict, Instance, Receipt
from .stow_status import DUPLICATE_SOP_INSTANCE, failure_reason

log = structlog.get_logger(__name__)

# Stream data sets from their files instead of decoding them (pynetdicom >= 2.0). Process-wide, and
# only changes how a *file path* given to send_c_store is sent, which only this module does.
_config.STORE_SEND_CHUNKED_DATASET = True

_WARNINGS = {0x0001, 0x0107, 0x0116}


class CStoreDestination:
    """A DICOM Storage SCP at ``host``:``port`` with AE title ``called_aet``; we call as
    ``calling_aet`` (PS3.8: 1-16 characters, no backslash). ``timeout`` bounds connecting, association
    negotiation, each DIMSE message and network inactivity (seconds)."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        *,
        called_aet: str,
        calling_aet: str = "RELAYPACS",
        timeout: float = 30.0,
        max_pdu: int = 0,
        max_concurrency: int = 2,
    ) -> None:
        for label, aet in (("called_aet", called_aet), ("calling_aet", calling_aet)):
            if not 1 <= len(aet.strip()) <= 16 or "\\" in aet:
                raise ValueError(f"{label} must be 1 to 16 characters without a backslash")
        self.name, self.host, self.port = name, host, port
        self.called_aet, self.calling_aet = called_aet, calling_aet
        self._timeout, self._max_pdu = timeout, max_pdu
        self._limiter = anyio.CapacityLimiter(max_concurrency)

    async def deliver(self, instance: Instance) -> Receipt:
        return await anyio.to_thread.run_sync(self._deliver, instance, limiter=self._limiter)

    async def aclose(self) -> None:
        return None  # one association per delivery: nothing is held open

    def _ae(self) -> AE:
        ae = AE(ae_title=self.calling_aet)
        ae.connection_timeout = self._timeout
        ae.acse_timeout = self._timeout
        ae.dimse_timeout = self._timeout
        ae.network_timeout = self._timeout
        return ae

    def _deliver(self, instance: Instance) -> Receipt:
        context = build_context(instance.sop_class_uid, [instance.transfer_syntax_uid])
        assoc = self._ae().associate(
            self.host, self.port, contexts=[context], ae_title=self.called_aet, max_pdu=self._max_pdu
        )
        if not assoc.is_established:
            raise self._association_error(assoc, instance)
        try:
            status = assoc.send_c_store(instance.path)
        except (ValueError, RuntimeError, OSError) as exc:
            raise DeliveryError(f"{self.name}: the instance could not be sent", transient=True) from exc
        finally:
            if assoc.is_established:
                assoc.release()
        return self._receipt(status, instance)

    def _receipt(self, status: Dataset, instance: Instance) -> Receipt:
        if "Status" not in status:
            raise DeliveryError(f"{self.name} ended the association before answering", transient=True)
        code = int(status.Status)
        details: dict[str, object] = {"dimse_status": f"{code:#06x}"}
        if code == 0x0000:
            log.info("delivery.stored", destination=self.name, sop_instance_uid=instance.sop_instance_uid,
                     size=instance.size)  # fmt: skip
            return Receipt(self.name, instance.sop_instance_uid, STORED, details=details)
        if code in _WARNINGS or 0xB000 <= code <= 0xBFFF:
            warning = f"the PACS stored the instance with warning status {code:#06x}"
            return Receipt(self.name, instance.sop_instance_uid, STORED_WITH_WARNINGS, (warning,), details)
        if code == DUPLICATE_SOP_INSTANCE:
            raise DuplicateConflict(
                f"{self.name} already holds an instance with this SOP Instance UID "
                "(C-STORE cannot compare the bytes)",
                status=code,
                details=details,
            )
        if code == 0xFE00:
            raise DeliveryError(
                f"{self.name} cancelled the store", transient=True, status=code, details=details
            )
        reason, transient = failure_reason(code)
        raise DeliveryError(f"{self.name}: {reason}", transient=transient, status=code, details=details)

    def _association_error(self, assoc: Association, instance: Instance) -> DeliveryError:
        if assoc.is_rejected:
            rj = assoc.acceptor.primitive
            transient = getattr(rj, "result", 0x01) == 0x02
            why = getattr(rj, "reason_str", "") or "no reason given"
            return DeliveryError(
                f"{self.name} rejected the association ({why})",
                transient=transient,
                details={"result": getattr(rj, "result_str", ""), "source": getattr(rj, "source_str", "")},
            )
        if assoc.rejected_contexts and not assoc.accepted_contexts:
            sop, ts = UID(instance.sop_class_uid), UID(instance.transfer_syntax_uid)
            return DeliveryError(
                f"{self.name} does not accept {sop.name} objects in {ts.name}",
                transient=False,
                details={"sop_class_uid": str(sop), "transfer_syntax_uid": str(ts)},
            )
        if assoc.acceptor.primitive is None:  # no A-ASSOCIATE answer: refused, unreachable or timed out
            return DeliveryError(f"could not connect to {self.name}", transient=True)
        return DeliveryError(f"{self.name} aborted the association", transient=True)
