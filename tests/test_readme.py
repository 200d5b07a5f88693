"""README stays true: it documents every setting, and starts with the two newcomer commands."""

from __future__ import annotations

from pathlib import Path

from relaypacs_tus.settings import describe

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_documents_every_setting() -> None:
    text = README.read_text()
    missing = [env for env, _, _ in describe() if f"`{env}`" not in text]
    assert not missing, f"README's configuration table lacks {missing}; run tests/update_readme.py"


def test_readme_starts_with_the_two_commands() -> None:
    text = README.read_text()
    head = text[: text.index("## Configuration")]
    assert "bash deploy/serve.sh" in head
    assert "bash tests/run.sh" in head
    assert "bash tests/run.sh" in (README.parent / ".ci" / "run").read_text().replace("exec ", "")
