"""Listings on the command line: a table for people, JSON and CSV for tools.

Every listing batchmig prints (instances, runs, the dry run's plan, pre-flight
problems) goes through ``emit``, so they all keep the same promises:

* no row is ever dropped silently: on a terminal a long table stops at what fits and
  ends with "N more — use --all or --format json|csv" (saying what the hidden rows
  are); ``--all``, a pipe or a file get every row;
* nothing is cut short when the output is not a terminal: no column is narrowed to
  80 characters, no cell ends in "…";
* ``--format json`` and ``--format csv`` hold every row and every column.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, Literal

from rich.console import Console
from rich.table import Table

from batchmig.credentials import REDACTOR

FORMATS = ("text", "json", "csv")
Format = Literal["text", "json", "csv"]
Row = Mapping[str, Any]


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    justify: Literal["left", "right"] = "left"


def terminal_rows(reserved: int = 12, floor: int = 10) -> int | None:
    """How many table rows fit on this terminal, or None (no limit) when stdout is not one."""
    if not sys.stdout.isatty():
        return None
    return max(floor, shutil.get_terminal_size().lines - reserved)


def emit(
    title: str,
    columns: Sequence[Column],
    rows: Iterable[Row],
    fmt: Format,
    *,
    limit: int | None = None,
    more: str = "use --all or --format json|csv",
    describe_hidden: Callable[[Sequence[Row]], str] | None = None,
    out: IO[str] | None = None,
) -> None:
    """Print ``rows`` as a table, JSON (a list of objects) or CSV.

    ``limit`` caps the table's rows (JSON and CSV always hold every row); the hidden
    ones are counted in a closing line, described by ``describe_hidden`` (default:
    how many of each ``status``). ``rows`` may be a generator: JSON and CSV stream it.
    """
    out = out or sys.stdout
    if fmt == "json":
        _json_rows(rows, out)
    elif fmt == "csv":
        writer = csv.DictWriter(out, [c.key for c in columns], extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({c.key: _cell(row.get(c.key)) for c in columns})
    else:
        table(title, columns, rows, limit=limit, more=more, describe_hidden=describe_hidden, out=out)


def table(
    title: str,
    columns: Sequence[Column],
    rows: Iterable[Row],
    *,
    limit: int | None = None,
    more: str = "use --all or --format json|csv",
    describe_hidden: Callable[[Sequence[Row]], str] | None = None,
    out: IO[str] | None = None,
) -> None:
    out = out or sys.stdout
    terminal = out.isatty()
    grid = Table(title=title or None, show_lines=False, title_justify="left")
    for column in columns:
        grid.add_column(column.title, justify=column.justify, overflow="fold")
    hidden: list[Row] = []
    for row in rows:
        if limit is not None and grid.row_count >= limit:
            hidden.append(row)
            continue
        grid.add_row(*(_cell(row.get(c.key)) for c in columns))
    # Off a terminal nothing may be narrowed: the console is as wide as the table needs.
    console = Console(file=out, soft_wrap=True, width=None if terminal else 100_000)
    console.print(grid)
    if hidden:
        what = (describe_hidden or count_statuses)(hidden)
        console.print(f"… {len(hidden)} more{f' ({what})' if what else ''} — {more}", highlight=False)


def count_statuses(rows: Sequence[Row]) -> str:
    counts = Counter(str(row.get("status", "")) for row in rows)
    counts.pop("", None)
    return ", ".join(f"{count} {status}" for status, count in counts.most_common())


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Mapping):
        text = ";".join(f"{k}={v}" for k, v in value.items())
    elif isinstance(value, float):
        text = f"{value:g}"
    else:
        text = str(value)
    return REDACTOR(text)


def _json_rows(rows: Iterable[Row], out: IO[str]) -> None:
    """A JSON list, one object per line, written as the rows come (a generator is streamed)."""
    out.write("[")
    first = True
    for row in rows:
        out.write("\n  " if first else ",\n  ")
        out.write(REDACTOR(json.dumps(dict(row), default=str, separators=(", ", ": "))))
        first = False
    out.write("\n]\n" if not first else "]\n")
