"""Browser end-to-end fixtures: Debian's Chromium driven by Python Playwright (no browser download),
against OUR real server (``relay_server``: the real tus engine, pipeline and auth) serving the built
PWA from client/dist, delivering to a real Orthanc (``orthanc``, tests/services/orthanc.py).

These tests skip only when Chromium or the built client is missing; CI builds the client
(``cd client && npm ci && npm run build``) and installs chromium.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.services.waiting import missing

from .helpers import CHROMIUM_ARGS, UploadApp

ROOT = Path(__file__).resolve().parents[2]
WEB_DIR = Path(os.environ.get("RELAYPACS_TEST_WEB_DIR", ROOT / "client" / "dist"))
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).parent / "screenshots"
ORTHANC_PASSWORD_ENV = "RELAYPACS_TEST_ORTHANC_PASSWORD"

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 360, "height": 760}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


def _failed(request: pytest.FixtureRequest) -> bool:
    return request.node.stash.get(FAILED, False)


# Module scope: sync Playwright runs an asyncio loop in the main thread while it is open, which would
# break every later test that starts its own loop (anyio.run, asyncio.run) in the same pytest session.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        missing(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)")
    if not (WEB_DIR / "index.html").is_file():
        missing(
            f"the PWA is not built: {WEB_DIR}/index.html is missing (cd client && npm ci && npm run build)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def destinations(orthanc: Any) -> list[dict[str, Any]]:
    """RELAYPACS_DESTINATIONS (contracts.md section 2): STOW-RS into the test Orthanc, basic auth."""
    return [
        {
            "name": "orthanc",
            "type": "stowrs",
            "url": orthanc.dicomweb_url,
            "auth": {"type": "basic", "username": orthanc.username, "password_env": ORTHANC_PASSWORD_ENV},
            "timeout": 30,
        }
    ]


@pytest.fixture
def start_relay(
    request: pytest.FixtureRequest, relay_server: Any, orthanc: Any, destinations: list[dict[str, Any]]
) -> Iterator[Callable[..., Any]]:
    """``start_relay(auth="off")``: our server, serving the built PWA and delivering to Orthanc. When the
    test fails, the end of each server's log is printed (it holds ids and states, no PHI)."""
    started: list[Any] = []

    def start(auth: str = "off", **extra: str) -> Any:
        env = {
            "RELAYPACS_WEB_DIR": str(WEB_DIR),
            "RELAYPACS_AUTH": auth,
            "RELAYPACS_DESTINATIONS": json.dumps(destinations),
            ORTHANC_PASSWORD_ENV: orthanc.password,
            "RELAYPACS_LOG_LEVEL": "info",
            "RELAYPACS_LOG_FORMAT": "json",
            "RELAYPACS_DELIVERY_BACKOFF": "0.5",
            "RELAYPACS_DELIVERY_BACKOFF_MAX": "2",
            **extra,
        }
        relay = relay_server(env=env)
        started.append(relay)
        return relay.start()

    yield start
    if _failed(request):
        for relay in started:
            lines = [line for line in relay.log_text().splitlines() if '"upload.patch"' not in line]
            print(f"--- {relay.log_path} (last lines, PATCHes left out) ---", *lines[-40:], sep="\n")


@pytest.fixture
def open_app(request: pytest.FixtureRequest, browser: Any) -> Iterator[Callable[..., UploadApp]]:
    """``open_app(base_url, viewport=DESKTOP, path="/")``: a fresh browser context (fresh storage and
    service workers) with the app loaded; every context is closed afterwards."""
    contexts: list[Any] = []
    apps: list[UploadApp] = []

    def open_(base_url: str, viewport: dict[str, int] | None = None, path: str = "/") -> UploadApp:
        context = browser.new_context(viewport=viewport or DESKTOP, device_scale_factor=1)
        contexts.append(context)
        app = UploadApp(context.new_page(), base_url)
        apps.append(app)
        app.open(path)
        return app

    yield open_
    if _failed(request):
        SCREENSHOTS.mkdir(exist_ok=True)
        for i, app in enumerate(apps):
            app.page.screenshot(path=str(SCREENSHOTS / f"FAILED-{request.node.name}-{i}.png"), full_page=True)
            print(f"browser console errors ({i}):", app.console_errors)
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    return SCREENSHOTS
