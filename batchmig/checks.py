"""Checks before a change window: ``validate --env`` and ``run --check``.

``validate PLAN --env`` is offline: it only asks whether every secret the plan needs
resolves on this machine (``batchmig.envcheck``). ``run PLAN --check`` does that too,
then runs each provider's read-only pre-flight (``Provider.preflight``: does the target
exist, is the job in a state that can start...) for every instance whose provider
configuration has its credentials — all in one pass, so one run of ``--check`` names
every problem, not the first.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import IO, Any

import anyio

from batchmig import eventloop
from batchmig.engine.pipeline import Pipeline, ReadCaller
from batchmig.engine.runner import instance_view
from batchmig.engine.transport import HttpTransport
from batchmig.envcheck import MISSING_COLUMNS, EnvironmentCheck, check_environment, describe
from batchmig.errors import PlanError, printable
from batchmig.listing import Column, Format, emit
from batchmig.operations import build_connections, rate_table, retry_policy
from batchmig.plan.loader import load_plan
from batchmig.plan.model import Plan
from batchmig.ratelimit import RateLimiter
from batchmig.redaction import REDACTOR
from batchmig.registry import Registry
from batchmig.sandbox.config import SandboxConfig
from batchmig.sandbox.host import Sandbox

PROBLEM_COLUMNS = (Column("instance", "instance"), Column("problem", "problem"))
VALIDATE_COLUMNS = (Column("kind", "kind"), Column("where", "where"), Column("message", "message"),
                    Column("instances", "instances"))


def validate(path: str, registry: Registry, fmt: Format, *, check_env: bool, sandbox: bool,
             out: IO[str] | None = None) -> bool:
    """``batchmig validate``: True when the plan is valid (and, with ``check_env``, every
    secret it needs resolves). A ``PlanError`` propagates in text (the CLI lists it)."""
    out = out or sys.stdout
    try:
        plan = load_plan(path, registry)
    except PlanError as exc:
        if fmt == "text":
            raise
        rows = [{"kind": "problem", "where": f"{p.file}:{p.line}:{p.column} {p.path}".rstrip(),
                 "message": p.message, "instances": ""} for p in exc.problems]
        if fmt == "json":
            print(json.dumps({"valid": False, "problems": [p.as_dict() for p in exc.problems]}, indent=2), file=out)
        else:
            emit("", VALIDATE_COLUMNS, rows, "csv", out=out)
        return False
    environment = check_environment(plan, registry, sandbox=sandbox) if check_env else None
    missing = environment.missing if environment is not None else []
    if fmt == "json":
        document: dict[str, Any] = {"valid": True, "problems": [], "instances": len(plan.instances)}
        if environment is not None:
            document["missing"] = [m.row() for m in missing]
        print(json.dumps(document, indent=2), file=out)
    elif fmt == "csv":
        emit("", VALIDATE_COLUMNS, ({"kind": "missing", "where": m.row()["needed_by"], "message": m.source,
                                     "instances": m.instances} for m in missing), "csv", out=out)
    else:
        waves = ", ".join(f"{w.name} ({len(w.instances)})" for w in plan.waves)
        print(f"{printable(path)}: valid — {len(plan.instances)} instances; waves: {waves}", file=out)
        if environment is not None:
            print_environment(environment, "text", out)
    return not missing


def print_environment(check: EnvironmentCheck, fmt: Format, out: IO[str] | None = None) -> None:
    out = out or sys.stdout
    if fmt != "text":
        emit("", MISSING_COLUMNS, (m.row() for m in check.missing), fmt, out=out)
        return
    for line in describe(check.missing):
        print(line, file=out)
    if check.missing:
        print(f"environment: {len(check.missing)} missing — set them before the run (nothing was called)", file=out)
    else:
        print("environment: every credential and secret the plan refers to resolves", file=out)


def run_check(plan: Plan, registry: Registry, sandbox: SandboxConfig | None, fmt: Format) -> bool:
    """``run --check``: secrets, then the live pre-flight; print every problem; True if none."""
    environment = check_environment(plan, registry, sandbox=sandbox is not None)
    problems = eventloop.run(preflight, plan, registry, sandbox, environment.incomplete)
    unchecked = sum(1 for inst in plan.instances if inst.connection in environment.incomplete)
    if fmt == "json":
        print(json.dumps({"missing": [m.row() for m in environment.missing], "problems": problems,
                          "unchecked": unchecked}, indent=2))
    elif fmt == "csv":
        rows = [{"instance": "", "problem": f"missing {m.source} ({m.row()['needed_by']})"}
                for m in environment.missing]
        rows += [{"instance": iid, "problem": p} for iid, found in problems.items() for p in found]
        emit("", PROBLEM_COLUMNS, rows, "csv")
    else:
        for line in describe(environment.missing):
            print(line)
        for iid, found in problems.items():
            for problem in found:
                print(f"{iid}: {problem}")
        checked = len(plan.instances) - unchecked
        line = f"pre-flight: {checked - len(problems)} ready, {len(problems)} with problems"
        if unchecked:
            line += f", {unchecked} not checked (their provider's credentials are missing)"
        if environment.missing:
            line += f"; {len(environment.missing)} secrets missing"
        print(line)
    return not (environment.missing or problems)


async def preflight(
    plan: Plan, registry: Registry, sandbox_config: SandboxConfig | None, skip: frozenset[str] = frozenset()
) -> dict[str, list[str]]:
    """The providers' read-only pre-flight for every instance (but those of ``skip``'s
    provider configurations): instance id -> problems found."""
    problems: dict[str, list[str]] = {}
    instances = [inst for inst in plan.instances if inst.connection not in skip]
    if not instances:
        return problems
    async with contextlib.AsyncExitStack() as stack:
        endpoints = None
        if sandbox_config is not None:
            endpoints = (await stack.enter_async_context(Sandbox(registry.emulators, None, sandbox_config))).endpoints
        transport = await stack.enter_async_context(HttpTransport(plan.document.run.call_timeout))
        used = {inst.connection for inst in instances}
        connections = build_connections(plan, registry, transport.send, endpoints, only=used)
        pipeline = Pipeline(connections, RateLimiter(rate_table(plan, registry, connections)), transport.send,
                            read_only=True, retry=retry_policy(plan))
        slots = anyio.Semaphore(50)

        async def check_one(inst: Any) -> None:
            async with slots:
                provider = registry.provider(inst.provider)
                try:
                    found = await provider.preflight(ReadCaller(pipeline, inst.connection),
                                                     instance_view(inst, "check"))
                except Exception as exc:
                    found = [f"pre-flight failed: {exc}"]
                if found:  # the cloud's words, which may quote the request (and its credentials)
                    problems[inst.id] = [REDACTOR(str(problem)) for problem in found]

        async with anyio.create_task_group() as tg:
            for inst in instances:
                tg.start_soon(check_one, inst)
    return problems
