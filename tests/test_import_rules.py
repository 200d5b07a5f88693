"""The package's dependency rules, read from every module's imports with ``ast`` (DESIGN.md "Layout").

Dependencies point inward: the tus engine knows nothing of ours; stores know only tus; dicom nothing;
pacs at most dicom; hooks at most tus, dicom and pacs; auth, coordination and audit at most tus; web at
most tus and the hooks' record types; only the wiring modules (app.py, cli.py, __main__.py) may import
everything. Starlette appears only in the HTTP adapters listed below. Every import counts, also those inside
functions and under ``TYPE_CHECKING``. A module that fits no rule fails the test until a rule is written.

The checker also runs on synthetic package trees, so the test proves it fails when a rule is broken.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "relaypacs_tus"
SOURCE = Path(__file__).resolve().parents[1] / "src" / PACKAGE

#: unit (first name under the package) -> units or modules it may import besides itself.
#: An entry "hooks.records" allows that module and anything below it, nothing else of hooks.
LAYERS: dict[str, frozenset[str]] = {
    "tus": frozenset(),
    "stores": frozenset({"tus"}),
    "dicom": frozenset(),
    "pacs": frozenset({"dicom"}),
    "hooks": frozenset({"tus", "dicom", "pacs"}),
    "auth": frozenset({"tus"}),
    "coordination": frozenset({"tus"}),
    "audit": frozenset({"tus"}),
    "web": frozenset({"tus", "hooks.records"}),
    "settings": frozenset(),
    "logs": frozenset(),
    "serving": frozenset(),  # uvicorn protocol glue
    "__init__": frozenset(),
}
#: The only modules that may import every layer.
WIRING = frozenset({"app", "cli", "__main__"})
#: Narrow, named exceptions to LAYERS, each with its reason. Keep this list short and explicit.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("auth", "coordination.base"): "the registry and rate-limit protocols auth needs; no implementation",
}
#: Wiring helpers outside app/cli (they build one concern's objects from Settings), with what they may use.
WIRING_HELPERS: dict[str, frozenset[str]] = {
    "security": frozenset({"settings", "audit", "auth", "coordination", "stores", "tus"}),
}
#: Modules that may import starlette: the HTTP adapters.
STARLETTE_MODULES = frozenset({f"{PACKAGE}.tus.routes", f"{PACKAGE}.app", f"{PACKAGE}.auth.routes"})
STARLETTE_PACKAGES = (f"{PACKAGE}.web.",)
#: Third-party packages the tus engine may use (it must stay framework-free outside routes.py).
TUS_THIRD_PARTY = frozenset({"anyio", "structlog"})


@dataclass(frozen=True)
class Violation:
    module: str
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.module} imports {self.imported}: {self.rule}"


def module_name(root: Path, path: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"] if rel.name == "__init__" else list(rel.parts)
    return ".".join([root.name, *parts])


def imports_of(root: Path, path: Path) -> set[str]:
    """Absolute names of everything the module imports (``from x import y`` yields x.y when y may be a
    module: both x and x.y are checked, so a submodule import cannot slip through)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    me = module_name(root, path).split(".")
    package = me if path.name == "__init__.py" else me[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


#: Names defined by the package's own __init__.py (it imports nothing, so anyone may use them).
ROOT_NAMES = frozenset({"__version__"})


def unit_of(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] not in ROOT_NAMES else "__init__"


def allowed(target: str, permitted: frozenset[str]) -> bool:
    inner = target.split(".", 1)[1] if "." in target else ""
    return any(inner == p or inner.startswith(p + ".") for p in permitted)


def check_tree(root: Path) -> list[Violation]:
    """Every rule broken in the package at ``root`` (a folder named like the package)."""
    violations = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(root, path)
        unit = unit_of(module)
        for target in sorted(imports_of(root, path)):
            violations.extend(_check_import(module, unit, target))
    return violations


def _check_import(module: str, unit: str, target: str) -> list[Violation]:
    out = []
    top = target.split(".")[0]
    if top == "starlette" and module not in STARLETTE_MODULES and not module.startswith(STARLETTE_PACKAGES):
        out.append(Violation(module, target, "starlette is for the HTTP adapters only"))
    outside = top not in (PACKAGE, "starlette", *TUS_THIRD_PARTY) and top not in sys.stdlib_module_names
    if unit == "tus" and outside:
        out.append(Violation(module, target, f"the tus engine uses only {sorted(TUS_THIRD_PARTY)}"))
    if top != PACKAGE or target == PACKAGE:
        return out
    target_unit = unit_of(target)
    if target_unit in (unit, "__init__") or unit in WIRING:
        return out
        return out
    if unit in WIRING_HELPERS:
        if target_unit not in WIRING_HELPERS[unit]:
            out.append(Violation(module, target, f"{unit} may import only {sorted(WIRING_HELPERS[unit])}"))
        return out
    if unit not in LAYERS:
        out.append(Violation(module, target, f"module {unit!r} has no layer rule: add it to LAYERS"))
        return out
    inner = target.split(".", 1)[1]
    if allowed(target, LAYERS[unit]) or any(
        u == unit and (inner == e or inner.startswith(e + ".")) for u, e in EXCEPTIONS
    ):
        return out
    out.append(
        Violation(module, target, f"{unit} may import only {sorted(LAYERS[unit]) or 'nothing of ours'}")
    )
    return out


def test_the_package_keeps_its_layers() -> None:
    violations = check_tree(SOURCE)
    assert not violations, "\n".join(map(str, violations))


def test_every_module_is_covered_by_a_rule() -> None:
    units = {unit_of(module_name(SOURCE, p)) for p in SOURCE.rglob("*.py")}
    unruled = units - set(LAYERS) - WIRING - set(WIRING_HELPERS)
    assert not unruled, f"modules without a dependency rule: {sorted(unruled)}"


def test_exceptions_are_still_needed() -> None:
    """An exception nobody uses any more is removed, so the rules only ever get stricter."""
    used = set()
    for path in SOURCE.rglob("*.py"):
        unit = unit_of(module_name(SOURCE, path))
        for target in imports_of(SOURCE, path):
            inner = target.split(".", 1)[1] if target.startswith(PACKAGE + ".") else ""
            used.update(
                (u, e) for u, e in EXCEPTIONS if u == unit and (inner == e or inner.startswith(e + "."))
            )
    assert used == set(EXCEPTIONS)


# -- the checker fails when a rule is broken ------------------------------------------------------------

BROKEN = {
    "tus/engine.py": ("from ..stores.local import LocalStore\n", "tus may import only nothing of ours"),
    "tus/body.py": ("import httpx\n", "the tus engine uses only"),
    "tus/headers.py": ("from starlette.requests import Request\n", "starlette is for the HTTP adapters only"),
    "stores/local.py": ("from relaypacs_tus.hooks import records\n", "stores may import only ['tus']"),
    "dicom/validate.py": ("from ..tus import errors\n", "dicom may import only nothing of ours"),
    "pacs/base.py": ("import relaypacs_tus.hooks.records\n", "pacs may import only ['dicom']"),
    "hooks/runner.py": ("from relaypacs_tus.auth import tokens\n", "hooks may import only"),
    "auth/tokens.py": ("from ..stores import s3\n", "auth may import only ['tus']"),
    "coordination/memory.py": ("from ..hooks.records import Record\n", "coordination may import only"),
    "audit/log.py": ("from relaypacs_tus import settings\n", "audit may import only ['tus']"),
    "web/status.py": ("from ..hooks.runner import HookRunner\n", "web may import only"),
    "settings.py": ("def load():\n    from .app import create_app\n", "settings may import only nothing"),
    "newthing.py": ("from .tus import spec\n", "has no layer rule"),
    "hooks/pipeline.py": (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..web import status\n",
        "hooks may import only",
    ),
}
CLEAN = {
    "__init__.py": "__version__ = '0'\n",
    "app.py": "from starlette.applications import Starlette\nfrom .stores import local\n"
    "from . import __version__",
    "cli.py": "from .app import create_app\nfrom .hooks import runner\n",
    "tus/routes.py": "from starlette.responses import Response\nfrom .engine import Engine\nimport anyio\n",
    "tus/engine.py": "import structlog\nfrom . import errors\nfrom .store import UploadInfo\n",
    "web/status.py": (
        "from starlette.routing import Route\nfrom ..hooks.records import Record\nfrom ..tus import store\n"
        "from .. import __version__\n"
    ),
    "auth/middleware.py": "from ..coordination.base import RateLimiter\n"
    "from ..tus.routes import PRINCIPAL_SCOPE_KEY",
    "hooks/pipeline.py": "from ..pacs.base import Destination\nfrom ..dicom import validate\n"
    "from ..tus import events",
}


def make_tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / PACKAGE
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
        path.write_text(text, encoding="utf-8")
    return root


def test_checker_accepts_a_clean_tree(tmp_path: Path) -> None:
    assert check_tree(make_tree(tmp_path, CLEAN)) == []


@pytest.mark.parametrize("rel", sorted(BROKEN))
def test_checker_fails_on_a_broken_rule(tmp_path: Path, rel: str) -> None:
    text, rule = BROKEN[rel]
    root = make_tree(tmp_path, {**CLEAN, rel: text})
    violations = check_tree(root)
    assert violations, f"{rel}: breaking a rule went unnoticed"
    assert any(rule in v.rule for v in violations), [str(v) for v in violations]
