"""Shared fixtures. Each service lives in tests/services/<name>.py and is loaded here."""

from __future__ import annotations

import pytest

pytest_plugins = [
    "tests.services.server",
    "tests.services.seaweedfs",
    "tests.services.orthanc",
    "tests.services.redis",
]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A skipped test fails the run: a test that did not run did not pass. Missing services fail through
    ``tests.services.waiting.missing``; this catches any skip that came another way."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped and session.exitstatus == 0:
        reporter.write_line(f"{len(skipped)} test(s) skipped: failing the run", red=True)
        session.exitstatus = 1
