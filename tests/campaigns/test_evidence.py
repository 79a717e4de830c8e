"""The campaigns' evidence keeping: a failure names a copy of what the run saw; a pass keeps nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import evidence


def test_a_failed_campaign_keeps_its_directory_and_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(evidence, "KEEP_ROOT", tmp_path / "kept")
    work = tmp_path / "work"
    (work / "sandbox").mkdir(parents=True)
    (work / "sandbox" / "audit.jsonl").write_text('{"action": "CreateMigrateCheckJob"}\n')
    stopped = []
    with pytest.raises(AssertionError) as failed, evidence.kept_on_failure(work, "demo", lambda: stopped.append(1)):
        raise AssertionError("repeated effects")
    [kept] = (tmp_path / "kept").iterdir()
    assert stopped == [1]
    assert (kept / "sandbox" / "audit.jsonl").read_text() == '{"action": "CreateMigrateCheckJob"}\n'
    assert any(str(kept) in note for note in failed.value.__notes__)


def test_a_passing_campaign_keeps_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(evidence, "KEEP_ROOT", tmp_path / "kept")
    with evidence.kept_on_failure(tmp_path, "demo"):
        pass
    assert not (tmp_path / "kept").exists()


def test_a_store_that_cannot_be_read_is_said_in_the_dump(tmp_path: Path):
    evidence.dump_store("postgresql://nobody@127.0.0.1:1/none", tmp_path / "store")
    assert "OperationalError" in (tmp_path / "store" / "ERROR").read_text()


def test_the_store_and_who_waits_for_whom_are_dumped(postgres_dsn: str, tmp_path: Path):
    evidence.dump_store(postgres_dsn, tmp_path / "activity", evidence.ACTIVITY)
    assert not (tmp_path / "activity" / "ERROR").exists()
    assert "blocked_by" in (tmp_path / "activity" / "pg_stat_activity.csv").read_text().splitlines()[0]
    assert (tmp_path / "activity" / "pg_locks.csv").read_text().startswith("pid,locktype")
