"""``batchmig plugin new NAME``: a complete provider distribution to start a plugin from.

The template (``template/``, rendered by name) is a working provider for an example
import API — settings model, steps with an idempotent create and a reconciled start,
a poller, a signed connection, an emulator, the registration hooks, the conformance
suite at full strictness, step tests with batchmig's kit, a README — so a new plugin
installs, passes its own suite and ruff/mypy (strict) before its author changes a
line, and every later change can be checked against a green start.
"""

from __future__ import annotations

import re
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from batchmig import __version__
from batchmig.errors import UsageError
from batchmig.registry import NAME_PATTERN

__all__ = ["new_plugin", "template_values"]

_FIELD = re.compile(r"\{\{(\w+)\}\}")


def template_values(name: str, provider: str | None = None) -> dict[str, str]:
    """What the template's ``{{field}}``s become for the distribution ``batchmig-NAME``,
    whose provider (and emulator) is named ``provider`` (default: ``name`` too) — a
    cloud's distribution often carries one service's provider (``alibabacloud`` with
    ``alibaba-rds-sqlserver``)."""
    for given in (name, provider or name):
        if not NAME_PATTERN.match(given):
            raise UsageError(f"invalid name {given!r}: names are lowercase kebab-case",
                             "for example: batchmig plugin new acme --provider acme-sql")
    words = name.split("-")
    return {
        "name": provider or name,
        "dist": f"batchmig-{name}",
        "package": "batchmig_" + "_".join(words),
        "entry_point": name,
        "Class": "".join(word.capitalize() for word in words),
        "ENV": "_".join(words).upper(),
        "core_version": __version__,
    }


def new_plugin(name: str, directory: Path | None = None, provider: str | None = None) -> Path:
    """Write the distribution ``batchmig-NAME`` into ``directory`` (default: ./batchmig-NAME)."""
    values = template_values(name, provider)
    target = directory or Path(values["dist"])
    if target.exists() and any(target.iterdir()):
        raise UsageError(f"{target} exists and is not empty", "choose another --directory")
    template = resources.files("batchmig.scaffold") / "template"
    _render(template, target, values)
    return target


def _render(source: Traversable, target: Path, values: dict[str, str]) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for entry in sorted(source.iterdir(), key=lambda e: e.name):
        if entry.name == "__pycache__":
            continue
        name = values["package"] if entry.name == "package" else entry.name.removesuffix(".tmpl")
        if entry.is_dir():
            _render(entry, target / name, values)
            continue
        text = entry.read_text(encoding="utf-8")
        if entry.name.endswith(".tmpl"):
            text = _FIELD.sub(lambda match: values[match.group(1)], text)
        (target / name).write_text(text, encoding="utf-8")
