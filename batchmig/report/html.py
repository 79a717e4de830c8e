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
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache
from importlib.resources import files
from typing import Any

from batchmig.redaction import REDACTOR
from batchmig.report.model import RunReport
from batchmig.report.rows import JournalStep
from batchmig.report.view import view_data

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
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


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
    return render_page(view_data(report, now=now, rows=rows), title=f"batchmig run {report.run}", mode="report")
