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
import itertools
import json
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, Literal

from rich.console import Console
from rich.table import Table

from batchmig.redaction import REDACTOR

FORMATS = ("text", "json", "csv")
PLAIN_WIDTH_SAMPLE = 200
"""Rows off a terminal whose cells set the column widths (the rest stream as they come)."""
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
    hidden_kind: Callable[[Row], str] | None = None,
    out: IO[str] | None = None,
) -> None:
    """Print ``rows`` as a table, JSON (a list of objects) or CSV.

    ``limit`` caps the table's rows (JSON and CSV always hold every row); the hidden
    ones are counted in a closing line, grouped by ``hidden_kind`` (default: their
    ``status``). ``rows`` may be a generator: every format streams it, so a table of
    100,000 rows off a terminal needs no more memory than one of a hundred.
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
        table(title, columns, rows, limit=limit, more=more, hidden_kind=hidden_kind, out=out)


def table(
    title: str,
    columns: Sequence[Column],
    rows: Iterable[Row],
    *,
    limit: int | None = None,
    more: str = "use --all or --format json|csv",
    hidden_kind: Callable[[Row], str] | None = None,
    out: IO[str] | None = None,
) -> None:
    """A table: boxed on a terminal, plain and streamed anywhere else; rows past ``limit``
    are counted, never dropped silently."""
    out = out or sys.stdout
    iterator = iter(rows)
    shown = iterator if limit is None else itertools.islice(iterator, limit)
    console = Console(file=out, soft_wrap=True)
    if out.isatty():
        grid = Table(title=title or None, show_lines=False, title_justify="left")
        for column in columns:
            grid.add_column(column.title, justify=column.justify, overflow="fold")
        for row in shown:
            grid.add_row(*(_cell(row.get(c.key)) for c in columns))
        console.print(grid)
    else:
        _plain_table(title, columns, shown, out)
    kind = hidden_kind or (lambda row: str(row.get("status", "")))
    hidden = Counter(kind(row) for row in iterator)  # whatever the limit held back
    if hidden:
        count = sum(hidden.values())
        what = ", ".join(f"{n} {k}" for k, n in hidden.most_common() if k)
        console.print(f"… {count} more{f' ({what})' if what else ''} — {more}", highlight=False)


def _plain_table(title: str, columns: Sequence[Column], rows: Iterator[Row], out: IO[str]) -> None:
    """Aligned columns, streamed: widths from the first rows; a wider cell later simply
    runs on (nothing is ever cut)."""
    first = list(itertools.islice(rows, PLAIN_WIDTH_SAMPLE))
    keys = [c.key for c in columns]
    widths = [max([len(c.title)] + [len(_cell(row.get(c.key))) for row in first]) for c in columns]
    # one format for every line (str.format pads as ljust/rjust do, and never cuts)
    layout = "  ".join(f"{{:{'>' if c.justify == 'right' else '<'}{w}}}" for c, w in zip(columns, widths, strict=True))
    if title:
        out.write(title + "\n")
    out.write(layout.format(*(c.title for c in columns)).rstrip() + "\n")
    out.write(layout.format(*("-" * w for w in widths)).rstrip() + "\n")
    cell = _cell if REDACTOR.holds_secrets else _plain_cell  # (no secret registered: nothing to mask)
    for row in itertools.chain(first, rows):
        out.write(layout.format(*[cell(row.get(key)) for key in keys]).rstrip() + "\n")


def _cell(value: Any) -> str:
    return REDACTOR(_plain_cell(value))


def _plain_cell(value: Any) -> str:
    """A cell's text, before masking."""
    if type(value) is str:  # most cells: checked first (``isinstance(value, Mapping)`` is an ABC's check)
        return value
    if value is None:
        return ""
    if isinstance(value, Mapping):
        return ";".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _json_rows(rows: Iterable[Row], out: IO[str]) -> None:
    """A JSON list, one object per line, written as the rows come (a generator is streamed)."""
    out.write("[")
    first = True
    for row in rows:
        out.write("\n  " if first else ",\n  ")
        out.write(REDACTOR(json.dumps(dict(row), default=str, separators=(", ", ": "))))
        first = False
    out.write("\n]\n" if not first else "]\n")
