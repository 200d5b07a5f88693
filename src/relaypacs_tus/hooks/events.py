"""tusd's hook JSON in both directions, beyond what :mod:`relaypacs_tus.tus.events` already gives.

``tus.events`` turns our event into tusd's ``HookRequest`` and parses a ``HookResponse``. Here: the reverse
of both (a hook *program* reads a ``HookRequest`` from stdin and writes a ``HookResponse`` to stdout), and the
environment tusd gives file hooks (``pkg/hooks/file/file.go``: ``TUS_ID``, ``TUS_SIZE``, ``TUS_OFFSET``).
"""

from __future__ import annotations

from typing import Any

from ..tus.events import HookEvent, HookResponse, HookType, HTTPRequest
from ..tus.store import UploadInfo


class HookFormatError(ValueError):
    """The JSON is not a tusd v2 ``HookRequest`` (a v1 body has no ``Type``/``Event``)."""


def _field(data: dict[str, Any], name: str) -> Any:
    """Go's encoding/json matches field names case-insensitively; so do we."""
    if name in data:
        return data[name]
    low = name.lower()
    return next((v for k, v in data.items() if str(k).lower() == low), None)


def event_from_tusd(data: object) -> HookEvent:
    """Parse a tusd v2 ``HookRequest`` (``{"Type", "Event": {"Upload", "HTTPRequest"}}``)."""
    if not isinstance(data, dict):
        raise HookFormatError("a hook request is a JSON object")
    try:
        kind = HookType(str(_field(data, "Type")))
    except ValueError:
        raise HookFormatError("unknown or missing hook Type") from None
    event = _field(data, "Event")
    if not isinstance(event, dict) or not isinstance(_field(event, "Upload"), dict):
        raise HookFormatError("Event.Upload is missing")
    upload: dict[str, Any] = _field(event, "Upload")
    http: dict[str, Any] = _field(event, "HTTPRequest") or {}
    size = _field(upload, "Size")
    info = UploadInfo(
        id=str(_field(upload, "ID") or ""),
        size=None if _field(upload, "SizeIsDeferred") else int(size or 0),
        offset=int(_field(upload, "Offset") or 0),
        metadata={str(k): str(v) for k, v in (_field(upload, "MetaData") or {}).items()},
        is_partial=bool(_field(upload, "IsPartial")),
        is_final=bool(_field(upload, "IsFinal")),
        partial_uploads=[str(p) for p in (_field(upload, "PartialUploads") or [])],
        storage={str(k): str(v) for k, v in (_field(upload, "Storage") or {}).items()},
    )
    header = {
        str(k): [str(x) for x in v] for k, v in (_field(http, "Header") or {}).items() if isinstance(v, list)
    }
    request = HTTPRequest(
        method=str(_field(http, "Method") or ""),
        uri=str(_field(http, "URI") or ""),
        remote_addr=str(_field(http, "RemoteAddr") or ""),
        header=header,
    )
    return HookEvent(kind, info, request)


def response_to_tusd(response: HookResponse) -> dict[str, Any]:
    """The tusd ``HookResponse`` JSON for ``response``; fields that change nothing are left out."""
    out: dict[str, Any] = {}
    http = response.http_response
    if http is not None:
        out["HTTPResponse"] = {"StatusCode": http.status_code, "Body": http.body, "Header": dict(http.header)}
    if response.reject_upload:
        out["RejectUpload"] = True
    if response.reject_termination:
        out["RejectTermination"] = True
    if response.stop_upload:
        out["StopUpload"] = True
    change: dict[str, Any] = {}
    if response.change_id is not None:
        change["ID"] = response.change_id
    if response.change_metadata is not None:
        change["MetaData"] = dict(response.change_metadata)
    if change:
        out["ChangeFileInfo"] = change
    return out


def hook_environment(event: HookEvent) -> dict[str, str]:
    """What tusd adds to a file hook's environment. ``TUS_ID`` is empty in pre-create (no id yet)."""
    payload = event.to_tusd()["Event"]["Upload"]
    return {
        "TUS_ID": str(payload["ID"]),
        "TUS_SIZE": str(payload["Size"]),
        "TUS_OFFSET": str(payload["Offset"]),
    }
