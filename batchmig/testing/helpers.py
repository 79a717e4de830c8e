"""Helpers behind ``batchmig.testing``: registries, plan files, a fake clock, sandbox runs,
and a recorder that checks a run made exactly the calls its dry run listed."""

from __future__ import annotations

import contextlib
import re
import textwrap
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchmig.dryrun import DryRunCall
from batchmig.operations import RunOptions, RunOutcome, resume_run, start_run
from batchmig.plugin import Call, Connection, HttpFetch, HttpRequest, ProviderConfig
from batchmig.registry import Registry, load_registry
from batchmig.sandbox.config import SandboxConfig
from batchmig.sandbox.machinery import duplicate_effects, max_per_window, read_audit


def make_registry(*plugins: object, entry_points: bool = False) -> Registry:
    """A fresh registry with ``plugins`` registered (and the installed ones if asked)."""
    return load_registry(plugins, entry_points=entry_points)


def write_plan(directory: Path, text: str, name: str = "plan.yaml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


class FakeClock:
    """A clock whose time moves only when told (``advance``) or slept through.

    ``sleep`` advances time by the amount slept, which is exact for code where one
    task sleeps at a time (limiter and retry tests).
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.time = start
        self.slept: list[float] = []

    def now(self) -> float:
        return self.time

    def advance(self, seconds: float) -> None:
        self.time += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.time += max(0.0, seconds)


@dataclass
class SandboxRun:
    """The outcome of ``run_plan``: the run's report and what the sandbox saw."""

    outcome: RunOutcome

    @property
    def statuses(self) -> dict[str, str]:
        return self.outcome.statuses

    @property
    def report(self) -> dict[str, Any]:
        return self.outcome.report

    @property
    def audit(self) -> list[dict[str, Any]]:
        path = self.outcome.run_dir / "sandbox" / "audit.jsonl"
        return list(read_audit(path)) if path.exists() else []

    def duplicates(self) -> dict[tuple[str, str, str], int]:
        """Creates/starts that took effect more than once (should be empty)."""
        return duplicate_effects(self.audit)

    def max_per_second(self) -> dict[tuple[str, str, str], int]:
        return max_per_window(self.audit)


def run_plan(
    plan: Path,
    registry: Registry,
    workdir: Path,
    *,
    sandbox_config: SandboxConfig | None = None,
    wait_for_cutover: bool = False,
    resume: str | None = None,
    run_id: str | None = None,
) -> SandboxRun:
    """Run (or resume) ``plan`` against the in-process sandbox under ``workdir``
    (as run ``run_id``, e.g. the one a dry run listed the calls of)."""
    options = RunOptions(
        runs_root=workdir / "runs",
        run_id=run_id,
        sandbox=True,
        sandbox_config=sandbox_config or SandboxConfig(time_scale=600),
        handle_signals=False,
        wait_for_cutover=wait_for_cutover,
    )
    if resume is not None:
        return SandboxRun(resume_run(resume, registry, options))
    return SandboxRun(start_run(str(plan), registry, options))


class RecordedCalls(list[Call]):
    """The calls a run prepared, in order; ``requests[i]`` is what ``calls[i]`` was signed into."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[HttpRequest] = []


@contextlib.contextmanager
def record_calls(registry: Registry) -> Iterator[RecordedCalls]:
    """Record every call (every attempt) the registry's providers prepare while inside.

    For runs in this process (``run_plan``): each provider's connections are wrapped
    so that ``prepare`` appends the ``Call`` and the signed request it became.
    """
    calls = RecordedCalls()
    providers = [spec.provider for spec in registry.providers.values()]
    for provider in providers:
        original = provider.connect

        def connect(
            config: ProviderConfig, fetch: HttpFetch, original: Callable[..., Connection] = original
        ) -> Connection:
            connection = original(config, fetch)
            prepare: Callable[[Call], Awaitable[HttpRequest]] = connection.prepare

            async def recording(call: Call) -> HttpRequest:
                request = await prepare(call)
                calls.append(call)
                calls.requests.append(request)
                return request

            connection.prepare = recording  # type: ignore[method-assign]
            return connection

        provider.connect = connect  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        for provider in providers:
            del provider.connect


def unmatched_calls(listing: Mapping[str, Sequence[DryRunCall]], calls: Sequence[Call]) -> list[str]:
    """How a run's mutating calls differ from its dry run's (empty: the same, names included).

    A dry run cannot know remote ids: its ``<Name>`` placeholders match any value.
    Every listed mutating call must have been sent with exactly these parameters, and
    every mutating call sent must be listed (repeats after a lost answer count once).
    """
    listed = [(iid, call) for iid, steps in listing.items() for call in steps if call.mutating]
    sent = [call for call in calls if call.mutating]
    problems = [f"{iid}: {call.step} {call.action} {dict(call.params)} was listed but not sent"
                for iid, call in listed
                if not any(c.action == call.action and _matches(call.params, c.params) for c in sent)]
    problems += [f"{call.action} {dict(call.params)} was sent but not listed by the dry run"
                 for call in sent
                 if not any(c.action == call.action and _matches(c.params, call.params) for _, c in listed)]
    return problems


_PLACEHOLDER = re.compile(r"<[^<>]+>")


def _matches(listed: Any, sent: Any) -> bool:
    if isinstance(listed, str) and _PLACEHOLDER.search(listed):
        pattern = ".+".join(re.escape(part) for part in _PLACEHOLDER.split(listed))
        return re.fullmatch(pattern, str(sent), re.DOTALL) is not None
    if isinstance(listed, Mapping):
        return isinstance(sent, Mapping) and listed.keys() == sent.keys() and all(
            _matches(value, sent[key]) for key, value in listed.items())
    if isinstance(listed, list | tuple):
        return isinstance(sent, list | tuple) and len(listed) == len(sent) and all(
            _matches(a, b) for a, b in zip(listed, sent, strict=True))
    return bool(listed == sent)
