"""Settings are validated at start-up and a bad value names its variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from relaypacs_tus.settings import Settings, SettingsError


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"RELAYPACS_PORT": "eighty"}, "RELAYPACS_PORT"),
        ({"RELAYPACS_PORT": "70000"}, "RELAYPACS_PORT"),
        ({"RELAYPACS_STORE": "ftp"}, "RELAYPACS_STORE"),
        ({"RELAYPACS_STORE": "s3"}, "RELAYPACS_S3_BUCKET"),
        ({"RELAYPACS_S3_PART_SIZE": "1MiB"}, "RELAYPACS_S3_PART_SIZE"),
        ({"RELAYPACS_MAX_SIZE": "-1"}, "RELAYPACS_MAX_SIZE"),
        ({"RELAYPACS_TRUSTED_PROXIES": "10.0.0.0/8,not-an-ip"}, "RELAYPACS_TRUSTED_PROXIES"),
        ({"RELAYPACS_ENABLE_TERMINATION": "maybe"}, "RELAYPACS_ENABLE_TERMINATION"),
        ({"RELAYPACS_BASE_PATH": "files"}, "RELAYPACS_BASE_PATH"),
    ],
)
def test_bad_value_names_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.load(env)


def test_sizes_and_flags_override_env() -> None:
    s = Settings.load({"RELAYPACS_S3_PART_SIZE": "16MiB", "RELAYPACS_PORT": "9000"}, {"port": "9100"})
    assert s.s3_part_size == 16 * 1024**2
    assert s.port == 9100
    with pytest.raises(AttributeError):
        s.port = 1  # type: ignore[misc]  # frozen


def test_cli_refuses_to_start_with_a_bad_setting(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "relaypacs_tus", "serve", "--port", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "RELAYPACS_PORT" in result.stderr
    assert "Traceback" not in result.stderr
