"""The report files a run hands on: HTML, JUnit XML, Markdown, CSV, metrics, and `batchmig report`."""

from __future__ import annotations

import csv
import io
import json
import re
import stat
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import xmlschema
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from batchmig.engine.traffic import CALL, RETRY, THROTTLE, Traffic
from batchmig.journal import Journal
from batchmig.private_files import write_private_chunks, write_private_file
from batchmig.ratelimit import LimitKey
from batchmig.redaction import REDACTOR
from batchmig.registry import Registry
from batchmig.report import RunReport, files, read_report
from batchmig.report.build import build_run_report
from batchmig.report.csv import ids_json, safe_cell
from batchmig.report.files import FIGURES_NAME, read_figures, render_report
from batchmig.report.formats import write_report_files, write_run_files
from batchmig.report.html import html_chunks, render_page, script_json
from batchmig.report.junit import attribute, content, render_junit
from batchmig.report.markdown import cell
from batchmig.report.rows import step_rows
from batchmig.report.view import view_data
from batchmig.testing import FakeClock, run_plan

JUNIT_XSD = Path(__file__).parent / "junit" / "junit.xsd"
PLAN = """\
version: 1
providers:
  tc: {type: testcloud, region: eu-1}
defaults: {provider: tc, settings: {testcloud: {duration: 20}}}
waves: [{name: first}, {name: second}]
instances:
  - {id: ok-1, wave: first, tags: {team: crm}}
  - {id: waits, wave: first, cutover: manual, settings: {incremental: true}}
  - {id: broken-job, wave: first, settings: {fail: true}}
  - {id: refused, wave: second, settings: {reject: true}}
  - {id: ok-2, wave: second}
"""
FILES = ("report.json", "report.html", "report.junit.xml", "report.md", "report.csv", "figures.json", "metrics.prom")


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run with a success per wave, a job failure, a refused create and a manual cutover."""
    from batchmig.testing import make_registry, write_plan
    from batchmig.testing.testcloud import TestcloudPlugin

    work = tmp_path_factory.mktemp("reportfiles")
    result = run_plan(write_plan(work, PLAN), make_registry(TestcloudPlugin()), work)
    assert result.statuses == {"ok-1": "succeeded", "waits": "awaiting_cutover", "broken-job": "failed",
                               "refused": "failed", "ok-2": "succeeded"}
    return result.outcome.run_dir


def test_every_file_is_written_private(finished: Path) -> None:
    for name in FILES:
        mode = stat.S_IMODE((finished / name).stat().st_mode)
        assert mode == 0o600, f"{name} is {oct(mode)}"


def test_the_run_directory_and_the_runs_root_it_made_are_private(finished: Path) -> None:
    """The runs root did not exist before the run: it is made 0700 as well, not with the
    umask's mode (a listing of run ids and plan names is nobody else's business)."""
    for directory in (finished, finished.parent):
        mode = stat.S_IMODE(directory.stat().st_mode)
        assert mode == 0o700, f"{directory} is {oct(mode)}"
    assert not list(finished.glob("*.tmp"))


def test_report_json_is_the_document_with_one_instance_per_line(finished: Path) -> None:
    """Each instance's line is pydantic's JSON of the record: it must say what
    ``to_json_dict`` says, secrets masked and non-ASCII text escaped as before."""
    report = read_report(finished / "report.json")
    broken = next(i for i in report.instances if i.error)
    assert broken.error
    odd = replace(broken, id="échec-1", error=replace(broken.error, message='échoué: "s3cr3t-json-line" \\ refusé'))
    report = replace(report, instances=(*report.instances, odd))
    REDACTOR.add("s3cr3t-json-line")
    text = render_report(report)
    document = report.to_json_dict()
    assert json.loads(text) == document and text.isascii() and "s3cr3t-json-line" not in text
    assert document["instances"][-1]["error"]["message"] == 'échoué: "***" \\ refusé'
    lines = text.splitlines()[-len(report.instances) - 2:-2]
    assert [json.loads(line.strip().rstrip(",")) for line in lines] == document["instances"]

    chosen = render_report(report, report.instances[1:3], {"selection": "--wave first", "active": False})
    assert json.loads(chosen) == {**document, "instances": document["instances"][1:3], "selection": "--wave first",
                                  "active": False}
    assert list(json.loads(chosen))[-1] == "instances"


def test_every_file_masks_a_secret_wherever_the_report_quotes_it(finished: Path, tmp_path: Path) -> None:
    """Each renderer masks its own text once (the files are not scanned again): a secret in
    an instance's id, error, cloud ids and tags, raw or with characters each format escapes
    (JSON, XML, CSV quoting, non-ASCII), appears in no file in any form."""
    report = read_report(finished / "report.json")
    broken = next(i for i in report.instances if i.error)
    assert broken.error
    secrets = ("pl41n-s3cr3t-value", 'qu"ot<ed>&\\-s3cr3t\'', "n0n-äscii-s3cr3t")
    for secret in secrets:
        REDACTOR.add(secret)
    leaky = [replace(broken, id=f"db-{secret}", error=replace(broken.error, message=f"refused: {secret}!",
                                                            request_id=secret, step=secret),
                     remote_ids={"job": secret}, tags={"owner": secret}) for secret in secrets]
    report = replace(report, instances=(*report.instances, *leaky))
    written = write_report_files(tmp_path, report)
    assert {path.name for path in written} == {"report.json", "report.html", "report.junit.xml", "report.md",
                                               "report.csv"}
    for path in written:
        text = path.read_text(encoding="utf-8")
        for secret in secrets:
            for form in REDACTOR.forms(secret):
                assert form not in text, f"{path.name} shows {form!r}"
    document = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert [entry["error"]["message"] for entry in document["instances"][-3:]] == ["refused: ***!"] * 3


@pytest.mark.parametrize("count", [0, 1, 7])
def test_files_written_in_pieces_are_the_whole_texts(
    finished: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int
) -> None:
    """The pieces a large report is written in (each masked alone) make the text rendering
    it whole made: with pieces of 3 instances, secrets in the last instance of a piece and
    the first of the next, and in the last instance of all."""
    report = read_report(finished / "report.json")
    broken = next(i for i in report.instances if i.error)
    assert broken.error
    REDACTOR.add("edge-s3cr3t-value")
    instances = tuple(
        replace(broken, id=f"db-{n}-edge-s3cr3t-value" if n in (2, 3, 6) else f"db-{n}",
                error=replace(broken.error, message=f"refused: edge-s3cr3t-value {n}"), wave=f"w{n % 2}")
        for n in range(count))
    report = replace(report, instances=instances)
    whole_dir, pieces_dir = tmp_path / "whole", tmp_path / "pieces"
    whole_dir.mkdir()
    pieces_dir.mkdir()
    monkeypatch.setattr(files, "CHUNK_LINES", 10**6)
    whole = {path.name: path.read_bytes() for path in write_report_files(whole_dir, report)}
    monkeypatch.setattr(files, "CHUNK_LINES", 3)
    pieces = {path.name: path.read_bytes() for path in write_report_files(pieces_dir, report)}
    for name in ("report.json", "report.junit.xml", "report.md", "report.csv"):  # the HTML says when it was made
        assert pieces[name] == whole[name], name
    assert _timeless(pieces["report.html"].decode()) == _timeless(whole["report.html"].decode())
    now = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    page = render_page(view_data(report, now=now), title=f"batchmig run {report.run}", mode="report")
    assert "".join(html_chunks(report, now=now)) == page  # the dashboard's way of drawing a page, whole
    for name, data in pieces.items():
        assert b"edge-s3cr3t-value" not in data, name
        assert stat.S_IMODE((pieces_dir / name).stat().st_mode) == 0o600
    assert json.loads(pieces["report.json"]) == report.to_json_dict()
    assert len(list(csv.reader(io.StringIO(pieces["report.csv"].decode())))) == count + 1
    assert len(ET.fromstring(pieces["report.junit.xml"]).findall(".//testcase")) == count


def test_a_runners_files_from_the_journals_rows_are_those_of_the_records(finished: Path, tmp_path: Path) -> None:
    """A runner writes its files from the report built without step records and the steps
    as the journal's rows: the bytes every format makes of the report with its records."""
    figures = read_figures(finished / FIGURES_NAME)
    journal = Journal.open(finished / "journal.sqlite", read_only=True)
    try:
        with_records = build_run_report(journal, figures=figures)
        bare = build_run_report(journal, figures=figures, steps=False)
        rows = step_rows(journal)
    finally:
        journal.close()
    assert all(not instance.steps for instance in bare.instances) and rows
    (tmp_path / "records").mkdir()
    (tmp_path / "rows").mkdir()
    expected = {path.name: path.read_text() for path in write_report_files(tmp_path / "records", with_records)}
    written = {path.name: path.read_text() for path in write_run_files(tmp_path / "rows", bare, rows)}
    assert written.keys() == expected.keys()
    for name, text in written.items():
        assert _timeless(text) == _timeless(expected[name]) if name == "report.html" else text == expected[name]


def test_a_file_whose_rendering_fails_is_left_as_it_was(tmp_path: Path) -> None:
    """Written in pieces, a file is still replaced whole or not at all."""
    path = tmp_path / "report.csv"
    write_private_file(path, "old\n")

    def failing() -> Iterator[str]:
        yield "new first piece\n"
        raise RuntimeError("a renderer failed")

    with pytest.raises(RuntimeError):
        write_private_chunks(path, failing())
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.csv"]


def test_junit_validates_against_the_junit_schema(finished: Path) -> None:
    schema = xmlschema.XMLSchema(str(JUNIT_XSD))
    text = (finished / "report.junit.xml").read_text(encoding="utf-8")
    schema.validate(text)
    root = ET.fromstring(text)
    suites = {suite.get("name"): suite for suite in root.iter("testsuite")}
    assert list(suites) == ["first", "second"]
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("5", "2", "0", "1")
    cases = {case.get("name"): case for case in root.iter("testcase")}
    refused = cases["refused"].find("failure")
    assert refused is not None and refused.get("type") == "InvalidParameterValue"
    assert "request id: " in (refused.text or "") and cases["refused"].get("classname") == "batchmig.second"
    assert cases["waits"].find("skipped") is not None
    assert cases["ok-1"].find("failure") is None and "tag team=crm" in (cases["ok-1"].findtext("system-out") or "")


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_junit_escapes_as_elementtree_does(text: str) -> None:
    """The JUnit document is written as text: its escaping must be ElementTree's, character for character."""
    element = ET.Element("e", a=f"x{text}")
    element.text = f"x{text}"
    assert ET.tostring(element, encoding="unicode") == f'<e a="{attribute("x" + text)}">{content("x" + text)}</e>'


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(), st.text() | st.integers() | st.none() | st.booleans()))
def test_csv_cloud_ids_are_json_dumps_text(ids: dict[str, object]) -> None:
    assert ids_json(ids) == json.dumps(ids, sort_keys=True, default=str)


def test_junit_of_an_unfinished_run_is_not_green(finished: Path) -> None:
    report = read_report(finished / "report.json")
    interrupted = RunReport.load({**report.to_json_dict(), "instances": [
        {**i.__dict__, "status": "interrupted", "steps": [], "error": None, "step": "wait-job"}
        for i in report.instances[:1]]})
    root = ET.fromstring(render_junit(interrupted))
    xmlschema.XMLSchema(str(JUNIT_XSD)).validate(render_junit(interrupted))
    assert root.get("errors") == "1" and root.find(".//error").get("type") == "interrupted"


def test_markdown_lists_what_needs_a_look(finished: Path) -> None:
    text = (finished / "report.md").read_text(encoding="utf-8")
    assert "**2 of 5 instances succeeded**" in text
    assert "| refused | second | failed |" in text and "JobFailed" in text and "InvalidParameterValue" in text
    assert "](" not in text and "<a " not in text  # link-free
    assert cell("a|b\nc <x>") == "a\\|b c \\<x\\>"


def test_csv_has_one_row_per_instance(finished: Path) -> None:
    rows = list(csv.DictReader(io.StringIO((finished / "report.csv").read_text(encoding="utf-8"))))
    assert [r["instance"] for r in rows] == ["ok-1", "waits", "broken-job", "refused", "ok-2"]
    by_id = {r["instance"]: r for r in rows}
    assert by_id["refused"]["error_code"] == "InvalidParameterValue" and by_id["refused"]["request_id"]
    assert by_id["ok-1"]["tags"] == "team=crm" and json.loads(by_id["ok-1"]["remote_ids"])["JobId"]
    assert safe_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)" and safe_cell("-1") == "'-1" and safe_cell("ok") == "ok"


def test_html_is_one_self_contained_file(finished: Path) -> None:
    page = (finished / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "the report must load nothing"
    assert "@import" not in page and "url(" not in page
    assert "default-src 'none'" in page
    data = json.loads(re.search(r'<script type="application/json" id="batchmig-data">(.*?)</script>', page,
                                re.S).group(1))
    assert [row[0] for row in data["instances"]] == ["ok-1", "waits", "broken-job", "refused", "ok-2"]
    codes = {group[0]: len(group[2]) for group in data["errors"]}
    assert codes == {"JobFailed": 1, "InvalidParameterValue": 1}
    assert data["cutovers"] == [] and data["keys"] and data["keys"][0]["series"]["calls"]


def test_script_json_cannot_close_its_script() -> None:
    text = script_json({"message": "</script><script>alert(1)</script><!--"})
    assert "</" not in text and "<!--" not in text and json.loads(text)["message"].startswith("</script>")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=8)
INDEX = st.integers(0, 3) | st.integers(-(2**70), 2**70) | st.booleans()
TIME = st.floats() | st.floats(-1e17, 1e17).map(lambda x: round(x, 1))
BAR = st.tuples(INDEX, TIME, st.none() | TIME, INDEX).map(list) | st.lists(INDEX | TIME | st.none(), max_size=5)
VIEW_INSTANCE = st.tuples(  # view_data's [id, provider, wave, status, step, error, bars, tags, cutover], or near it
    st.text(), INDEX, INDEX, INDEX, st.text() | st.floats(), INDEX, st.lists(BAR, max_size=3),
    st.just(0) | st.dictionaries(st.text(max_size=4), st.text() | JSON_VALUES, max_size=2), INDEX,
).map(list) | st.lists(JSON_VALUES, max_size=9)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=3), st.lists(VIEW_INSTANCE, max_size=3),
       st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=3))
def test_script_json_is_jsons_text_however_a_view_is_written(head: dict, instances: list, tail: dict) -> None:
    """A view's instances are written by orjson when it writes them as json does: any
    document's text is json's, floats near 0, beyond 1e16 or not finite included."""
    document = {**head, "instances": instances, **{key: value for key, value in tail.items() if key != "instances"}}
    expected = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    assert script_json(document) == (
        expected.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def test_figures_and_metrics_of_the_finished_run(finished: Path) -> None:
    figures = read_figures(finished / FIGURES_NAME)
    assert figures is not None and figures.invocation is not None and figures.invocation.exit_code == 1
    create = next(record for key, record in figures.rate_limits.items() if key.endswith("/CreateJob"))
    assert create.series is not None and sum(create.series.calls) == create.admitted == 5
    families = {f.name: f for f in text_string_to_metric_families((finished / "metrics.prom").read_text())}
    instances = {(s.labels["wave"], s.labels["status"]): s.value for s in families["batchmig_instances"].samples}
    assert instances == {("first", "succeeded"): 1, ("first", "awaiting_cutover"): 1, ("first", "failed"): 1,
                         ("second", "failed"): 1, ("second", "succeeded"): 1}
    calls = {s.labels["action"]: s.value for s in families["batchmig_calls"].samples if s.name.endswith("_total")}
    assert calls["CreateJob"] == 5
    count = [s for s in families["batchmig_step_duration_seconds"].samples if s.name.endswith("_count")]
    assert sum(s.value for s in count) == sum(1 for _ in _steps(finished))
    assert {s.labels["action"] for s in families["batchmig_limiter_cap"].samples} >= {"CreateJob", "DescribeJobs"}


def _timeless(page: str) -> str:
    """An HTML report without the moment it was drawn (its only part that changes by itself)."""
    return re.sub(r'"generated":"[^"]*"|"now":[0-9.]+', "", page)


def _steps(run_dir: Path) -> list[object]:
    return [step for instance in read_report(run_dir / "report.json").instances for step in instance.steps]


def test_report_command_renders_every_format(finished: Path, registry: Registry, tmp_path: Path) -> None:
    from batchmig.cli import CliContext, main

    cli = CliContext(registry=registry)
    out = tmp_path / "run.xml"
    result = CliRunner().invoke(main, ["report", str(finished), "--format", "junit", "-o", str(out)], obj=cli)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    xmlschema.XMLSchema(str(JUNIT_XSD)).validate(str(out))
    for fmt in ("markdown", "csv", "json", "html"):
        result = CliRunner().invoke(main, ["report", str(finished), "--format", fmt], obj=cli)
        assert result.exit_code == 0 and result.stdout.strip(), (fmt, result.output)
    text = CliRunner().invoke(main, ["report", str(finished), "--format", "json"], obj=cli).stdout
    # the command writes the journal's step rows, the runner wrote their records: the same lines
    written = (finished / "report.json").read_text()
    assert text[text.index('"instances": ['):] == written[written.index('"instances": ['):]
    status = CliRunner().invoke(main, ["status", str(finished), "--format", "json"], obj=cli).stdout
    junit = CliRunner().invoke(main, ["report", str(finished), "--format", "junit"], obj=cli).stdout_bytes
    assert junit == (finished / "report.junit.xml").read_bytes()
    page = CliRunner().invoke(main, ["report", str(finished), "--format", "html"], obj=cli).stdout
    assert _timeless(page) == _timeless((finished / "report.html").read_text())
    assert status[status.index('"instances": ['):] == written[written.index('"instances": ['):]
    # the command reads each instance's steps in one line from the journal, the runner made their records
    table = CliRunner().invoke(main, ["report", str(finished), "--format", "csv"], obj=cli).stdout_bytes
    assert table == (finished / "report.csv").read_bytes()
    missing = CliRunner().invoke(main, ["report", "no-such-run", "--runs-root", str(tmp_path)], obj=cli)
    assert missing.exit_code == 2 and "no run 'no-such-run'" in missing.output


def test_traffic_buckets_coarsen_and_keep_every_count() -> None:
    clock = FakeClock(0.0)
    traffic = Traffic(clock.now, wall=lambda: 1_700_000_000.0)
    key = LimitKey("p", "a", "r", "Create")
    for second in range(3000):
        clock.time = float(second)
        traffic.add(key, CALL)
        if second % 100 == 0:
            traffic.add(key, THROTTLE)
            traffic.add(key, RETRY)
    series = traffic.series()[str(key)]
    assert series.bucket_seconds == 8 and len(series.calls) <= 720
    assert sum(series.calls) == 3000 and sum(series.throttled) == sum(series.retries) == 30
    assert traffic.totals[str(key)] == [3000, 30, 30]
