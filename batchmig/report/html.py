"""The HTML report: one self-contained file to hand on, readable offline and printable.

Everything is inline — the stylesheet, the script and the run's data (``view.py``) —
so the file can be mailed, attached to a ticket or opened years later without a
network; nothing is loaded from anywhere. The same script and stylesheet draw the
live dashboard (``batchmig.web``), so the report and the dashboard show the same
views. Known secret values are redacted from the whole page before it is returned.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from functools import cache
from importlib.resources import files
from typing import Any

import orjson

from batchmig.redaction import REDACTOR
from batchmig.report.files import batches
from batchmig.report.model import RunReport
from batchmig.report.rows import JournalStep
from batchmig.report.view import ViewBuilder

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<title>{title}</title>
<style>{css}</style>
{head}</head>
<body>
<div id="app" data-mode="{mode}"><p class="loading">Drawing the report…</p></div>
<noscript><p>This report draws itself with JavaScript; its data is also in report.json beside it.</p></noscript>
<script type="application/json" id="batchmig-data">{data}</script>
<script>{js}</script>
</body>
</html>
"""

STATIC_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
"""The report's own policy: it may run its inline script and style and load nothing at all."""


@cache
def asset(name: str) -> str:
    """A static file of the report (``report.js``, ``report.css``...)."""
    return (files("batchmig.report") / "static" / name).read_text(encoding="utf-8")


def script_json(document: Any) -> str:
    """JSON that is safe inside a ``<script>`` element (no ``</script>``, no ``<!--``)."""
    return _script_safe(_compact_json(document))


def _compact_json(document: Any) -> str:
    """``json.dumps(document, separators=(",", ":"), ensure_ascii=False)``. A view's
    ``instances`` (``view_data``'s arrays: most of a large report's page) are written by
    orjson when each holds what orjson writes as json does (``_written_alike``)."""
    instances = document.get("instances") if type(document) is dict else None
    if type(instances) is list and all(map(_written_alike, instances)):
        try:
            middle = '"instances":' + orjson.dumps(instances).decode()
        except TypeError:  # (orjson's errors are TypeErrors: e.g. an integer beyond 64 bits) json's way
            middle = ""
        if middle:
            items = list(document.items())
            at = list(document).index("instances")
            head = json.dumps(dict(items[:at]), separators=(",", ":"), ensure_ascii=False)
            tail = json.dumps(dict(items[at + 1:]), separators=(",", ":"), ensure_ascii=False)
            return head[:-1] + ("," if at else "") + middle + ("," + tail[1:] if len(items) > at + 1 else "}")
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def _written_alike(entry: Any) -> bool:
    """Whether orjson writes an instance of a view (``[id, provider, wave, status, step,
    error, bars, tags, cutover]``) as json does. They differ on floats only: orjson writes
    one below 1e-4 without an exponent, and a non-finite one as null. So every value but
    the bars and the tags must be text, an integer or None (a list or a mapping anywhere
    else could hold any float), the tags' values text, and the bars' times
    (rounded to 0.1 s) 0 or at least 1e-4 and finite."""
    if type(entry) is not list or len(entry) != 9:
        return False
    bars, tags = entry[6], entry[7]
    if not set(map(type, entry[:6] + entry[8:])) <= _SCALAR or type(bars) is not list:
        return False
    if type(tags) is dict:
        if not set(map(type, tags.values())) <= _TEXT:
            return False
    elif type(tags) not in _SCALAR:
        return False
    for bar in bars:
        if type(bar) is not list or len(bar) != 4 or type(bar[0]) is not int or type(bar[3]) is not int:
            return False
        start, took = bar[1], bar[2]
        if not ((start == 0.0 or 1e-4 <= abs(start) < 1e16) and (
                took is None or took == 0.0 or 1e-4 <= abs(took) < 1e16)):
            return False
    return True


_SCALAR = frozenset({str, int, type(None)})
_TEXT = frozenset({str})


def render_page(document: Any, *, title: str, mode: str, scripts: tuple[str, ...] = ("report.js",),
                head: str = "", csp: str = STATIC_CSP) -> str:
    """A page that runs the report's scripts over ``document`` (also used by the dashboard)."""
    page = PAGE.format(
        csp=csp, title=html.escape(title), css=asset("report.css"), head=head, mode=mode,
        data=script_json(document), js="\n".join(asset(name) for name in scripts),
    )
    return REDACTOR(page)


def render_html(report: RunReport, *, now: datetime | None = None,
                rows: Mapping[str, Sequence[JournalStep]] | None = None) -> str:
    """The whole HTML report of ``report`` as one string (``rows``: the instances' steps as
    the journal's rows, if it was built without them)."""
    return "".join(html_chunks(report, now=now, rows=rows))


def html_chunks(report: RunReport, *, now: datetime | None = None,
                rows: Mapping[str, Sequence[JournalStep]] | None = None) -> Iterator[str]:
    """``render_page`` of ``view_data(report)`` in pieces, each masked: the page's head,
    then its data document with the instances' entries made and written as text a batch
    at a time (the document's lists of names before them are complete only once every
    entry is made, so the batches' texts are kept until then: a fifth of their lists'
    memory), then the script. Only the texts are held, never the whole page or its copies."""
    view = ViewBuilder(report, now=now, rows=rows)
    pieces = [_instances_text(view.entries(batch)) for batch in batches(report.instances)]
    head = _PAGE_HEAD.format(csp=STATIC_CSP, title=html.escape(f"batchmig run {report.run}"),
                             css=asset("report.css"), head="", mode="report")
    tail = _PAGE_TAIL.format(js=asset("report.js"))
    around = script_json(view.document([0]))  # the document with a marker where its instances go
    before, after = around.split('"instances":[0]', 1)
    yield REDACTOR(head + before + '"instances":[')
    for number, piece in enumerate(pieces):
        pieces[number] = ""  # (each text freed once written)
        yield REDACTOR(_script_safe(piece) if number == 0 else "," + _script_safe(piece))
    yield REDACTOR("]" + after + tail)


_PAGE_HEAD, _PAGE_TAIL = PAGE.split("{data}")


def _instances_text(entries: list[list[Any]]) -> str:
    """Some instances' entries as ``_compact_json`` writes them in the document's list,
    without the brackets."""
    return _compact_json({"instances": entries})[len('{"instances":['):-2]


def _script_safe(text: str) -> str:
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
