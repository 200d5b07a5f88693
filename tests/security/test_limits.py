"""Denial-of-service attacks against the real server: byte caps, creation bursts, slow bodies, too many
parallel uploads. Each limit answers with a status a tus client understands (413, 429 + Retry-After, 408)
and the server keeps serving everyone else."""

from __future__ import annotations

import socket
import threading

import httpx

from .support import (
    assert_401,
    bearer,
    caller_token,
    client,
    create,
    issue,
    jwt_env,
    patch,
    wait_until,
)

KIB = 1024


def test_byte_cap_exceeded_mid_upload_with_deferred_length(relay_server) -> None:
    server = relay_server(env=jwt_env()).start()
    with client() as http:
        link = issue(http, server, caller_token(), max_uploads=2, max_bytes_per_upload=64 * KIB)["token"]
        # Declared too large: refused at creation, and the link's use is given back.
        assert create(http, server, link, length=64 * KIB + 1).status_code == 413
        # Deferred length: the cap is enforced while the bytes arrive.
        url = create(http, server, link, length=None).headers["Location"]
        first = patch(http, url, link, b"a" * (48 * KIB))
        assert first.status_code == 204
        over = patch(http, url, link, b"b" * (32 * KIB), offset=48 * KIB)
        assert over.status_code == 413
        offset = int(http.head(url, headers=bearer(link)).headers["Upload-Offset"])
        assert offset <= 64 * KIB
        # Declaring a length over the cap at the end is refused too; within it, the upload completes.
        assert (
            patch(http, url, link, b"", offset=offset, **{"Upload-Length": str(64 * KIB + 1)}).status_code
            == 413
        )
        done = patch(
            http, url, link, b"c" * (64 * KIB - offset), offset=offset, **{"Upload-Length": str(64 * KIB)}
        )
        assert done.status_code == 204
        # The refunded use is still there: a second upload may be created, a third may not.
        assert create(http, server, link, length=10).status_code == 201
        assert_401(create(http, server, link, length=10), code="token_used")


def test_total_byte_cap_across_uploads(relay_server) -> None:
    server = relay_server(env=jwt_env()).start()
    with client() as http:
        link = issue(http, server, caller_token(), max_uploads=5, max_total_bytes=100)["token"]
        assert create(http, server, link, length=60).status_code == 201
        assert create(http, server, link, length=41).status_code == 413
        assert create(http, server, link, length=40).status_code == 201
        assert create(http, server, link, length=1).status_code == 413


def test_tus_max_size_is_enforced(relay_server) -> None:
    server = relay_server(env=jwt_env(RELAYPACS_MAX_SIZE="1000")).start()
    with client() as http:
        assert http.options(server.files_url).headers["Tus-Max-Size"] == "1000"
        assert create(http, server, caller_token(), length=1001).status_code == 413
        url = create(http, server, caller_token(), length=None).headers["Location"]
        assert patch(http, url, caller_token(), b"x" * 1500).status_code == 413


def test_rate_limit_burst_gets_429_with_retry_after(relay_server) -> None:
    server = relay_server(env=jwt_env(RELAYPACS_LIMIT_CREATES="5/min")).start()
    alice, bob = caller_token("alice"), caller_token("bob")
    with client() as http:
        statuses = [create(http, server, alice).status_code for _ in range(5)]
        assert statuses == [201] * 5
        burst = create(http, server, alice)
        assert burst.status_code == 429
        assert int(burst.headers["Retry-After"]) >= 1
        assert burst.headers["Tus-Resumable"] == "1.0.0"
        assert burst.json()["error"] == "rate_limited"
        assert create(http, server, bob).status_code == 201  # per principal: bob is not punished for alice
        # Resuming is not creation: alice may still finish what she started.
        url = create(http, server, bob, length=3).headers["Location"]
        assert patch(http, url, bob, b"abc").status_code == 204


def test_rate_limit_per_client_address(relay_server) -> None:
    server = relay_server(
        env=jwt_env(RELAYPACS_LIMIT_CREATES="0", RELAYPACS_LIMIT_CREATES_PER_ADDRESS="4/min")
    ).start()
    with client() as http:
        # Many identities from one address (an attacker minting tokens) still share the address's bucket.
        statuses = [create(http, server, caller_token(f"user{i}")).status_code for i in range(6)]
        assert statuses[:4] == [201] * 4
        assert statuses[4:] == [429, 429]


def test_rate_limit_applies_with_auth_off(relay_server) -> None:
    server = relay_server(env={"RELAYPACS_AUTH": "off", "RELAYPACS_LIMIT_CREATES": "3/min"}).start()
    with client() as http:
        assert [create(http, server, None).status_code for _ in range(4)] == [201, 201, 201, 429]


def _stalled_patch(port: int, path: str, token: str, declared: int, sent: bytes) -> socket.socket:
    """A PATCH that promises ``declared`` bytes, sends ``sent`` and then nothing (slow-loris)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    raw.sendall(
        (
            f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\n"
            f"Authorization: Bearer {token}\r\nUpload-Offset: 0\r\n"
            f"Content-Type: application/offset+octet-stream\r\nContent-Length: {declared}\r\n\r\n"
        ).encode()
        + sent
    )
    return raw


def test_slow_loris_patch_times_out_and_keeps_what_arrived(relay_server) -> None:
    server = relay_server(env=jwt_env(RELAYPACS_NETWORK_TIMEOUT="1")).start()
    token = caller_token()
    with client() as http:
        url = create(http, server, token, length=1000).headers["Location"]
        path = httpx.URL(url).path
        raw = _stalled_patch(server.port, path, token, 1000, b"x" * 10)
        try:
            answer = raw.recv(4096).decode(errors="replace")  # the server gives up on the idle body
        finally:
            raw.close()
        assert answer.startswith("HTTP/1.1 408"), answer[:200]
        # Meanwhile and afterwards everyone else is served, and the 10 bytes that arrived are kept.
        assert http.head(url, headers=bearer(token)).headers["Upload-Offset"] == "10"
        assert patch(http, url, token, b"y" * 990, offset=10).status_code == 204


def _hold_slot(port: int, path: str, token: str, probe) -> socket.socket:
    """A stalled PATCH holding the principal's only slot. ``probe`` (a PATCH at a wrong offset: 409 while
    the slot is free, so it changes nothing) tells when it does; if the stalled PATCH arrived while a probe
    held the slot it was refused, so it is sent again. Not probed by HEAD: a HEAD on the same upload would
    ask the stalled PATCH to let go (tus/locks.py)."""
    raw = _stalled_patch(port, path, token, 100, b"x")
    for _ in range(200):
        if probe().status_code == 429:
            return raw
        raw.settimeout(0.05)
        try:
            bounced = raw.recv(100)
        except TimeoutError:
            continue
        if bounced:
            raw.close()
            raw = _stalled_patch(port, path, token, 100, b"x")
    raw.close()
    raise AssertionError("the stalled PATCH never held the slot")


def test_concurrent_upload_cap_per_principal(relay_server) -> None:
    server = relay_server(
        env=jwt_env(RELAYPACS_LIMIT_CONCURRENT_UPLOADS="1", RELAYPACS_NETWORK_TIMEOUT="30")
    ).start()
    alice, bob = caller_token("alice"), caller_token("bob")
    with client() as http:
        first = create(http, server, alice, length=100).headers["Location"]
        second = create(http, server, alice, length=100).headers["Location"]
        raw = _hold_slot(
            server.port, httpx.URL(first).path, alice, lambda: patch(http, second, alice, b"y", offset=50)
        )
        try:
            busy = patch(http, second, alice, b"y" * 100)
            assert busy.status_code == 429
            assert int(busy.headers["Retry-After"]) >= 1
            other = create(http, server, bob, length=5).headers["Location"]
            assert patch(http, other, bob, b"z" * 5).status_code == 204  # bob has his own slots
        finally:
            raw.close()
        wait_until(lambda: patch(http, second, alice, b"y" * 100).status_code == 204, what="the slot to free")


def test_bytes_per_second_throttles_without_losing_data(relay_server) -> None:
    """PATCH bodies over the byte rate are slowed down (not cut): the upload still arrives whole."""
    server = relay_server(env=jwt_env(RELAYPACS_LIMIT_BYTES="64KiB/s")).start()
    token = caller_token()
    body = bytes(range(256)) * 512  # 128 KiB: twice the burst
    with client() as http:
        url = create(http, server, token, length=len(body)).headers["Location"]
        results: list[int] = []
        worker = threading.Thread(target=lambda: results.append(patch(http, url, token, body).status_code))
        worker.start()
        worker.join(timeout=60)
        assert results == [204]
        upload_id = url.rsplit("/", 1)[1]
        assert (server.data_dir / "uploads" / upload_id).read_bytes() == body


def test_forwarded_address_is_believed_only_from_trusted_proxies(relay_server) -> None:
    limits = {"RELAYPACS_LIMIT_CREATES": "0", "RELAYPACS_LIMIT_CREATES_PER_ADDRESS": "2/min"}
    behind_proxy = relay_server(env=jwt_env(RELAYPACS_TRUSTED_PROXIES="127.0.0.1", **limits)).start()
    exposed = relay_server(env=jwt_env(**limits)).start()
    token = caller_token()

    def creates(server, forwarded_for: str) -> int:
        with client() as http:
            return create(http, server, token, extra={"X-Forwarded-For": forwarded_for}).status_code

    # Behind a trusted proxy, each real client has its own bucket.
    assert [creates(behind_proxy, "203.0.113.7") for _ in range(3)] == [201, 201, 429]
    assert creates(behind_proxy, "203.0.113.8") == 201
    # Without one, a forged X-Forwarded-For does not buy a fresh bucket.
    assert [creates(exposed, f"203.0.113.{i}") for i in range(3)] == [201, 201, 429]


def test_issuing_upload_links_is_rate_limited(relay_server) -> None:
    server = relay_server(env=jwt_env(RELAYPACS_LIMIT_CREATES="3/min")).start()
    caller = {"Authorization": f"Bearer {caller_token()}"}
    with client() as http:
        statuses = [
            http.post(server.base_url + "/auth/upload-tokens", json={}, headers=caller).status_code
            for _ in range(4)
        ]
        assert statuses == [201, 201, 201, 429]


def _closed_by_server(raw: socket.socket, trickle: bytes = b"", deadline: float = 20.0) -> bool:
    """Keep trickling header bytes until the server closes the connection (True) or ``deadline`` passes."""
    raw.settimeout(0.2)

    def closed() -> bool:
        try:
            if trickle:
                raw.sendall(trickle)
            return raw.recv(1024) == b""
        except TimeoutError:
            return False
        except OSError:  # reset or broken pipe: closed too
            return True

    try:
        wait_until(closed, timeout=deadline, what="the server to close the connection")
    except AssertionError:
        return False
    return True


def test_slow_loris_headers_are_cut_off(relay_server) -> None:
    server = relay_server(env=jwt_env(RELAYPACS_HEADER_TIMEOUT="1")).start()
    silent = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    trickler = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    trickler.sendall(b"POST /files/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    try:
        with client() as http:  # served meanwhile
            assert create(http, server, caller_token()).status_code == 201
        assert _closed_by_server(silent)
        assert _closed_by_server(trickler, trickle=b"X-Slow: 1\r\n")
    finally:
        silent.close()
        trickler.close()
    assert "http.head_timeout" in server.log_text()
    with client() as http:
        assert create(http, server, caller_token()).status_code == 201
