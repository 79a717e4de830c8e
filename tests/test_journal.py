"""The journal: private, durable intents, group commits, clear failure."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

import anyio
import pytest

from batchmig import journal as journal_module
from batchmig.errors import Failure, JournalError
from batchmig.journal import Journal, PlannedRow

BOTH_MODES = pytest.mark.parametrize("durable", [False, True], ids=["loop", "durable"])
"""The event loop commits (the default), or the writer thread does (``--durable``)."""


@BOTH_MODES
def test_intents_outcomes_and_group_commits(tmp_path: Path, durable: bool) -> None:
    journal = Journal.open(tmp_path / "run" / "journal.sqlite", create=True, durable=durable)
    assert stat.S_IMODE(os.stat(tmp_path / "run" / "journal.sqlite").st_mode) == 0o600
    journal.add_instances([PlannedRow(f"i{n}", n, "p", "w") for n in range(200)])
    journal.start_writer()

    async def main() -> list[int]:
        ids: list[int] = []

        async def one(n: int) -> None:
            call_id = await journal.intent(f"i{n}", 0, "Create", f"name-{n}")
            ids.append(call_id)
            if n % 2:  # answered, and the step moved on with it
                journal.outcome(call_id, "done", outputs={"Id": n}, request_id=f"r{n}")
                journal.set_instance(f"i{n}", "running", step=1, step_name="start", outputs={"Id": n})
            else:  # killed before the answer
                journal.set_instance(f"i{n}", "running", step=0, step_name="create")

        async with anyio.create_task_group() as tg:
            for n in range(200):
                tg.start_soon(one, n)
        await journal.flush()
        return ids

    ids = anyio.run(main)
    assert len(set(ids)) == 200
    assert journal.commits < 100, "concurrent intents must share commits"
    unresolved = journal.unresolved_calls()
    assert len(unresolved) == 100 and all(len(v) == 1 for v in unresolved.values())
    records = journal.instances()
    assert records["i7"].outputs == {"Id": 7} and records["i7"].step == 1
    journal.close()


@BOTH_MODES
def test_writes_nobody_waits_for_join_the_next_commit_somebody_waits_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durable: bool
) -> None:
    """Outcomes, steps and instance changes wait for the next intent's commit (a commit
    costs the writer more than its rows), or ``UNWAITED_COMMIT_SECONDS`` at the latest."""
    monkeypatch.setattr(journal_module, "UNWAITED_COMMIT_SECONDS", 600.0)
    path = tmp_path / "journal.sqlite"
    journal = Journal.open(path, create=True, durable=durable)
    journal.add_instances([PlannedRow(f"i{n}", n, "p", "w") for n in range(3)])
    journal.start_writer()
    reader = sqlite3.connect(path)

    def steps_seen() -> int:
        return int(reader.execute("SELECT count(*) FROM steps").fetchone()[0])

    async def main() -> None:
        for n in range(3):
            journal.step_finished(f"i{n}", 0, "create", 1.0, "succeeded")
            journal.set_instance(f"i{n}", "running", step=1, step_name="start")
        await anyio.sleep(0.1)  # the writer has long had them, and lingered
        assert journal.commits == 0 and steps_seen() == 0
        await journal.intent("i0", 1, "Start", "i0")
        assert journal.commits == 1 and steps_seen() == 3  # all of them, with the intent
        monkeypatch.setattr(journal_module, "UNWAITED_COMMIT_SECONDS", 0.05)
        journal.step_finished("i1", 1, "start", 2.0, "succeeded")  # nobody waits, nobody comes
        with anyio.fail_after(30):
            while steps_seen() < 4:
                await anyio.sleep(0.02)

    anyio.run(main)
    assert journal.instances()["i2"].step == 1
    reader.close()
    journal.close()


def test_a_step_reconciles_unless_its_calls_were_refused(tmp_path: Path) -> None:
    """Unresolved: a call whose effect is not known, or one that took effect while its
    instance still stands at its step (journal.UNRESOLVED_CALL_SQL)."""
    journal = Journal.open(tmp_path / "journal.sqlite", create=True)
    states = {"sent": None, "timed-out": "unknown", "answered": "done", "throttled": "throttled", "refused": "failed"}
    journal.add_instances([PlannedRow(name, n, "p", "w") for n, name in enumerate([*states, "moved-on"])])
    journal.start_writer()

    async def main() -> None:
        for name, state in states.items():
            journal.set_instance(name, "running", step=2, step_name="start")
            call_id = await journal.intent(name, 2, "Start", name)
            if state:
                journal.outcome(call_id, state)
        journal.set_instance("moved-on", "running", step=3, step_name="wait")
        await journal.intent("moved-on", 2, "Start", "moved-on")  # a past step's call, never answered
        await journal.flush()

    anyio.run(main)
    unresolved = journal.unresolved_calls()
    assert sorted(unresolved) == ["answered", "moved-on", "sent", "timed-out"]
    assert [call.step for call in unresolved["moved-on"]] == [2]  # the engine takes only its current step's
    journal.close()


def test_missing_journal_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="no journal"):
        Journal.open(tmp_path / "nothing.sqlite")


@BOTH_MODES
def test_a_failed_write_surfaces_as_journal_error(tmp_path: Path, durable: bool) -> None:
    journal = Journal.open(tmp_path / "j.sqlite", create=True, durable=durable)
    journal.start_writer()

    async def main() -> None:
        journal.set_instance("x", "running")  # fine: no such row, an UPDATE of nothing
        await journal.flush()
        journal._db.execute("PRAGMA query_only=1")  # the disk "refuses" every write from now on
        with pytest.raises(JournalError, match="cannot write"):
            await journal.intent("x", 0, "Create", None)
        with pytest.raises(JournalError):
            journal.set_instance("x", "failed")

    anyio.run(main)
    journal.close()


def test_a_write_queued_while_a_commit_fails_fails_too(tmp_path: Path) -> None:
    """With ``--durable`` the writer thread may take a write queued while the commit before
    it was failing: that write is not committed, and whoever waits for it is told so
    (it used to wait for good)."""
    journal = Journal.open(tmp_path / "j.sqlite", create=True, durable=True)
    journal.start_writer()
    inside, fail = threading.Event(), threading.Event()

    def failing(db: sqlite3.Connection) -> None:
        inside.set()
        fail.wait(10)
        raise sqlite3.OperationalError("disk I/O error")

    async def main() -> None:
        first = asyncio.ensure_future(journal.read(failing))
        await anyio.to_thread.run_sync(inside.wait, 10)  # the writer thread is in the first commit
        second = asyncio.ensure_future(journal.intent("x", 0, "Create", None))
        await asyncio.sleep(0)  # queued behind it
        fail.set()
        with pytest.raises(JournalError, match="cannot write"):
            await first
        with anyio.fail_after(10), pytest.raises(JournalError, match="cannot write"):
            await second

    anyio.run(main, backend="asyncio")
    journal.close()
    assert sqlite3.connect(tmp_path / "j.sqlite").execute("SELECT count(*) FROM calls").fetchone() == (0,)


@BOTH_MODES
def test_the_writes_of_one_commit_keep_each_rows_order(tmp_path: Path, durable: bool) -> None:
    """The writer runs each statement's rows of a batch together: an instance's later
    change still wins, one that leaves a column out keeps it, and a reconcile's verdict
    queued right after an outcome keeps that answer's request id and error."""
    journal = Journal.open(tmp_path / "journal.sqlite", create=True, durable=durable)
    journal.add_instances([PlannedRow(name, n, "p", "w") for n, name in enumerate(["a", "b"])])
    # queued before the writer starts: one batch
    journal.set_instance("a", "running", step=1, step_name="start", outputs={"Id": "x-1"})
    journal.step_finished("a", 0, "create", 1.0, "succeeded")
    journal.set_instance("b", "running", step=4, step_name="wait")
    journal.set_instance("a", "awaiting_cutover")
    journal.set_instance("b", "succeeded", step=5, step_name=None, outputs={"JobId": "j-1"})
    journal.start_writer()

    async def main() -> int:
        await journal.flush()
        call_id = await journal.intent("a", 1, "Start", "x-1")
        journal.outcome(call_id, "unknown", error=Failure("transient", "Timeout", "no answer"), request_id="r-1")
        journal.resolve("a", [call_id], "reconciled", {"Started": True})
        await journal.flush()
        return call_id

    call_id = anyio.run(main)
    records = journal.instances()
    assert (records["a"].status, records["a"].step, records["a"].step_name) == ("awaiting_cutover", 1, "start")
    assert records["a"].outputs == {"Id": "x-1"}
    assert (records["b"].status, records["b"].step, records["b"].step_name) == ("succeeded", 5, None)
    assert records["b"].outputs == {"JobId": "j-1"}
    assert [row[:3] for row in journal.steps()] == [("a", 0, "create")]
    row = journal._db.execute("SELECT state, outputs, request_id, error FROM calls WHERE id = ?", (call_id,)).fetchone()
    assert row[:3] == ("reconciled", '{"Started":true}', "r-1") and "no answer" in row[3]
    journal.close()


@BOTH_MODES
def test_a_read_in_a_commit_sees_the_writes_queued_before_it_and_none_after(tmp_path: Path, durable: bool) -> None:
    """Writes are grouped by statement as they are queued; a read (or a flush) queued
    between two writes of one statement still runs after the first and before the
    second, and an intent queued with them is settled by the same commit."""
    journal = Journal.open(tmp_path / "journal.sqlite", create=True, durable=durable)
    journal.add_instances([PlannedRow(name, n, "p", "w") for n, name in enumerate(["a", "b"])])
    journal.start_writer()

    def statuses(db: sqlite3.Connection) -> dict[str, str]:
        return dict(db.execute("SELECT id, status FROM instances").fetchall())

    async def main() -> tuple[dict[str, str], dict[str, str]]:
        journal.set_instance("a", "running", step=1, step_name="start")
        first = asyncio.ensure_future(journal.read(statuses))
        await asyncio.sleep(0)  # the read is queued behind the first change
        journal.set_instance("a", "succeeded", step=2, step_name=None)
        journal.set_instance("b", "running", step=1, step_name="start")
        second = asyncio.ensure_future(journal.read(statuses))
        await asyncio.sleep(0)  # and the second behind the next three
        await journal.intent("b", 1, "Start", "x-1")
        journal.set_instance("b", "failed")
        await journal.flush()
        return await first, await second

    first, second = anyio.run(main, backend="asyncio")
    assert first == {"a": "running", "b": "pending"}
    assert second == {"a": "succeeded", "b": "running"}
    assert [row[:4] for row in journal.calls()] == [("b", 1, "Start", "x-1")]
    assert {record.id: record.status for record in journal.instances().values()} == {"a": "succeeded", "b": "failed"}
    journal.close()


def test_call_ids_go_on_after_a_resume(tmp_path: Path) -> None:
    """The journal numbers calls itself (no id read back per insert): a resume goes on after the last."""
    path = tmp_path / "journal.sqlite"
    journal = Journal.open(path, create=True)
    journal.add_instances([PlannedRow("a", 0, "p", "w")])
    journal.write_meta({"run_id": "r"})
    first: list[int] = []

    async def intents(journal: Journal, ids: list[int]) -> None:
        journal.start_writer()
        for step in range(3):
            ids.append(await journal.intent("a", step, "Create", None))

    anyio.run(intents, journal, first)
    journal.close()
    again = Journal.open(path)
    later: list[int] = []
    anyio.run(intents, again, later)
    assert first == [1, 2, 3] and later == [4, 5, 6]
    assert [row[0] for row in again._db.execute("SELECT id FROM calls ORDER BY id")] == [1, 2, 3, 4, 5, 6]
    again.close()


def test_the_unused_calls_index_goes_and_its_calls_stay(tmp_path: Path) -> None:
    """Journals of earlier versions kept an index on calls (instance, step, state) that no
    read used and every intent and outcome updated: opened for writing, the journal
    drops it; a read-only open leaves the file as it is; the calls are read as before."""
    path = tmp_path / "journal.sqlite"
    journal = Journal.open(path, create=True)
    journal.add_instances([PlannedRow("a", 0, "p", "w")])
    journal.write_meta({"run_id": "r"})
    journal.start_writer()
    anyio.run(journal.intent, "a", 0, "Create", "name-a")
    journal.close()
    indexes = "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'calls_open'"
    db = sqlite3.connect(path)
    assert db.execute(indexes).fetchall() == []
    db.execute("CREATE INDEX calls_open ON calls (instance, step, state)")  # as an earlier batchmig left it
    db.commit()
    Journal.open(path, read_only=True).close()
    assert db.execute(indexes).fetchall() == [("calls_open",)]
    again = Journal.open(path)
    assert db.execute(indexes).fetchall() == []
    assert [(c.instance, c.action, c.state) for c in again.unresolved_calls()["a"]] == [("a", "Create", "intent")]
    again.close()
    db.close()


def test_a_synchronous_write_is_one_transaction(tmp_path: Path) -> None:
    """The plan's rows go in one commit, not one per row (the connection is in autocommit
    mode), and an operator request with the instances it applies to is all or nothing."""
    journal = Journal.open(tmp_path / "journal.sqlite", create=True)
    statements: list[str] = []
    journal._db.set_trace_callback(statements.append)
    journal.add_instances([PlannedRow(f"i{n}", n, "p", "w") for n in range(3)])
    assert statements[0] == "BEGIN IMMEDIATE" and statements[-1] == "COMMIT"
    assert statements.count("BEGIN IMMEDIATE") == 1
    journal._db.set_trace_callback(None)
    journal._db.execute("CREATE TRIGGER refuse BEFORE INSERT ON cutovers WHEN NEW.instance = 'i2' "
                        "BEGIN SELECT RAISE(ABORT, 'refused'); END")
    with pytest.raises(sqlite3.IntegrityError, match="refused"):
        journal.release_cutovers({"i0": "awaiting_cutover", "i2": "awaiting_cutover"})
    assert journal.requests() == [] and journal.released_cutovers() == set()
    journal.close()


@BOTH_MODES
def test_only_a_durable_journal_commits_off_the_event_loop(tmp_path: Path, durable: bool) -> None:
    """With ``--durable`` every commit syncs the disk, so a thread commits; by default the
    event loop commits itself (no hand-over to a thread), and its connection leaves the
    WAL's checkpoints (which sync the disk) to a thread of their own."""
    journal = Journal.open(tmp_path / "journal.sqlite", create=True, durable=durable)
    journal.add_instances([PlannedRow(f"i{n}", n, "p", "w") for n in range(20)])
    journal.start_writer()
    committed_in: set[int] = set()
    journal._db.set_trace_callback(lambda sql: committed_in.add(threading.get_ident()) if sql == "COMMIT" else None)

    async def main() -> int:
        async def one(n: int) -> None:
            call_id = await journal.intent(f"i{n}", 0, "Create", None)
            journal.outcome(call_id, "done", outputs={"Id": n})

        async with anyio.create_task_group() as tg:
            for n in range(20):
                tg.start_soon(one, n)
        await journal.flush()
        return threading.get_ident()

    loop_thread = anyio.run(main)
    journal._db.set_trace_callback(None)
    assert committed_in and (loop_thread in committed_in) is not durable
    autocheckpoint = journal._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    assert (autocheckpoint == 0) is not durable
    assert len(journal.calls()) == 20 and {row[4] for row in journal.calls()} == {"done"}
    journal.close()


def test_the_loops_commits_are_checkpointed_by_a_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop's connection never checkpoints; the checkpointer does, every
    ``CHECKPOINT_COMMITS`` commits: the database file alone (without its WAL) holds the
    calls before the journal is closed."""
    monkeypatch.setattr(journal_module, "CHECKPOINT_COMMITS", 2)
    path = tmp_path / "journal.sqlite"
    journal = Journal.open(path, create=True)
    journal.add_instances([PlannedRow("a", 0, "p", "w")])
    journal.start_writer()

    def calls_in_the_file_alone() -> int:
        copy = tmp_path / "copy.sqlite"
        shutil.copyfile(path, copy)  # no -wal beside it: only what was checkpointed
        db = sqlite3.connect(copy)
        try:
            return int(db.execute("SELECT count(*) FROM calls").fetchone()[0])
        except sqlite3.DatabaseError:  # copied while a checkpoint wrote it: look again
            return -1
        finally:
            db.close()
            copy.unlink()

    async def main() -> None:
        for step in range(4):
            await journal.intent("a", step, "Create", None)
        with anyio.fail_after(30):
            while calls_in_the_file_alone() < 4:
                await anyio.sleep(0.02)

    anyio.run(main)
    assert journal.commits == 4
    journal.close()


_KILLED_WRITER = """
import anyio, os, signal, sys
from pathlib import Path
from batchmig.journal import Journal, PlannedRow

journal = Journal.open(Path(sys.argv[1]), create=True)
journal.add_instances([PlannedRow(f"i{n}", n, "p", "w") for n in range(50)])
journal.write_meta({"run_id": "r"})
journal.start_writer()

async def one(n: int) -> None:
    call_id = await journal.intent(f"i{n}", 0, "Create", f"name-{n}")
    print(f"acknowledged {n} {call_id}", flush=True)  # the request may leave now
    journal.outcome(call_id, "done", outputs={"Id": n})  # nobody waits for these: maybe lost
    journal.step_finished(f"i{n}", 0, "create", 1.0, "succeeded")
    journal.set_instance(f"i{n}", "running", step=1, step_name="start", outputs={"Id": n})
    if n == 29:
        os.kill(os.getpid(), signal.SIGKILL)  # between two of the loop's commits

async def main() -> None:
    async with anyio.create_task_group() as tg:
        for n in range(50):
            tg.start_soon(one, n)
            await anyio.sleep(0.001)

anyio.run(main)
"""


def test_a_kill_between_the_loops_commits_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """SIGKILL with writes pending on the event loop: every intent whose ``intent`` returned
    is in the journal (no request left without its intent on disk), and a resume opens it
    whole; what nobody waited for may be lost, and reads as a call to reconcile."""
    path = tmp_path / "journal.sqlite"
    child = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(path)], capture_output=True, text=True,
                           timeout=120, check=False)
    assert child.returncode == -signal.SIGKILL, child.stderr
    acknowledged = {int(line.split()[2]): f"i{line.split()[1]}" for line in child.stdout.splitlines()}
    assert len(acknowledged) >= 30
    journal = Journal.open(path)  # for writing: integrity check and every row read
    journaled = {row[0]: row[1] for row in journal._db.execute("SELECT id, instance FROM calls")}
    assert journaled.items() >= acknowledged.items()
    unresolved = journal.unresolved_calls()
    for call_id, instance in acknowledged.items():  # lost outcome: reconciled, never sent again blindly
        state = journal._db.execute("SELECT state FROM calls WHERE id = ?", (call_id,)).fetchone()[0]
        assert state == "done" or call_id in [call.id for call in unresolved[instance]]
    journal.close()
