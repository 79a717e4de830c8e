"""Defaults for the command line from ``batchmig.toml`` files.

Two files, both optional, a handful of keys::

    # ~/.config/batchmig/batchmig.toml (the user's) or ./batchmig.toml (the project's,
    # found in the working directory or the nearest parent that has one)
    runs_root = "/srv/migrations/runs"   # where run directories are kept
    format = "text"                      # listings: text, json or csv
    progress = true                      # the live view, also when stderr is not a terminal
    durable = false                      # fsync every journal commit

The command line wins over the project's file, which wins over the user's, which wins
over batchmig's own defaults. A relative ``runs_root`` is relative to the file that
sets it. ``batchmig --help`` of each command shows where a default comes from, and
``batchmig config`` lists every key with its value and source.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchmig.errors import UsageError

FILE_NAME = "batchmig.toml"
DEFAULT_RUNS_ROOT = Path(".batchmig/runs")
DEFAULTS: Mapping[str, Any] = {
    "runs_root": str(DEFAULT_RUNS_ROOT),
    "format": "text",
    "progress": None,
    "durable": False,
}
"""Built-in defaults. ``progress`` None: on when stderr is a terminal."""
_KINDS: Mapping[str, type] = {"runs_root": str, "format": str, "progress": bool, "durable": bool}
_CHOICES: Mapping[str, tuple[str, ...]] = {"format": ("text", "json", "csv")}


@dataclass(frozen=True)
class Setting:
    value: Any
    source: str
    """``built-in``, or the file that set it."""


@dataclass(frozen=True)
class Config:
    settings: Mapping[str, Setting] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.setting(key).value

    def setting(self, key: str) -> Setting:
        return self.settings.get(key) or Setting(DEFAULTS[key], "built-in")


def user_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or "~/.config"
    return Path(base).expanduser() / "batchmig" / FILE_NAME


def project_config_path(start: Path | None = None) -> Path | None:
    """``batchmig.toml`` in ``start`` (default: the working directory) or its nearest parent."""
    directory = (start or Path.cwd()).resolve()
    for candidate in (directory, *directory.parents):
        path = candidate / FILE_NAME
        if path.is_file():
            return path
    return None


def load_config(user: Path | None = None, project: Path | None = None) -> Config:
    """The merged configuration; a file that is not valid is a ``UsageError`` naming it."""
    user = user or user_config_path()
    project = project if project is not None else project_config_path()
    settings: dict[str, Setting] = {}
    for path in (user, project):
        if path is not None and path.is_file():
            for key, value in _read(path).items():
                settings[key] = Setting(value, str(path))
    return Config(settings)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}", "see docs/operations.md, 'Defaults'") from None
    values: dict[str, Any] = {}
    for key, value in data.items():
        kind = _KINDS.get(key)
        if kind is None:
            known = ", ".join(sorted(_KINDS))
            raise UsageError(f"{path}: unknown key {key!r}", f"the keys are: {known}")
        if not isinstance(value, kind):
            raise UsageError(f"{path}: {key} must be a {'boolean' if kind is bool else 'string'}, not {value!r}")
        if key in _CHOICES and value not in _CHOICES[key]:
            raise UsageError(f"{path}: {key} must be one of {', '.join(_CHOICES[key])}, not {value!r}")
        if key == "runs_root" and isinstance(value, str):
            value = str((path.parent / Path(value).expanduser()).resolve()) if value else DEFAULTS[key]
        values[key] = value
    return values
