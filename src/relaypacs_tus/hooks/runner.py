"""The dispatcher behind the engine's hook seam (:class:`relaypacs_tus.tus.events.Hooks`).

For each event it runs the operator's transports (file, HTTP) for the events they enabled, then the
built-in handlers (the DICOM pipeline), and merges the answers like tusd merges one hook's answer over its
own response. For a blocking event the first rejection ends the run, so a later handler (the pipeline)
never records work for a request that is refused.

Errors follow tusd (``pkg/hooks/hooks.go``): a failing pre-create or pre-finish hook answers the client
500, a failing pre-terminate refuses the termination, and a failing post-* hook is logged and otherwise
ignored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import structlog

from ..tus.events import NO_CHANGE, HookEvent, HookResponse, HookType, HTTPResponse
from ..tus.store import UploadInfo
from .transports import HookError, InProcessHooks, Transport, is_rejection

log = structlog.get_logger("relaypacs_tus.hooks")

#: tusd's ``-hooks-enabled-events`` default (``cmd/tusd/cli/flags.go``): pre-finish and pre-terminate are off.
TUSD_DEFAULT_EVENTS = frozenset(
    {
        HookType.PRE_CREATE,
        HookType.POST_CREATE,
        HookType.POST_RECEIVE,
        HookType.POST_TERMINATE,
        HookType.POST_FINISH,
    }
)


def parse_events(text: str) -> frozenset[HookType]:
    """A comma-separated event list; empty means every event (as tusd treats an empty flag)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        return frozenset(HookType)
    return frozenset(HookType(n) for n in names)


def merge(base: HookResponse, over: HookResponse) -> HookResponse:
    """``over`` merged onto ``base``: flags add up; a non-zero status, a non-empty body and each header of
    ``over`` win (tusd ``HTTPResponse.MergeWith``); a ChangeFileInfo of ``over`` replaces ``base``'s."""
    return HookResponse(
        http_response=_merge_http(base.http_response, over.http_response),
        reject_upload=base.reject_upload or over.reject_upload,
        reject_termination=base.reject_termination or over.reject_termination,
        stop_upload=base.stop_upload or over.stop_upload,
        change_metadata=over.change_metadata if over.change_metadata is not None else base.change_metadata,
        change_id=over.change_id if over.change_id is not None else base.change_id,
    )


def _merge_http(base: HTTPResponse | None, over: HTTPResponse | None) -> HTTPResponse | None:
    if base is None or over is None:
        return over or base
    return HTTPResponse(
        status_code=over.status_code or base.status_code,
        body=over.body or base.body,
        header={**base.header, **over.header},
    )


def _failure(event: HookEvent) -> HookResponse:
    """What a hook error means for a blocking event (tusd answers 500)."""
    http = HTTPResponse(status_code=500, body=f"ERR_INTERNAL_SERVER_ERROR: {event.type.value} hook failed\n")
    if event.type is HookType.PRE_CREATE:
        return HookResponse(http_response=http, reject_upload=True)
    if event.type is HookType.PRE_TERMINATE:
        return HookResponse(http_response=http, reject_termination=True)
    if event.type is HookType.PRE_FINISH:
        return HookResponse(http_response=http)
    return NO_CHANGE


class HookRunner:
    """Runs ``transports`` for the ``enabled`` events, then ``builtin`` for every event it handles."""

    def __init__(
        self,
        transports: Sequence[Transport] = (),
        *,
        enabled: Iterable[HookType] = TUSD_DEFAULT_EVENTS,
        builtin: InProcessHooks | None = None,
    ) -> None:
        self.transports = tuple(transports)
        self.enabled = frozenset(enabled)
        self.builtin = builtin

    def _chain(self, kind: HookType) -> list[Transport]:
        chain: list[Transport] = list(self.transports) if kind in self.enabled else []
        if self.builtin is not None and self.builtin.handles(kind):
            chain.append(self.builtin)
        return chain

    def handles(self, kind: HookType) -> bool:
        """:class:`~relaypacs_tus.tus.events.Selective`: a transport or the builtin pipeline wants it."""
        return bool(self._chain(kind))

    async def __call__(self, event: HookEvent) -> HookResponse:
        answer = NO_CHANGE
        for transport in self._chain(event.type):
            try:
                result = await transport(event)
            except HookError as exc:
                log.error(
                    "hook.failed", hook=event.type.value, transport=exc.transport,
                    upload_id=event.upload.id or None,
                    reason=exc.reason,
                )  # fmt: skip
                if event.type.is_blocking:
                    return merge(answer, _failure(event))
                continue
            answer = merge(answer, result)
            if event.type.is_blocking and is_rejection(event, answer):
                return answer
            event = _with_changes(event, result)
        return answer


def _with_changes(event: HookEvent, result: HookResponse) -> HookEvent:
    """Later pre-create handlers see the metadata an earlier one set (tusd applies ChangeFileInfo once)."""
    if event.type is not HookType.PRE_CREATE or result.change_metadata is None:
        return event
    upload = UploadInfo.from_json(event.upload.to_json())
    upload.metadata = dict(result.change_metadata)
    return dataclasses.replace(event, upload=upload)
