"""How clients reach the server: auth off for embedded/dev use, CORS preflights and public routes with no
token, JWKS keys from an identity provider, HTTPS served directly with HSTS."""

from __future__ import annotations

import json
import socket
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import RSAAlgorithm

from tests.security.support import (
    TUS,
    assert_401,
    caller_token,
    cli,
    client,
    create,
    jwt_env,
    patch,
    wait_until,
)


def test_auth_off_needs_no_token(relay_server) -> None:
    server = relay_server(env={"RELAYPACS_AUTH": "off"}).start()
    with client() as http:
        url = create(http, server, None, length=3).headers["Location"]
        headers = {**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
        assert http.patch(url, headers=headers, content=b"abc").status_code == 204
        assert http.get(f"{server.base_url}/uploads/{url.rsplit('/', 1)[1]}/status").status_code == 200
        assert http.post(server.base_url + "/auth/upload-tokens", json={}).status_code == 404
    assert "auth.off" in server.log_text()


def test_cors_preflight_and_public_routes_need_no_token(relay_server) -> None:
    server = relay_server(env=jwt_env(RELAYPACS_CORS_ORIGINS="https://pwa.example.test")).start()
    origin = {"Origin": "https://pwa.example.test"}
    with client() as http:
        preflight = http.options(
            server.files_url,
            headers={
                **origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,tus-resumable,upload-length,upload-metadata",
            },
        )
        assert preflight.status_code == 200
        assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
        refused = http.post(server.files_url, headers={**TUS, **origin, "Upload-Length": "5"})
        assert_401(refused)
        assert (
            refused.headers["Access-Control-Allow-Origin"] == "https://pwa.example.test"
        )  # readable by the PWA
        assert "www-authenticate" in refused.headers["Access-Control-Expose-Headers"].lower()
        for path in ("/healthz", "/readyz", "/"):
            response = http.get(server.base_url + path)
            assert response.status_code == 200, path
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["Referrer-Policy"] == "no-referrer"
            assert "default-src" in response.headers["Content-Security-Policy"]
        discovery = http.options(server.files_url, headers=TUS)
        assert discovery.status_code == 204
        assert "creation" in discovery.headers["Tus-Extension"]
        assert "Strict-Transport-Security" not in discovery.headers  # plain HTTP: HSTS would be meaningless


class _Jwks(BaseHTTPRequestHandler):
    document: ClassVar[dict] = {"keys": []}
    fetches = 0

    def do_GET(self) -> None:
        type(self).fetches += 1
        data = json.dumps(type(self).document).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def _rsa_jwk(kid: str) -> tuple[rsa.RSAPrivateKey, dict]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key, {
        **json.loads(RSAAlgorithm.to_jwk(key.public_key())),
        "kid": kid,
        "alg": "RS256",
        "use": "sig",
    }


def test_jwks_url_rotation_and_refresh_limit(relay_server) -> None:
    """A stand-in for an identity provider's JWKS endpoint (RFC 7517 JSON over HTTP)."""
    key1, jwk1 = _rsa_jwk("k1")
    key2, jwk2 = _rsa_jwk("k2")
    handler = type("Jwks", (_Jwks,), {"document": {"keys": [jwk1]}, "fetches": 0})
    idp = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=idp.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{idp.server_address[1]}/realms/radiology/protocol/openid-connect/certs"
        server = relay_server(
            env=jwt_env(RELAYPACS_AUTH_JWKS=url, RELAYPACS_AUTH_JWKS_MIN_REFRESH="3")
        ).start()
        with client() as http:
            assert (
                create(
                    http, server, caller_token(key=key1, algorithm="RS256", headers={"kid": "k1"})
                ).status_code
                == 201
            )
            # A flood of made-up kids costs the identity provider at most one extra request per interval.
            for i in range(20):
                assert_401(
                    create(http, server, caller_token(key=key1, algorithm="RS256", headers={"kid": f"x{i}"}))
                )
            assert handler.fetches <= 2
            # Key rotation: the provider publishes k2; tokens signed with it work after one refresh.
            handler.document = {"keys": [jwk1, jwk2]}
            rotated = caller_token(key=key2, algorithm="RS256", headers={"kid": "k2"})
            wait_until(lambda: create(http, server, rotated).status_code == 201, what="the rotated key")
            assert handler.fetches <= 4
    finally:
        idp.shutdown()
        idp.server_close()


def test_unreachable_jwks_fails_closed(relay_server) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never answers
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/jwks"
        server = relay_server(env=jwt_env(RELAYPACS_AUTH_JWKS=url, RELAYPACS_AUTH_JWKS_TIMEOUT="1")).start()
        key, _ = _rsa_jwk("k1")
        with client() as http:
            assert_401(create(http, server, caller_token(key=key, algorithm="RS256", headers={"kid": "k1"})))
            assert create(http, server, caller_token()).status_code == 201  # HS256 callers are unaffected
        assert "auth.jwks_failed" in server.log_text()
    finally:
        silent.close()


def _self_signed(tmp_path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(cert_path), str(key_path)


def test_https_is_served_with_hsts(relay_server, tmp_path) -> None:
    cert, key = _self_signed(tmp_path)
    server = relay_server(env=jwt_env(RELAYPACS_TLS_CERT=cert, RELAYPACS_TLS_KEY=key))
    server.scheme = "https"
    server.start()
    token = caller_token()
    with client() as http:
        health = http.get(server.base_url + "/healthz")
        assert health.headers["Strict-Transport-Security"].startswith("max-age=31536000")
        url = create(http, server, token, length=4).headers["Location"]
        assert url.startswith("https://")
        assert patch(http, url, token, b"data").status_code == 204
    assert "listening on https://" in server.log_text()


def test_bad_auth_settings_stop_start_up(tmp_path) -> None:
    done = cli("serve", env={"RELAYPACS_AUTH": "maybe", "RELAYPACS_DATA_DIR": str(tmp_path)})
    assert done.returncode == 2
    assert "RELAYPACS_AUTH" in done.stderr
    secret = "too-short-secret"
    done = cli("serve", env={"RELAYPACS_AUTH_SECRET": secret, "RELAYPACS_DATA_DIR": str(tmp_path)})
    assert done.returncode == 2
    assert "RELAYPACS_AUTH_SECRET" in done.stderr
    assert secret not in done.stderr
    done = cli("serve", env={"RELAYPACS_LIMIT_CREATES": "lots", "RELAYPACS_DATA_DIR": str(tmp_path)})
    assert done.returncode == 2
    assert "RELAYPACS_LIMIT_CREATES" in done.stderr


def test_generated_keys_are_private(relay_server) -> None:
    server = relay_server().start()  # the defaults: auth on, keys generated in the data dir
    for name in ("caller.key", "upload-token.key", "audit.key"):
        path = server.data_dir / "auth" / name
        assert path.stat().st_mode & 0o777 == 0o600, name
    token = cli("token", env={"RELAYPACS_DATA_DIR": str(server.data_dir)}).stdout.strip()
    with client() as http:
        assert create(http, server, token).status_code == 201
        assert create(http, server, None).status_code == 401
