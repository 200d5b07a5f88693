"""Shared fixtures. Each service lives in tests/services/<name>.py and is loaded here."""

pytest_plugins = [
    "tests.services.server",
    "tests.services.seaweedfs",
    "tests.services.orthanc",
    "tests.services.redis",
]
