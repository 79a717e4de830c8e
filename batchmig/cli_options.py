"""Options several ``batchmig`` commands share, and defaults that come from ``batchmig.toml``.

``config_option`` makes an option whose default is the configuration's value
(``batchmig.config``) and whose ``--help`` says where that value comes from: the
built-in default or the file that set it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from batchmig.config import DEFAULTS, Config, load_config
from batchmig.listing import FORMATS

F = TypeVar("F", bound=Callable[..., Any])
_CONFIG_KEY = "batchmig.config"


def context_config(ctx: click.Context) -> Config:
    """The configuration, loaded once per command line (kept in ``ctx.meta``)."""
    config = ctx.meta.get(_CONFIG_KEY)
    if config is None:
        config = ctx.meta[_CONFIG_KEY] = load_config()
    assert isinstance(config, Config)
    return config


class ConfigOption(click.Option):
    def __init__(self, *args: Any, config_key: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config_key = config_key

    def get_default(self, ctx: click.Context, call: bool = True) -> Any:
        setting = context_config(ctx).setting(self.config_key)
        if setting.source != "built-in":
            return setting.value
        return super().get_default(ctx, call)

    def get_help_extra(self, ctx: click.Context) -> Any:
        extra = super().get_help_extra(ctx)
        setting = context_config(ctx).setting(self.config_key)
        if setting.source == "built-in":
            shown = extra.get("default") or ("auto" if self.secondary_opts else "off")
            extra["default"] = f"{shown} (built-in; `{self.config_key}` in batchmig.toml)"
        else:
            value = setting.value
            if self.is_bool_flag and self.secondary_opts:
                value = (self.opts if value else self.secondary_opts)[0].lstrip("-")
            extra["default"] = f"{value} (from {setting.source})"
        return extra


def config_option(*decls: str, config_key: str, **kwargs: Any) -> Callable[[F], F]:
    kwargs.setdefault("default", DEFAULTS[config_key])
    kwargs.setdefault("show_default", True)
    return click.option(*decls, cls=ConfigOption, config_key=config_key, **kwargs)


runs_root = config_option("--runs-root", config_key="runs_root", help="Where run directories are kept.")
durable = config_option("--durable", config_key="durable", is_flag=True,
                        help="fsync every journal commit (group-committed).")
progress = config_option("--progress/--no-progress", config_key="progress",
                         help="Live progress view (built-in: on when stderr is a terminal).")


def listing_format(help_text: str = "json and csv hold every row.") -> Callable[[F], F]:
    return config_option("--format", "fmt", config_key="format", type=click.Choice(FORMATS), help=help_text)


show_all = click.option("--all", "show_all", is_flag=True, help="Every row, also on a terminal.")


def selection(command: F) -> F:
    """--select/--status/--wave/--tag: which instances of the run (``batchmig.selection``)."""
    options = [
        click.option("--select", "selectors", multiple=True, metavar="ID", help="Instance id or glob (repeatable)."),
        click.option("--status", "statuses", multiple=True, metavar="S[,S]",
                     help="Instances in these statuses, e.g. failed,skipped (repeatable)."),
        click.option("--wave", "waves", multiple=True, metavar="W", help="Instances of this wave (repeatable)."),
        click.option("--tag", "tags", multiple=True, metavar="K=V",
                     help="Instances with this plan tag; V may be * (repeatable)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command
