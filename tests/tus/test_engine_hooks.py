"""The engine in process with a Hooks callable: tusd's seven events, pre-* rejections with a status and a
message (engine and through the Starlette adapter), hook crashes, sweeper expiry and crash recovery."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from relaypacs_tus.stores.local import LocalStore
from relaypacs_tus.tus import errors
from relaypacs_tus.tus.engine import Creation, Engine, EngineConfig, Patch
from relaypacs_tus.tus.events import HookEvent, HookResponse, HookType, HTTPRequest, HTTPResponse
from relaypacs_tus.tus.headers import parse_metadata
from relaypacs_tus.tus.routes import TusEndpoint

pytestmark = pytest.mark.anyio
REQ = HTTPRequest(
    method="PATCH", uri="/files/x", remote_addr="127.0.0.1:1", header={"Tus-Resumable": ["1.0.0"]}
)
Answer = Callable[[HookEvent], HookResponse | Awaitable[HookResponse]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Recorder:
    """A Hooks implementation: records every event and answers with ``answers[type]`` if given."""

    def __init__(self, answers: dict[HookType, Answer] | None = None) -> None:
        self.events: list[HookEvent] = []
        self.answers = answers or {}

    async def __call__(self, event: HookEvent) -> HookResponse:
        self.events.append(event)
        answer = self.answers.get(event.type)
        if answer is None:
            return HookResponse()
        result = answer(event)
        return await result if isinstance(result, Awaitable) else result

    def types(self) -> list[str]:
        return [e.type.value for e in self.events]

    async def wait_for(self, kind: HookType, count: int = 1) -> None:
        with anyio.fail_after(10):
            while sum(e.type is kind for e in self.events) < count:
                await anyio.sleep(0.01)


async def body(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def make_engine(tmp_path: Path) -> AsyncIterator[Callable[..., Engine]]:
    async with anyio.create_task_group() as tg:

        def make(hooks: Recorder, **kwargs: object) -> Engine:
            return Engine(LocalStore(tmp_path / "uploads"), hooks=hooks, spawn=tg.start_soon, **kwargs)  # type: ignore[arg-type]

        yield make
        tg.cancel_scope.cancel()


def creation(length: int | None = 4, meta: str = "filename YS5kY20=") -> Creation:
    return Creation(length=length, metadata=parse_metadata(meta))


async def test_the_seven_events_in_order(make_engine: Callable[..., Engine]) -> None:
    hooks = Recorder()
    engine = make_engine(hooks)
    info = (await engine.create(creation(4), REQ)).info
    await engine.append(info.id, Patch(offset=0, body=body(b"ab")), REQ)
    await engine.append(info.id, Patch(offset=2, body=body(b"cd")), REQ)
    await hooks.wait_for(HookType.POST_FINISH)
    other = (await engine.create(creation(9), REQ)).info
    await engine.terminate(other.id, REQ)
    await hooks.wait_for(HookType.POST_TERMINATE)
    mine = [e.type.value for e in hooks.events if e.upload.id == info.id or e.type is HookType.PRE_CREATE]
    assert mine[:2] == ["pre-create", "post-create"]
    assert mine.count("post-receive") == 2
    assert mine.index("pre-finish") < mine.index("post-finish")
    assert {"pre-terminate", "post-terminate"} <= set(hooks.types())
    finish = next(e for e in hooks.events if e.type is HookType.POST_FINISH)
    tusd = finish.to_tusd()
    assert tusd["Type"] == "post-finish"
    upload = tusd["Event"]["Upload"]
    assert upload["ID"] == info.id
    assert upload["Size"] == upload["Offset"] == 4
    assert upload["MetaData"] == {"filename": "a.dcm"}
    assert upload["Storage"]["Type"] == "filestore"
    assert tusd["Event"]["HTTPRequest"]["Method"] == "PATCH"
    pre_create = next(e for e in hooks.events if e.type is HookType.PRE_CREATE).to_tusd()
    assert pre_create["Event"]["Upload"]["ID"] == ""
    assert pre_create["Event"]["Upload"]["Storage"] is None


@pytest.mark.parametrize(
    ("response", "status", "message"),
    [
        (HookResponse(reject_upload=True, http_response=HTTPResponse(403, "uploads are closed")), 403,
         "uploads are closed"),
        (HookResponse(reject_upload=True), 400, "upload rejected by server"),
    ],
)  # fmt: skip
async def test_pre_create_rejects(
    make_engine: Callable[..., Engine], response: HookResponse, status: int, message: str
) -> None:
    hooks = Recorder({HookType.PRE_CREATE: lambda e: response})
    engine = make_engine(hooks)
    with pytest.raises(errors.UploadRejected) as caught:
        await engine.create(creation(), REQ)
    assert caught.value.status == status
    assert caught.value.message == message
    assert [i async for i in engine.store.list_ids()] == [], "a rejected upload is never stored"
    assert "post-create" not in hooks.types()


async def test_pre_create_changes_metadata_and_id(make_engine: Callable[..., Engine]) -> None:
    change = HookResponse(change_metadata={"filename": "renamed.dcm"}, change_id="ab" * 16)
    engine = make_engine(Recorder({HookType.PRE_CREATE: lambda e: change}))
    info = (await engine.create(creation(), REQ)).info
    assert info.id == "ab" * 16
    stored = await engine.get(info.id)
    assert stored.metadata == {"filename": "renamed.dcm"}
    assert stored.metadata_header == "filename cmVuYW1lZC5kY20="


async def test_pre_finish_rejects_with_status_and_reason(make_engine: Callable[..., Engine]) -> None:
    refuse = HookResponse(http_response=HTTPResponse(422, "not a DICOM file", {"X-Reason": "not_dicom"}))
    hooks = Recorder({HookType.PRE_FINISH: lambda e: refuse})
    engine = make_engine(hooks)
    info = (await engine.create(creation(4), REQ)).info
    with pytest.raises(errors.UploadRejected) as caught:
        await engine.append(info.id, Patch(offset=0, body=body(b"abcd")), REQ)
    assert caught.value.status == 422
    assert caught.value.body == "not a DICOM file"
    assert caught.value.headers == {"X-Reason": "not_dicom"}
    stored = await engine.store.get(info.id)
    assert stored.state == "rejected"
    assert stored.extra["rejection"]["status"] == 422
    # Notifications start in the order they are sent, and the recorder records on its first step: once a
    # later upload's post-create is in, a post-finish sent for the rejected one would be too.
    await engine.create(creation(4), REQ)
    await hooks.wait_for(HookType.POST_CREATE, count=2)
    assert "post-finish" not in hooks.types()


async def test_pre_terminate_rejects(make_engine: Callable[..., Engine]) -> None:
    refuse = HookResponse(reject_termination=True, http_response=HTTPResponse(409, "delivery in progress"))
    engine = make_engine(Recorder({HookType.PRE_TERMINATE: lambda e: refuse}))
    info = (await engine.create(creation(4), REQ)).info
    with pytest.raises(errors.TerminationRejected) as caught:
        await engine.terminate(info.id, REQ)
    assert caught.value.status == 409
    assert (await engine.get(info.id)).state == "active"


def crash(event: HookEvent) -> HookResponse:
    raise RuntimeError("hook process died")


async def test_crashing_pre_hook_is_a_catalogued_500(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine(Recorder({HookType.PRE_CREATE: crash}))
    with pytest.raises(errors.HookFailed) as caught:
        await engine.create(creation(), REQ)
    assert caught.value.status == 500
    assert [i async for i in engine.store.list_ids()] == []


async def test_crashing_post_hook_does_not_fail_the_request(make_engine: Callable[..., Engine]) -> None:
    hooks = Recorder({HookType.POST_RECEIVE: crash, HookType.POST_CREATE: crash})
    engine = make_engine(hooks)
    info = (await engine.create(creation(4), REQ)).info
    out = await engine.append(info.id, Patch(offset=0, body=body(b"ab")), REQ)
    assert out.info.offset == 2


async def test_post_receive_stop_upload_terminates(make_engine: Callable[..., Engine]) -> None:
    engine = make_engine(Recorder({HookType.POST_RECEIVE: lambda e: HookResponse(stop_upload=True)}))
    info = (await engine.create(creation(10), REQ)).info
    await engine.append(info.id, Patch(offset=0, body=body(b"ab")), REQ)
    with anyio.fail_after(10):
        while not (await engine.store.get(info.id)).is_gone:
            await anyio.sleep(0.01)
    with pytest.raises(errors.UploadGone):
        await engine.get(info.id)


async def test_sweeper_expires_idle_uploads(make_engine: Callable[..., Engine]) -> None:
    clock = Clock()
    engine = make_engine(Recorder(), clock=clock, config=EngineConfig(expiration=60))
    idle = (await engine.create(creation(10), REQ)).info
    done = (await engine.create(creation(2), REQ)).info
    await engine.append(done.id, Patch(offset=0, body=body(b"ok")), REQ)
    clock.now += 30
    assert await engine.sweep() == []
    # LocalStore reports the data file's mtime as the last activity: move the clock past both.
    clock.now = max(clock.now, (await engine.store.get(idle.id)).updated_at) + 61
    expired = await engine.sweep()
    assert [i.id for i in expired] == [idle.id]
    with pytest.raises(errors.UploadGone):
        await engine.get(idle.id)
    assert (await engine.get(done.id)).is_complete


async def test_sweeper_finishes_uploads_a_crash_left_unfinished(make_engine: Callable[..., Engine]) -> None:
    clock = Clock()
    hooks = Recorder()
    engine = make_engine(hooks, clock=clock, config=EngineConfig(network_timeout=5))
    info = (await engine.create(creation(3), REQ)).info
    # The bytes land but the process "dies" before the finishing step: write through the store only.
    await engine.store.append(await engine.store.get(info.id), body(b"xyz"))
    assert not (await engine.store.get(info.id)).accepted
    clock.now = (await engine.store.get(info.id)).updated_at + 1
    await engine.sweep()
    assert "pre-finish" not in hooks.types(), "too fresh: a request may still be finishing it"
    clock.now += 10
    await engine.sweep()
    await hooks.wait_for(HookType.POST_FINISH)
    assert (await engine.store.get(info.id)).accepted
    assert "pre-finish" in hooks.types()


async def test_rejections_reach_the_client_through_the_adapter(make_engine: Callable[..., Engine]) -> None:
    refuse_create = HookResponse(
        reject_upload=True, http_response=HTTPResponse(403, "upload link already used")
    )
    refuse_finish = HookResponse(http_response=HTTPResponse(422, "not a DICOM file"))

    def pre_create(event: HookEvent) -> HookResponse:
        return refuse_create if event.upload.metadata.get("filename") == "blocked" else HookResponse()

    hooks = Recorder({HookType.PRE_CREATE: pre_create, HookType.PRE_FINISH: lambda e: refuse_finish})
    app = Starlette(routes=TusEndpoint(make_engine(hooks)).routes())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://relay") as c:
        tus = {"Tus-Resumable": "1.0.0"}
        r = await c.post(
            "/files/", headers={**tus, "Upload-Length": "2", "Upload-Metadata": "filename YmxvY2tlZA=="}
        )
        assert r.status_code == 403
        assert r.text == "upload link already used"
        assert r.headers["Tus-Resumable"] == "1.0.0"
        assert "Location" not in r.headers
        r = await c.post("/files/", headers={**tus, "Upload-Length": "2"})
        assert r.status_code == 201
        url = r.headers["Location"]
        patch = {**tus, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
        r = await c.patch(url, headers=patch, content=b"no")
        assert r.status_code == 422
        assert r.text == "not a DICOM file"
        head = await c.head(url, headers=tus)
        assert head.headers["Upload-Offset"] == "2", "the bytes stay; the rejection is recorded"


async def test_crashed_pre_finish_runs_again_on_the_retried_last_patch(
    make_engine: Callable[..., Engine],
) -> None:
    """A pre-finish that crashed (500) left the bytes complete but not accepted: the client's retry, an
    empty PATCH at the final offset, runs pre-finish again; once accepted, hooks never run twice."""
    attempts: list[int] = []

    def flaky(event: HookEvent) -> HookResponse:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("validator crashed")
        return HookResponse()

    hooks = Recorder({HookType.PRE_FINISH: flaky})
    engine = make_engine(hooks)
    info = (await engine.create(creation(3), REQ)).info
    with pytest.raises(errors.HookFailed):
        await engine.append(info.id, Patch(offset=0, body=body(b"abc")), REQ)
    assert not (await engine.get(info.id)).accepted
    out = await engine.append(info.id, Patch(offset=3, body=body(), content_length=0), REQ)
    assert out.info.accepted
    assert out.info.offset == 3
    data = Path(engine.store.data_path(info.id))  # type: ignore[attr-defined]
    assert stat.S_IMODE(data.stat().st_mode) == 0o400, "an accepted upload's bytes are read-only"
    assert (await LocalStore(data.parent).get(info.id)).accepted, "as a restarted process sees it"
    await hooks.wait_for(HookType.POST_FINISH)
    again = await engine.append(info.id, Patch(offset=3, body=body(), content_length=0), REQ)
    assert again.info.offset == 3
    assert len(attempts) == 2
    assert hooks.types().count("post-finish") == 1
    with pytest.raises(errors.UploadSizeExceeded):
        await engine.append(info.id, Patch(offset=3, body=body(b"d"), content_length=1), REQ)


async def test_sweeper_retries_a_crashed_pre_finish(make_engine: Callable[..., Engine]) -> None:
    clock = Clock()
    calls: list[int] = []

    def once_broken(event: HookEvent) -> HookResponse:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("validator crashed")
        return HookResponse()

    hooks = Recorder({HookType.PRE_FINISH: once_broken})
    engine = make_engine(hooks, clock=clock, config=EngineConfig(network_timeout=5))
    info = (await engine.create(creation(2), REQ)).info
    with pytest.raises(errors.HookFailed):
        await engine.append(info.id, Patch(offset=0, body=body(b"ok")), REQ)
    clock.now = (await engine.store.get(info.id)).updated_at + 60
    await engine.sweep()
    await hooks.wait_for(HookType.POST_FINISH)
    assert (await engine.store.get(info.id)).accepted
    await engine.sweep()
    assert len(calls) == 2, "an accepted upload is left alone"


async def test_unfinished_final_upload_expires(make_engine: Callable[..., Engine]) -> None:
    """A final upload whose partials never complete does not wait forever: it expires like any upload."""
    clock = Clock()
    engine = make_engine(Recorder(), clock=clock, config=EngineConfig(expiration=60, network_timeout=5))
    part = (await engine.create(Creation(length=5, partial=True), REQ)).info
    final = (await engine.create(Creation(length=None, final_of=(part.id,)), REQ)).info
    assert not (await engine.get(final.id)).finished
    clock.now = max(clock.now, (await engine.store.get(part.id)).updated_at) + 120
    expired = {i.id for i in await engine.sweep()}
    assert expired == {part.id, final.id}
    with pytest.raises(errors.UploadGone):
        await engine.get(final.id)


@pytest.mark.parametrize("bad_id", ["../../etc", "UPPERCASE" * 4, "taken"])
async def test_pre_create_id_that_cannot_be_used_is_a_500(
    make_engine: Callable[..., Engine], bad_id: str
) -> None:
    engine = make_engine(Recorder())
    taken = (await engine.create(creation(), REQ)).info.id
    change = HookResponse(change_id=taken if bad_id == "taken" else bad_id)
    engine.hooks = Recorder({HookType.PRE_CREATE: lambda e: change})
    with pytest.raises(errors.HookFailed):
        await engine.create(creation(), REQ)
    assert [i async for i in engine.store.list_ids()] == [taken]


async def test_only_the_owner_can_make_a_busy_upload_let_go(make_engine: Callable[..., Engine]) -> None:
    """A request for a busy upload asks the holder to let go (a retry after a lost connection takes over
    at once). Someone else's request must not have that power: it gets the 404 of an unknown upload while
    the owner's body keeps flowing."""
    engine = make_engine(Recorder())
    info = (await engine.create(creation(6), REQ, principal="alice")).info
    holding, go_on = anyio.Event(), anyio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b"abc"
        holding.set()
        await go_on.wait()
        yield b"def"

    async with anyio.create_task_group() as tg:
        outcome: list[int] = []

        async def owner() -> None:
            patch = Patch(offset=0, body=slow_body())
            outcome.append((await engine.append(info.id, patch, REQ, principal="alice")).info.offset)

        tg.start_soon(owner)
        with anyio.fail_after(10):
            await holding.wait()
        for stranger in ("bob", None):
            with pytest.raises(errors.UploadNotFound):
                await engine.append(info.id, Patch(offset=0, body=body(b"zzz")), REQ, principal=stranger)
            with pytest.raises(errors.UploadNotFound):
                await engine.head(info.id, REQ, principal=stranger)
        go_on.set()
    assert outcome == [6]
    assert (await engine.head(info.id, REQ, principal="alice")).offset == 6
