"""A runner whose work is done reads the run's report from the store: a store that is down
right then (a restart, a failover) is waited for up to the runner's patience, as mid-run."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from batchmig import scaleout
from batchmig.journal import Journal
from batchmig.registry import Registry
from batchmig.store.postgres import StoreUnavailable
from batchmig.testing import run_plan

PLAN = """\
version: 1
providers:
  tc: {type: testcloud, region: eu-1}
defaults: {provider: tc}
instances: [{id: a}, {id: b}]
"""


class _StoreDownFor:
    """A store whose reads fail as unreachable ``outages`` times, then read a real run's journal.

    Standing in for the PostgreSQL store only in when it answers: stopping the shared test
    server would take it from every other test running with it."""

    def __init__(self, journal: Journal, outages: int) -> None:
        self.journal = journal
        self.outages = outages
        self.reads = 0

    def view(self, run_id: str) -> Journal:
        self.reads += 1
        if self.reads <= self.outages:
            raise StoreUnavailable("the store postgresql://x is unreachable: connection refused")
        return self.journal


@pytest.fixture
def finished(plan_file, registry: Registry, tmp_path: Path) -> Journal:
    outcome = run_plan(plan_file(PLAN), registry, tmp_path).outcome
    return Journal.open(outcome.run_dir / "journal.sqlite", read_only=True)


@pytest.mark.anyio
async def test_the_report_waits_for_a_store_that_is_down_for_a_moment(finished: Journal, monkeypatch) -> None:
    monkeypatch.setattr(scaleout, "REPORT_RETRY_SECONDS", 0.01)
    store = _StoreDownFor(finished, outages=3)
    report = await scaleout._final_report(store, "run", None, None, patience=30.0)  # type: ignore[arg-type]
    assert store.reads == 4 and {i.id: i.status for i in report.instances} == {"a": "succeeded", "b": "succeeded"}


@pytest.mark.anyio
async def test_past_its_patience_the_runner_stops_resumable(finished: Journal, monkeypatch) -> None:
    monkeypatch.setattr(scaleout, "REPORT_RETRY_SECONDS", 0.01)
    store = _StoreDownFor(finished, outages=10**6)
    with anyio.fail_after(10), pytest.raises(StoreUnavailable, match="unreachable"):
        await scaleout._final_report(store, "run", None, None, patience=0.05)  # type: ignore[arg-type]
    assert store.reads > 1
