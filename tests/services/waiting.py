"""The one way tests wait (poll a condition until it holds, and fail with what was awaited), and the one
way they meet a missing service."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NoReturn

import pytest


def missing(reason: str) -> NoReturn:
    """A service or package a test needs is not there: fail at once, naming it and how to install it
    (``bash tests/run.sh`` installs everything). Never a skip: a test that did not run did not pass."""
    pytest.fail(reason, pytrace=False)


def wait_until(
    predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition", interval: float = 0.05
) -> Any:
    """Poll ``predicate`` until it returns something truthy and return that; after ``timeout`` seconds
    fail with an AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
