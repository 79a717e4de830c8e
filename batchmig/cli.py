"""The ``batchmig`` command line.

Exit codes (also in ``batchmig --help`` and the README):

    0  every instance succeeded (or: the plan is valid)
    1  some instances failed or were skipped
    2  invalid plan or usage (nothing was called)
    3  interrupted; ``batchmig resume RUN`` continues without repeating a call
    4  instances await a manual cutover; ``batchmig cutover RUN --select ...``
    5  the run's journal is damaged or unusable (not resumable as it is)
    6  instances need attention: batchmig cannot tell what the cloud did; look, then resume

Errors print one line and a hint; ``-v`` adds debug logs and tracebacks.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import anyio
import click

from batchmig import __version__, eventloop, logs
from batchmig import cli_options as opt
from batchmig.errors import (
    BatchmigError,
    ExitCode,
    JournalError,
    JournalUnusableError,
    PlanError,
    PluginError,
    UsageError,
    printable,
)
from batchmig.listing import FORMATS, Format, emit, terminal_rows
from batchmig.redaction import REDACTOR
from batchmig.report.build import collector_paused
from batchmig.rundir import check_run_id, find_run_dir, make_run_id, run_is_active
from batchmig.selection import Selection
from batchmig.store import STORE_ENV, is_store_url
from batchmig.views import print_status, print_summary

if TYPE_CHECKING:  # each command imports what it runs: `status` needs no engine, HTTP client or plugin
    from batchmig.operations import RunOptions, RunOutcome
    from batchmig.registry import Registry
    from batchmig.sandbox.config import SandboxConfig
    from batchmig.scaleout import StoreOptions

EPILOG = """\b
Exit codes:
  0  all instances succeeded / the plan is valid
  1  some instances failed or were skipped
  2  invalid plan or usage (nothing was called)
  3  interrupted: `batchmig resume RUN` continues
  4  awaiting manual cutover: `batchmig cutover RUN`
  5  the run's journal is damaged or unusable
  6  needs attention: check the cloud, then `batchmig resume RUN`
"""


@dataclass
class CliContext:
    """What every command receives (click's context ``obj``): no module-global state.

    The registry is built on first use from the installed plugins; a test or an
    embedding program passes its own: ``main(args, obj=CliContext(registry=...))``.
    """

    registry: Registry | None = None
    verbose: bool = False

    def load(self) -> Registry:
        if self.registry is None:
            from batchmig.registry import load_registry

            self.registry = load_registry()
        return self.registry


pass_cli = click.make_pass_decorator(CliContext, ensure=True)


def _fail(error: BaseException, verbose: bool) -> NoReturn:
    logs.flush_event_file()  # the events that led here are on disk before the error is told
    if isinstance(error, PlanError):
        for problem in error.problems:
            click.echo(REDACTOR(str(problem)), err=True)
        click.echo(f"error: {error} — {error.hint}", err=True)
        sys.exit(ExitCode.USAGE)
    if isinstance(error, UsageError | PluginError):
        code = ExitCode.USAGE
    elif isinstance(error, JournalError):
        code = ExitCode.INTERRUPTED  # nothing after the failed write was sent: resumable
    elif isinstance(error, JournalUnusableError):
        code = ExitCode.JOURNAL_UNUSABLE
    elif isinstance(error, BatchmigError):
        code = ExitCode.FAILED
    elif isinstance(error, OSError) and error.strerror:  # the operator's machine said no: not a bug
        where = f": {error.filename}" if error.filename else ""
        click.echo(f"error: {printable(REDACTOR(error.strerror + where))}", err=True)
        click.echo("hint: check that the path exists, is writable by you and its disk has room "
                   "(-v shows where it happened)", err=True)
        sys.exit(ExitCode.USAGE)
    else:
        code = ExitCode.FAILED
        if verbose:
            raise error
        click.echo(f"internal error: {type(error).__name__}: {REDACTOR(str(error))}", err=True)
        click.echo("hint: run again with -v for the traceback, and please report it", err=True)
        sys.exit(code)
    click.echo(f"error: {printable(REDACTOR(str(error)))}", err=True)
    if getattr(error, "hint", ""):
        click.echo(f"hint: {REDACTOR(error.hint)}", err=True)
    sys.exit(code)


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(ExitCode.INTERRUPTED)
        except BrokenPipeError:  # `batchmig status RUN | head`: the reader has all it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(ExitCode.OK)
        except Exception as exc:
            verbose = isinstance(ctx.obj, CliContext) and ctx.obj.verbose
            if verbose and not isinstance(exc, BatchmigError):
                raise
            _fail(exc, verbose)


@click.group(cls=_Group, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="batchmig")
@click.option("-v", "--verbose", is_flag=True, help="Debug logs and tracebacks.")
@pass_cli
def main(cli: CliContext, verbose: bool) -> None:
    """Migrate fleets of SQL Server databases through the clouds' migration APIs.

    Write a plan (see `batchmig schema` and docs/plan-format.md), check it with
    `batchmig validate`, rehearse it with `batchmig run --sandbox`, then run it.
    """
    cli.verbose = verbose
    logs.configure(verbose=verbose, console_level=None if verbose else 30 if sys.stderr.isatty() else 20)


# ------------------------------------------------------------------ validate


@main.command(epilog=EPILOG)
@click.argument("plan", type=click.Path(dir_okay=True, path_type=str))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="json or csv: machine-readable problems for CI.")
@click.option("--env", "check_env", is_flag=True,
              help="Also resolve every credential and secret the plan refers to, here (offline); exit 2 naming "
                   "each missing environment variable, file or profile.")
@click.option("--sandbox", is_flag=True, help="With --env: only what a sandbox rehearsal needs (no cloud keys).")
@pass_cli
def validate(cli: CliContext, plan: str, fmt: Format, check_env: bool, sandbox: bool) -> None:
    """Check PLAN offline and report every problem as file:line:column key.path: message."""
    from batchmig.checks import validate as validate_plan

    if not validate_plan(plan, cli.load(), fmt, check_env=check_env, sandbox=sandbox):
        sys.exit(ExitCode.USAGE)


# ----------------------------------------------------------------------- run


def _sandbox_config(config_path: str | None, time_scale: float | None) -> SandboxConfig:
    import yaml  # only a sandbox's config file is YAML here: `status` and `report` need no parser

    from batchmig.sandbox.config import SandboxConfig

    config = SandboxConfig()
    if config_path:
        try:
            data = yaml.safe_load(Path(config_path).read_text(encoding="utf-8")) or {}
            config = SandboxConfig.from_mapping(data)
        except (OSError, yaml.YAMLError, ValueError, TypeError) as exc:
            raise UsageError(f"sandbox config {config_path}: {exc}") from None
    if time_scale is not None:
        config.time_scale = time_scale
    return config


def _finish(outcome: RunOutcome) -> NoReturn:
    print_summary(outcome.run_report)
    click.echo(f"run {outcome.run_id}: report in {outcome.run_dir / 'report.json'}", err=True)
    if outcome.exit_code == ExitCode.INTERRUPTED:
        click.echo(f"interrupted — continue with: batchmig resume {outcome.run_id}", err=True)
    elif outcome.exit_code == ExitCode.AWAITING_CUTOVER:
        click.echo(f"awaiting manual cutover — release with: batchmig cutover {outcome.run_id} --select ID", err=True)
    elif outcome.exit_code == ExitCode.NEEDS_ATTENTION:
        click.echo("needs attention — batchmig cannot tell what the cloud did for the instances above; check them "
                   f"in the cloud, then `batchmig resume {outcome.run_id}` looks again (it never re-sends blindly)",
                   err=True)
    sys.exit(outcome.exit_code)


def _run_options(runs_root: str, durable: bool, wait: bool, progress: bool | None,
                 metrics_textfiles: tuple[Path, ...] = ()) -> RunOptions:
    from batchmig.operations import RunOptions

    _ignore_late_signals()
    return RunOptions(
        runs_root=Path(runs_root), durable=durable, wait_for_cutover=wait,
        progress=sys.stderr.isatty() if progress is None else progress, metrics_textfiles=list(metrics_textfiles),
    )


def _ignore_late_signals() -> None:
    """Let go of SIGINT/SIGTERM that arrive once a run's report is written.

    The run catches them itself, from before its directory is touched until the
    report is written, and then puts these dispositions back: a signal while the
    summary prints, or while the interpreter shuts down (which resets Python-level
    handlers, but not SIG_IGN), must not turn a finished run into a KeyboardInterrupt.
    """
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


_F = TypeVar("_F", bound=Callable[..., Any])
_metrics_textfile = click.option(
    "--metrics-textfile", "metrics_textfiles", multiple=True, type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the run's Prometheus metrics to this .prom file (node_exporter's textfile collector).")


def _store_option(required: bool = False) -> Callable[[_F], _F]:
    return click.option(
        "--store", "store_url", envvar=STORE_ENV, required=required, metavar="URL",
        help=f"Shared PostgreSQL store (postgresql://...; or ${STORE_ENV}): several runners, one budget.",
    )


def _runner_options(func: _F) -> _F:
    func = click.option("--limiter", type=click.Choice(["shares", "exact"]), default="shares", show_default=True,
                        help="With --store: capacity shares per runner, or one database reservation per call.")(func)
    func = click.option("--lease-ttl", type=float, metavar="SECONDS",
                        help="With --store: instance lease (default 3 x (call_timeout + 1s), at least 30s).")(func)
    func = click.option("--store-patience", type=float, default=300.0, show_default=True, metavar="SECONDS",
                        help="With --store: how long to wait for an unreachable store before stopping (exit 3).")(func)
    return func


def _store_options(url: str, limiter: str, lease_ttl: float | None, patience: float) -> StoreOptions:
    if not is_store_url(url):
        raise UsageError(f"--store {url.split('://')[0]}://...: not a PostgreSQL URL",
                         "use postgresql://user@host:5432/database")
    from batchmig.scaleout import StoreOptions

    return StoreOptions(url, limiter, lease_ttl, patience)


@main.command(epilog=EPILOG)
@click.argument("plan", type=click.Path(dir_okay=True, path_type=str))
@click.option("--sandbox", is_flag=True, help="Run against the built-in emulators (in-process, loopback).")
@click.option("--sandbox-at", type=click.Path(path_type=Path, file_okay=False),
              help="Use a running `batchmig sandbox serve --dir DIR` instead of the cloud.")
@click.option("--sandbox-config", type=click.Path(path_type=str), help="YAML: time_scale, faults, rate_limits...")
@click.option("--time-scale", type=float, help="Sandbox: emulated seconds per real second (default 60).")
@click.option("--dry-run", is_flag=True, help="Print the calls each instance would make; send nothing.")
@click.option("--check", is_flag=True, help="Read-only pre-flight of every instance against the account.")
@click.option("--run-dir", type=click.Path(path_type=Path), help="Run directory (default: RUNS_ROOT/<run-id>).")
@click.option("--run-id", help="The run id a --dry-run printed: names (and so calls) are exactly those it listed.")
@opt.runs_root
@opt.durable
@click.option("--wait-for-cutover", is_flag=True, help="Keep running while instances await manual cutover.")
@opt.progress
@opt.listing_format("For --dry-run and --check.")
@opt.show_all
@_store_option()
@_runner_options
@_metrics_textfile
@pass_cli
def run(
    cli: CliContext, plan: str, sandbox: bool, sandbox_at: Path | None, sandbox_config: str | None,
    time_scale: float | None, dry_run: bool, check: bool, run_dir: Path | None, run_id: str | None, runs_root: str,
    durable: bool, wait_for_cutover: bool, progress: bool | None, fmt: Format, show_all: bool, store_url: str | None,
    limiter: str,
    lease_ttl: float | None, store_patience: float, metrics_textfiles: tuple[Path, ...],
) -> None:
    """Run PLAN: migrate every instance, journaled and resumable.

    --dry-run prints the change-window plan (every instance's calls, totals per wave
    and action, an estimated makespan; --sandbox: of a rehearsal) and sends nothing.
    """
    from batchmig.operations import sandbox_time_scale, start_run
    from batchmig.plan.loader import load_plan
    from batchmig.scaleout import start_shared_run

    registry = cli.load()
    if dry_run and check:
        raise UsageError("choose --dry-run or --check, not both")
    if sandbox and sandbox_at:
        raise UsageError("choose --sandbox (in-process) or --sandbox-at DIR (a running sandbox), not both")
    if run_id is not None:
        check_run_id(run_id)
    if dry_run:
        from batchmig.estimate import run_timing
        from batchmig.window import print_change_window

        loaded = load_plan(plan, registry)
        scale = 1.0
        if sandbox:
            scale = _sandbox_config(sandbox_config, time_scale).time_scale
        elif sandbox_at:
            scale = sandbox_time_scale(sandbox_at)
        print_change_window(loaded, registry, fmt, run_timing(scale, loaded.document.run.poll_interval),
                            run_id or make_run_id(loaded), show_all=show_all)
        sys.exit(ExitCode.OK)
    if check:
        from batchmig.checks import run_check

        config = _sandbox_config(sandbox_config, time_scale) if sandbox else None
        sys.exit(ExitCode.OK if run_check(load_plan(plan, registry), registry, config, fmt) else ExitCode.FAILED)
    options = _run_options(runs_root, durable, wait_for_cutover, progress, metrics_textfiles)
    options.run_dir = run_dir
    options.run_id = run_id
    options.sandbox = sandbox
    options.sandbox_at = sandbox_at
    options.sandbox_config = _sandbox_config(sandbox_config, time_scale)
    if store_url:
        if run_id is not None:
            raise UsageError("--run-id does not work with --store yet", "run without --run-id; the store names the run")
        store = _store_options(store_url, limiter, lease_ttl, store_patience)
        _finish(start_shared_run(plan, registry, options, store))
    _finish(start_run(plan, registry, options))


@main.command(epilog=EPILOG)
@click.argument("run_ref", metavar="RUN")
@opt.runs_root
@click.option("--accept-changed-plan", is_flag=True,
              help="Continue with the changed plan: removed instances are abandoned, added ones run, changed ones "
                   "restart if nothing they sent took effect (else refused). See docs/operations.md.")
@opt.durable
@click.option("--wait-for-cutover", is_flag=True, help="Keep running while instances await manual cutover.")
@opt.progress
@_store_option()
@_runner_options
@_metrics_textfile
@pass_cli
def resume(cli: CliContext,
           run_ref: str, runs_root: str, accept_changed_plan: bool, durable: bool, wait_for_cutover: bool,
           progress: bool | None, store_url: str | None, limiter: str, lease_ttl: float | None,
           store_patience: float, metrics_textfiles: tuple[Path, ...]) -> None:
    """Continue RUN (an id, id prefix or run directory) where it stopped.

    Calls whose outcome is journaled are never repeated; a call whose effect is not
    known (the answer was lost, or the runner died first) is reconciled by looking the
    resource up before anything is sent. Instances that need attention are looked at
    again the same way.
    """
    from batchmig.operations import resume_run
    from batchmig.scaleout import join_shared_run

    options = _run_options(runs_root, durable, wait_for_cutover, progress, metrics_textfiles)
    if store_url:  # in the store, resuming is joining: the leases tell what is left to do
        _finish(join_shared_run(run_ref, cli.load(), options,
                                _store_options(store_url, limiter, lease_ttl, store_patience)))
    _finish(resume_run(run_ref, cli.load(), options, accept_changed_plan=accept_changed_plan))


@main.command(epilog=EPILOG)
@click.argument("run_ref", metavar="RUN")
@_store_option(required=True)
@_runner_options
@opt.runs_root
@click.option("--wait-for-cutover", is_flag=True, help="Keep running while instances await manual cutover.")
@opt.progress
@pass_cli
def join(cli: CliContext, run_ref: str, store_url: str, limiter: str, lease_ttl: float | None, store_patience: float,
         runs_root: str, wait_for_cutover: bool, progress: bool | None) -> None:
    """Add a runner to RUN in the shared store (from any machine).

    The runner claims instances wave by wave, takes over those of runners that
    died (after their lease ran out), and shares the accounts' rate budgets.
    """
    from batchmig.scaleout import join_shared_run

    options = _run_options(runs_root, False, wait_for_cutover, progress)
    _finish(join_shared_run(run_ref, cli.load(), options,
                            _store_options(store_url, limiter, lease_ttl, store_patience)))


@main.command(epilog=EPILOG)
@click.argument("run_ref", metavar="RUN")
@_store_option(required=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def runners(run_ref: str, store_url: str, fmt: str) -> None:
    """List the runners of RUN in the store: host, pid, version, heartbeat, instances held."""
    from batchmig.scaleout import list_runners, runner_rows_json

    _store_options(store_url, "shares", None, 0)
    run_id, rows = list_runners(run_ref, store_url)
    if fmt == "json":
        click.echo(json.dumps({"run": run_id, "runners": runner_rows_json(rows)}, indent=2))
        return
    if not rows:
        click.echo(f"run {run_id}: no runner has worked on it yet")
    now = time.time()
    for row in rows:
        state = "stopped" if row.stopped else f"heartbeat {now - row.heartbeat:.0f}s ago"
        held = ", ".join(row.holds[:10]) + (" ..." if len(row.holds) > 10 else "")
        click.echo(f"{row.id:32} {row.host:16} pid {row.pid:<7} {row.version:8} {row.limiter:6} {state:22} "
                   f"holds {len(row.holds)}{': ' + held if held else ''}")


@main.command(epilog=EPILOG)
@click.argument("run_ref", metavar="RUN")
@opt.selection
@opt.runs_root
@opt.durable
@click.option("--wait-for-cutover", is_flag=True, help="Keep running while instances await manual cutover.")
@opt.progress
@pass_cli
def retry(cli: CliContext, run_ref: str, selectors: tuple[str, ...], statuses: tuple[str, ...], waves: tuple[str, ...],
          tags: tuple[str, ...], runs_root: str, durable: bool, wait_for_cutover: bool, progress: bool | None) -> None:
    """Run failed or skipped instances of RUN again, inside the same run.

    Each starts from the step where it stopped; no mutating call whose effect is
    journaled is sent again. Without a selection: --status failed,skipped. Failed
    canaries that the selected instances wait for are retried with them. Who asked
    and when is journaled (the report's requests).
    """
    from batchmig.operations import resume_run
    from batchmig.retry import describe, request_retry

    registry = cli.load()
    run_dir = find_run_dir(run_ref, Path(runs_root))
    decision = request_retry(run_dir, registry, Selection.parse(selectors, statuses, waves, tags))
    for line in describe(decision):
        click.echo(line, err=True)
    if decision.request is None:
        click.echo("nothing to retry: no selected instance failed or was skipped", err=True)
        sys.exit(ExitCode.FAILED)
    options = _run_options(runs_root, durable, wait_for_cutover, progress)
    _finish(resume_run(str(run_dir), registry, options, command="retry"))


@main.command(epilog=EPILOG)
@click.argument("run_ref", metavar="RUN")
@opt.runs_root
@opt.selection
@opt.show_all
@opt.listing_format()
@_store_option()
@pass_cli
def status(cli: CliContext, run_ref: str, runs_root: str, selectors: tuple[str, ...], statuses: tuple[str, ...],
           waves: tuple[str, ...], tags: tuple[str, ...], show_all: bool, fmt: Format, store_url: str | None) -> None:
    """Show where every instance of RUN stands (works while it runs, and after a crash)."""
    from batchmig.runs import run_status

    selection = Selection.parse(selectors, statuses, waves, tags)
    if store_url:
        from batchmig.scaleout import shared_status

        _store_options(store_url, "shares", None, 0)
        report, live = shared_status(run_ref, store_url)
        print_status(report, fmt, selection, show_all=show_all, extra={"runners": live})
        if fmt == "text":
            click.echo(f"run {report.run} in the store: {live} runner(s) working on it")
        return
    with collector_paused():
        # the table shows no step, the CSV each instance's steps in one line, the JSON writes the journal's rows
        _, report, spans, rows = run_status(run_ref, Path(runs_root), cli.load, steps=False, spans=fmt == "csv",
                                            rows=fmt == "json")
        print_status(report, fmt, selection, show_all=show_all, spans=spans, rows=rows)


@main.command()
@opt.runs_root
@opt.show_all
@opt.listing_format()
def runs(runs_root: str, show_all: bool, fmt: Format) -> None:
    """List the runs under the runs root, newest first, with plan, state and counts."""
    from batchmig.runs import RUN_COLUMNS, list_runs, run_rows

    found = list_runs(Path(runs_root))
    if not found and fmt == "text":
        click.echo(f"no run in {runs_root} yet")
        return
    limit = None if show_all else terminal_rows()
    emit(f"runs in {runs_root}", RUN_COLUMNS, run_rows(found), fmt, limit=limit,
         hidden_kind=lambda row: "older")


@main.command("config")
def show_config() -> None:
    """Show the defaults in effect and where each comes from (batchmig.toml files)."""
    from batchmig.config import DEFAULTS, project_config_path, user_config_path

    config = opt.context_config(click.get_current_context())
    for key in DEFAULTS:
        setting = config.setting(key)
        click.echo(f"{key:10} = {setting.value!r:30} {setting.source}")
    click.echo(f"looked for: {user_config_path()} (user); {project_config_path() or './batchmig.toml'} "
               "or the nearest parent's (project)")


@main.command(epilog=EPILOG)
@click.argument("run_ref", metavar="RUN")
@click.option("--select", "selectors", multiple=True, metavar="ID", help="Instance id or glob (repeatable).")
@click.option("--wave", "waves", multiple=True, metavar="W", help="Every instance of this wave (repeatable).")
@click.option("--tag", "tags", multiple=True, metavar="K=V", help="Instances with this plan tag (repeatable).")
@click.option("--all", "select_all", is_flag=True, help="Every instance of the run.")
@click.option("--resume/--no-resume", "then_resume", default=True, show_default=True,
              help="Resume the run if no runner is working on it.")
@opt.runs_root
@opt.listing_format("json/csv: one answer per selected instance.")
@_store_option()
@pass_cli
def cutover(cli: CliContext, run_ref: str, selectors: tuple[str, ...], waves: tuple[str, ...], tags: tuple[str, ...],
            select_all: bool, then_resume: bool, runs_root: str, fmt: Format, store_url: str | None) -> None:
    """Release the manual cutover of selected instances of RUN.

    Every selected instance gets one answer: released (it was waiting), pre-approved
    (not at its gate yet: it will not stop there), already released, finished,
    automatic or no gate. Who asked, when and from which host is journaled and in
    the report.
    """
    from batchmig.cutover import ANSWER_COLUMNS, RELEASING, release_selected, summary
    from batchmig.operations import resume_run
    from batchmig.scaleout import StoreOptions, join_shared_run, shared_cutover, shared_status

    selection = Selection.parse(selectors, (), waves, tags)
    if not selection and not select_all:
        raise UsageError("say which instances: --select ID (globs allowed), --wave W, --tag K=V, or --all")
    if store_url:
        _store_options(store_url, "shares", None, 0)
        ids = list(selectors)
        if waves or tags:
            report, _ = shared_status(run_ref, store_url)
            ids = [i.id for i in selection.choose(report.instances)]
        run_id, released, live = shared_cutover(run_ref, store_url, ids, select_all)
        click.echo(f"released cutover for {len(released)} instance(s): {', '.join(released[:20])}"
                   + (" ..." if len(released) > 20 else ""))
        if live:
            click.echo(f"{live} runner(s) of the run pick the release up within a second or two")
            return
        if then_resume:
            options = _run_options(runs_root, False, False, None)
            _finish(join_shared_run(run_id, cli.load(), options, StoreOptions(store_url)))
        click.echo(f"continue with: batchmig join {run_id} --store ...")
        return
    run_dir = find_run_dir(run_ref, Path(runs_root))
    answers, request = release_selected(run_dir, cli.load(), selection, select_all=select_all)
    if fmt != "text":
        emit("", ANSWER_COLUMNS, (a.row() for a in answers), fmt)
    else:
        for line in summary(answers):
            click.echo(line)
        for shown in [a for a in answers if a.outcome not in RELEASING][:20]:
            click.echo(f"  {shown.instance}: {shown.outcome} — {shown.detail}")
    if request is None:
        click.echo("nothing released: no selected instance waits for (or will reach) a manual cutover", err=True)
        sys.exit(ExitCode.FAILED)
    click.echo(f"journaled as request {request} (who, when, from which host: `batchmig status {run_dir.name} "
               "--format json`, key requests)", err=True)
    if run_is_active(run_dir):
        click.echo("the running batchmig process picks the release up within a second", err=True)
        return
    if then_resume:
        options = _run_options(runs_root, False, False, None)
        _finish(resume_run(str(run_dir), cli.load(), options, command="cutover"))
    click.echo(f"continue with: batchmig resume {run_dir.name}", err=True)


# --------------------------------------------------------------------- store


@main.group()
def store() -> None:
    """The shared PostgreSQL store (several runners, one rate budget)."""


@store.command("init")
@_store_option(required=True)
def store_init(store_url: str) -> None:
    """Create batchmig's tables and functions in the store (once per database)."""
    from batchmig.scaleout import store_migrate
    from batchmig.store.postgres import redact_url

    _store_options(store_url, "shares", None, 0)
    before, after = store_migrate(store_url, create=True)
    if before is None:
        click.echo(f"store {redact_url(store_url)}: schema version {after} created")
    elif before == after:
        click.echo(f"store {redact_url(store_url)}: already at schema version {after}")
    else:
        click.echo(f"store {redact_url(store_url)}: upgraded from schema version {before} to {after}")


@store.command("upgrade")
@_store_option(required=True)
def store_upgrade(store_url: str) -> None:
    """Bring the store's schema to the version this batchmig needs."""
    from batchmig.scaleout import store_migrate
    from batchmig.store.postgres import redact_url

    _store_options(store_url, "shares", None, 0)
    before, after = store_migrate(store_url, create=False)
    if before == after:
        click.echo(f"store {redact_url(store_url)}: already at schema version {after}")
    else:
        click.echo(f"store {redact_url(store_url)}: upgraded from schema version {before} to {after}")


@main.command("report", epilog=EPILOG)
@click.argument("run_ref", metavar="RUN")
@click.option("--format", "fmt", type=click.Choice(["html", "junit", "markdown", "csv", "json"]), default="markdown",
              show_default=True, help="html: one self-contained file; junit: for CI; markdown: a job summary.")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Write to FILE (0600) instead of standard output.")
@opt.runs_root
@pass_cli
def report_command(cli: CliContext, run_ref: str, fmt: str, output: Path | None, runs_root: str) -> None:
    """Render the report of RUN (also while it runs, or after a crash).

    A runner writes every format into the run directory whenever it finishes or
    stops (report.html, report.junit.xml, report.md, report.csv, report.json).
    """
    from batchmig.private_files import write_private_chunks
    from batchmig.report.csv import instances_csv_chunks
    from batchmig.report.formats import WITHOUT_STEPS, chunks_from_rows
    from batchmig.runs import run_status

    with collector_paused():
        if fmt == "csv":  # each instance's steps in one line, not their records: `status --format csv`'s way
            _, report, spans, _ = run_status(run_ref, Path(runs_root), cli.load, steps=False, spans=True)
            chunks: Iterable[str] = instances_csv_chunks(report.instances, spans)
        else:  # the steps as the journal's rows, formatted as they are written (not 650,000 datetimes)
            _, report, _, rows = run_status(run_ref, Path(runs_root), cli.load, steps=False,
                                            rows=fmt not in WITHOUT_STEPS, figures=True)
            chunks = chunks_from_rows(fmt, report, rows or {})
        if output is None:  # written as it is rendered (masked piece by piece), never whole in memory
            last = ""
            for chunk in chunks:
                sys.stdout.write(chunk)
                last = chunk or last
            if not last.endswith("\n"):
                sys.stdout.write("\n")
            return
        try:
            write_private_chunks(output, chunks)
        except OSError as exc:
            raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
    click.echo(f"wrote {output}", err=True)


@main.command(epilog=EPILOG)
@click.argument("runs", nargs=-1, metavar="[RUN]...")
@click.option("--port", type=int, default=8700, show_default=True, help="Port to listen on (0: any free port).")
@click.option("--bind", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback is reachable from the network: the token guards it.")
@click.option("--token-file", type=click.Path(path_type=Path, dir_okay=False),
              help="Where the access token is kept (0600). Default: serve-token beside the runs root.")
@click.option("--new-token", is_flag=True, help="Replace the access token (the old one stops working).")
@opt.runs_root
@pass_cli
def serve(cli: CliContext, runs: tuple[str, ...], port: int, bind: str, token_file: Path | None, new_token: bool,
          runs_root: str) -> None:
    """A live web dashboard of RUNs (default: every run under the runs root).

    The same views as the HTML report, updating while runs work, an instance table
    with filters, each instance's calls and errors, and cutover from the browser.
    Every request needs the access token, printed once inside the URL to open.
    """
    from batchmig.runsource import DirectorySource
    from batchmig.web.server import serve as serve_dashboard

    root = Path(runs_root)
    source = DirectorySource(root, runs, registry=cli.load)
    try:
        eventloop.run(lambda: serve_dashboard(source, bind=bind, port=port, new_token=new_token,
                                              token_file=token_file or root.parent / "serve-token", say=click.echo))
    except KeyboardInterrupt:
        click.echo("dashboard stopped")


# ------------------------------------------------------------- plugins, schema


@main.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@pass_cli
def plugins(cli: CliContext, fmt: str) -> None:
    """List the installed plugins: distribution, version, hooks, plugin API, providers and emulators."""
    from batchmig.plugin import API_VERSION

    registry = cli.load()
    entries = [info.as_dict(registry) for info in registry.plugins]
    if fmt == "json":
        click.echo(json.dumps({"batchmig": __version__, "plugin_api": API_VERSION, "plugins": entries}, indent=2))
        return
    if not entries:
        click.echo("no provider plugins installed (pip install ./plugins/batchmig-tencentcloud ...)")
    for entry in entries:
        api = ", ".join(map(str, entry["api_versions"])) or "undeclared"
        click.echo(f"{entry['distribution']} {entry['version']}  (plugin API {api}; "
                   f"requires batchmig {entry['requires_batchmig'] or 'unstated'})")
        click.echo(f"  hooks: {', '.join(entry['hooks'])}")
        for provider in entry["providers"]:
            click.echo(f"  provider {provider['name']:20} {provider['description']}")
        for emulator in entry["emulators"]:
            click.echo(f"  emulator {emulator}")


@main.group("plugin")
def plugin_group() -> None:
    """Write provider plugins."""


@plugin_group.command("new")
@click.argument("name")
@click.option("--directory", type=click.Path(path_type=Path, file_okay=False),
              help="Where to write the distribution (default: ./batchmig-NAME).")
@click.option("--provider", help="The provider's (and emulator's) name, if not NAME (e.g. acme-sql in batchmig-acme).")
def plugin_new(name: str, directory: Path | None, provider: str | None) -> None:
    """Generate the provider distribution batchmig-NAME: provider, emulator, tests, README.

    It installs (`pip install -e DIR[test]`) and passes its conformance suite and
    ruff/mypy (strict) as generated; then replace the example API with your cloud's.
    """
    from batchmig.scaffold import new_plugin

    target = new_plugin(name, directory, provider)
    click.echo(f"wrote {target}: pip install -e '{target}[test]' && (cd {target} && pytest)")


@main.command()
@click.option("--report", "of_report", is_flag=True, help="The JSON Schema of report.json instead.")
@pass_cli
def schema(cli: CliContext, of_report: bool) -> None:
    """Print the plan's JSON Schema (with the installed providers' settings)."""
    if of_report:
        from batchmig.report import report_schema

        click.echo(json.dumps(report_schema(), indent=2))
        return
    from batchmig.plan.schema import plan_schema

    click.echo(json.dumps(plan_schema(cli.load()), indent=2))


# ------------------------------------------------------------------- sandbox


@main.group()
def sandbox() -> None:
    """The built-in cloud emulators."""


def tls_hint(ca: Path) -> str:
    """How clients trust the sandbox's throw-away CA (tccli ignores REQUESTS_CA_BUNDLE:
    Tencent's SDK passes certifi's bundle to requests explicitly)."""
    return (
        f"https with a throw-away CA in {ca}; make the client trust it:\n"
        "  tccli, Tencent's Python SDK: they trust only certifi's bundle of their own Python environment:\n"
        f'    cat {ca} >> "$(PYTHON -m certifi)"   (PYTHON: e.g. tccli-venv/bin/python)\n'
        f'  in code: Tencent HttpProfile(certification="{ca}"), Huawei HttpConfig(ssl_ca_cert="{ca}")\n'
        f"  curl --cacert {ca}; other requests-based tools: export REQUESTS_CA_BUNDLE={ca}"
    )


@sandbox.command("serve")
@click.option("--port", type=int, default=8600, show_default=True,
              help="Port of the first emulator; the others follow (0: any free ports).")
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=Path(".batchmig/sandbox"),
              show_default=True, help="State, audit log and endpoints.json.")
@click.option("--config", "config_path", type=click.Path(path_type=str), help="YAML: time_scale, faults...")
@click.option("--time-scale", type=float, help="Emulated seconds per real second (default 60).")
@click.option("--tls", is_flag=True, help="Serve https (CA certificate in DIR/ca.pem) for https-only clients.")
@pass_cli
def sandbox_serve(cli: CliContext,
                  port: int, directory: Path, config_path: str | None, time_scale: float | None, tls: bool) -> None:
    """Serve every installed emulator on 127.0.0.1 until interrupted."""
    from batchmig.sandbox.host import Sandbox

    registry = cli.load()
    config = _sandbox_config(config_path, time_scale)

    async def serve() -> None:
        async with Sandbox(registry.emulators, directory, config, port=port, tls=tls) as box:
            for name, url in box.endpoints.items():
                credentials = registry.emulators[name].demo_credentials
                shown = ", ".join(f"{k}={v}" for k, v in credentials.items())
                click.echo(f"{name:20} {url}   demo credentials: {shown}")
            if tls:
                click.echo(tls_hint((directory / "ca.pem").resolve()))
            click.echo(f"audit log: {box.audit_path}   (Ctrl-C to stop)")
            await anyio.sleep_forever()

    try:
        eventloop.run(serve)
    except KeyboardInterrupt:
        click.echo("sandbox stopped")
