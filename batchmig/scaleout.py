"""Runs in the shared PostgreSQL store: start, join, status, cutover, runners.

``batchmig run PLAN --store URL`` records the run (plan text, instances) in the store
and works on it as its first runner; ``batchmig join RUN --store URL`` adds a runner
on any machine. Each runner keeps a local run directory for what is its own —
``events.jsonl``, ``report.json`` (the whole run, from the store) and a copy of the
plan — while the journal lives in the store. Credentials come from each runner's own
environment, as the plan references them; they are never written to the store.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from batchmig import __version__, eventloop, logs
from batchmig.engine.pipeline import Pipeline
from batchmig.engine.shared import SharedEngine, default_lease_ttl, lease_margin
from batchmig.engine.transport import HttpTransport
from batchmig.errors import JournalError, UsageError
from batchmig.plan.loader import load_plan
from batchmig.plan.model import Plan
from batchmig.private_files import make_private_dir
from batchmig.progress import LiveState, show_progress
from batchmig.registry import Registry
from batchmig.report import (
    CallSummary,
    InvocationRecord,
    RunReport,
    build_run_report,
    write_report,
)
from batchmig.report.build import ProcessFigures
from batchmig.report.model import moment
from batchmig.rundir import make_run_id
from batchmig.sharedlimit import LIMITER_MODES, make_shared_limiter
from batchmig.store.fence import Fence
from batchmig.store.postgres import (
    PostgresStore,
    RunnerRow,
    SharedJournal,
    StoreRefused,
    StoreUnavailable,
    redact_url,
)

if TYPE_CHECKING:
    from batchmig.operations import StopSignals

log = structlog.get_logger("batchmig.run")


@dataclass
class StoreOptions:
    url: str
    limiter: str = "shares"
    lease_ttl: float | None = None
    patience: float = 300.0
    """Seconds a runner waits for an unreachable store before it stops (exit 3)."""

    def __post_init__(self) -> None:
        if self.limiter not in LIMITER_MODES:
            raise UsageError(f"--limiter {self.limiter}: choose one of {', '.join(LIMITER_MODES)}")


def open_store(url: str) -> PostgresStore:
    store = PostgresStore(url)
    try:
        store.check_schema()
    except BaseException:
        store.close()
        raise
    return store


def _private_dir(path: Path) -> None:
    try:
        make_private_dir(path)
    except OSError as exc:
        raise JournalError(f"cannot create the run directory {path}: {exc.strerror}") from exc


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def start_shared_run(plan_path: str, registry: Registry, options: Any, store_options: StoreOptions) -> Any:
    """``batchmig run PLAN --store URL``: record the run, then work on it."""
    if options.sandbox:
        raise UsageError("--sandbox starts a private emulator in each runner",
                         "with --store, start one with `batchmig sandbox serve --dir DIR` and pass --sandbox-at DIR")
    plan = load_plan(plan_path, registry)
    store = open_store(store_options.url)
    try:
        run_id = make_run_id(plan)
        store.create_run(run_id, plan, {
            "run_id": run_id, "plan_path": os.path.abspath(plan_path), "plan_sha256": plan.sha256,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "sandbox_at": str(options.sandbox_at.resolve()) if options.sandbox_at else "",
        })
        log.info("run.created", run=run_id, store=redact_url(store_options.url))
        return _run_shared(store, plan, registry, run_id, options, store_options, "run")
    finally:
        store.close()


def join_shared_run(reference: str, registry: Registry, options: Any, store_options: StoreOptions) -> Any:
    """``batchmig join RUN --store URL`` (and ``resume``): one more runner on a stored run."""
    store = open_store(store_options.url)
    try:
        run_id = store.find_run(reference)
        text, sha = store.plan_text(run_id)
        run_dir = options.run_dir or options.runs_root / run_id
        _private_dir(run_dir)
        _write_private(run_dir / "plan.yaml", text)
        plan = load_plan(str(run_dir / "plan.yaml"), registry)
        if plan.sha256 != sha:
            raise UsageError(f"the plan stored for run {run_id} does not load to the same plan here")
        meta = store.meta(run_id)
        options.sandbox_at = Path(meta["sandbox_at"]) if meta.get("sandbox_at") else None
        return _run_shared(store, plan, registry, run_id, options, store_options, "join")
    finally:
        store.close()


def _run_shared(
    store: PostgresStore, plan: Plan, registry: Registry, run_id: str, options: Any, store_options: StoreOptions,
    command: str,
) -> Any:
    run_dir = options.run_dir or options.runs_root / run_id
    _private_dir(run_dir)
    if not (run_dir / "plan.yaml").exists():
        _write_private(run_dir / "plan.yaml", plan.text)
    from batchmig.operations import stop_signals

    try:
        with stop_signals(options) as stop:
            return eventloop.run(_execute_shared, store, plan, registry, run_id, run_dir, options, store_options,
                                 command, stop)
    finally:
        logs.close_event_file()


def runner_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


async def _execute_shared(
    store: PostgresStore, plan: Plan, registry: Registry, run_id: str, run_dir: Path, options: Any,
    store_options: StoreOptions, command: str, stop: StopSignals,
) -> Any:
    from batchmig.monitor import process_figures
    from batchmig.operations import (
        RunOutcome,
        _first_leaf,
        build_connections,
        exit_code,
        rate_table,
        retry_policy,
        sandbox_endpoints,
        sandbox_time_scale,
    )

    logs.open_event_file(run_dir / "events.jsonl")
    runner = runner_id()
    structlog.contextvars.bind_contextvars(run=run_id, runner=runner)
    call_timeout = plan.document.run.call_timeout
    margin = lease_margin(call_timeout)
    ttl = store_options.lease_ttl or default_lease_ttl(call_timeout)
    if ttl < 2 * margin:
        raise UsageError(
            f"--lease-ttl {ttl:g}s is too short for the plan's call_timeout of {call_timeout:g}s",
            f"use at least {2 * margin:g}s: a runner stops sending one call timeout before its lease ends",
        )
    journal = SharedJournal(store, run_id, runner, ttl=ttl, margin=margin, patience=store_options.patience)
    await journal.open()
    started = time.monotonic()
    wall_started = time.time()
    limiter: Any = None
    try:
        await journal.register(socket.gethostname(), os.getpid(), __version__, store_options.limiter)
        async with contextlib.AsyncExitStack() as stack:
            endpoints, poll_scale = None, 1.0
            if options.sandbox_at:
                endpoints = sandbox_endpoints(options.sandbox_at)
                poll_scale = sandbox_time_scale(options.sandbox_at)
            ca_file = options.sandbox_at / "ca.pem" if options.sandbox_at else None
            transport = await stack.enter_async_context(
                HttpTransport(call_timeout, ca_file if ca_file and ca_file.exists() else None))
            connections = build_connections(plan, registry, transport.send, endpoints)
            limiter = make_shared_limiter(store_options.limiter, rate_table(plan, registry, connections), journal)
            fence = Fence(ttl, margin)
            pipeline = Pipeline(connections, limiter, transport.send, journal=journal, fence=fence,
                                retry=retry_policy(plan))
            live = LiveState() if options.progress else None
            engine = SharedEngine(plan, registry, pipeline, journal, run_id, fence=fence,
                                  wait_for_cutover=options.wait_for_cutover, poll_scale=poll_scale,
                                  **({"observer": live} if live else {}))
            try:
                async with anyio.create_task_group() as tg:
                    stop.attach(engine)
                    if live is not None:  # no ETA: other runners share the remaining work
                        tg.start_soon(show_progress, engine, pipeline, live)
                    await engine.run()
                    tg.cancel_scope.cancel()
            except BaseExceptionGroup as group:
                matched, _ = group.split(JournalError)
                if matched is None:
                    raise
                leaf = _first_leaf(matched)
                stopped = JournalError(str(leaf))
                when = "once what the store refused is fixed" if isinstance(leaf, StoreRefused) else \
                    "once the store is back"
                stopped.hint = f"{when}: batchmig join {run_id} --store ..."
                raise stopped from None
            finally:
                stop.detach()
    finally:
        with contextlib.suppress(Exception):
            await journal.unregister()
        if limiter is not None:
            await limiter.aclose()
        await journal.aclose()
    code_now = 3 if engine.stopping else 0
    ended = time.time()
    invocation = InvocationRecord(
        command, moment(wall_started), moment(ended), round(ended - wall_started, 3),
        socket.gethostname(), os.getpid(), __version__, CallSummary(**pipeline.stats.as_dict()), code_now,
        engine.stop_reason or None,
    )
    log.info("runner.finished", claimed=engine.claimed, taken_over=engine.taken_over,
             store_round_trips=journal.round_trips, store_round_trips_by=dict(sorted(journal.trips.items())),
             store_statements=journal.statements, limiter=store_options.limiter,
             seconds=round(time.monotonic() - started, 3))
    report = await _final_report(store, run_id, plan, process_figures(limiter, engine, invocation),
                                 store_options.patience)
    try:
        write_report(run_dir / "report.json", report)
    except OSError as exc:
        raise JournalError(f"run {run_id}: cannot write {run_dir / 'report.json'}: {exc.strerror or exc}") from None
    statuses = [instance.status for instance in report.instances]
    return RunOutcome(run_id, run_dir, exit_code(statuses, interrupted=engine.stopping), report)


REPORT_RETRY_SECONDS = 1.0


async def _final_report(store: PostgresStore, run_id: str, plan: Plan, figures: ProcessFigures,
                        patience: float) -> RunReport:
    """The whole run's report, read from the store once this runner's work is done.

    The store may be down for a moment right then (a restart, a failover): the runner
    waits for it as it does mid-run, up to its patience, rather than ending a finished
    run with "store unreachable" (seen in the scale-out campaign, whose store outage can
    fall on a runner's last seconds)."""
    give_up = time.monotonic() + patience
    told = False
    while True:
        try:
            return build_run_report(store.view(run_id), plan=plan, figures=figures)
        except StoreUnavailable as exc:
            if time.monotonic() > give_up:
                raise
            if not told:
                log.warning("store.unreachable", doing="reading the run's report", error=str(exc))
                told = True
        await anyio.sleep(REPORT_RETRY_SECONDS)


# ---------------------------------------------------------------- operations


def shared_status(reference: str, url: str, active_within: float = 60.0) -> tuple[RunReport, int]:
    """The whole run's report from the store, and how many runners are alive."""
    with open_store(url) as store:
        run_id = store.find_run(reference)
        live = store.active_runners(run_id, active_within)
        return build_run_report(store.view(run_id), active=live > 0), live


def shared_cutover(reference: str, url: str, selectors: list[str], select_all: bool) -> tuple[str, list[str], int]:
    """Release manual cutovers in the store; returns (run id, released, live runners)."""
    import fnmatch

    with open_store(url) as store:
        run_id = store.find_run(reference)
        records = store.instances(run_id)
        if select_all:
            chosen = [i for i, r in records.items() if r.status not in ("succeeded", "failed", "skipped")]
        else:
            chosen = [i for i in records if any(fnmatch.fnmatchcase(i, pattern) for pattern in selectors)]
            unknown = [p for p in selectors if not any(fnmatch.fnmatchcase(i, p) for i in records)]
            if unknown:
                raise UsageError(f"no instance matches {', '.join(unknown)}")
        store.view(run_id).release_cutovers({iid: records[iid].status for iid in chosen},
                                            selection=" ".join(selectors) or "--all")
        return run_id, chosen, store.active_runners(run_id, 60.0)


def list_runners(reference: str, url: str) -> tuple[str, list[RunnerRow]]:
    with open_store(url) as store:
        run_id = store.find_run(reference)
        return run_id, store.runners(run_id)


def store_migrate(url: str, *, create: bool) -> tuple[int | None, int]:
    with PostgresStore(url) as store:
        return store.migrate(create=create)


def runner_rows_json(rows: list[RunnerRow]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(row) for row in rows]

