"""Plugins may import only batchmig's public modules; the core never imports a plugin."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

from batchmig.testing.imports import PUBLIC_MODULES, imported_modules, private_imports

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_FILES = sorted(ROOT.glob("plugins/*/batchmig_*/**/*.py")) + sorted(ROOT.glob("plugins/*/tests/**/*.py"))


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_import_only_the_public_api(path: Path) -> None:
    assert private_imports([path]) == {}


def test_a_private_import_is_found(tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text("from batchmig.plugin import CallStep\nimport batchmig.testing\n")
    bad = "import os\nfrom batchmig.engine.pipeline import Pipeline\nimport batchmig.journal\n"
    (tmp_path / "bad.py").write_text(bad)
    assert private_imports([tmp_path]) == {str(tmp_path / "bad.py"): ["batchmig.engine.pipeline", "batchmig.journal"]}


def test_the_core_never_imports_a_plugin() -> None:
    for path in (ROOT / "batchmig").rglob("*.py"):
        offending = {m for m in imported_modules(path) if m.startswith("batchmig_")}
        assert not offending, f"{path} imports {offending}"


# ----------------------------------------------------------------- documented API

GUIDE = ROOT / "docs" / "plugin-authoring.md"
DOCUMENTED_MODULES = sorted(PUBLIC_MODULES)


@pytest.mark.parametrize("module", DOCUMENTED_MODULES)
def test_every_public_name_is_in_the_authoring_guide(module: str) -> None:
    """A plugin author learns the public API from docs/plugin-authoring.md: nothing in it goes unmentioned."""
    imported = importlib.import_module(module)
    guide = GUIDE.read_text(encoding="utf-8")
    listed = re.search(rf"^`{re.escape(module)}`: (.+?)(?:\n\n|\Z)", guide, re.MULTILINE | re.DOTALL)
    assert listed, f"the guide's reference has no entry for {module}"
    in_reference = set(re.findall(r"`(\w+)`", listed.group(1)))
    missing = sorted(set(imported.__all__) - in_reference)
    assert not missing, f"{module} exports names the guide's reference does not list: {missing}"
    stale = sorted(in_reference - set(imported.__all__) - _MEMBERS)
    assert not stale, f"the guide lists names {module} does not export: {stale}"


_MEMBERS = {"read", "sleep", "prepare", "parse", "account", "region", "secret", "resource_name", "client_token"}
"""Methods and attributes the reference mentions in parentheses after their class."""


def test_every_hook_is_documented_with_its_signature() -> None:
    from batchmig import hookspecs

    guide = GUIDE.read_text(encoding="utf-8")
    for name in (n for n in vars(hookspecs) if n.startswith("batchmig_")):
        hook = getattr(hookspecs, name)
        parameters = ", ".join(inspect.signature(hook).parameters)
        assert f"`{name}({parameters})`" in guide, f"{name} is not in the guide as `{name}({parameters})`"
        assert hook.__doc__ and ":param" in hook.__doc__ and (
            "ignored" in hook.__doc__ or "collected" in hook.__doc__ or "first non-None" in hook.__doc__
        ), f"{name}'s docstring must say each argument and what its return value means"


def test_the_guides_python_examples_are_valid_and_import_what_exists(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Names from ``batchmig.*`` exist; those from ``batchmig_acme_sql`` exist in what
    ``batchmig plugin new acme-sql`` generates (the guide's running example)."""
    from batchmig.scaffold import new_plugin

    monkeypatch.syspath_prepend(str(new_plugin("acme-sql", tmp_path / "batchmig-acme-sql")))
    guide = GUIDE.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", guide, re.DOTALL)
    assert len(blocks) >= 8
    for block in blocks:
        tree = ast.parse(block)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(("batchmig.",
                                                                                           "batchmig_acme_sql")):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"the guide imports {alias.name} from {node.module}"
