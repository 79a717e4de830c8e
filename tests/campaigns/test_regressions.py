"""Regression tests for the defects the campaigns found (docs/reliability.md, "Defects").

Each is the smallest reproduction of one finding, fast and in-process where possible;
the campaigns themselves cover the same paths end to end.
"""

from __future__ import annotations

import io
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from batchmig import logs
from batchmig.errors import Failure, PlanError
from batchmig.journal import FAILED, Journal, PlannedRow
from batchmig.plan.loader import load_plan
from batchmig.plugin import register_secret
from batchmig.redaction import REDACTOR
from batchmig.registry import Registry
from batchmig.sandbox.config import SandboxConfig
from batchmig.testing import make_registry, run_plan
from batchmig.testing.testcloud import TestcloudPlugin


@pytest.fixture
def registry() -> Registry:
    return make_registry(TestcloudPlugin())


def problems(path: Path, registry: Registry) -> list[str]:
    with pytest.raises(PlanError) as caught:
        load_plan(str(path), registry)
    return [str(p) for p in caught.value.problems]


def test_deep_flow_nesting_is_refused_without_crashing_the_parser(tmp_path: Path, registry: Registry) -> None:
    """libyaml's composer recursed in C: 100,000 '[' killed the process with SIGSEGV."""
    path = tmp_path / "deep.yaml"
    path.write_text("version: 1\nname: " + "[" * 100_000 + "]" * 100_000 + "\n")
    found = problems(path, registry)
    assert found == [f"{path}:2:{7 + 100}: nested more than 100 levels deep"]


def test_unreadable_scalars_are_located_problems(tmp_path: Path, registry: Registry) -> None:
    """A 5,000-digit number or a date key like 2021-02-30 was an 'internal error' (ValueError)."""
    path = tmp_path / "values.yaml"
    path.write_text("version: 1\nrun: {max_concurrency: " + "9" * 5000 + "}\n2021-02-30: x\n")
    found = "\n".join(problems(path, registry))
    assert f"{path}:2:24 run.max_concurrency: cannot read this value: the number has too many digits" in found
    assert f"{path}:3:1: cannot read this key: day is out of range for month" in found


def test_a_null_document_is_a_located_problem(tmp_path: Path, registry: Registry) -> None:
    """`---\\n~` gave 'the plan has 0 problems' with exit 2 and no location."""
    path = tmp_path / "null.yaml"
    path.write_text("---\n~\n")
    assert problems(path, registry) == [f"{path}:2:1: the plan file has no content (the YAML document is null)"]


def test_the_journal_redacts_secrets_from_error_messages(tmp_path: Path) -> None:
    """A cloud quoting the request in its error put credential values into journal.sqlite."""
    secret = "journal-regression-secret-0042"
    REDACTOR.add(secret)
    journal = Journal.open(tmp_path / "journal.sqlite", create=True)
    journal.add_instances([PlannedRow("a", 0, "testcloud", "default")])
    journal.start_writer()
    journal.set_instance("a", FAILED, error=Failure("permanent", "InvalidParameter", f"bad SecretKey {secret}",
                                                    request_id=secret, step=secret))
    journal.close()
    raw = (tmp_path / "journal.sqlite").read_bytes() + (tmp_path / "journal.sqlite-wal").read_bytes() \
        if (tmp_path / "journal.sqlite-wal").exists() else (tmp_path / "journal.sqlite").read_bytes()
    assert secret.encode() not in raw
    db = sqlite3.connect(tmp_path / "journal.sqlite")
    (error,) = db.execute("SELECT error FROM instances").fetchone()
    db.close()
    assert json.loads(error)["message"] == "bad SecretKey ***" and json.loads(error)["step"] == "***"


def test_a_provider_can_register_a_secret_it_reads_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """DTS passwords read from `password_env` were unknown to the redactor."""
    register_secret("registered-by-a-provider-77")
    assert REDACTOR("echo: registered-by-a-provider-77") == "echo: ***"
    secret_refs = pytest.importorskip("batchmig_tencentcloud.secret_refs")
    monkeypatch.setenv("CAMPAIGN_REGRESSION_PW", "env-password-regression-31")
    assert secret_refs.resolve(secret_refs.env_ref("CAMPAIGN_REGRESSION_PW"), lambda name: None)
    assert REDACTOR("x env-password-regression-31 y") == "x *** y"


def test_a_failing_events_file_does_not_raise_into_the_caller(tmp_path: Path, capsys) -> None:
    """A full disk made every log call raise OSError inside the engine."""
    class Full(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data: Any) -> int:
            raise OSError(28, "No space left on device")

    logs._event_file = logs.EventFile(Full())
    try:
        event = logs._tee(None, "warning", {"event": "still.logged"})
        logs.flush_event_file()  # (events.jsonl is written through a buffer: the write fails here)
    finally:
        logs._event_file = None
    assert event == {"event": "still.logged"}
    assert "events.jsonl is no longer written: No space left on device" in capsys.readouterr().err


def test_a_hung_request_does_not_hold_the_sandbox_open(plan_file, registry: Registry, tmp_path: Path) -> None:
    """aiohttp's 60 s shutdown grace kept a run with a `hang` fault alive a minute after it finished."""
    plan = plan_file("version: 1\nproviders: {tc: {type: testcloud, region: eu-1}}\ndefaults: {provider: tc}\n"
                     "run: {call_timeout: 1s, retry: {base_delay: 0.05, max_delay: 0.2}}\n"
                     "instances: [{id: a, settings: {duration: 5}}]\n")
    began = time.monotonic()
    result = run_plan(plan, registry, tmp_path,
                      sandbox_config=SandboxConfig(600, faults=[{"kind": "hang", "seconds": 300, "count": 1}]))
    assert result.statuses == {"a": "succeeded"}
    assert time.monotonic() - began < 30
