"""What ``batchmig status`` pays before it shows anything: it imports no engine, HTTP
client, sandbox, plan model, YAML parser or plugin, and its read-only open leaves the steps' type check to the
first read of the steps — a command that reads none (the table) shows every instance of
a journal with a garbled step row, and one that reads them still refuses it (exit 5)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from batchmig.cli import CliContext, main
from batchmig.errors import JournalUnusableError
from batchmig.journal import Journal
from batchmig.registry import Registry
from batchmig.testing import run_plan

PLAN = """\
version: 1
providers:
  tc: {type: testcloud, region: eu-1}
defaults: {provider: tc, settings: {testcloud: {duration: 5}}}
instances:
  - {id: a}
  - {id: b}
  - {id: c, settings: {fail: true}}
"""

NOT_FOR_STATUS = ("aiohttp", "batchmig.engine", "batchmig.sandbox", "batchmig.operations", "batchmig.plan",
                  "batchmig.registry", "batchmig.scaleout", "pluggy", "yaml")


@pytest.fixture
def run_dir(plan_file, registry: Registry, tmp_path: Path) -> Path:
    return run_plan(plan_file(PLAN), registry, tmp_path).outcome.run_dir


def garble_a_step(run_dir: Path) -> None:
    db = sqlite3.connect(run_dir / "journal.sqlite")
    db.execute("UPDATE steps SET started = 'soon' WHERE instance = 'b'")
    db.commit()
    db.close()


@pytest.mark.parametrize("fmt", ["text", "json", "csv"])
def test_status_imports_no_engine_http_client_sandbox_or_plugin(run_dir: Path, fmt: str) -> None:
    script = (
        "import sys\n"
        "from batchmig.cli import main\n"
        "try:\n"
        f"    main(['status', {str(run_dir)!r}, '--format', {fmt!r}])\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
        f"print(sorted(m for m in sys.modules if m.startswith({NOT_FOR_STATUS!r})), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "[]", done.stderr
    assert any(row in done.stdout for row in ("a ", '"a"', "\na,"))  # the table's, the JSON's, the CSV's


def test_a_read_only_journal_checks_the_steps_types_when_it_reads_them(run_dir: Path) -> None:
    garble_a_step(run_dir)
    journal = Journal.open(run_dir / "journal.sqlite", read_only=True)
    try:
        assert sorted(journal.instances()) == ["a", "b", "c"]
        with pytest.raises(JournalUnusableError, match="steps row 'b': started holds text where"):
            journal.steps()
        with pytest.raises(JournalUnusableError, match="steps row 'b'"):  # not only the first time
            journal.steps()
    finally:
        journal.close()
    with pytest.raises(JournalUnusableError, match="steps row 'b': started holds text"):
        Journal.open(run_dir / "journal.sqlite")  # for writing: everything is checked at once


def test_status_with_a_garbled_step_row_lists_every_instance_or_refuses_when_it_shows_steps(
    run_dir: Path, registry: Registry
) -> None:
    garble_a_step(run_dir)
    table = CliRunner().invoke(main, ["status", str(run_dir)], obj=CliContext(registry=registry))
    assert table.exit_code == 0, table.output
    assert [line.split()[0] for line in table.stdout.splitlines() if line[:2] in ("a ", "b ", "c ")] == ["a", "b", "c"]
    for fmt in ("json", "csv"):
        refused = CliRunner().invoke(main, ["status", str(run_dir), "--format", fmt], obj=CliContext(registry=registry))
        assert refused.exit_code == 5, refused.output
        assert refused.exception is None or isinstance(refused.exception, SystemExit)
        lines = refused.stderr.strip().splitlines()
        assert lines[0].startswith("error: the journal ") and "steps row 'b': started holds text" in lines[0]
        assert lines[1].startswith("hint: ") and "Traceback" not in refused.output
        assert not refused.stdout  # nothing half-shown
