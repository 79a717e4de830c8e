"""Campaign 8 — broken, hostile and read-only journals.

One real run (the core's ``testcloud`` through the real CLI, in-process sandbox)
gives a whole journal. Each case copies its run directory and breaks the journal in
one way: truncated to 0 bytes or to half, an empty SQLite database, garbage, a
garbled first/second/middle/last page, a newer or negative schema version, a renamed
column, a dropped table, a BLOB or non-JSON text where JSON is kept, rows deleted,
no run id, a directory in its place. Then ``status`` (text and JSON), ``resume`` and
``cutover`` are run on it. Seeded random garbling (a burst of random bytes at a
random offset) adds more.

The property: exit 5 ("the run's journal is damaged or unusable") with one
``error:`` line and a ``hint:`` line, no traceback, no "internal error", never 3
("interrupted, resumable"), and never a table that silently leaves instances out.
A randomly garbled journal may also still be whole (the bytes fell on free space):
then every instance must be listed.

The unversioned journals of earlier releases (``user_version`` 0) must still be read,
and migrated by ``resume``. ``status`` must work without writing a byte — on a
read-only file, a read-only directory (root without CAP_DAC_OVERRIDE, so permission
bits apply) and a read-only bind mount — also when the journal's WAL holds commits
the database file does not have yet, which must show.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from batchmig import journal_file
from batchmig.cli import CliContext, main
from batchmig.testing import make_registry
from batchmig.testing.testcloud import TestcloudPlugin

from .conftest import SOAK

TESTCLOUD_CLI = Path(__file__).parent.parent / "testcloud_cli.py"
INSTANCES = 60
RANDOM_GARBLES = 1000 if SOAK else 100
PAGE = 4096
WITHOUT_DAC = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--")


def batchmig(*args: str, cwd: Path, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, sys.executable, str(TESTCLOUD_CLI), *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run: some instances succeeded, some failed."""
    home = tmp_path_factory.mktemp("whole")
    plan = home / "plan.yaml"
    plan.write_text(yaml.safe_dump({
        "version": 1, "name": "journal-damage", "providers": {"tc": {"type": "testcloud", "region": "r"}},
        "defaults": {"provider": "tc"},
        "instances": [{"id": f"db-{n:03d}", **({"settings": {"fail": True}} if n % 9 == 0 else {})}
                      for n in range(INSTANCES)],
    }))
    done = batchmig("run", str(plan), "--sandbox", "--time-scale", "6000", "--run-dir", str(home / "run"),
                    "--no-progress", cwd=home)
    assert done.returncode == 1, done.stderr[-3000:]
    return home / "run"


CLI = CliContext()
"""What the CLI receives through click's obj in these tests (no module global in batchmig)."""


@pytest.fixture(autouse=True)
def testcloud_registry() -> Iterator[None]:
    CLI.registry = make_registry(TestcloudPlugin())
    yield
    CLI.registry = None


def copy_run(whole_run: Path, where: Path) -> Path:
    shutil.copytree(whole_run, where)
    return where


def in_process(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), obj=CLI)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{args}: {type(result.exception).__name__}: {result.exception}")
    return result.exit_code, result.stdout + result.stderr


def assert_unusable(code: int, output: str, what: str) -> None:
    assert code == 5, f"{what}: exit {code}\n{output[-2000:]}"
    assert "Traceback" not in output and "internal error" not in output, output[-2000:]
    lines = output.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: "), output


# ----------------------------------------------------------------- the damage


def garble_page(page: int | str) -> Callable[[Path], None]:
    def damage(journal: Path) -> None:
        pages = journal.stat().st_size // PAGE
        number = pages if page == "last" else pages // 2 if page == "middle" else int(page)
        with open(journal, "r+b") as handle:
            handle.seek((number - 1) * PAGE)
            handle.write(random.Random(number).randbytes(PAGE))
    return damage


def sql(statement: str) -> Callable[[Path], None]:
    def damage(journal: Path) -> None:
        db = sqlite3.connect(journal)
        db.executescript(statement)
        db.close()
    return damage


def empty_database(journal: Path) -> None:
    journal.unlink()
    sqlite3.connect(journal).execute("PRAGMA user_version = 0").connection.close()


def directory_instead(journal: Path) -> None:
    journal.unlink()
    journal.mkdir()


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated to 0 bytes": (lambda j: j.write_bytes(b""), "empty (0 bytes)"),
    "truncated to half": (lambda j: os.truncate(j, j.stat().st_size // 2), "damaged"),
    "empty SQLite database": (empty_database, "no tables"),
    "garbage": (lambda j: j.write_bytes(random.Random(7).randbytes(3 * PAGE)), "not an SQLite database"),
    "garbled first page": (garble_page(1), "damaged"),
    "garbled page 2": (garble_page(2), "damaged"),
    "garbled middle page": (garble_page("middle"), "damaged"),
    "garbled last page": (garble_page("last"), "damaged"),
    "schema version 99": (sql("PRAGMA user_version = 99"), "schema version 99"),
    "schema version -1": (sql("PRAGMA user_version = -1"), "schema version -1"),
    "renamed column": (sql("ALTER TABLE instances RENAME COLUMN status TO state"), "lacks the column(s) status"),
    "dropped table": (sql("DROP TABLE steps"), "table steps is missing"),
    "BLOB in a JSON column": (sql("UPDATE instances SET outputs = x'00ff' WHERE id = 'db-004'"), "outputs holds blob"),
    "BLOB in a text column": (sql("UPDATE instances SET status = x'00ff' WHERE id = 'db-005'"), "status holds blob"),
    "non-JSON error": (sql("UPDATE instances SET error = 'oops' WHERE id = 'db-009'"), "error is not a JSON object"),
    "BLOB in steps": (sql("UPDATE steps SET name = x'00' WHERE rowid = 1"), "name holds blob"),
    "BLOB in meta": (sql("UPDATE meta SET value = x'00' WHERE key = 'created'"), "value holds blob"),
    "rows deleted": (sql("DELETE FROM instances WHERE position >= 40"), "holds 40 of the 60 instances"),
    "every instance deleted": (sql("DELETE FROM instances"), "records no instance"),
    "no run id": (sql("DELETE FROM meta WHERE key = 'run_id'"), "records no run id"),
    "a directory instead": (directory_instead, "is not a file"),
}
IN_STEPS_ONLY = {"BLOB in steps"}
"""Damage in rows that ``status`` as a table does not read (it shows no steps): it lists every
instance, and each command that reads the steps refuses the journal."""


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_journal_is_refused_by_every_command(case: str, whole_run: Path, tmp_path: Path,
                                                        figures) -> None:
    damage, expected = DAMAGE[case]
    run_dir = copy_run(whole_run, tmp_path / "run")
    damage(run_dir / "journal.sqlite")
    codes = []
    for command in (["status", str(run_dir)], ["status", str(run_dir), "--format", "json"],
                    ["resume", str(run_dir), "--no-progress"], ["cutover", str(run_dir), "--all", "--no-resume"]):
        code, output = in_process(*command)
        if case in IN_STEPS_ONLY and command == ["status", str(run_dir)]:
            assert code == 0 and output.count("db-0") == INSTANCES, output[-2000:]
            continue
        assert_unusable(code, output, f"{case}: {command[0]}")
        assert expected in output, output
        codes.append(code)
    figures.update({"case": case, "commands": 4, "exit_codes": sorted(set(codes))})


def test_a_late_structure_check_still_gives_the_verdict(whole_run: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """``status --format json`` checks the journal in a thread while it reads, and checks the
    steps' types in a second thread before reading them. On a loaded machine the second can
    end first: with the steps table dropped it fails with "no such table: steps", and that
    was the verdict (a flaky CI failure of the case above). Here the open's check waits until
    the steps' check has failed, as a descheduled thread would: the structure check's finding
    must still be the one shown, as by every other command."""
    run_dir = copy_run(whole_run, tmp_path / "run")
    sql("DROP TABLE steps")(run_dir / "journal.sqlite")
    steps_checked = threading.Event()
    check, check_types = journal_file.check, journal_file.check_types

    def late_check(*args: Any, **kwargs: Any) -> int:
        assert steps_checked.wait(30), "the steps' types were never checked"
        return check(*args, **kwargs)

    def signalling_check_types(*args: Any, **kwargs: Any) -> None:
        try:
            check_types(*args, **kwargs)
        finally:
            steps_checked.set()

    monkeypatch.setattr(journal_file, "check", late_check)
    monkeypatch.setattr(journal_file, "check_types", signalling_check_types)
    code, output = in_process("status", str(run_dir), "--format", "json")
    assert steps_checked.is_set()
    assert_unusable(code, output, "status --format json, structure check last")
    assert "the table steps is missing" in output, output


def test_the_first_started_check_gives_the_verdict(tmp_path: Path) -> None:
    """``CheckMeanwhile.verdict`` raises what the first check started found, not what the
    first thread to end found."""
    journal = tmp_path / "journal.sqlite"
    sqlite3.connect(journal).close()
    meanwhile = journal_file.CheckMeanwhile(lambda: sqlite3.connect(journal, check_same_thread=False), journal)
    second_failed = threading.Event()

    def first(db: sqlite3.Connection) -> None:
        assert second_failed.wait(30)
        raise ValueError("first")

    def second(db: sqlite3.Connection) -> None:
        second_failed.set()
        raise ValueError("second")

    meanwhile.start(first)
    meanwhile.start(second)
    with pytest.raises(ValueError, match="first"):
        meanwhile.verdict()


def test_the_real_cli_refuses_a_damaged_journal_in_one_line(whole_run: Path, tmp_path: Path) -> None:
    run_dir = copy_run(whole_run, tmp_path / "run")
    garble_page(2)(run_dir / "journal.sqlite")
    done = batchmig("status", str(run_dir), "--format", "json", cwd=tmp_path)
    assert_unusable(done.returncode, done.stdout + done.stderr, "subprocess status")


def test_randomly_garbled_journals_are_refused_or_read_whole(whole_run: Path, tmp_path: Path, figures) -> None:
    rng = random.Random(20240607)
    size = (whole_run / "journal.sqlite").stat().st_size
    outcomes = {"refused": 0, "whole": 0}
    for number in range(RANDOM_GARBLES):
        run_dir = copy_run(whole_run, tmp_path / f"run-{number}")
        offset, length = rng.randrange(size), rng.choice([1, 8, 64, 512, PAGE])
        with open(run_dir / "journal.sqlite", "r+b") as handle:
            handle.seek(offset)
            handle.write(rng.randbytes(length))
        code, output = in_process("status", str(run_dir), "--format", "json")
        if code == 5:
            assert_unusable(code, output, f"garbled {length} bytes at {offset}")
            outcomes["refused"] += 1
        else:
            assert code == 0, f"garbled {length} bytes at {offset}: exit {code}\n{output[-2000:]}"
            assert len(json.loads(output)["instances"]) == INSTANCES, f"garbled {length} bytes at {offset}"
            outcomes["whole"] += 1
    figures.update({"garbled_journals": RANDOM_GARBLES, **outcomes, "other_exit_codes": 0})


def test_an_unversioned_journal_is_read_and_migrated_on_resume(whole_run: Path, tmp_path: Path) -> None:
    run_dir = copy_run(whole_run, tmp_path / "run")
    sql("ALTER TABLE instances DROP COLUMN tags; ALTER TABLE instances DROP COLUMN cutover; "  # as they were
        "PRAGMA user_version = 0")(run_dir / "journal.sqlite")
    code, output = in_process("status", str(run_dir), "--format", "json")
    assert code == 0 and len(json.loads(output)["instances"]) == INSTANCES
    assert sqlite3.connect(run_dir / "journal.sqlite").execute("PRAGMA user_version").fetchone() == (0,)
    resumed = batchmig("resume", str(run_dir), "--no-progress", cwd=tmp_path)
    assert resumed.returncode == 1, resumed.stderr[-2000:]  # the planned failures stay failed
    assert sqlite3.connect(run_dir / "journal.sqlite").execute("PRAGMA user_version").fetchone() == (2,)


# ------------------------------------------------------------------ read-only


def commit_to_wal_only(journal: Path) -> None:
    """Leave a commit in the WAL (and the WAL index), as a killed runner does."""
    script = (
        "import os, sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute('PRAGMA wal_autocheckpoint = 0')\n"
        "db.execute(\"UPDATE instances SET status = 'interrupted' WHERE id = 'db-001'\")\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(journal)], check=True)
    assert (journal.parent / "journal.sqlite-wal").stat().st_size > 0


def fingerprint(run_dir: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run_dir.iterdir()) if p.is_file()}


def read_only_mount(run_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``batchmig ARGS`` with ``run_dir`` bind-mounted read-only over itself, in a private mount namespace."""
    command = " ".join(f"'{a}'" for a in [sys.executable, str(TESTCLOUD_CLI), *args])
    return subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind -o ro '{run_dir}' '{run_dir}' && {command}"],
                          capture_output=True, text=True, cwd=run_dir.parent, timeout=120)


def permission_bits(run_dir: Path, *args: str, directory: bool = True) -> subprocess.CompletedProcess[str]:
    """``batchmig ARGS`` as root without CAP_DAC_OVERRIDE, with the journal (and the directory) read-only."""
    for path in run_dir.iterdir():
        path.chmod(0o400)
    if directory:
        run_dir.chmod(0o500)
    try:
        return batchmig(*args, cwd=run_dir.parent, prefix=WITHOUT_DAC)
    finally:
        run_dir.chmod(0o700)
        for path in run_dir.iterdir():
            path.chmod(0o600)


def _can(command: list[str]) -> bool:
    return os.geteuid() == 0 and shutil.which(command[0]) is not None and subprocess.run(
        command, capture_output=True).returncode == 0


MECHANISMS = {
    "read-only bind mount": (["unshare", "-m", "true"], read_only_mount),
    "read-only directory and file": (["setpriv", "--bounding-set", "-dac_override", "true"], permission_bits),
    "read-only file": (["setpriv", "--bounding-set", "-dac_override", "true"],
                       lambda run_dir, *args: permission_bits(run_dir, *args, directory=False)),
}


@pytest.mark.parametrize("wal", ["checkpointed", "commits only in the WAL", "WAL without its index"])
@pytest.mark.parametrize("mechanism", list(MECHANISMS))
def test_status_reads_a_read_only_run_without_writing(mechanism: str, wal: str, whole_run: Path,
                                                      tmp_path: Path, figures) -> None:
    probe, run_read_only = MECHANISMS[mechanism]
    if not _can(probe):
        pytest.skip(f"{mechanism} needs root with {probe[0]}")
    run_dir = copy_run(whole_run, tmp_path / "run")
    if wal != "checkpointed":
        commit_to_wal_only(run_dir / "journal.sqlite")
    if wal == "WAL without its index":
        (run_dir / "journal.sqlite-shm").unlink()
    before = fingerprint(run_dir)
    text = run_read_only(run_dir, "status", str(run_dir))
    data = run_read_only(run_dir, "status", str(run_dir), "--format", "json")
    for done in (text, data):
        assert done.returncode == 0, f"{mechanism}, {wal}: exit {done.returncode}\n{done.stderr[-2000:]}"
        assert "Traceback" not in done.stderr and "error" not in done.stderr, done.stderr
    document = json.loads(data.stdout)
    statuses = {entry["id"]: entry["status"] for entry in document["instances"]}
    assert len(statuses) == INSTANCES
    assert statuses["db-001"] == ("succeeded" if wal == "checkpointed" else "interrupted")
    assert document["run"] in text.stdout and "db-001" in text.stdout
    after = fingerprint(run_dir)  # (SQLite may add its empty -wal/-shm where the directory is writable)
    assert {name: after.get(name) for name in before} == before, "status changed a file of a read-only run"
    figures.update({"mechanism": mechanism, "wal": wal, "exit": 0, "instances_listed": len(statuses)})
