"""Shared fixtures. Each service lives in tests/services/<name>.py and is loaded here."""

from __future__ import annotations

import os

import pytest

pytest_plugins = [
    "tests.services.server",
    "tests.services.seaweedfs",
    "tests.services.orthanc",
    "tests.services.redis",
]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under tests/run.sh (RELAYPACS_TESTS_NO_SKIP=1) a skipped test fails the run: every skip here means
    a missing service or package (weed, Orthanc, Chromium, node_modules), which the script must install."""
    if os.environ.get("RELAYPACS_TESTS_NO_SKIP") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped and session.exitstatus == 0:
        reporter.write_line(
            f"{len(skipped)} test(s) skipped under RELAYPACS_TESTS_NO_SKIP=1: failing the run", red=True
        )
        session.exitstatus = 1
