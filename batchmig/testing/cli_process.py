"""The real ``batchmig`` CLI in a subprocess, with the plugins a test chooses.

Crash tests must SIGKILL a runner, so it needs a process of its own; but a plugin
under test is often registered as an object (``ProviderConformance.plugins``) rather
than installed as a distribution. ``cli_command(*args, plugins=...)`` builds
``python -m batchmig.testing.cli_process --plugin MODULE:CLASS ... ARGS``, whose
registry holds exactly those plugins (each class is instantiated without arguments);
with no plugins it holds the installed ones, like ``batchmig`` itself.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable, Sequence

from batchmig.registry import Registry, load_registry


def plugin_specs(plugins: Iterable[object]) -> list[str]:
    """``MODULE:CLASS`` of each plugin object (rebuilt in the child without arguments)."""
    return [f"{type(plugin).__module__}:{type(plugin).__qualname__}" for plugin in plugins]


def registry_from_specs(specs: Sequence[str], *, default: Iterable[object] = ()) -> Registry:
    """The registry of the ``MODULE:CLASS`` plugins, or of the installed ones plus ``default``."""
    if not specs:
        return load_registry(default)
    plugins = []
    for spec in specs:
        module, _, name = spec.partition(":")
        plugins.append(getattr(importlib.import_module(module), name)())
    return load_registry(plugins, entry_points=False)


def cli_command(*args: str, plugins: Iterable[object] = ()) -> list[str]:
    """The command line that runs ``batchmig ARGS`` with ``plugins`` (or the installed ones)."""
    options = [item for spec in plugin_specs(plugins) for item in ("--plugin", spec)]
    return [sys.executable, "-m", "batchmig.testing.cli_process", *options, *args]


def split_plugin_options(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Leading ``--plugin SPEC`` pairs, and the rest of the command line."""
    specs: list[str] = []
    rest = list(argv)
    while len(rest) >= 2 and rest[0] == "--plugin":
        specs.append(rest[1])
        rest = rest[2:]
    return specs, rest


def main() -> None:
    from batchmig.cli import CliContext
    from batchmig.cli import main as cli_main

    specs, args = split_plugin_options(sys.argv[1:])
    cli_main(args, prog_name="batchmig", obj=CliContext(registry=registry_from_specs(specs)))


if __name__ == "__main__":
    main()
