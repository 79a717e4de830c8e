"""Which batchmig modules a plugin may import, and a check that it imports no others.

A provider written against the public API keeps working when the core moves its
insides; one that reaches into ``batchmig.engine`` breaks on the next release. A
plugin's own test suite calls ``private_imports`` on its package (and its tests), so
it learns this the day it happens, in its own repository, not from a user's traceback.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

PUBLIC_MODULES = frozenset({
    "batchmig", "batchmig.plugin", "batchmig.emulator", "batchmig.errors", "batchmig.testing",
    "batchmig.testing.conformance",
})
"""The modules of batchmig a plugin may import (its public API)."""


def imported_modules(path: Path) -> set[str]:
    """The absolute imports of one Python file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def private_imports(roots: Iterable[Path]) -> dict[str, list[str]]:
    """``{file: [private batchmig modules it imports]}`` for every ``.py`` under ``roots``
    (files or directories); empty when only the public API is used::

        assert private_imports([Path(my_plugin.__file__).parent]) == {}
    """
    found: dict[str, list[str]] = {}
    for root in roots:
        for path in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
            private = sorted(m for m in imported_modules(path)
                             if m.split(".")[0] == "batchmig" and m not in PUBLIC_MODULES)
            if private:
                found[str(path)] = private
    return found
