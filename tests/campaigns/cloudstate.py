"""Does the run's journal agree with the emulated cloud? (crash and fault campaigns)

Three independent checks of ``batchmig status RUN --format json`` against the
sandbox, none of which trusts the runner's own bookkeeping:

* every remote id the journal holds (``*_id`` in ``remote_ids``) exists in the
  sandbox's ``state.sqlite``;
* the cloud holds exactly as many migrations/jobs as the plan needs — an orphan
  created by a repeated create shows up here even if the audit missed it;
* asked through the provider's own poller, the emulator reports each instance's
  last waited-on job finished.

The third check asks the sandbox itself, after the campaign has read the audit log, so
its requests never enter the campaign's figures; it also paces itself (``PACE``) so it
draws no throttle on its own: a throttled look-up only slows the check down, but the
sandbox's caps may have been lowered under the plan's (the cloud-fault campaign).
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

from batchmig.engine.pipeline import Pipeline, ReadCaller
from batchmig.engine.runner import instance_view
from batchmig.engine.transport import HttpTransport
from batchmig.operations import build_connections, rate_table
from batchmig.plan.loader import load_plan
from batchmig.plugin import WaitItem, WaitStep
from batchmig.ratelimit import RateLimiter
from batchmig.registry import load_registry

PACE = 0.5
"""The checker's rate, as a share of the plan's for each key; it starts a window after the
run's last request, so the two never share a sliding second."""


def sandbox_state(sandbox_dir: Path) -> dict[tuple[str, str], set[str]]:
    """(emulator, kind) -> the keys the emulated cloud holds."""
    db = sqlite3.connect(f"file:{sandbox_dir / 'state.sqlite'}?mode=ro", uri=True)
    try:
        result: dict[tuple[str, str], set[str]] = {}
        for emulator, kind, key in db.execute("SELECT emulator, kind, key FROM state"):
            result.setdefault((emulator, kind), set()).add(key)
        return result
    finally:
        db.close()


def missing_remote_ids(status: Mapping[str, Any], state: Mapping[tuple[str, str], set[str]]) -> list[str]:
    """Journaled remote ids the cloud does not know, as 'instance: key=value'."""
    by_emulator: dict[str, set[str]] = {}
    for (emulator, _), keys in state.items():
        bucket = by_emulator.setdefault(emulator, set())
        for key in keys:
            bucket.add(key)
            bucket.add(key.rsplit("/", 1)[-1])  # Tencent keys are region/id
    missing = []
    for entry in status["instances"]:
        for key, value in (entry.get("remote_ids") or {}).items():
            if key.endswith("_id") and isinstance(value, str) and value not in by_emulator.get(entry["provider"], ()):
                missing.append(f"{entry['id']}: {key}={value}")
    return missing


def resource_counts(state: Mapping[tuple[str, str], set[str]]) -> Counter[str]:
    """How many migrations/jobs each emulator created."""
    kinds = {("tencent-sqlserver", "migration"), ("tencent-sqlserver", "incremental"),
             ("tencent-sqlserver", "backup"), ("tencent-dts", "job"), ("huawei-drs", "job"),
             ("alibaba-rds-sqlserver", "task")}
    return Counter({f"{emulator}/{kind}": len(keys) for (emulator, kind), keys in state.items()
                    if (emulator, kind) in kinds})


def expected_counts(kinds: Mapping[str, int]) -> Counter[str]:
    """What a fleet of ``fleet.kinds_of(n)`` must leave in the cloud: one of each, no more."""
    return Counter({
        "tencent-sqlserver/migration": kinds["tc-full"] + kinds["tc-full-log"],
        "tencent-sqlserver/incremental": 2 * kinds["tc-full-log"],
        "tencent-sqlserver/backup": kinds["tc-backup"],
        "tencent-dts/job": kinds["dts-full"] + kinds["dts-incremental"],
        "huawei-drs/job": kinds["drs-obs"] + 3 * kinds["drs-chain"] + kinds["drs-rds"],
        "alibaba-rds-sqlserver/task": kinds["rds-oss"] + 3 * kinds["rds-chain"],
    })


def unfinished_in_cloud(plan_path: Path, status: Mapping[str, Any], sandbox_dir: Path) -> dict[str, str]:
    """Instances whose last waited-on job the emulator does not report succeeded."""
    return anyio.run(_poll_all, plan_path, status, sandbox_dir)


async def _poll_all(plan_path: Path, status: Mapping[str, Any], sandbox_dir: Path) -> dict[str, str]:
    registry = load_registry()
    plan = load_plan(str(plan_path), registry)
    endpoints = json.loads((sandbox_dir / "endpoints.json").read_text())
    found: dict[str, str] = {}
    async with HttpTransport(30) as transport:
        connections = build_connections(plan, registry, transport.send, endpoints)
        rate_for = rate_table(plan, registry, connections)
        pipeline = Pipeline(connections, RateLimiter(lambda key: max(1.0, PACE * rate_for(key))), transport.send,
                            read_only=True)
        await anyio.sleep(1.2)  # the run's last requests leave every sliding second first
        slots = anyio.Semaphore(20)

        async def poll_one(entry: Mapping[str, Any]) -> None:
            pinst = plan.instance(entry["id"])
            view = instance_view(pinst, status["run"])
            steps = registry.provider(pinst.provider).steps(view)
            last = [step for step in steps if isinstance(step, WaitStep)][-1]
            item = WaitItem(view, entry["remote_ids"], last.context)
            async with slots:
                answer = await last.poller.poll(ReadCaller(pipeline, pinst.connection), [item])
            if answer[0].state != "succeeded":
                found[entry["id"]] = f"{last.name}: {answer[0].state} {answer[0].message}"

        async with anyio.create_task_group() as tg:
            for entry in status["instances"]:
                if entry["status"] == "succeeded":
                    tg.start_soon(poll_one, entry)
    return found
