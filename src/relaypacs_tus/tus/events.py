"""The engine's one seam to hooks: tusd's seven events, and what a hook may answer.

The shapes mirror tusd v2 (``pkg/hooks/hooks.go``: ``HookRequest``/``HookResponse``) so that the JSON a
hook sees from us is the JSON tusd would send. The engine awaits pre-* events (they may reject) and fires
post-* events in the background (they are notifications).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from .store import UploadInfo


class HookType(enum.StrEnum):
    PRE_CREATE = "pre-create"
    POST_CREATE = "post-create"
    POST_RECEIVE = "post-receive"
    PRE_FINISH = "pre-finish"
    POST_FINISH = "post-finish"
    PRE_TERMINATE = "pre-terminate"
    POST_TERMINATE = "post-terminate"

    @property
    def is_blocking(self) -> bool:
        return self.value.startswith("pre-")


@dataclass(frozen=True, slots=True)
class HTTPRequest:
    """The request that caused an event (tusd ``HTTPRequest``); header keys keep their case."""

    method: str
    uri: str
    remote_addr: str
    header: dict[str, list[str]] = field(default_factory=dict)

    def to_tusd(self) -> dict[str, Any]:
        return {"Method": self.method, "URI": self.uri, "RemoteAddr": self.remote_addr, "Header": self.header}


@dataclass(frozen=True, slots=True)
class HookEvent:
    type: HookType
    upload: UploadInfo
    request: HTTPRequest
    principal: str | None = None  # who made the request (auth layer), not part of tusd's JSON

    def to_tusd(self) -> dict[str, Any]:
        """The tusd v2 ``HookRequest`` JSON: ``{"Type", "Event": {"Upload", "HTTPRequest"}}``."""
        u = self.upload
        upload = {
            "ID": "" if self.type is HookType.PRE_CREATE else u.id,
            "Size": u.size or 0,
            "SizeIsDeferred": u.size is None,
            "Offset": u.offset,
            "MetaData": dict(u.metadata),
            "IsPartial": u.is_partial,
            "IsFinal": u.is_final,
            "PartialUploads": list(u.partial_uploads) or None,
            "Storage": None if self.type is HookType.PRE_CREATE else (dict(u.storage) or None),
        }
        return {"Type": self.type.value, "Event": {"Upload": upload, "HTTPRequest": self.request.to_tusd()}}


@dataclass(frozen=True, slots=True)
class HTTPResponse:
    """tusd ``HTTPResponse``: merged over the engine's own response field by field."""

    status_code: int = 0
    body: str = ""
    header: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HookResponse:
    """tusd ``HookResponse``; every field is optional and the default changes nothing."""

    http_response: HTTPResponse | None = None
    reject_upload: bool = False
    reject_termination: bool = False
    stop_upload: bool = False
    change_metadata: dict[str, str] | None = None  # ChangeFileInfo.MetaData (pre-create only)
    change_id: str | None = None  # ChangeFileInfo.ID (pre-create only)

    @classmethod
    def from_tusd(cls, data: dict[str, Any]) -> HookResponse:
        """Parse tusd's JSON; field names match case-insensitively, as Go's encoding/json does."""
        low = {str(k).lower(): v for k, v in (data or {}).items()}
        http = low.get("httpresponse") or None
        response = None
        if isinstance(http, dict):
            h = {str(k).lower(): v for k, v in http.items()}
            headers = h.get("header") or h.get("headers") or {}
            response = HTTPResponse(
                status_code=int(h.get("statuscode") or 0),
                body=str(h.get("body") or ""),
                header={str(k): str(v) for k, v in dict(headers).items()},
            )
        change = low.get("changefileinfo") or {}
        change = {str(k).lower(): v for k, v in change.items()} if isinstance(change, dict) else {}
        meta = change.get("metadata")
        return cls(
            http_response=response,
            reject_upload=bool(low.get("rejectupload")),
            reject_termination=bool(low.get("rejecttermination")),
            stop_upload=bool(low.get("stopupload")),
            change_metadata={str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else None,
            change_id=str(change["id"]) if change.get("id") else None,
        )


NO_CHANGE = HookResponse()


class Hooks(Protocol):
    """The seam: one awaitable per event. Implementations must not raise for post-* events."""

    async def __call__(self, event: HookEvent) -> HookResponse: ...


@runtime_checkable
class Selective(Protocol):
    """Optional capability of a :class:`Hooks`: which events it acts on at all. The engine neither builds
    nor sends an event nobody handles (a copy of the upload and a task per PATCH add up for small
    uploads); hooks without it get every event."""

    def handles(self, kind: HookType) -> bool: ...


class NoHooks:
    """The default: every event passes."""

    async def __call__(self, event: HookEvent) -> HookResponse:
        return NO_CHANGE

    def handles(self, kind: HookType) -> bool:
        return False
