"""Fixtures: a server with JWT auth on (module-scoped, for the attacks that need no special settings)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.security.support import jwt_env
from tests.services.server import RelayServer


@pytest.fixture(scope="module")
def jwt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayServer]:
    server = RelayServer(tmp_path_factory.mktemp("jwt") / "data", env=jwt_env()).start()
    yield server
    server.stop()
