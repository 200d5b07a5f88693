"""How the server serves the built PWA (web/pwa.py): SPA fallback, caching, security headers, API paths
never answered with the app's HTML, and a server that starts without a built app. No browser needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from relaypacs_tus.web.pwa import pwa_routes


@pytest.fixture
def web_dir(tmp_path: Path) -> Path:
    root = tmp_path / "dist"
    (root / "assets").mkdir(parents=True)
    (root / "icons").mkdir()
    (root / "index.html").write_text("<!doctype html><title>RelayPACS Upload</title>")
    (root / "sw.js").write_text("self.addEventListener('fetch', () => {})")
    (root / "manifest.webmanifest").write_text('{"name": "RelayPACS Upload"}')
    (root / "assets" / "index-abc123.js").write_text("console.log(1)")
    (root / "icons" / "icon-192.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return root


def client_for(web_dir: Path, auth_required: bool = True) -> TestClient:
    async def api(request: Any) -> Any:
        from starlette.responses import JSONResponse

        return JSONResponse({"api": True})

    routes = [
        Route("/uploads/{upload_id}/status", api),
        *pwa_routes(web_dir, tus_endpoint="/files/", auth_required=auth_required),
    ]
    return TestClient(Starlette(routes=routes))


def test_index_and_app_routes_get_the_shell_with_security_headers(web_dir: Path) -> None:
    client = client_for(web_dir)
    for path in ("/", "/progress", "/progress/"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert "RelayPACS Upload" in r.text
        assert r.headers["cache-control"] == "no-cache"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert "'unsafe-eval'" not in csp


def test_cache_policy(web_dir: Path) -> None:
    client = client_for(web_dir)
    assert client.get("/sw.js").headers["cache-control"] == "no-cache"
    assert client.get("/assets/index-abc123.js").headers["cache-control"].endswith("immutable")
    manifest = client.get("/manifest.webmanifest")
    assert manifest.headers["content-type"] == "application/manifest+json"
    assert client.get("/icons/icon-192.png").headers["content-type"] == "image/png"


def test_api_paths_and_missing_files_are_404_never_the_shell(web_dir: Path) -> None:
    client = client_for(web_dir)
    for path in (
        "/assets/gone-123.js",
        "/icons/none.png",
        "/uploads/abc",
        "/files/xyz",
        "/auth/anything",
        "/batches/b",
    ):
        r = client.get(path)
        assert r.status_code == 404, path
        assert "RelayPACS Upload" not in r.text, path
    assert client.get("/uploads/abc/status").json() == {"api": True}  # routes before the PWA still win
    assert client.post("/").status_code == 405
    assert "root:" not in client.get("/..%2f..%2f..%2fetc/passwd").text  # never a file outside the app


def test_app_config(web_dir: Path) -> None:
    r = client_for(web_dir, auth_required=False).get("/app-config.json")
    assert r.json() == {"tus_endpoint": "/files/", "auth_required": False}
    assert r.headers["cache-control"] == "no-cache"


def test_server_starts_without_a_built_app(relay_server: Any, tmp_path: Path) -> None:
    relay = relay_server(
        env={"RELAYPACS_WEB_DIR": str(tmp_path / "not-built"), "RELAYPACS_AUTH": "off"}
    ).start()
    r = httpx.get(relay.base_url + "/", timeout=10)
    assert r.status_code == 404
    assert "npm ci && npm run build" in r.text
    assert httpx.get(relay.base_url + "/healthz", timeout=10).status_code == 200
    [event] = [e for e in relay.log_events() if e.get("event") == "pwa.not_built"]
    assert event["web_dir"] == str(tmp_path / "not-built")
