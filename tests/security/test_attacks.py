"""One test per attack on authentication and ownership, each against the real server (STRIDE: spoofing,
elevation of privilege, information disclosure). Every refusal must be a clean 401/404, never a trace."""

from __future__ import annotations

import base64
import json
import socket

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from .support import (
    SECRET,
    TUS,
    assert_401,
    bearer,
    caller_token,
    claims,
    client,
    create,
    forge,
    issue,
    jwt_env,
    patch,
)


def test_no_token_is_refused_on_every_protected_route(jwt_server) -> None:
    with client() as http:
        good = create(http, jwt_server, caller_token()).headers["Location"]
        upload_id = good.rsplit("/", 1)[1]
        attempts = [
            http.post(jwt_server.files_url, headers={**TUS, "Upload-Length": "5"}),
            http.head(good, headers=TUS),
            http.patch(
                good,
                headers={**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
                content=b"x",
            ),
            http.delete(good, headers=TUS),
            http.get(f"{jwt_server.base_url}/uploads/{upload_id}/status"),
            http.get(f"{jwt_server.base_url}/batches/b1/status"),
            http.post(jwt_server.base_url + "/auth/upload-tokens", json={}),
            http.get(jwt_server.base_url + "/auth/upload-tokens/current"),
            http.post(
                jwt_server.files_url, headers={**TUS, "Upload-Length": "5", "Authorization": "Basic YTpi"}
            ),
            http.post(jwt_server.files_url, headers={**TUS, "Upload-Length": "5", "Authorization": "Bearer"}),
            http.post(
                jwt_server.files_url, headers={**TUS, "Upload-Length": "5", "Authorization": "Bearer junk"}
            ),
        ]
        for response in attempts:
            assert_401(response)
        # X-HTTP-Method-Override cannot smuggle a PATCH past the check either.
        smuggled = http.post(
            good,
            headers={
                **TUS,
                "X-HTTP-Method-Override": "PATCH",
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
            content=b"x",
        )
        assert_401(smuggled)
        assert http.head(good, headers=bearer(caller_token())).headers["Upload-Offset"] == "0"


def test_expired_token_is_refused_and_small_skew_is_tolerated(jwt_server) -> None:
    with client() as http:
        expired = create(http, jwt_server, caller_token(exp_in=-120))
        assert_401(expired, code="expired")
        assert "expired" in expired.json()["message"].lower()
        # RELAYPACS_AUTH_LEEWAY=5 on this server: a token 2 s past exp from a slightly fast clock is fine.
        assert create(http, jwt_server, caller_token(exp_in=-2)).status_code == 201


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_is_refused(jwt_server, alg) -> None:
    unsigned = forge({"alg": alg, "typ": "JWT"}, claims())
    with client() as http:
        assert_401(create(http, jwt_server, unsigned))
        # An HS256 header with the signature stripped is no better.
        stripped = caller_token().rsplit(".", 1)[0] + "."
        assert_401(create(http, jwt_server, stripped))


def test_hs_rs_key_confusion_is_refused(relay_server, tmp_path) -> None:
    """The server trusts an RSA public key (JWKS). The attacker signs HS256 using that public key's bytes
    as the HMAC secret, hoping the server verifies "HS256 with the key it has"."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_jwk = {**json.loads(ECAlgorithm.to_jwk(ec_key.public_key())), "kid": "ec-1"}
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "rsa-1", "use": "sig"}, ec_jwk]}))
    env = jwt_env(RELAYPACS_AUTH_JWKS=str(jwks))
    del env["RELAYPACS_AUTH_SECRET"]  # public keys only: no shared secret at all
    server = relay_server(env=env).start()
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with client() as http:
        legit = caller_token(key=private, algorithm="RS256", headers={"kid": "rsa-1"})
        assert create(http, server, legit).status_code == 201
        for key_bytes in (
            pem,
            pem.strip(),
            json.dumps(jwk).encode(),
            base64.urlsafe_b64decode(jwk["n"] + "=="),
        ):
            for kid in ("rsa-1", None):
                header = {"alg": "HS256", "typ": "JWT", **({"kid": kid} if kid else {})}
                assert_401(create(http, server, forge(header, claims(), key_bytes)))
        # An RS256 header over an ES256 key (or the other way) is refused too.
        assert (
            create(
                http, server, caller_token(key=ec_key, algorithm="ES256", headers={"kid": "ec-1"})
            ).status_code
            == 201
        )
        assert_401(
            create(http, server, caller_token(key=private, algorithm="RS256", headers={"kid": "ec-1"}))
        )
        assert_401(
            create(http, server, caller_token(key=ec_key, algorithm="ES256", headers={"kid": "rsa-1"}))
        )
        # With only public keys configured, no HS256 token is accepted at all.
        assert_401(create(http, server, caller_token()))


def test_wrong_audience_is_refused(jwt_server) -> None:
    with client() as http:
        assert_401(create(http, jwt_server, caller_token(aud="some-other-api")))
        assert_401(create(http, jwt_server, caller_token(aud=None)))  # aud is required


def test_wrong_issuer_is_refused(jwt_server) -> None:
    with client() as http:
        assert_401(create(http, jwt_server, caller_token(iss="https://evil.example.test/")))
        assert_401(create(http, jwt_server, caller_token(iss=None)))  # iss is required


def test_bad_signature_is_refused(jwt_server) -> None:
    with client() as http:
        assert_401(create(http, jwt_server, caller_token(key="another-secret-of-thirty-two-bytes!!")))
        header, payload, signature = caller_token(sub="alice").split(".")
        data = json.loads(base64.urlsafe_b64decode(payload + "=="))
        data["sub"] = "admin"
        forged_payload = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
        tampered = f"{header}.{forged_payload}.{signature}"
        assert_401(create(http, jwt_server, tampered))


def test_missing_role_is_forbidden(jwt_server) -> None:
    with client() as http:
        response = create(http, jwt_server, caller_token(roles=["viewer"]))
        assert response.status_code == 403
        assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
        assert response.headers["Tus-Resumable"] == "1.0.0"


def test_upload_token_reuse_beyond_its_count_is_refused(jwt_server) -> None:
    with client() as http:
        once = issue(http, jwt_server, caller_token())["token"]
        assert create(http, jwt_server, once).status_code == 201
        reused = create(http, jwt_server, once)
        assert_401(reused, code="token_used")
        assert "already been used" in reused.json()["message"]
        twice = issue(http, jwt_server, caller_token(), max_uploads=2)["token"]
        assert [create(http, jwt_server, twice).status_code for _ in range(3)] == [201, 201, 401]


def test_upload_token_reuse_after_a_restart_is_refused(relay_server) -> None:
    server = relay_server(env=jwt_env()).start()
    with client() as http:
        token = issue(http, server, caller_token())["token"]
        url = create(http, server, token, length=4).headers["Location"]
        server.restart()  # SIGKILL: nothing is flushed on the way out
        assert_401(create(http, server, token), code="token_used")
        # ...while the upload it created still resumes with it.
        assert patch(http, url, token, b"abcd").status_code == 204


def test_cross_principal_access_gets_404(jwt_server) -> None:
    alice, bob = caller_token("alice"), caller_token("bob")
    with client() as http:
        url = create(http, jwt_server, alice, length=6).headers["Location"]
        upload_id = url.rsplit("/", 1)[1]
        assert patch(http, url, alice, b"abc").status_code == 204
        link = issue(http, jwt_server, alice)["token"]  # alice's own upload link is another principal too
        for other in (bob, link):
            assert http.head(url, headers=bearer(other)).status_code == 404
            assert patch(http, url, other, b"zzz", offset=3).status_code == 404
            assert http.delete(url, headers=bearer(other)).status_code == 404
            status = http.get(f"{jwt_server.base_url}/uploads/{upload_id}/status", headers=bearer(other))
            assert status.status_code == 404
        mine = http.head(url, headers=bearer(alice))
        assert mine.status_code == 200
        assert mine.headers["Upload-Offset"] == "3"
        # The 404 for someone else's upload is the 404 for an upload that never existed.
        ghost = http.head(jwt_server.files_url + "0" * 32, headers=bearer(bob))
        assert ghost.status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "..%2F..%2Fauth%2Fcaller.key",
        "%2e%2e%2f%2e%2e%2fauth%2fcaller.key",
        "....//....//etc/passwd",
        "..%5C..%5Cauth%5Ccaller.key",
        "%00",
        "0123456789abcdef0123456789abcdef.info",
        "0123456789abcdef0123456789abcdef%2F..%2F..%2Fauth%2Fupload-token.key",
    ],
)
def test_upload_id_traversal_finds_nothing(jwt_server, path) -> None:
    token = caller_token()
    with client() as http:
        for method in ("HEAD", "DELETE", "GET"):
            response = http.request(method, jwt_server.files_url + path, headers=bearer(token))
            assert response.status_code in (404, 405), (method, path, response.status_code)
        response = patch(http, jwt_server.files_url + path, token, b"x")
        assert response.status_code == 404
        status = http.get(f"{jwt_server.base_url}/uploads/{path}/status", headers=bearer(token))
        assert status.status_code == 404
        secret = (jwt_server.data_dir / "auth" / "upload-token.key").read_text().strip()
        assert secret not in response.text + status.text


def test_crlf_in_metadata_cannot_inject_headers(jwt_server) -> None:
    token = caller_token()
    evil = base64.b64encode(b"scan.dcm\r\nSet-Cookie: session=stolen\r\nX-Injected: 1").decode()
    with client() as http:
        response = create(http, jwt_server, token, metadata=f"filename {evil}")
        assert response.status_code == 201
        head = http.head(response.headers["Location"], headers=bearer(token))
        assert head.headers["Upload-Metadata"] == f"filename {evil}"  # echoed as sent: base64, inert
        assert "set-cookie" not in head.headers
        assert "x-injected" not in head.headers
    # A raw CR/LF inside the header itself is a malformed request: refused, and the server carries on.
    with socket.create_connection(("127.0.0.1", jwt_server.port), timeout=10) as raw:
        raw.sendall(
            f"POST /files/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nTus-Resumable: 1.0.0\r\n"
            "Upload-Length: 5\r\nUpload-Metadata: filename YQ==\rX-Injected: 1\r\n\r\n".encode()
        )
        answer = raw.recv(4096).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 400"), answer[:200]
    with client() as http:
        assert create(http, jwt_server, token).status_code == 201


def _refused(send) -> str:
    """The status of a request the server should refuse, or "reset" when it drops the connection (h11
    stops reading once a header block passes RELAYPACS_MAX_HEADER_SIZE)."""
    try:
        return str(send().status_code)
    except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError):
        return "reset"


def test_oversized_header_is_refused(jwt_server) -> None:
    token = caller_token()
    refused = {"400", "431", "reset"}
    with client() as http:
        padded = {**bearer(token), "Upload-Length": "5", "X-Padding": "a" * (200 * 1024)}
        assert _refused(lambda: http.post(jwt_server.files_url, headers=padded)) in refused
    with client() as http:
        many = {**bearer(token), "Upload-Length": "5", **{f"X-Pad-{i}": "b" * 1000 for i in range(100)}}
        assert _refused(lambda: http.post(jwt_server.files_url, headers=many)) in refused
    with client() as http:
        huge_token = {**TUS, "Upload-Length": "5", "Authorization": "Bearer " + "x" * 100_000}
        assert _refused(lambda: http.post(jwt_server.files_url, headers=huge_token)) in refused
    with client() as http:
        assert create(http, jwt_server, token).status_code == 201  # still serving


def test_token_in_unexpected_place_is_ignored(jwt_server) -> None:
    """Tokens travel only in the Authorization header: not as a query parameter or a cookie (they would
    end up in proxy logs and browser history)."""
    token = caller_token()
    with client() as http:
        query = http.post(
            jwt_server.files_url + f"?access_token={token}", headers={**TUS, "Upload-Length": "5"}
        )
        assert_401(query)
        cookie = http.post(
            jwt_server.files_url, headers={**TUS, "Upload-Length": "5", "Cookie": f"token={token}"}
        )
        assert_401(cookie)


def test_forged_upload_token_without_a_server_record_is_refused(jwt_server) -> None:
    """Even someone holding the signing key cannot invent an upload link: its limits live server-side."""
    key = (jwt_server.data_dir / "auth" / "upload-token.key").read_text().strip().encode()
    payload = {**claims(), "sub": "upload-token:invented", "jti": "invented-id-1234", "rpt": "upload"}
    payload["iss"] = "relaypacs-tus"
    forged = forge({"alg": "HS256", "typ": "relaypacs-upload+jwt"}, payload, key)
    with client() as http:
        assert_401(create(http, jwt_server, forged))
        # And an upload token cannot mint more upload tokens.
        link = issue(http, jwt_server, caller_token())["token"]
        assert_401(
            http.post(
                jwt_server.base_url + "/auth/upload-tokens",
                json={},
                headers={"Authorization": f"Bearer {link}"},
            ),
            code="wrong_kind",
        )
        # A caller token signed with the upload-token key is not a caller token.
        assert_401(create(http, jwt_server, caller_token(key=key)))


def test_secret_never_leaks_in_errors(jwt_server) -> None:
    with client() as http:
        response = create(http, jwt_server, caller_token(key="wrong-secret-wrong-secret-wrong-secret"))
    assert SECRET not in response.text
    assert SECRET not in jwt_server.log_text()


def test_failing_creation_with_upload_does_not_refund_a_use(jwt_server) -> None:
    """A creation-with-upload whose body fails (bad checksum) still created an upload: the single use is
    spent, or an attacker could create uploads for ever with one link."""
    with client() as http:
        link = issue(http, jwt_server, caller_token())["token"]
        headers = {
            **bearer(link),
            "Upload-Length": "8",
            "Content-Type": "application/offset+octet-stream",
            "Upload-Checksum": "sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        }
        first = http.post(jwt_server.files_url, headers=headers, content=b"abcdefgh")
        assert first.status_code == 460
        assert "Location" in first.headers
        assert_401(http.post(jwt_server.files_url, headers=headers, content=b"abcdefgh"), code="token_used")
        # The upload it did create resumes with the same link.
        assert patch(http, first.headers["Location"], link, b"abcdefgh").status_code == 204


def test_racing_creations_with_one_single_use_token(jwt_server) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with client() as http:
        link = issue(http, jwt_server, caller_token())["token"]

    def attempt(_: int) -> int:
        with client() as own:
            return create(own, jwt_server, link).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = sorted(pool.map(attempt, range(10)))
    assert statuses == [201] + [401] * 9
