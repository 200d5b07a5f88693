"""Three ways to deliver a hook event, all on tusd's contract (``HookRequest`` JSON in, ``HookResponse`` out).

* :class:`InProcessHooks`: Python callables (the DICOM pipeline, tests, embedders).
* :class:`FileHooks`: tusd's file hooks (``pkg/hooks/file``): an executable named after the event in a
  hooks directory, the JSON on stdin, the answer on stdout, ``TUS_ID``/``TUS_SIZE``/``TUS_OFFSET`` in its
  environment, the hooks directory as working directory. A missing file is a no-op; a non-zero exit is a
  hook error. Unlike tusd we bound each run with a timeout and kill the program's process group after it.
* :class:`HttpHooks`: tusd's HTTP hooks (``pkg/hooks/http``): POST of the JSON with
  ``Content-Type: application/json``; a 2xx answer carries the response JSON. Network errors and 5xx are
  retried with exponential backoff and jitter; any other status is a hook error.

A transport either answers with a :class:`HookResponse` or raises :class:`HookError`; the runner decides
what an error means for the request (tusd: 500 for blocking events, a log line otherwise).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import anyio
import anyio.abc
import httpx
import structlog

from ..tus.events import NO_CHANGE, HookEvent, HookResponse, HookType
from .events import hook_environment

log = structlog.get_logger("relaypacs_tus.hooks")

#: Bytes of stdout / response body a hook may answer with (tusd's HTTP limit is 5120; JSON answers are small).
MAX_ANSWER_BYTES = 1024 * 1024


class HookError(Exception):
    """A hook gave no usable answer. ``reason`` names what went wrong (never the hook's output: PHI)."""

    def __init__(self, reason: str, *, transport: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transport = transport


class Transport(Protocol):
    """One hook handler. Answers, or raises :class:`HookError`."""

    name: str

    async def __call__(self, event: HookEvent) -> HookResponse: ...


Handler = Callable[[HookEvent], Awaitable[HookResponse | None]]


def is_rejection(event: HookEvent, response: HookResponse) -> bool:
    """Does ``response`` refuse the request (so later handlers of a blocking event need not run)?"""
    http = response.http_response
    refused_by_status = http is not None and http.status_code >= 400
    if event.type is HookType.PRE_CREATE:
        return response.reject_upload
    if event.type is HookType.PRE_TERMINATE:
        return response.reject_termination or refused_by_status
    if event.type is HookType.PRE_FINISH:
        return refused_by_status
    return response.stop_upload


def parse_answer(raw: bytes, *, transport: str) -> HookResponse:
    """tusd: an empty answer means "no changes"; anything else must be a JSON object."""
    if not raw.strip():
        return NO_CHANGE
    try:
        data = json.loads(raw)
    except ValueError:
        raise HookError("hook answered with invalid JSON", transport=transport) from None
    if not isinstance(data, dict):
        raise HookError("hook answered with JSON that is not an object", transport=transport)
    try:
        return HookResponse.from_tusd(data)
    except (TypeError, ValueError, AttributeError):
        raise HookError("hook answered with a malformed HookResponse", transport=transport) from None


class InProcessHooks:
    """Python callables per event, run in order; a handler may return None for "no changes"."""

    name = "in-process"

    def __init__(self, handlers: Mapping[HookType, Sequence[Handler]]) -> None:
        self._handlers = {kind: tuple(items) for kind, items in handlers.items()}

    def handles(self, kind: HookType) -> bool:
        return bool(self._handlers.get(kind))

    async def __call__(self, event: HookEvent) -> HookResponse:
        from .runner import merge  # runner imports this module

        answer = NO_CHANGE
        for handler in self._handlers.get(event.type, ()):
            try:
                result = await handler(event)
            except Exception as exc:
                raise HookError(f"in-process hook raised {type(exc).__name__}", transport=self.name) from exc
            answer = merge(answer, result or NO_CHANGE)
            if is_rejection(event, answer):
                break
        return answer


class FileHooks:
    """tusd file hooks in ``directory``; each run is bounded by ``timeout`` seconds."""

    name = "file"

    def __init__(self, directory: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        self.directory = Path(directory).resolve()  # tusd makes -hooks-dir absolute too
        self.timeout = timeout

    async def __call__(self, event: HookEvent) -> HookResponse:
        program = self.directory / event.type.value
        if not await anyio.to_thread.run_sync(program.exists):
            return NO_CHANGE
        payload = json.dumps(event.to_tusd()).encode()
        env = {**os.environ, **hook_environment(event)}
        try:
            process = await anyio.open_process(
                [str(program)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=None,  # like tusd: the program's stderr goes to ours
                cwd=str(self.directory),
                env=env,
                start_new_session=True,  # its own process group, so a timeout kills its children too
            )
        except OSError as exc:
            raise HookError(
                f"cannot run hook program {event.type.value}: {exc.strerror}", transport=self.name
            ) from exc
        output = await self._communicate(process, payload, event.type.value)
        if process.returncode != 0:
            raise HookError(
                f"hook program {event.type.value} exited with {process.returncode}", transport=self.name
            )
        return parse_answer(output, transport=self.name)

    async def _communicate(self, process: anyio.abc.Process, payload: bytes, name: str) -> bytes:
        chunks: list[bytes] = []
        try:
            with anyio.fail_after(self.timeout):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_feed, process, payload)
                    tg.start_soon(_drain, process, chunks)
                await process.wait()
        except TimeoutError:
            _kill_group(process)
            with anyio.CancelScope(shield=True):
                await process.wait()
            raise HookError(
                f"hook program {name} timed out after {self.timeout:g}s", transport=self.name
            ) from None
        finally:
            await process.aclose()
        if sum(len(c) for c in chunks) > MAX_ANSWER_BYTES:
            raise HookError(f"hook program {name} printed more than 1 MiB", transport=self.name)
        return b"".join(chunks)


async def _feed(process: anyio.abc.Process, payload: bytes) -> None:
    assert process.stdin is not None
    try:
        await process.stdin.send(payload)
        await process.stdin.aclose()
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, BrokenPipeError):
        pass  # the program did not read its stdin; its exit code and stdout still count


async def _drain(process: anyio.abc.Process, chunks: list[bytes]) -> None:
    assert process.stdout is not None
    size = 0
    async for chunk in process.stdout:
        size += len(chunk)
        chunks.append(chunk)
        if size > MAX_ANSWER_BYTES:  # stop reading and stop the program; the caller reports it
            _kill_group(process)
            return


def _kill_group(process: anyio.abc.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


class HttpHooks:
    """tusd HTTP hooks: POST to ``url``; ``retries`` more tries on network errors and 5xx."""

    name = "http"

    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient,
        timeout: float = 15.0,
        retries: int = 3,
        backoff: float = 1.0,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._client = client

    async def __call__(self, event: HookEvent) -> HookResponse:
        body = json.dumps(event.to_tusd()).encode()
        headers = {"Content-Type": "application/json", "Hook-Name": event.type.value}
        reason = "no attempt"
        for attempt in range(self.retries + 1):
            if attempt:
                await anyio.sleep(self.backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))  # noqa: S311
            try:
                response = await self._client.post(
                    self.url, content=body, headers=headers, timeout=self.timeout
                )
            except httpx.TransportError as exc:
                reason = f"hook endpoint unreachable ({type(exc).__name__})"
                log.warning("hook.http_retry", hook=event.type.value, attempt=attempt + 1, reason=reason)
                continue
            if response.status_code >= 500:
                reason = f"hook endpoint answered {response.status_code}"
                log.warning("hook.http_retry", hook=event.type.value, attempt=attempt + 1, reason=reason)
                continue
            if not 200 <= response.status_code < 300:
                raise HookError(f"hook endpoint answered {response.status_code}", transport=self.name)
            if len(response.content) > MAX_ANSWER_BYTES:
                raise HookError("hook endpoint answered with more than 1 MiB", transport=self.name)
            return parse_answer(response.content, transport=self.name)
        raise HookError(f"{reason} after {self.retries + 1} attempts", transport=self.name)
