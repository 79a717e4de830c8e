"""Reused worker tasks, and their guard: a cancel waits until the call on the wire is over."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import anyio
import pytest
from loopback import HeldConnection, loopback_server

from batchmig.engine.pipeline import Pipeline
from batchmig.engine.transport import HttpTransport
from batchmig.engine.workers import GuardedScope, Workers, current_guard
from batchmig.journal import Journal, PlannedRow
from batchmig.plugin import Call, CallStep
from batchmig.ratelimit import RateLimiter


async def _instance(pipeline: Pipeline, seen: list[Any], scopes: list[GuardedScope]) -> None:
    """As the engine's instance task: one read in a guarded scope, then a long wait."""
    with GuardedScope() as scope:
        scopes.append(scope)
        seen.append(await pipeline.read("c", Call("Describe", {})))
        await anyio.sleep(30)  # the cancellation held back during the send lands here
        seen.append("not cancelled")
    seen.append(("caught", scope.cancelled_caught))


@pytest.mark.anyio
@pytest.mark.parametrize("cancel", ["scope", "deadline", "task group"])
async def test_a_cancel_during_a_send_waits_until_the_call_is_answered(cancel: str) -> None:
    """A stop or a lost lease (the instance's scope), a step's deadline (a timer that
    cancels that scope) or the run's task group cancelled while a call is inside its
    send: the call still leaves and is answered and counted, and the cancellation lands
    at the instance's next wait."""
    arrived: list[float] = []
    seen: list[Any] = []
    scopes: list[GuardedScope] = []
    async with loopback_server(arrived) as url, HttpTransport(5.0) as transport:
        conn = HeldConnection(url)
        pipeline = Pipeline({"c": ("p", conn)}, RateLimiter(lambda key: 100.0), transport.send)
        groups: list[anyio.abc.TaskGroup] = []
        ended = anyio.Event()

        async def run() -> None:  # the run's task group, as the engine's
            async with anyio.create_task_group() as tg:
                groups.append(tg)
                Workers(tg, "instance").start_soon(_instance, pipeline, seen, scopes)
                await anyio.sleep_forever()
            ended.set()

        with anyio.fail_after(10):
            async with anyio.create_task_group() as outer:
                outer.start_soon(run)
                await conn.waiting.wait()
                if cancel == "scope":
                    scopes[0].cancel()
                elif cancel == "deadline":
                    loop = asyncio.get_running_loop()
                    loop.call_at(loop.time() + 0.01, scopes[0].cancel)
                else:
                    groups[0].cancel_scope.cancel()
                await asyncio.sleep(0.1)  # a cancel that did not wait would have cut the send by now
                assert arrived == [] and seen == []
                conn.go.set()
                if cancel != "task group":
                    while len(seen) < 2:
                        await asyncio.sleep(0.01)
                    groups[0].cancel_scope.cancel()  # the worker parked after its job
                await ended.wait()
    assert len(arrived) == 1 and pipeline.stats.sent["Describe"] == 1
    assert seen[0].payload == {"status": 200}
    assert "not cancelled" not in seen
    # The instance's own scope catches its own cancellation; the task group's goes through it.
    assert seen[1:] == ([] if cancel == "task group" else [("caught", True)])


@pytest.mark.anyio
async def test_a_mutating_call_cancelled_in_its_send_is_journaled_with_its_outcome(tmp_path: Path) -> None:
    """Its intent is durable before it leaves, and a stop while it is on the wire does not
    leave it unresolved: the answer's outcome is journaled before the stop lands."""
    arrived: list[float] = []
    journal = Journal.open(tmp_path / "journal.sqlite", create=True)
    journal.add_instances([PlannedRow("i-1", 0, "p", "w")])
    journal.start_writer()
    step = CallStep("create", lambda outputs: Call("Create", {}, mutating=True, resource="x"),
                    reconcile=lambda caller, outputs: _nothing(), read=lambda answer: {"made": True})
    caught: list[bool] = []
    try:
        async with loopback_server(arrived) as url, HttpTransport(5.0) as transport:
            conn = HeldConnection(url)
            pipeline = Pipeline({"c": ("p", conn)}, RateLimiter(lambda key: 100.0), transport.send,
                                journal=journal)
            scopes: list[GuardedScope] = []

            async def instance() -> None:
                with GuardedScope() as scope:
                    scopes.append(scope)
                    await pipeline.mutate("c", "i-1", 0, step, {})
                    await anyio.sleep(30)
                caught.append(scope.cancelled_caught)

            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    Workers(tg, "instance").start_soon(instance)
                    await conn.waiting.wait()
                    scopes[0].cancel()
                    await asyncio.sleep(0.05)
                    conn.go.set()
                    while not caught:
                        await asyncio.sleep(0.01)
                    tg.cancel_scope.cancel()
            await journal.flush()
        assert caught == [True] and len(arrived) == 1
        calls = journal.unresolved_calls()["i-1"]  # its step did not move on: the engine reads them
        assert [(call.action, call.state) for call in calls] == [("Create", "done")]
    finally:
        journal.close()


async def _nothing() -> None:
    return None


@pytest.mark.anyio
async def test_the_guard_is_the_running_workers_only() -> None:
    """A task a job starts inherits the worker's context, not its guard: its sends are
    shielded by anyio's scope, and nothing it holds defers the worker's cancellation."""
    found: dict[str, Any] = {}

    async def child() -> None:
        found["child"] = current_guard()

    async def job(tg: anyio.abc.TaskGroup) -> None:
        found["worker"] = current_guard()
        tg.start_soon(child)

    assert current_guard() is None
    async with anyio.create_task_group() as tg:
        Workers(tg, "instance").start_soon(job, tg)
        while "child" not in found:
            await asyncio.sleep(0.01)
        tg.cancel_scope.cancel()
    assert found["worker"] is not None and found["child"] is None


@pytest.mark.anyio
async def test_a_job_handed_over_after_its_group_was_cancelled_does_not_run_on() -> None:
    """The group's cancellation reaches workers through their guards: a job started after it
    (in a new task, as anyio leaves it, or in one already cancelled) must not run past a wait."""
    ran: list[str] = []

    async def job(name: str) -> None:
        ran.append(f"{name} started")
        await anyio.sleep(30)
        ran.append(f"{name} finished")

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            workers = Workers(tg, "instance")
            workers.start_soon(job, "first")
            await asyncio.sleep(0.01)
            tg.cancel_scope.cancel()
            await asyncio.sleep(0)
            workers.start_soon(job, "second")
    assert ran[0] == "first started" and not [line for line in ran if line.endswith("finished")]


@pytest.mark.anyio
async def test_a_cancelled_job_ends_its_worker_and_a_stale_cancel_touches_no_later_job() -> None:
    """A job's scope in a worker cancels the worker's own scope: the worker must not take
    another job after one was cancelled, and a scope cancelled once its job is over (a
    late timer, a stop walking stale scopes) must not reach whatever job came next."""
    log: list[str] = []
    scopes: dict[str, GuardedScope] = {}
    tasks: dict[str, asyncio.Task[Any] | None] = {}

    async def job(name: str, cancel_itself: bool) -> None:
        tasks[name] = asyncio.current_task()
        with GuardedScope() as scope:
            scopes[name] = scope
            if cancel_itself:
                scope.cancel()
            await asyncio.sleep(0.05)
            log.append(f"{name} slept")
        log.append(f"{name} caught" if scope.cancelled_caught else f"{name} done")
        if cancel_itself:  # the next jobs handed over at once, as a wave's next instances are
            loop = asyncio.get_running_loop()
            loop.call_soon(workers.start_soon, job, "next", False)
            loop.call_soon(workers.start_soon, job, "other", False)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            workers = Workers(tg, "instance")
            workers.start_soon(job, "cancelled", True)
            while not {"next done", "other done"} <= set(log):
                await asyncio.sleep(0.01)
            workers.start_soon(job, "after", False)  # a parked worker of "next" or "other"
            await asyncio.sleep(0.01)
            scopes["next"].cancel()
            scopes["other"].cancel()
            while "after done" not in log and "after caught" not in log:
                await asyncio.sleep(0.01)
            tg.cancel_scope.cancel()
    assert tasks["next"] is not tasks["cancelled"] and tasks["other"] is not tasks["cancelled"]
    assert tasks["after"] in (tasks["next"], tasks["other"])  # the parked worker was reused
    assert sorted(log) == sorted(["cancelled caught", "next slept", "other slept", "next done", "other done",
                                  "after slept", "after done"])
