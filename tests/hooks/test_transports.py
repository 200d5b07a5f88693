"""The three hook transports against real programs and a real HTTP endpoint, on tusd's contract."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import httpx
import pytest

from relaypacs_tus.hooks.events import event_from_tusd, response_to_tusd
from relaypacs_tus.hooks.runner import HookRunner
from relaypacs_tus.hooks.transports import FileHooks, HookError, HttpHooks, InProcessHooks
from relaypacs_tus.tus.events import NO_CHANGE, HookEvent, HookResponse, HookType, HTTPResponse
from tests.hooks.conftest import HookEndpoint, make_event, wait_for, write_program
from tests.services.ports import free_port

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- file hooks ----------------------------------------------------------------------------------------


async def test_file_hook_gets_tusd_request_environment_and_cwd(tmp_path: Path) -> None:
    hooks = tmp_path / "hooks"
    seen = tmp_path / "seen.json"
    write_program(
        hooks,
        "pre-finish",
        f"""
request = json.load(sys.stdin)
env = {{k: os.environ.get(k) for k in ("TUS_ID", "TUS_SIZE", "TUS_OFFSET")}}
open({str(seen)!r}, "w").write(json.dumps({{"request": request, "env": env, "cwd": os.getcwd()}}))
answer = {{"HTTPResponse": {{"StatusCode": 422, "Body": "bad file", "Header": {{"X-Why": "test"}}}}}}
print(json.dumps(answer))
""",
    )
    event = make_event()
    answer = await FileHooks(hooks, timeout=20)(event)
    assert answer.http_response == HTTPResponse(422, "bad file", {"X-Why": "test"})
    record = json.loads(seen.read_text())
    assert record["request"] == event.to_tusd()
    assert record["request"]["Type"] == "pre-finish"
    assert record["request"]["Event"]["Upload"]["Storage"]["Type"] == "filestore"
    assert record["env"] == {"TUS_ID": event.upload.id, "TUS_SIZE": "10", "TUS_OFFSET": "10"}
    assert record["cwd"] == str(hooks.resolve())


async def test_pre_create_program_sees_no_id_and_can_change_metadata(tmp_path: Path) -> None:
    write_program(
        tmp_path,
        "pre-create",
        """
request = json.load(sys.stdin)
assert request["Event"]["Upload"]["ID"] == "" and os.environ["TUS_ID"] == ""
print(json.dumps({"ChangeFileInfo": {"MetaData": {"filename": "renamed.dcm"}}}))
""",
    )
    answer = await FileHooks(tmp_path, timeout=20)(make_event(HookType.PRE_CREATE))
    assert answer.change_metadata == {"filename": "renamed.dcm"}
    assert not answer.reject_upload


async def test_missing_program_changes_nothing(tmp_path: Path) -> None:
    assert await FileHooks(tmp_path, timeout=5)(make_event(HookType.POST_FINISH)) == NO_CHANGE


async def test_empty_output_changes_nothing(tmp_path: Path) -> None:
    write_program(tmp_path, "post-finish", "sys.stdin.read()")
    assert await FileHooks(tmp_path, timeout=20)(make_event(HookType.POST_FINISH)) == NO_CHANGE


async def test_non_zero_exit_is_a_hook_error(tmp_path: Path) -> None:
    write_program(tmp_path, "pre-finish", "print('{}'); sys.exit(3)")
    with pytest.raises(HookError, match="exited with 3"):
        await FileHooks(tmp_path, timeout=20)(make_event())


async def test_invalid_json_is_a_hook_error(tmp_path: Path) -> None:
    write_program(tmp_path, "pre-finish", "print('this is not json')")
    with pytest.raises(HookError, match="invalid JSON"):
        await FileHooks(tmp_path, timeout=20)(make_event())


async def test_not_executable_is_a_hook_error(tmp_path: Path) -> None:
    write_program(tmp_path, "pre-finish", "print('{}')").chmod(0o644)
    with pytest.raises(HookError, match="cannot run"):
        await FileHooks(tmp_path, timeout=20)(make_event())


async def test_timeout_kills_the_program_and_its_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    write_program(
        tmp_path,
        "pre-finish",
        f"""
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open({str(pid_file)!r}, "w").write(str(child.pid))
time.sleep(60)
""",
    )
    with pytest.raises(HookError, match="timed out"):
        await FileHooks(tmp_path, timeout=2.0)(make_event())
    child = int(pid_file.read_text())
    wait_for(lambda: _proc_state(child) in ("gone", "Z"), timeout=10, what="the hook's child to be killed")


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "gone"


# -- HTTP hooks ----------------------------------------------------------------------------------------


async def test_http_hook_posts_tusd_json_and_reads_the_answer(hook_endpoint: HookEndpoint) -> None:
    hook_endpoint.answers.append((200, json.dumps({"RejectUpload": True}).encode(), False))
    event = make_event(HookType.PRE_CREATE)
    async with httpx.AsyncClient() as client:
        answer = await HttpHooks(hook_endpoint.url, client=client, timeout=5, retries=0)(event)
    assert answer.reject_upload
    (request,) = hook_endpoint.requests
    assert request["body"] == event.to_tusd()
    headers = {k.lower(): v for k, v in request["headers"].items()}  # type: ignore[union-attr]
    assert headers["content-type"] == "application/json"


async def test_http_hook_retries_5xx_then_succeeds(hook_endpoint: HookEndpoint) -> None:
    hook_endpoint.answers += [(503, b"", False), (500, b"", False), (200, b'{"StopUpload": true}', False)]
    async with httpx.AsyncClient() as client:
        answer = await HttpHooks(hook_endpoint.url, client=client, timeout=5, retries=3, backoff=0.05)(
            make_event(HookType.POST_RECEIVE)
        )
    assert answer.stop_upload
    assert len(hook_endpoint.requests) == 3


async def test_http_hook_gives_up_after_its_retries(hook_endpoint: HookEndpoint) -> None:
    hook_endpoint.answers += [(502, b"", False)] * 5
    async with httpx.AsyncClient() as client:
        with pytest.raises(HookError, match="502 after 3 attempts"):
            await HttpHooks(hook_endpoint.url, client=client, timeout=5, retries=2, backoff=0.05)(
                make_event()
            )
    assert len(hook_endpoint.requests) == 3


async def test_http_hook_4xx_is_an_error_without_retry(hook_endpoint: HookEndpoint) -> None:
    hook_endpoint.answers.append((403, b"", False))
    async with httpx.AsyncClient() as client:
        with pytest.raises(HookError, match="403"):
            await HttpHooks(hook_endpoint.url, client=client, timeout=5, retries=3, backoff=0.05)(
                make_event()
            )
    assert len(hook_endpoint.requests) == 1


async def test_http_hook_bad_json_is_an_error(hook_endpoint: HookEndpoint) -> None:
    hook_endpoint.answers.append((200, b"<html>", False))
    async with httpx.AsyncClient() as client:
        with pytest.raises(HookError, match="invalid JSON"):
            await HttpHooks(hook_endpoint.url, client=client, timeout=5, retries=0)(make_event())


async def test_http_hook_timeout_is_retried_then_an_error(hook_endpoint: HookEndpoint) -> None:
    hook_endpoint.answers += [(200, b"{}", True), (200, b"{}", True)]
    async with httpx.AsyncClient() as client:
        # the endpoint never answers: without the hook's own timeout this fails here instead of hanging
        with anyio.fail_after(30), pytest.raises(HookError, match="unreachable"):
            await HttpHooks(hook_endpoint.url, client=client, timeout=0.3, retries=1, backoff=0.05)(
                make_event()
            )
    assert len(hook_endpoint.requests) == 2


async def test_http_hook_unreachable_endpoint() -> None:
    url = f"http://127.0.0.1:{free_port()}/hooks"
    async with httpx.AsyncClient() as client:
        with pytest.raises(HookError, match=r"unreachable.*after 2 attempts"):
            await HttpHooks(url, client=client, timeout=2, retries=1, backoff=0.05)(make_event())


# -- the dispatcher ------------------------------------------------------------------------------------


async def test_failing_blocking_hooks_answer_500_like_tusd(tmp_path: Path) -> None:
    write_program(tmp_path, "pre-create", "sys.exit(1)")
    write_program(tmp_path, "pre-finish", "sys.exit(1)")
    write_program(tmp_path, "post-finish", "sys.exit(1)")
    runner = HookRunner([FileHooks(tmp_path, timeout=20)], enabled=set(HookType))
    create = await runner(make_event(HookType.PRE_CREATE))
    assert create.reject_upload
    assert create.http_response is not None
    assert create.http_response.status_code == 500
    finish = await runner(make_event(HookType.PRE_FINISH))
    assert finish.http_response is not None
    assert finish.http_response.status_code == 500
    assert await runner(make_event(HookType.POST_FINISH)) == NO_CHANGE  # logged, not raised


async def test_events_not_enabled_skip_transports_but_not_builtin(tmp_path: Path) -> None:
    write_program(tmp_path, "pre-finish", "print(json.dumps({'HTTPResponse': {'StatusCode': 418}}))")
    calls: list[str] = []

    async def builtin(event: HookEvent) -> HookResponse | None:
        calls.append(event.type.value)
        return None

    runner = HookRunner(
        [FileHooks(tmp_path, timeout=20)],
        enabled={HookType.POST_FINISH},  # tusd's default leaves pre-finish off
        builtin=InProcessHooks({HookType.PRE_FINISH: [builtin]}),
    )
    assert await runner(make_event()) == NO_CHANGE
    assert calls == ["pre-finish"]


async def test_a_rejection_stops_later_handlers(tmp_path: Path) -> None:
    write_program(
        tmp_path, "pre-finish", "print(json.dumps({'HTTPResponse': {'StatusCode': 403, 'Body': 'no'}}))"
    )
    calls: list[str] = []

    async def builtin(event: HookEvent) -> HookResponse | None:
        calls.append("builtin")
        return None

    runner = HookRunner(
        [FileHooks(tmp_path, timeout=20)],
        enabled=set(HookType),
        builtin=InProcessHooks({HookType.PRE_FINISH: [builtin]}),
    )
    answer = await runner(make_event())
    assert answer.http_response is not None
    assert answer.http_response.status_code == 403
    assert calls == []


def test_tusd_json_round_trips() -> None:
    event = make_event(HookType.POST_FINISH, is_partial=True)
    assert event_from_tusd(json.loads(json.dumps(event.to_tusd()))).to_tusd() == event.to_tusd()
    answer = HookResponse(
        http_response=HTTPResponse(400, "no", {"A": "b"}), reject_upload=True, change_metadata={"k": "v"}
    )
    assert HookResponse.from_tusd(response_to_tusd(answer)) == answer
