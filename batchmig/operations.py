"""What the CLI's commands do, without the CLI: start, resume, dry-run, check, cutover (``status``: batchmig.runs).

A run lives in a run directory (default ``./.batchmig/runs/<run-id>/``, created 0700
with the runs root)::

    journal.sqlite   the journal (0600): plan, hash, instance states, call intents/outcomes
    plan.yaml        the plan as it was when the run started (0600)
    report.json      written at the end of every run or resume (0600)
    events.jsonl     every log event as a JSON line (0600)
    run.lock         held (flock) while a runner works on the run (0600)
    sandbox/         the emulated cloud's state and audit log, for runs with --sandbox

The run lock is taken before anything in the directory is written, so a second
runner that is refused has changed nothing. SIGINT and SIGTERM are caught from
before the run directory is touched until the report is written: each one asks
for the same graceful stop, at any moment, and never interrupts a write.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gc
import json
import os
import signal
import socket
import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import structlog

from batchmig import __version__, eventloop, logs
from batchmig.changes import apply_changes, plan_changes, record_plan
from batchmig.config import DEFAULT_RUNS_ROOT
from batchmig.credentials import ResolvedCredentials, resolve_credentials
from batchmig.engine.observer import Observers
from batchmig.engine.pipeline import Pipeline, RetryPolicy
from batchmig.engine.runner import Engine
from batchmig.engine.transport import HttpTransport
from batchmig.errors import BatchmigError, ExitCode, JournalError, PluginError, UsageError
from batchmig.estimate import run_timing
from batchmig.journal import (
    AWAITING_CUTOVER,
    FAILED,
    INTERRUPTED,
    NEEDS_ATTENTION,
    PENDING,
    RUNNING,
    SKIPPED,
    InvocationLedger,
    Journal,
)
from batchmig.monitor import RunMonitor
from batchmig.notify import webhooks
from batchmig.plan.loader import load_plan
from batchmig.plan.model import Plan
from batchmig.plugin import DEFAULT_RATE, Connection, ProviderConfig
from batchmig.private_files import make_private_dir, open_private
from batchmig.progress import EtaModel, LiveState, show_progress
from batchmig.ratelimit import LimitKey, RateLimiter
from batchmig.redaction import REDACTOR
from batchmig.registry import Registry
from batchmig.report import RunReport, build_run_report
from batchmig.report.build import collector_paused
from batchmig.report.formats import prepare as prepare_report
from batchmig.report.formats import write_run_files
from batchmig.report.rows import step_rows
from batchmig.rundir import find_run_dir, make_run_id, run_lock
from batchmig.sandbox.config import SandboxConfig

log = structlog.get_logger("batchmig.run")

HANDED_ON = ("html", "junit", "markdown", "csv")
"""The report files written beside report.json whenever a runner finishes or stops."""


@dataclass
class RunOptions:
    runs_root: Path = DEFAULT_RUNS_ROOT
    run_dir: Path | None = None
    run_id: str | None = None
    """The id a dry run printed (``--run-id``): the run then makes the calls it listed."""
    sandbox: bool = False
    sandbox_config: SandboxConfig = field(default_factory=SandboxConfig)
    sandbox_at: Path | None = None
    """The directory of a separately running ``batchmig sandbox serve`` (its endpoints.json)."""
    durable: bool = False
    wait_for_cutover: bool = False
    handle_signals: bool = True
    progress: bool = False
    metrics_textfiles: list[Path] = field(default_factory=list)
    """Where to write the run's Prometheus metrics too (node_exporter's textfile collector)."""


@dataclass
class RunOutcome:
    run_id: str
    run_dir: Path
    exit_code: ExitCode
    run_report: RunReport
    """Without its instances' steps when ``report_path`` is given (they are in the file)."""
    report_path: Path | None = None

    @functools.cached_property
    def report(self) -> dict[str, Any]:
        """The report as its JSON document (what ``report.json`` holds)."""
        if self.report_path is not None:
            document: dict[str, Any] = json.loads(self.report_path.read_bytes())
            return document
        return self.run_report.to_json_dict()

    @property
    def statuses(self) -> dict[str, str]:
        return {instance.id: instance.status for instance in self.run_report.instances}


# ------------------------------------------------------------- connections


def sandbox_endpoints(directory: Path) -> dict[str, str]:
    """The endpoints a running ``batchmig sandbox serve --dir DIRECTORY`` wrote."""
    try:
        return dict(json.loads((directory / "endpoints.json").read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise UsageError(f"no sandbox endpoints in {directory}: {exc}",
                         "start one with `batchmig sandbox serve --dir DIR`") from None


def sandbox_time_scale(directory: Path) -> float:
    try:
        return float(json.loads((directory / "sandbox.json").read_text(encoding="utf-8"))["time_scale"])
    except (OSError, ValueError, KeyError, TypeError):
        return 1.0


def build_connections(
    plan: Plan,
    registry: Registry,
    fetch: Any,
    sandbox: Mapping[str, str] | None,
    only: Collection[str] | None = None,
) -> dict[str, tuple[str, Connection]]:
    """Connections for the provider configurations the plan uses (or ``only`` those).

    ``sandbox`` maps emulator names to base URLs: then every provider talks to its
    emulator with the emulator's demo credentials instead of the plan's.
    """
    used = {inst.connection for inst in plan.instances if only is None or inst.connection in only}
    result: dict[str, tuple[str, Connection]] = {}
    for name in sorted(used):
        doc = plan.document.providers[name]
        kind = doc.type or name
        spec = registry.providers[kind]
        provider = spec.provider
        where = f"providers.{name}"
        endpoint = doc.endpoint
        if sandbox is not None:
            if spec.emulator is None or spec.emulator not in sandbox:
                raise UsageError(f"{where}: provider {kind} has no sandbox emulator installed")
            endpoint = sandbox[spec.emulator]
            # The emulator's demo keys replace the plan's; other fields (e.g. a database
            # password the provider passes on) are kept when they resolve.
            try:
                planned = resolve_credentials(doc.credentials, provider.credential_env, f"{where}.credentials")
            except UsageError:
                planned = ResolvedCredentials({})
            credentials = planned.overlaid(registry.emulators[spec.emulator].demo_credentials)
        else:
            if endpoint == "sandbox":
                raise UsageError(f"{where}: endpoint 'sandbox' needs `batchmig run --sandbox`")
            credentials = resolve_credentials(doc.credentials, provider.credential_env, f"{where}.credentials")
            options = plan.provider_options.get(name)
            missing = [f for f in provider.required_credential_fields(options) if credentials.secret(f) is None]
            if missing:
                hints = [f"{f} (${provider.credential_env[f]})" if f in provider.credential_env else f for f in missing]
                raise UsageError(
                    f"{where}: credentials not set: {', '.join(hints)}",
                    "export the environment variables, set credentials: in the plan, or use --sandbox",
                )
        config = ProviderConfig(name, kind, doc.region, endpoint, credentials, doc.account,
                                plan.provider_options.get(name))
        result[name] = (kind, provider.connect(config, fetch))
    return result


def rate_table(plan: Plan, registry: Registry, connections: Mapping[str, tuple[str, Connection]]) -> Any:
    overrides: dict[tuple[str, str, str], dict[str, float]] = {}
    for name, (kind, conn) in connections.items():
        overrides.setdefault((kind, conn.account, conn.region), {}).update(plan.document.providers[name].rate_limits)

    def rate_for(key: LimitKey) -> float:
        override = overrides.get((key.provider, key.account, key.region), {})
        defaults = registry.provider(key.provider).default_rate_limits
        return float(override.get(key.action, override.get("*", defaults.get(key.action, DEFAULT_RATE))))

    return rate_for


def retry_policy(plan: Plan) -> RetryPolicy:
    """The plan's ``run.retry`` settings, for a run and for its ``--check`` alike."""
    retry = plan.document.run.retry
    return RetryPolicy(retry.max_attempts, retry.budget, retry.base_delay, retry.max_delay,
                       settle_after_timeout=plan.document.run.call_timeout)


# --------------------------------------------------------------- running


def start_run(plan_path: str, registry: Registry, options: RunOptions) -> RunOutcome:
    with stop_signals(options) as stop:
        plan = _load_for_run(plan_path, registry)
        run_id = options.run_id or make_run_id(plan)
        run_dir = options.run_dir or options.runs_root / run_id
        if (run_dir / "journal.sqlite").exists():
            raise UsageError(f"{run_dir} already holds a run", "use `batchmig resume` to continue it")
        if options.run_id and (options.runs_root / run_id).exists():
            # A run id seeds the names of what a run creates: a second run under it would
            # find (and adopt) the first one's resources instead of creating its own.
            raise UsageError(f"run id {run_id} was used before ({options.runs_root / run_id})",
                             "dry-run again for a fresh id, or `batchmig resume` that run")
        if stop.reason:
            raise UsageError(f"{stop.reason} before the run was created: nothing was written or sent",
                             "run the plan again")
        try:
            make_private_dir(run_dir)  # and the runs root and its missing parents: 0700, not only the last
        except OSError as exc:
            raise JournalError(f"cannot create the run directory {run_dir}: {exc.strerror}") from exc
        with run_lock(run_dir):
            if (run_dir / "journal.sqlite").exists():
                raise UsageError(f"{run_dir} already holds a run", "use `batchmig resume` to continue it")
            try:
                journal = Journal.open(run_dir / "journal.sqlite", durable=options.durable, create=True)
                with open_private(run_dir / "plan.yaml", "wb") as handle:
                    handle.write(plan.text)
            except OSError as exc:
                raise JournalError(f"cannot create the run directory {run_dir}: {exc.strerror}") from exc
            try:
                journal.write_meta({
                    "run_id": run_id, "plan_path": os.path.abspath(plan_path), "plan_sha256": plan.sha256,
                    "created": datetime.now(UTC).isoformat(timespec="milliseconds"),
                    "sandbox": "1" if options.sandbox else "0",
                    "sandbox_at": str(options.sandbox_at.resolve()) if options.sandbox_at else "",
                    "sandbox_config": json.dumps(dataclasses.asdict(options.sandbox_config)),
                })
                record_plan(plan, journal)
                try:
                    return _run_locked(plan, registry, journal, run_id, run_dir, options, stop, "run")
                except (UsageError, PluginError) as exc:
                    _note_failed_start(run_dir, run_id, exc)
                    raise
            finally:
                journal.close()


def resume_run(
    reference: str, registry: Registry, options: RunOptions, *, accept_changed_plan: bool = False,
    command: str = "resume",
) -> RunOutcome:
    with stop_signals(options) as stop:
        run_dir = find_run_dir(reference, options.runs_root)
        with run_lock(run_dir):
            journal = Journal.open(run_dir / "journal.sqlite", durable=options.durable)
            try:
                meta = journal.meta()
                plan_path = meta["plan_path"]
                if not os.path.exists(plan_path):
                    plan_path = str(run_dir / "plan.yaml")
                plan = _load_for_run(plan_path, registry)
                if plan.sha256 != meta["plan_sha256"]:
                    if not accept_changed_plan:
                        raise UsageError(
                            f"the plan {plan_path} changed since run {meta['run_id']} started",
                            "pass --accept-changed-plan to continue with the new plan, or restore the old one "
                            f"(a copy is in {run_dir / 'plan.yaml'})",
                        )
                    changes = plan_changes(plan, journal)
                    apply_changes(plan, journal, changes)
                    journal.write_meta({"plan_sha256": plan.sha256})
                    log.warning("run.plan_changed", plan=plan_path, changes=changes.summary())
                elif not journal.keeps_plan_details:  # a journal of an older batchmig, migrated on open
                    record_plan(plan, journal)
                options.sandbox = meta.get("sandbox") == "1"
                if options.sandbox and meta.get("sandbox_config"):
                    options.sandbox_config = SandboxConfig.from_mapping(json.loads(meta["sandbox_config"]))
                options.sandbox_at = Path(meta["sandbox_at"]) if meta.get("sandbox_at") else None
                try:
                    return _run_locked(plan, registry, journal, meta["run_id"], run_dir, options, stop, command)
                except (UsageError, PluginError) as exc:
                    _note_failed_start(run_dir, meta["run_id"], exc)
                    raise
            finally:
                journal.close()


def _load_for_run(plan_path: str, registry: Registry) -> Plan:
    """The plan, frozen out of the cyclic collector's sight as soon as it is loaded: it lives
    as long as the run (``_run_locked`` freezes the rest and thaws it all at the end). Left
    young, the hundreds of thousands of objects of a 10,000-instance plan were walked again by
    the collector's next passes while the run was recorded (13-18 us per instance at 10,000)."""
    with collector_paused():
        return load_plan(plan_path, registry)


def _note_failed_start(run_dir: Path, run_id: str, error: BatchmigError) -> None:
    """A run that stopped before any instance started keeps why (its state: not_started),
    so it is listed as such rather than as a run that never finished."""
    try:
        journal = Journal.open(run_dir / "journal.sqlite")
        try:
            if set(journal.status_counts()) != {PENDING}:
                return
            journal.write_meta({"start_error": REDACTOR(str(error))})
        finally:
            journal.close()
    except BatchmigError:
        return
    note = f"run {run_id} is kept as not started (nothing was sent): `batchmig resume {run_id}` once fixed"
    error.hint = f"{error.hint}; {note}" if error.hint else note


def _run_locked(
    plan: Plan, registry: Registry, journal: Journal, run_id: str, run_dir: Path, options: RunOptions,
    stop: StopSignals, command: str,
) -> RunOutcome:
    # The plan, the registry and the journal's records live as long as the run: moved out
    # of the cyclic collector's sight, they are not walked again at every collection, so
    # the cost per call stays flat from a thousand instances to a hundred thousand.
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(RUN_GC_THRESHOLD, *thresholds[1:])
    try:
        invocation = journal.start_invocation(command, socket.gethostname(), os.getpid(), __version__)
        return eventloop.run(_execute, plan, registry, journal, run_id, run_dir, options, stop, invocation, command)
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
        logs.close_event_file()


RUN_GC_THRESHOLD = 10_000
"""Allocations between two of the cyclic collector's youngest passes while a runner works
(Python's default: 700). Every instance's task, its call in flight and the journal's
records stay alive across many of those passes, and each pass walks what survived the
last one again: with the default, the collector took 7-12% of a runner's CPU (1,000 to
5,000 instances, measured in the collector's own callbacks), with this a seventh to a half
of that (docs/benchmarks.md). Cycles of garbage wait at most this many allocations longer
to be freed (1-7 MB more peak RSS)."""


class StopSignals:
    """SIGINT/SIGTERM as requests for a graceful stop, from start-up to the report.

    A Python-level handler only notes the request and, while an engine runs, hands
    it to the event loop; it never raises into whatever the process is doing (a
    journal commit, the sandbox's start-up, writing the report). The first signal
    stops the engine; later ones only repeat the notice.
    """

    def __init__(self) -> None:
        self.reason = ""
        self._engine: Engine | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def handle(self, signum: int, frame: object) -> None:
        self.reason = self.reason or f"stopped by {signal.Signals(signum).name}"
        # A SIGKILL may follow (a service manager's stop timeout): what was logged so far is
        # written now (unless this handler interrupted a log call: then at the next flush).
        logs.flush_event_file()
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop just closed
                loop.call_soon_threadsafe(self._deliver, signal.Signals(signum).name)

    def attach(self, engine: Engine) -> None:
        """From inside the event loop: deliver to ``engine`` (a request already made, at once)."""
        self._engine, self._loop = engine, asyncio.get_running_loop()
        if self.reason:
            engine.stop(self.reason)

    def detach(self) -> None:
        self._engine = self._loop = None

    def _deliver(self, name: str) -> None:
        engine = self._engine
        if engine is None:
            return
        if engine.stopping:
            log.warning("run.stop_again", signal=name, hint="still waiting for calls on the wire")
        else:
            engine.stop(self.reason)


@contextlib.contextmanager
def stop_signals(options: RunOptions) -> Iterator[StopSignals]:
    stop = StopSignals()
    if not options.handle_signals:
        yield stop
        return
    previous = {signum: signal.signal(signum, stop.handle) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


async def _execute(
    plan: Plan, registry: Registry, journal: Journal, run_id: str, run_dir: Path, options: RunOptions,
    stop: StopSignals, invocation: InvocationLedger, command: str,
) -> RunOutcome:
    logs.open_event_file(run_dir / "events.jsonl")
    structlog.contextvars.bind_contextvars(run=run_id)
    hooks = webhooks(plan.document.notify)
    journal.start_writer()
    started = time.time()
    async with contextlib.AsyncExitStack() as stack:
        endpoints, poll_scale = None, 1.0
        if options.sandbox_at:
            endpoints, poll_scale = sandbox_endpoints(options.sandbox_at), sandbox_time_scale(options.sandbox_at)
        if options.sandbox:
            from batchmig.sandbox.host import Sandbox  # the emulators' HTTP server: only a --sandbox run needs it

            poll_scale = options.sandbox_config.time_scale
            sandbox = await stack.enter_async_context(
                Sandbox(registry.emulators, run_dir / "sandbox", options.sandbox_config)
            )
            endpoints = sandbox.endpoints
        ca_file = options.sandbox_at / "ca.pem" if options.sandbox_at else None
        transport = await stack.enter_async_context(
            HttpTransport(plan.document.run.call_timeout, ca_file if ca_file and ca_file.exists() else None)
        )
        connections = build_connections(plan, registry, transport.send, endpoints)
        limiter = RateLimiter(rate_table(plan, registry, connections))
        pipeline = Pipeline(connections, limiter, transport.send, journal=journal, invocation=invocation,
                            retry=retry_policy(plan))
        monitor = RunMonitor(run_dir, run_id, command, started=started, webhooks=hooks, plan=plan.path,
                             sandbox=bool(options.sandbox or options.sandbox_at), textfiles=options.metrics_textfiles)
        live = LiveState() if options.progress else None
        observer = Observers([monitor.observer, live]) if live else monitor.observer
        engine = Engine(plan, registry, pipeline, journal, run_id, wait_for_cutover=options.wait_for_cutover,
                        poll_scale=poll_scale, observer=observer)
        try:
            async with monitor.watching(engine, pipeline), anyio.create_task_group() as tg:
                stop.attach(engine)
                tg.start_soon(_record_invocation, pipeline)
                tg.start_soon(_prepare_report)
                if live is not None:
                    timing = run_timing(poll_scale, plan.document.run.poll_interval)
                    tg.start_soon(show_progress, engine, pipeline, live, EtaModel(plan, registry, timing, engine, live))
                await engine.run()
                tg.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # The engine stops on a journal it cannot write (disk full, directory not writable)
            # by raising JournalError; the task group wraps it, and the CLI must still see it to
            # exit 3 ("resume once fixed") instead of reporting an internal error.
            matched, _ = group.split(JournalError)
            if matched is None:
                raise
            stopped = JournalError(f"run {run_id} stopped: {_first_leaf(matched)}")
            stopped.hint = f"free space or fix the permissions of {run_dir}, then `batchmig resume {run_id}`"
            raise stopped from None
        finally:
            stop.detach()
    code = exit_code(list(engine.status.values()), interrupted=engine.stopping)
    pipeline.record_invocation(ended=True, exit_code=code, stop_reason=engine.stop_reason or None)
    await journal.flush()
    logs.flush_event_file()  # the report keeps the event loop (and its timer) busy for a while
    figures = monitor.figures(monitor.invocation(ended=time.time(), exit_code=code,
                                                 stop_reason=engine.stop_reason or None))
    monitor.write(figures, active=False)
    # The report's objects are freed by reference counting: the collector's passes over the
    # run's objects meanwhile were a tenth of the report's cost at 10,000 instances.
    with collector_paused():
        # the steps as the journal's rows, not records: a third of a 100,000-instance run's peak
        run_report = build_run_report(journal, plan=plan, figures=figures, steps=False)
        try:
            write_run_files(run_dir, run_report, step_rows(journal), ("json", *HANDED_ON))
        except OSError as exc:  # the run directory filled up or lost its write permission at the very end
            stopped = JournalError(f"run {run_id}: cannot write {run_dir / 'report.json'}: {exc.strerror or exc}")
            stopped.hint = f"free space or fix the permissions of {run_dir}, then `batchmig resume {run_id}`"
            raise stopped from None
    return RunOutcome(run_id, run_dir, code, run_report, run_dir / "report.json")


INVOCATION_RECORD_SECONDS = 0.25
"""How often a runner journals its counters: a SIGKILL loses at most the last quarter second of them."""


async def _record_invocation(pipeline: Pipeline) -> None:
    while True:
        await anyio.sleep(INVOCATION_RECORD_SECONDS)
        pipeline.record_invocation()


REPORT_PREPARE_AFTER = 1.0
"""Seconds into a run when a thread prepares the report's renderers (``report.formats.prepare``):
past the start, which is on the run's critical path, like its end."""


async def _prepare_report() -> None:
    """Only a head start for the report at the end, which does the same if this fails:
    a failure here is logged, never the run's end."""
    await anyio.sleep(REPORT_PREPARE_AFTER)
    try:
        await anyio.to_thread.run_sync(prepare_report, abandon_on_cancel=True)
    except Exception as exc:  # the report at the run's end tries again, and says why if it fails
        log.warning("report.prepare_failed", error=f"{type(exc).__name__}: {exc}")


def _first_leaf(group: BaseExceptionGroup) -> BaseException:  # type: ignore[type-arg]
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def exit_code(statuses: list[str], *, interrupted: bool) -> ExitCode:
    """The first that applies: interrupted (3), needs attention (5), failed or skipped (1),
    awaiting cutover (4), else 0. ``abandoned`` instances do not count."""
    if interrupted or any(s in (INTERRUPTED, PENDING, RUNNING) for s in statuses):
        return ExitCode.INTERRUPTED
    if NEEDS_ATTENTION in statuses:
        return ExitCode.NEEDS_ATTENTION
    if any(s in (FAILED, SKIPPED) for s in statuses):
        return ExitCode.FAILED
    if any(s == AWAITING_CUTOVER for s in statuses):
        return ExitCode.AWAITING_CUTOVER
    return ExitCode.OK
