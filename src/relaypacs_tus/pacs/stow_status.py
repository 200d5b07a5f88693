"""Reading a STOW-RS response (PS3.18 §10.5.3, Annex I) for one instance, in the DICOM JSON model.

Failure Reason (0008,1197) codes from PS3.18 Table I.2-2 (and PS3.4 C-STORE statuses they mirror),
plus the implementation codes of Azure's conformance statement (45070, 45071; its 43264/43265 are
0xA900/0xA901, inside the A9xx range) and
Google's 409/272 with its private FailureDetail (0009,0097) "already exists".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REFERENCED_SOP_SEQUENCE = "00081199"
FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_INSTANCE_UID = "00081155"
FAILURE_REASON = "00081197"
WARNING_REASON = "00081196"
GOOGLE_FAILURE_DETAIL = "00090097"

AZURE_ALREADY_EXISTS = 45070
AZURE_BEING_CREATED = 45071
DUPLICATE_SOP_INSTANCE = 0x0111


@dataclass(frozen=True)
class StowOutcome:
    """What the response says about our instance."""

    status: int
    referenced: bool  # our SOP Instance UID is in ReferencedSOPSequence
    failure: int | None  # its FailureReason, when it is in FailedSOPSequence
    warnings: tuple[int, ...]  # WarningReason codes (item level or top level)
    already_exists: bool  # the PACS says it has this SOP Instance UID already


def _items(body: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    value = body.get(tag, {})
    items = value.get("Value") if isinstance(value, dict) else None
    return [item for item in items or [] if isinstance(item, dict)]


def _value(item: dict[str, Any], tag: str) -> Any:
    value = item.get(tag, {})
    values = value.get("Value") if isinstance(value, dict) else None
    return values[0] if values else None


def _codes(item: dict[str, Any], tag: str) -> tuple[int, ...]:
    value = item.get(tag, {})
    values = value.get("Value") if isinstance(value, dict) else None
    return tuple(int(v) for v in values or [] if isinstance(v, int | float) or str(v).isdigit())


def parse_stow_response(status: int, body: Any, sop_instance_uid: str) -> StowOutcome:
    """The outcome for ``sop_instance_uid`` in a response with HTTP ``status`` and JSON ``body``
    (``None`` when the body is not JSON: the status alone then decides)."""
    body = body if isinstance(body, dict) else {}
    ours = [
        i
        for i in _items(body, REFERENCED_SOP_SEQUENCE)
        if _value(i, REFERENCED_SOP_INSTANCE_UID) == sop_instance_uid
    ]
    failed = [
        i
        for i in _items(body, FAILED_SOP_SEQUENCE)
        if _value(i, REFERENCED_SOP_INSTANCE_UID) == sop_instance_uid
    ]
    failure: int | None = None
    detail = ""
    if failed:
        codes = _codes(failed[0], FAILURE_REASON)
        failure = codes[0] if codes else 0x0110
        detail = str(_value(failed[0], GOOGLE_FAILURE_DETAIL) or "")
    warnings = _codes(body, WARNING_REASON) + tuple(c for i in ours for c in _codes(i, WARNING_REASON))
    already = failure in (AZURE_ALREADY_EXISTS, DUPLICATE_SOP_INSTANCE) or (
        status == 409 and failure == 0x0110 and "already exists" in detail.lower()
    )
    return StowOutcome(status, bool(ours) and not failed, None if already else failure, warnings, already)


def failure_reason(code: int) -> tuple[str, bool]:
    """Plain words and ``transient`` for a FailureReason code."""
    known = {
        0x0110: ("the PACS could not process the instance", False),
        0x0122: ("the PACS does not accept this kind of DICOM object (SOP class)", False),
        0x0124: ("the PACS does not allow the relay to store this instance", False),
        0xC122: ("the PACS does not accept the instance's transfer syntax", False),
        AZURE_BEING_CREATED: ("the PACS is still processing an earlier copy of this instance", True),
    }
    if code in known:
        return known[code]
    if 0xA700 <= code <= 0xA7FF:
        return "the PACS is out of resources", True
    if 0xA900 <= code <= 0xA9FF:
        return "the PACS found the data set invalid for its SOP class", False  # also Azure's 43264/43265
    if 0xC000 <= code <= 0xCFFF:
        return "the PACS cannot understand the instance", False
    return f"the PACS refused the instance (failure reason {code:#06x})", False


def warning_text(code: int) -> str:
    known = {
        0xB000: "the PACS changed some attributes when it stored the instance (coercion)",
        0xB006: "the PACS discarded some elements of the instance",
        0xB007: "the PACS says the data set does not match its SOP class",  # Azure's 45063
        1: "the PACS found some optional attributes invalid but stored the instance",
    }
    return known.get(code, f"the PACS stored the instance with warning {code:#06x}")
