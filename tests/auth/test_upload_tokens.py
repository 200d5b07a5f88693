"""Upload tokens as the PWA and scripts use them: issuing, reading the current token, resuming after the
creation window, and minting from the command line."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from tests.security.support import (
    assert_401,
    bearer,
    caller_token,
    cli,
    client,
    create,
    issue,
    jwt_env,
    patch,
    wait_until,
)


def _parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).timestamp()


def test_issue_returns_the_contract(relay_server) -> None:
    server = relay_server(env=jwt_env()).start()
    with client() as http:
        before = time.time()
        answer = issue(http, server, caller_token())
        assert set(answer) >= {"token", "token_id", "expires_at", "max_uploads", "upload_url", "link"}
        assert answer["max_uploads"] == 1
        assert before + 900 - 5 <= _parse_time(answer["expires_at"]) <= time.time() + 900 + 5
        assert answer["upload_url"] == server.files_url
        assert answer["link"] == f"{server.base_url}/#token={answer['token']}"
        url = create(http, server, answer["token"]).headers["Location"]
        assert url.startswith(server.files_url)


def test_issue_refuses_bad_requests(relay_server) -> None:
    server = relay_server(env=jwt_env(RELAYPACS_UPLOAD_TOKEN_MAX_TTL="3600")).start()
    caller = {"Authorization": f"Bearer {caller_token()}"}
    bad = [
        {"ttl_seconds": 3601},
        {"max_uploads": 0},
        {"max_uploads": "1"},
        {"surprise": 1},
        {"binding": {"patient_sex": "X"}},
        {"binding": {"favourite_colour": "blue"}},
        {"binding": {"patient_birth_date": "1970-01-01"}},
        {"destinations": ["../etc"]},
        {"max_bytes_per_upload": -5},
        {"binding": {"patient_name": "line\nbreak"}},
    ]
    with client() as http:
        for body in bad:
            response = http.post(server.base_url + "/auth/upload-tokens", json=body, headers=caller)
            assert response.status_code == 400, body
            assert response.json()["error"] == "invalid_request"
        not_json = http.post(server.base_url + "/auth/upload-tokens", content=b"{", headers=caller)
        assert not_json.status_code == 400
        viewer = {"Authorization": f"Bearer {caller_token(roles=['relaypacs.upload'])}"}
        assert http.post(server.base_url + "/auth/upload-tokens", json={}, headers=viewer).status_code == 403


def test_current_token_describes_itself(relay_server) -> None:
    server = relay_server(env=jwt_env()).start()
    binding = {"patient_id": "P-1", "study_instance_uid": "1.2.840.99.1"}
    with client() as http:
        answer = issue(
            http,
            server,
            caller_token(),
            max_uploads=2,
            max_bytes_per_upload=5000,
            binding=binding,
            destinations=["orthanc"],
        )
        link = answer["token"]
        current = http.get(server.base_url + "/auth/upload-tokens/current", headers=bearer(link)).json()
        assert current["token_id"] == answer["token_id"]
        assert current["remaining_uploads"] == 2
        assert current["max_bytes_per_upload"] == 5000
        assert current["binding"] == binding
        assert current["expires_at"] == answer["expires_at"]
        url = create(http, server, link, length=10).headers["Location"]
        current = http.get(server.base_url + "/auth/upload-tokens/current", headers=bearer(link)).json()
        assert current["remaining_uploads"] == 1
        assert current["uploads"] == [url.rsplit("/", 1)[1]]
        # The binding is kept with the upload for the DICOM pipeline (contracts.md section 5).
        info = json.loads((server.data_dir / "uploads" / f"{url.rsplit('/', 1)[1]}.info").read_text())
        assert info["extra"] == {
            "token_id": answer["token_id"],
            "binding": binding,
            "destinations": ["orthanc"],
        }
        assert info["max_size"] == 5000
        # A caller token is the wrong kind here.
        wrong = http.get(server.base_url + "/auth/upload-tokens/current", headers=bearer(caller_token()))
        assert_401(wrong, code="wrong_kind")


def test_resume_after_the_creation_window(relay_server) -> None:
    """A two-hour upload over a bad link is not cut off when the link's 15 minutes end: the token keeps
    working for the uploads it created, while creating new ones stops."""
    server = relay_server(env=jwt_env(RELAYPACS_AUTH_LEEWAY="0")).start()
    with client() as http:
        link = issue(http, server, caller_token(), max_uploads=2, ttl_seconds=2)["token"]
        url = create(http, server, link, length=8).headers["Location"]
        assert patch(http, url, link, b"abcd").status_code == 204

        def window_closed() -> bool:
            current = http.get(server.base_url + "/auth/upload-tokens/current", headers=bearer(link))
            return current.json()["remaining_uploads"] == 0

        wait_until(window_closed, what="the creation window to end")
        assert_401(create(http, server, link), code="expired")
        assert http.head(url, headers=bearer(link)).headers["Upload-Offset"] == "4"
        assert patch(http, url, link, b"efgh", offset=4).status_code == 204


def test_resume_horizon_ends(relay_server) -> None:
    server = relay_server(env=jwt_env(RELAYPACS_AUTH_LEEWAY="0", RELAYPACS_UPLOAD_TOKEN_RESUME="0")).start()
    with client() as http:
        link = issue(http, server, caller_token(), ttl_seconds=1)["token"]
        url = create(http, server, link, length=8).headers["Location"]
        wait_until(lambda: http.head(url, headers=bearer(link)).status_code == 401, what="the horizon to end")
        assert_401(patch(http, url, link, b"abcd"), code="expired")


def test_cli_mints_tokens_the_server_accepts(relay_server) -> None:
    env = jwt_env()
    server = relay_server(env=env).start()
    settings = {**env, "RELAYPACS_DATA_DIR": str(server.data_dir)}
    caller = cli("token", "--sub", "script", env=settings)
    assert caller.returncode == 0, caller.stderr
    minted = cli(
        "token", "--upload", "--max-uploads", "2", "--max-bytes-per-upload", "100", "--json", env=settings
    )
    assert minted.returncode == 0, minted.stderr
    answer = json.loads(minted.stdout)
    with client() as http:
        assert create(http, server, caller.stdout.strip()).status_code == 201
        link = answer["token"]
        assert create(http, server, link, length=101).status_code == 413
        assert [create(http, server, link, length=50).status_code for _ in range(3)] == [201, 201, 401]
    bad = cli("token", "--upload", "--binding", '{"patient_sex": "?"}', env=settings)
    assert bad.returncode == 2
    assert "patient_sex" in bad.stderr
