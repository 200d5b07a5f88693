"""Regenerate README's settings table from the Settings dataclass: .venv/bin/python tests/update_readme.py"""

from __future__ import annotations

import re
from pathlib import Path

from relaypacs_tus.cli import settings_table

README = Path(__file__).resolve().parents[1] / "README.md"

if __name__ == "__main__":
    text = README.read_text()
    new = re.sub(
        r"(<!-- settings-table:start -->\n).*?(<!-- settings-table:end -->)",
        lambda m: m.group(1) + settings_table() + "\n" + m.group(2),
        text,
        flags=re.S,
    )
    README.write_text(new)
