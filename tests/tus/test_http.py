"""The HTTP surface around the protocol: CORS for browser clients, Location behind trusted and untrusted
reverse proxies, a configurable base path, and the health endpoints."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.services.server import RelayServer

from .conftest import OCTET, TUS, TusHelper, raw_request, start_server, upload_id

PWA = "https://pwa.example"
REQUEST_HEADERS = (
    "authorization,content-type,tus-resumable,upload-length,upload-offset,upload-metadata,"
    "upload-defer-length,upload-concat,upload-checksum,x-http-method-override"
)
MUST_EXPOSE = {
    "location", "upload-offset", "upload-length", "upload-metadata", "upload-expires",
    "tus-resumable", "tus-version", "tus-extension", "tus-max-size", "tus-checksum-algorithm",
}  # fmt: skip


@pytest.fixture(scope="module")
def cors_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayServer]:
    server = start_server(tmp_path_factory, {"RELAYPACS_CORS_ORIGINS": f"{PWA},https://ward.example"})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxied_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayServer]:
    server = start_server(tmp_path_factory, {"RELAYPACS_TRUSTED_PROXIES": "127.0.0.1/32"})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def based_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayServer]:
    server = start_server(tmp_path_factory, {"RELAYPACS_BASE_PATH": "/api/v1/uploads/"})
    yield server
    server.stop()


def preflight(url: str, origin: str, method: str = "PATCH", headers: str = REQUEST_HEADERS) -> httpx.Response:
    return httpx.options(
        url,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
    )


def split(value: str | None) -> set[str]:
    return {v.strip().lower() for v in (value or "").split(",") if v.strip()}


# -- CORS ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PATCH", "HEAD", "DELETE"])
def test_cors_preflight_allows_tus_requests(cors_server: RelayServer, method: str) -> None:
    r = preflight(cors_server.files_url + "0" * 32, PWA, method)
    assert r.status_code in (200, 204), r.text
    assert r.headers["Access-Control-Allow-Origin"] == PWA
    assert method in r.headers["Access-Control-Allow-Methods"]
    assert split(REQUEST_HEADERS) <= split(r.headers["Access-Control-Allow-Headers"])
    assert "Tus-Resumable" not in r.headers or r.status_code in (200, 204), "preflight needs no tus header"


def test_cors_preflight_refuses_other_origins(cors_server: RelayServer) -> None:
    r = preflight(cors_server.files_url, "https://evil.example", "POST")
    assert r.status_code >= 400
    assert "Access-Control-Allow-Origin" not in r.headers


def test_cors_responses_expose_tus_headers(cors_server: RelayServer) -> None:
    with httpx.Client(headers={"Origin": PWA}) as client:
        r = client.post(
            cors_server.files_url, headers={**TUS, "Upload-Length": "4", "Upload-Metadata": "a YQ=="}
        )
        assert r.status_code == 201
        assert r.headers["Access-Control-Allow-Origin"] == PWA
        assert split(r.headers["Access-Control-Expose-Headers"]) >= MUST_EXPOSE
        head = client.head(r.headers["Location"], headers=TUS)
        assert head.headers["Access-Control-Allow-Origin"] == PWA
        assert split(head.headers["Access-Control-Expose-Headers"]) >= MUST_EXPOSE
        missing = client.head(cors_server.files_url + "0" * 32, headers=TUS)
        assert missing.status_code == 404
        assert missing.headers["Access-Control-Allow-Origin"] == PWA


def test_cors_other_origin_gets_no_allow_origin(cors_server: RelayServer) -> None:
    r = httpx.post(
        cors_server.files_url, headers={**TUS, "Upload-Length": "4", "Origin": "https://evil.example"}
    )
    assert "Access-Control-Allow-Origin" not in r.headers


def test_default_cors_allows_any_origin(tus: TusHelper) -> None:
    r = preflight(tus.files_url, "https://anywhere.example", "POST")
    assert r.status_code in (200, 204)
    assert r.headers["Access-Control-Allow-Origin"] in ("*", "https://anywhere.example")


# -- Location behind a proxy -----------------------------------------------------------------------------

LOCATION_ROWS = [
    ("x-forwarded", {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "tus.example.org"},
     "https://tus.example.org/files/"),
    ("x-forwarded-several-hops",
     {"X-Forwarded-Proto": "https, http", "X-Forwarded-Host": "a.example, b.example"}, "https://a.example/files/"),
    ("forwarded", {"Forwarded": 'for=10.0.0.1;proto=https;host="fwd.example:8443"'},
     "https://fwd.example:8443/files/"),
    ("forwarded-wins-over-x-forwarded",
     {"Forwarded": "proto=https;host=rfc.example", "X-Forwarded-Host": "x.example"}, "https://rfc.example/files/"),
    ("bad-proto-ignored", {"X-Forwarded-Proto": "javascript", "X-Forwarded-Host": "ok.example"},
     "http://ok.example/files/"),
    ("bad-host-ignored", {"X-Forwarded-Host": "evil.example/steal?x="}, None),
]  # fmt: skip


@pytest.mark.parametrize(("name", "headers", "prefix"), LOCATION_ROWS, ids=[r[0] for r in LOCATION_ROWS])
def test_trusted_proxy_sets_location(
    proxied_server: RelayServer, name: str, headers: dict[str, str], prefix: str | None
) -> None:
    r = httpx.post(proxied_server.files_url, headers={**TUS, "Upload-Length": "1", **headers})
    assert r.status_code == 201
    location = r.headers["Location"]
    expected = prefix or f"http://127.0.0.1:{proxied_server.port}/files/"
    assert re.fullmatch(re.escape(expected) + "[0-9a-f]{32}", location), location


def test_untrusted_peer_cannot_set_location(tus: TusHelper) -> None:
    headers = {
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.example",
        "Forwarded": "host=evil.example",
    }
    r = httpx.post(tus.files_url, headers={**TUS, "Upload-Length": "1", **headers})
    assert r.status_code == 201
    assert r.headers["Location"].startswith(f"http://127.0.0.1:{tus.server.port}/files/")


def test_proxied_locations_work_for_concatenation(proxied_server: RelayServer) -> None:
    fwd = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "tus.example.org"}
    with httpx.Client(base_url=proxied_server.base_url, headers={**TUS, **fwd}) as c:
        part = c.post("/files/", headers={"Upload-Length": "2", "Upload-Concat": "partial"}).headers[
            "Location"
        ]
        assert part.startswith("https://tus.example.org/files/")
        local = "/files/" + upload_id(part)
        assert (
            c.patch(local, headers={"Upload-Offset": "0", "Content-Type": OCTET}, content=b"ok").status_code
            == 204
        )
        r = c.post("/files/", headers={"Upload-Concat": f"final;{part}"})
        assert r.status_code == 201
        assert r.headers["Location"].startswith("https://tus.example.org/files/")


# -- base path and health --------------------------------------------------------------------------------


def test_configurable_base_path(based_server: RelayServer) -> None:
    base = based_server.base_url
    with httpx.Client(headers=TUS) as c:
        assert c.options(base + "/api/v1/uploads/").status_code == 204
        r = c.post(base + "/api/v1/uploads", headers={"Upload-Length": "3"})
        assert r.status_code == 201
        url = r.headers["Location"]
        assert re.fullmatch(re.escape(base) + "/api/v1/uploads/[0-9a-f]{32}", url)
        assert (
            c.patch(url, headers={"Upload-Offset": "0", "Content-Type": OCTET}, content=b"abc").status_code
            == 204
        )
        assert c.head(url).headers["Upload-Offset"] == "3"
        assert c.post(base + "/files/", headers={"Upload-Length": "3"}).status_code == 404
        part = c.post(base + "/api/v1/uploads/", headers={"Upload-Length": "0", "Upload-Concat": "partial"})
        final = c.post(
            base + "/api/v1/uploads/", headers={"Upload-Concat": f"final;{part.headers['Location']}"}
        )
        assert final.status_code == 201


def test_health_endpoints(tus: TusHelper) -> None:
    base = tus.server.base_url
    live = httpx.get(base + "/healthz")
    assert live.status_code == 200
    assert live.json()["status"] == "ok"
    ready = httpx.get(base + "/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


def test_unusable_host_header_never_reaches_location(tus: TusHelper) -> None:
    status, headers, _ = raw_request(
        tus.server.port, "POST", "/files/", {**TUS, "Host": "evil.example/x?y=", "Upload-Length": "1"}
    )
    assert status == 201
    assert headers["location"].startswith(f"http://127.0.0.1:{tus.server.port}/files/")
