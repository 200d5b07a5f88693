"""Hooks on the real server: what a tus client sees when a hook program or HTTP endpoint answers."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx

from tests.hooks.conftest import HookEndpoint, wait_for, write_program

TUS = {"Tus-Resumable": "1.0.0"}
OPEN = {"RELAYPACS_AUTH": "off"}  # these tests are about hooks; auth has its own


def _meta(**pairs: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


def _create(url: str, size: int, **meta: str) -> httpx.Response:
    headers = {**TUS, "Upload-Length": str(size), "Upload-Metadata": _meta(**meta)}
    return httpx.post(url, headers=headers, timeout=30)


def _patch(location: str, offset: int, data: bytes) -> httpx.Response:
    headers = {**TUS, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}
    return httpx.patch(location, headers=headers, content=data, timeout=30)


def test_pre_create_program_rejects_with_its_status_and_body(relay_server, tmp_path: Path) -> None:
    hooks = tmp_path / "hooks"
    write_program(
        hooks,
        "pre-create",
        """
meta = json.load(sys.stdin)["Event"]["Upload"]["MetaData"]
if meta.get("filename", "").endswith(".exe"):
    answer = {"RejectUpload": True, "HTTPResponse": {"StatusCode": 403, "Body": "no programs, please"}}
    print(json.dumps(answer))
""",
    )
    server = relay_server(env={**OPEN, "RELAYPACS_HOOKS_DIR": str(hooks)}).start()
    refused = _create(server.files_url, 10, filename="tool.exe")
    assert refused.status_code == 403
    assert refused.text == "no programs, please"
    assert _create(server.files_url, 10, filename="scan.dcm").status_code == 201


def test_failing_pre_create_program_answers_500(relay_server, tmp_path: Path) -> None:
    write_program(tmp_path / "hooks", "pre-create", "sys.exit(2)")
    server = relay_server(env={**OPEN, "RELAYPACS_HOOKS_DIR": str(tmp_path / "hooks")}).start()
    response = _create(server.files_url, 10)
    assert response.status_code == 500
    assert "Location" not in response.headers


def test_pre_finish_program_rejects_the_final_patch(relay_server, tmp_path: Path) -> None:
    write_program(
        tmp_path / "hooks",
        "pre-finish",
        "print(json.dumps({'HTTPResponse': {'StatusCode': 422, 'Body': 'the file is not acceptable'}}))",
    )
    env = {"RELAYPACS_HOOKS_DIR": str(tmp_path / "hooks"), "RELAYPACS_HOOKS_ENABLED_EVENTS": "pre-finish"}
    server = relay_server(env={**OPEN, **env}).start()
    location = _create(server.files_url, 8).headers["Location"]
    assert _patch(location, 0, b"1234").status_code == 204  # not finished yet: no pre-finish
    final = _patch(location, 4, b"5678")
    assert final.status_code == 422
    assert final.text == "the file is not acceptable"


def test_post_receive_stop_upload_terminates_like_tusd(relay_server, tmp_path: Path) -> None:
    write_program(tmp_path / "hooks", "post-receive", "print(json.dumps({'StopUpload': True}))")
    server = relay_server(env={**OPEN, "RELAYPACS_HOOKS_DIR": str(tmp_path / "hooks")}).start()
    location = _create(server.files_url, 100).headers["Location"]
    assert _patch(location, 0, b"x" * 10).status_code == 204
    wait_for(
        lambda: httpx.head(location, headers=TUS).status_code == 410, what="the stopped upload to be gone"
    )
    assert _patch(location, 10, b"y" * 10).status_code == 410


def test_http_hooks_reach_the_endpoint_and_can_reject(relay_server, hook_endpoint: HookEndpoint) -> None:
    hook_endpoint.answers += [
        (503, b"", False),  # retried
        (
            200,
            json.dumps({"RejectUpload": True, "HTTPResponse": {"StatusCode": 400, "Body": "quota"}}).encode(),
            False,
        ),
    ]
    env = {
        "RELAYPACS_HOOKS_HTTP": hook_endpoint.url,
        "RELAYPACS_HOOKS_ENABLED_EVENTS": "pre-create",
        "RELAYPACS_HOOKS_HTTP_BACKOFF": "0.05",
    }
    server = relay_server(env={**OPEN, **env}).start()
    response = _create(server.files_url, 10, filename="a.dcm")
    assert (response.status_code, response.text) == (400, "quota")
    assert [r["body"]["Type"] for r in hook_endpoint.requests] == ["pre-create", "pre-create"]  # type: ignore[index]
    assert hook_endpoint.requests[0]["body"]["Event"]["Upload"]["MetaData"] == {"filename": "a.dcm"}  # type: ignore[index]
