"""Listings never hide a row without saying so, and never cut a cell short off a terminal."""

from __future__ import annotations

import csv
import io
import json

import pytest

from batchmig.errors import UsageError
from batchmig.listing import Column, emit
from batchmig.report.model import InstanceReport
from batchmig.selection import Selection

COLUMNS = (Column("id", "instance"), Column("status", "status"), Column("detail", "detail"))
LONG = "awaiting_cutover at a-very-long-step-name-" + "x" * 150


def rows(count: int) -> list[dict]:
    return [{"id": f"db-{i:03d}", "status": "succeeded" if i % 4 else "failed", "detail": LONG} for i in range(count)]


def test_a_pipe_gets_every_row_and_every_character() -> None:
    out = io.StringIO()
    emit("t", COLUMNS, rows(300), "text", out=out)
    text = out.getvalue()
    assert text.count("db-") == 300 and text.count(LONG) == 300 and "…" not in text and "more" not in text


def test_a_limited_table_says_how_many_rows_it_holds_back() -> None:
    out = io.StringIO()
    emit("t", COLUMNS, rows(300), "text", limit=20, out=out)
    text = out.getvalue()
    assert text.count("db-") == 20
    assert "… 280 more (210 succeeded, 70 failed) — use --all or --format json|csv" in text


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_json_and_csv_hold_every_row_whatever_the_limit(fmt: str) -> None:
    out = io.StringIO()
    emit("t", COLUMNS, iter(rows(120)), fmt, limit=5, out=out)  # a generator is streamed
    text = out.getvalue()
    data = json.loads(text) if fmt == "json" else list(csv.DictReader(io.StringIO(text)))
    assert len(data) == 120 and data[7]["detail"] == LONG


def test_secrets_are_redacted_in_every_format() -> None:
    from batchmig.redaction import REDACTOR

    REDACTOR.add("hunter2-listing-secret")
    for fmt in ("text", "json", "csv"):
        out = io.StringIO()
        emit("t", COLUMNS, [{"id": "a", "status": "failed", "detail": "echo hunter2-listing-secret"}], fmt, out=out)
        assert "hunter2-listing-secret" not in out.getvalue() and "***" in out.getvalue()


def instance(iid: str, status: str = "succeeded", wave: str = "main", **tags: str) -> InstanceReport:
    return InstanceReport(iid, "tc", wave, status, None, 0, None, tags=tags)


FLEET = [instance("crm-1", "failed", "one", team="crm"), instance("crm-2", "skipped", "two", team="crm"),
         instance("erp-1", "skipped", "two", team="erp"), instance("erp-2", "awaiting_cutover", "two")]


def test_selection_widens_within_a_kind_and_narrows_across_kinds() -> None:
    def ids(selection: Selection) -> list[str]:
        return [i.id for i in selection.choose(FLEET)]

    assert ids(Selection.parse(statuses=["failed,skipped"])) == ["crm-1", "crm-2", "erp-1"]
    assert ids(Selection.parse(statuses=["skipped"], waves=["two"], tags=["team=crm"])) == ["crm-2"]
    assert ids(Selection.parse(ids=["erp-*", "crm-1"])) == ["crm-1", "erp-1", "erp-2"]
    assert ids(Selection.parse(tags=["team=*"])) == ["crm-1", "crm-2", "erp-1"]
    assert Selection.parse(statuses=["skipped"], waves=["two"]).describe() == "--status skipped --wave two"


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"waves": ["three"]}, "--wave three"), ({"ids": ["nope-*"]}, "--select nope-*"),
    ({"tags": ["team=hr"]}, "--tag team=hr"),
])
def test_a_selector_that_matches_nothing_is_named(kwargs: dict, named: str) -> None:
    with pytest.raises(UsageError, match=named.replace("*", r"\*")):
        Selection.parse(**kwargs).choose(FLEET)


def test_a_tag_without_a_value_is_refused() -> None:
    with pytest.raises(UsageError, match="KEY=VALUE"):
        Selection.parse(tags=["team"])
