"""The import direction that docs/ARCHITECTURE.md states ("Dependencies point one way"), checked
on the source: every import of one of our packages from another must be on the allowed list.
Imports inside functions count too (``ast.walk`` sees them)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("api", "ingest", "detect", "store", "notify", "agent", "settings")
# package -> what of ours it may import (a package name, or one module of it)
ALLOWED: dict[str, set[str]] = {
    "api": {"ingest", "detect", "store", "notify", "agent", "settings"},
    "ingest": {"store"},
    "detect": set(),
    "store": {"notify", "ingest.schema"},
    "notify": set(),
    "agent": {"ingest.schema", "settings"},
    "settings": set(),
}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
            # "from ingest import schema" names the module too
            out += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return out


def _allowed(package: str, module: str) -> bool:
    top = module.split(".", maxsplit=1)[0]
    if top not in PACKAGES or top == package:
        return True
    rules = ALLOWED[package]
    return top in rules or any(module == r or module.startswith(r + ".") for r in rules)


def _violations(package: str) -> list[str]:
    bad: list[str] = []
    for path in sorted((ROOT / package).rglob("*.py")):
        names = _imports(path)
        modules = {m for _, m in names}
        for line, module in names:
            top = module.split(".")[0]
            if _allowed(package, module):
                continue
            # "from ingest import schema" is judged by the module it names
            if module == top and any(
                m.startswith(top + ".") and _allowed(package, m) for m in modules
            ):
                continue
            bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return bad


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_only_what_the_architecture_allows(package: str) -> None:
    assert _violations(package) == []


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "x.py"
    bad.write_text("import os\nfrom api.app import create_app\n\ndef f():\n    import store.db\n")
    found = [m for _, m in _imports(bad) if not _allowed("detect", m)]
    assert found == ["api.app", "api.app.create_app", "store.db"]
    assert _allowed("store", "ingest.schema") and not _allowed("store", "ingest.wal")
    assert _allowed("api", "store.db") and not _allowed("notify", "store")
