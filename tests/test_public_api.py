"""Plugins may import only batchmig's public modules; the core never imports a plugin."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = {"batchmig", "batchmig.plugin", "batchmig.emulator", "batchmig.errors", "batchmig.testing",
          "batchmig.testing.conformance"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


PLUGIN_FILES = sorted(ROOT.glob("plugins/*/batchmig_*/**/*.py")) + sorted(ROOT.glob("plugins/*/tests/**/*.py"))


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_import_only_the_public_api(path: Path) -> None:
    private = {m for m in imported_modules(path) if m.startswith("batchmig.") and m not in PUBLIC}
    assert not private, f"{path.name} imports private batchmig modules: {sorted(private)}"


def test_the_core_never_imports_a_plugin() -> None:
    for path in (ROOT / "batchmig").rglob("*.py"):
        offending = {m for m in imported_modules(path) if m.startswith("batchmig_")}
        assert not offending, f"{path} imports {offending}"
