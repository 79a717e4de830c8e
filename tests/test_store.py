"""The shared PostgreSQL store: the throw-away server, schema versions, claims, leases,
fencing, the shared limiter's SQL, and what PgBouncer in transaction mode needs."""

from __future__ import annotations

import itertools
import json
import os
import pwd
import shutil
import tempfile
import time
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import psycopg
import pytest
from click.testing import CliRunner
from loopback import HeldConnection, loopback_server
from store_helpers import fleet_plan

from batchmig.cli import CliContext, main
from batchmig.engine.pipeline import Pipeline
from batchmig.engine.transport import HttpTransport
from batchmig.errors import UsageError
from batchmig.journal import Journal, PlannedRow
from batchmig.plan.loader import load_plan
from batchmig.plugin import Answer, Call, CallStep, Connection, HttpRequest, HttpResponse
from batchmig.ratelimit import LimitKey, RateLimiter, SlotMissed
from batchmig.sharedlimit import SLOT_TOLERANCE, ExactLimiter, ShareLimiter
from batchmig.store.fence import Fence, LeaseLost
from batchmig.store.postgres import PostgresStore, SharedJournal
from batchmig.store.schema import MIGRATIONS, SCHEMA_VERSION
from batchmig.testing import make_registry
from batchmig.testing.helpers import FakeClock
from batchmig.testing.postgres import ServerAccount, ThrowawayPostgres, stage_installation, wheel_installation
from batchmig.testing.testcloud import TestcloudPlugin

# ------------------------------------------------------------ the throw-away server


def _serve_once(directory: Path, account: ServerAccount | None = None, installation: Path | None = None) -> str:
    with (ThrowawayPostgres(directory, account=account, installation=installation) as server,
          psycopg.connect(server.dsn) as conn):
        row = conn.execute("SELECT current_setting('server_version_num')::int, "
                           "(SELECT usename FROM pg_user WHERE usesysid = (SELECT datdba FROM pg_database "
                           "WHERE datname = 'postgres'))").fetchone()
        assert row is not None and row[0] >= 120000
        owner = Path(server.data).stat().st_uid
        return f"{row[0]}:{owner}"


def test_throwaway_server_runs_as_this_process_would(tmp_path: Path) -> None:
    """As root the server runs as an unprivileged account; otherwise as this user."""
    directory = Path(tempfile.mkdtemp(prefix="batchmig-pg-test-"))
    version, owner = _serve_once(directory).split(":")
    expected = pwd.getpwnam(os.environ.get("BATCHMIG_TEST_POSTGRES_USER", "nobody")).pw_uid \
        if os.geteuid() == 0 else os.geteuid()
    assert int(owner) == expected and int(version) >= 180000
    assert not directory.exists()


def _as_an_ordinary_user() -> None:
    """The non-root path, from a root CI: a child becomes ``nobody`` and starts its own server.

    (Run as an ordinary user, the test above already takes that path.)
    """
    account = pwd.getpwnam("nobody")
    directory = Path(tempfile.mkdtemp(prefix="batchmig-pg-user-"))
    os.chown(directory, account.pw_uid, account.pw_gid)
    # An ordinary user's own virtual environment is theirs to read; root's (tox's .tox is
    # 0700) is not, so hand the child the binaries where it can reach them.
    binaries = Path(tempfile.mkdtemp(prefix="batchmig-pg-bin-"))
    binaries.chmod(0o755)
    installation = stage_installation(wheel_installation(), binaries)
    pid = os.fork()
    if pid == 0:  # the child: an ordinary user from here on
        code = 1
        try:
            os.setgroups([])
            os.setgid(account.pw_gid)
            os.setuid(account.pw_uid)
            os.environ["HOME"] = str(directory)
            assert ServerAccount.for_this_process().uid is None  # runs the server itself
            _serve_once(directory, installation=installation)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    shutil.rmtree(binaries, ignore_errors=True)
    assert os.waitstatus_to_exitcode(status) == 0


if os.geteuid() == 0:
    test_throwaway_server_as_an_ordinary_user = _as_an_ordinary_user


# ------------------------------------------------------------------ schema


@pytest.fixture
def cli_registry():
    return make_registry(TestcloudPlugin())


def _cli(*args: str, registry=None) -> tuple[int, str]:
    """The CLI with the testcloud registry handed in through click's obj (no module global)."""
    result = CliRunner().invoke(main, list(args), obj=CliContext(registry=registry or make_registry(TestcloudPlugin())))
    return result.exit_code, result.output


def test_store_init_upgrade_and_unknown_schema(postgres_dsn: str, cli_registry, plan_file, tmp_path: Path) -> None:
    plan = plan_file(fleet_plan(2))
    code, out = _cli("status", "x", "--store", postgres_dsn)
    assert code == 2 and "has no batchmig schema" in out and "batchmig store init" in out
    code, out = _cli("store", "upgrade", "--store", postgres_dsn)
    assert code == 2 and "store init" in out
    code, out = _cli("store", "init", "--store", postgres_dsn)
    assert code == 0 and f"schema version {SCHEMA_VERSION} created" in out
    code, out = _cli("store", "init", "--store", postgres_dsn)
    assert code == 0 and "already at schema version" in out
    code, out = _cli("store", "upgrade", "--store", postgres_dsn)
    assert code == 0 and "already at schema version" in out
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO batchmig_schema (version) VALUES (%s)", (SCHEMA_VERSION + 1,))
    code, out = _cli("run", str(plan), "--store", postgres_dsn, "--runs-root", str(tmp_path / "runs"))
    assert code == 2 and f"this batchmig knows up to {SCHEMA_VERSION}" in out and "Traceback" not in out
    code, out = _cli("run", str(plan), "--store", "mysql://x", "--runs-root", str(tmp_path / "runs"))
    assert code == 2 and "not a PostgreSQL URL" in out
    unreachable = "postgresql://nobody:s3cr3t-pw@127.0.0.1:1/none"
    code, out = _cli("status", "x", "--store", unreachable)
    assert code == 3 and "cannot reach the store" in out and "s3cr3t-pw" not in out


def test_store_upgrade_to_4_keeps_old_runs_and_status_shows_the_journaled_tags(
    postgres_dsn: str, cli_registry, plan_file
) -> None:
    """Version 4 keeps each instance's tags and cutover policy; a run created before it reads as it was."""
    with psycopg.connect(postgres_dsn) as conn, conn.transaction():
        for version in (1, 2, 3):
            conn.execute(MIGRATIONS[version])
            conn.execute("INSERT INTO batchmig_schema (version) VALUES (%s)", (version,))
        conn.execute("INSERT INTO batchmig_runs (id, plan_name, plan_text, plan_sha256, meta) "
                     "VALUES ('old-run', 'old', '', 'x', '{\"run_id\": \"old-run\"}')")
        conn.execute("INSERT INTO batchmig_instances (run, id, position, provider, wave, wave_index) "
                     "VALUES ('old-run', 'i1', 0, 'testcloud', 'default', 0)")
    code, out = _cli("store", "upgrade", "--store", postgres_dsn)
    assert code == 0 and "4" in out, out
    code, out = _cli("status", "old-run", "--store", postgres_dsn, "--format", "json")
    assert code == 0, out
    (old,) = json.loads(out)["instances"]
    assert old["id"] == "i1" and old["tags"] == {} and old["cutover"] is None

    plan = load_plan(str(plan_file(fleet_plan(3, waves=2, manual_every=2).replace(
        "wave: w1", "wave: w1, tags: {team: crm}"))), cli_registry)
    store = PostgresStore(postgres_dsn)
    try:
        store.create_run("new-run", plan, {"run_id": "new-run"})
    finally:
        store.close()
    code, out = _cli("status", "new-run", "--store", postgres_dsn, "--format", "json")
    assert code == 0, out
    document = json.loads(out)
    assert [(i["id"], i["tags"], i["cutover"]) for i in document["instances"]] == [
        ("fleet-0000", {}, "manual"), ("fleet-0001", {"team": "crm"}, "auto"),
        ("fleet-0002", {"team": "crm"}, "manual")]
    assert [w["name"] for w in document["waves"]] == ["w0", "w1"]


# ------------------------------------------------------- claims, leases, fences


def _new_run(dsn: str, plan_text: str, tmp_path: Path) -> tuple[PostgresStore, str]:
    store = PostgresStore(dsn)
    store.migrate(create=True)
    path = tmp_path / "plan.yaml"
    path.write_text(plan_text)
    plan = load_plan(str(path), make_registry(TestcloudPlugin()))
    store.create_run("run-1", plan, {"run_id": "run-1"})
    return store, "run-1"


@pytest.mark.anyio
async def test_claims_are_exclusive_in_wave_order_and_fenced_after_takeover(postgres_dsn: str, tmp_path: Path):
    store, run = _new_run(postgres_dsn, fleet_plan(6, waves=2), tmp_path)
    a = SharedJournal(store, run, "runner-a", ttl=30, margin=5)
    b = SharedJournal(store, run, "runner-b", ttl=30, margin=5)
    lost: list[str] = []
    a.on_lost = lost.append
    await a.open()
    await b.open()
    try:
        first = await a.claim(0, 2, 100, 100, 100)
        second = await b.claim(0, 5, 100, 100, 100)
        assert [c.record.id for c in first] == ["fleet-0000", "fleet-0001"]
        assert [c.record.id for c in second] == ["fleet-0002"]  # wave 0 only, nothing twice
        assert await b.claim(0, 5, 100, 100, 100) == []
        call = await a.intent("fleet-0000", 0, "CreateJob", "job-x")
        a.set_instance("fleet-0000", "running", step=0, step_name="create-job")
        await a.flush()
        # a's lease runs out on the database's clock; b takes over and gets the open intent
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute("UPDATE batchmig_instances SET lease_until = now() - interval '1 second' "
                         "WHERE owner = 'runner-a'")
        taken = {c.record.id: c for c in await b.claim(0, 5, 100, 100, 100)}
        assert set(taken) == {"fleet-0000", "fleet-0001"}
        assert taken["fleet-0000"].epoch == first[0].epoch + 1
        assert [i.id for i in taken["fleet-0000"].unresolved] == [call]
        assert taken["fleet-0000"].record.status == "running"
        # every write of the zombie fails the epoch check
        a.outcome(call, "done", outputs={"JobId": "zombie"})
        a.set_instance("fleet-0000", "succeeded")
        with pytest.raises(LeaseLost):
            await a.intent("fleet-0001", 0, "CreateJob", "job-y")
        await a.flush()
        assert set(lost) == {"fleet-0000", "fleet-0001"}
        assert await a.renew() == set()  # nothing left to renew: the epochs were dropped
        records = store.instances(run)
        assert records["fleet-0000"].status == "running" and records["fleet-0000"].outputs == {}
        assert store.unresolved_calls(run)["fleet-0000"][0].id == call
        # the owner writes; a lease with less than the margin left takes a new intent only
        # after the next renewal (it is late, not lost)
        b.set_instance("fleet-0000", "succeeded")
        await b.flush()
        assert store.instances(run)["fleet-0000"].status == "succeeded"
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute("UPDATE batchmig_instances SET lease_until = now() + interval '2 seconds' "
                         "WHERE id = 'fleet-0002'")
        async with anyio.create_task_group() as tg:
            waiting = anyio.Event()
            recorded: list[int] = []

            async def intent() -> None:
                waiting.set()
                recorded.append(await b.intent("fleet-0002", 0, "CreateJob", "job-z"))

            tg.start_soon(intent)
            await waiting.wait()
            await b.flush()
            await b.flush()
            assert recorded == [] and "fleet-0002" in b.epochs
            assert await b.renew() == set()
        assert len(recorded) == 1 and [i.id for i in store.unresolved_calls(run)["fleet-0002"]] == recorded
        # renewal by the same epoch works even after expiry, as long as nobody took over
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute("UPDATE batchmig_instances SET lease_until = now() - interval '1 second' "
                         "WHERE id = 'fleet-0002'")
        assert await b.renew() == set()
    finally:
        await a.aclose()
        await b.aclose()
        store.close()


@pytest.mark.anyio
async def test_renewals_and_writes_of_one_runner_never_deadlock(postgres_dsn: str, tmp_path: Path) -> None:
    """A renewal updates the runner's instance rows in one order, a batch of writes in
    another: run together, PostgreSQL would break the deadlock by failing one of them."""
    store, run = _new_run(postgres_dsn, fleet_plan(60), tmp_path)
    journal = SharedJournal(store, run, "a", ttl=30, margin=5)
    failures: list[str] = []
    journal._store_unreachable = lambda exc: failures.append(str(exc))  # type: ignore[method-assign]
    await journal.open()
    try:
        ids = [claim.record.id for claim in await journal.claim(0, 60, 100, 100, 100)]
        for round_ in range(25):
            for iid in ids if round_ % 2 else reversed(ids):
                journal.set_instance(iid, "running", step=round_)
            async with anyio.create_task_group() as tg:
                tg.start_soon(journal.flush)
                tg.start_soon(journal.renew)
        assert failures == []
        assert {r.step for r in store.instances(run).values()} == {24}
    finally:
        await journal.aclose()
        store.close()


@pytest.mark.anyio
async def test_canaries_budget_and_concurrency_hold_across_runners(postgres_dsn: str, tmp_path: Path):
    plan = fleet_plan(6, waves=1, canary=2, budget="1", max_concurrency=3)
    store, run = _new_run(postgres_dsn, plan, tmp_path)
    a = SharedJournal(store, run, "a", ttl=30, margin=5)
    b = SharedJournal(store, run, "b", ttl=30, margin=5)
    await a.open()
    await b.open()
    try:
        assert [c.record.id for c in await a.claim(0, 10, 3, 3, 1)] == ["fleet-0000", "fleet-0001"]  # canaries
        assert await b.claim(0, 10, 3, 3, 1) == []
        for iid in ("fleet-0000", "fleet-0001"):
            a.set_instance(iid, "succeeded")
            a.release(iid)
        await a.flush()
        assert len(await b.claim(0, 10, 3, 3, 1)) == 3  # the run's max_concurrency, across runners
        assert await a.claim(0, 10, 3, 3, 1) == []
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute("UPDATE batchmig_instances SET status = 'failed', owner = NULL WHERE run = %s "
                         "AND id IN ('fleet-0002', 'fleet-0003')", (run,))
        assert await a.claim(0, 10, 3, 3, 1) == []  # 2 failed > budget 1: nothing new starts
        state = await a.wave_state(0)
        assert state.failed == 2 and state.canaries_ok
    finally:
        await a.aclose()
        await b.aclose()
        store.close()


@pytest.mark.anyio
async def test_no_server_side_prepared_statements_and_no_session_state(postgres_dsn: str, tmp_path: Path):
    """PgBouncer in transaction mode: any transaction may land on any server connection."""
    store, run = _new_run(postgres_dsn, fleet_plan(4), tmp_path)
    journal = SharedJournal(store, run, "a", ttl=30, margin=5, pool_reset="DISCARD ALL")
    await journal.open()
    try:
        for _ in range(3):
            claims = await journal.claim(0, 4, 100, 100, 100)
            for claim in claims:
                for step in range(4):
                    call = await journal.intent(claim.record.id, step, "CreateJob", "r")
                    journal.outcome(call, "done")
                    journal.set_instance(claim.record.id, "running", step=step + 1)
                    journal.step_finished(claim.record.id, step, "s", 0.0, "succeeded")
            assert await journal.renew() == set()
        await journal.flush()
        for _ in range(journal._pool_size):
            async with journal._pool.connection() as conn:
                cursor = await conn.execute("SELECT count(*) FROM pg_prepared_statements")
                assert (await cursor.fetchone()) == (0,)
        assert {r.status for r in store.instances(run).values()} == {"running"}
    finally:
        await journal.aclose()
        store.close()


def test_operator_requests_are_journaled_with_what_they_change(postgres_dsn: str, tmp_path: Path) -> None:
    """cutover and retry against the store: one transaction each, who asked from where."""
    from batchmig.journal import Requester
    from batchmig.report import build_run_report

    store, run = _new_run(postgres_dsn, fleet_plan(4), tmp_path)
    try:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute("UPDATE batchmig_instances SET status = 'failed', error = '{\"code\": \"X\"}' "
                         "WHERE id IN ('fleet-0001', 'fleet-0002')")
            conn.execute("UPDATE batchmig_instances SET owner = 'r', lease_until = now() + interval '1 minute' "
                         "WHERE id = 'fleet-0002'")  # failed, but a runner still holds it
        view = store.view(run)
        first = view.release_cutovers({"fleet-0000": "awaiting_cutover"}, Requester("dba", "jump-1"),
                                      "--select fleet-0000")
        with pytest.raises(UsageError, match="a runner still holds fleet-0002"):
            view.request_retry({"fleet-0001": "failed", "fleet-0002": "failed"}, Requester("dba", "jump-2"))
        assert store.instances(run)["fleet-0001"].status == "failed"  # all or nothing
        second = view.request_retry({"fleet-0001": "failed"}, Requester("dba", "jump-2"), "--status failed")
        assert second > first
        records = store.instances(run)
        assert (records["fleet-0001"].status, records["fleet-0001"].error) == ("pending", None)
        assert store.released_cutovers(run) == {"fleet-0000"}
        requests = build_run_report(view).to_json_dict()["requests"]
        assert [(r["kind"], r["user"], r["host"], r["selection"], r["instances"]) for r in requests] == [
            ("cutover", "dba", "jump-1", "--select fleet-0000", 1), ("retry", "dba", "jump-2", "--status failed", 1)]
    finally:
        store.close()


# --------------------------------------------------------------- the fence


@pytest.mark.anyio
async def test_fence_closes_a_margin_before_the_lease_ends(fake_clock):
    fence = Fence(ttl=30, margin=11, clock=fake_clock)
    assert not fence.is_open()  # closed until the first renewal
    fence.renewed(fake_clock.now())
    assert fence.is_open() and not await fence.wait_open()
    fake_clock.advance(18.9)
    assert fence.is_open()
    fake_clock.advance(0.2)  # 30 - 11 seconds after the renewal started
    assert not fence.is_open()
    fence.give_up("store gone")
    with pytest.raises(LeaseLost):
        await fence.wait_open()
    with pytest.raises(ValueError):
        Fence(ttl=10, margin=6)


class _FreezingConnection(Connection):
    """Its first request is prepared across a freeze of the runner longer than the fence allows."""

    account, region = "acct", "r1"

    def __init__(self, url: str, freeze: float) -> None:
        self.url, self.freeze = url, freeze

    async def prepare(self, call: Call) -> HttpRequest:
        if self.freeze:
            time.sleep(self.freeze)  # the whole process stops, as under SIGSTOP
            self.freeze = 0.0
        return HttpRequest("POST", self.url, {"Content-Type": "application/json"}, b"{}")

    def parse(self, call: Call, response: HttpResponse) -> Answer:
        return Answer({"status": response.status})


@pytest.mark.anyio
async def test_a_call_admitted_before_a_freeze_leaves_only_after_a_renewal() -> None:
    """Admitted with the fence open, the runner freezes before writing: on waking the
    transport's last look keeps the bytes in until a renewal reopens the fence."""
    arrived: list[float] = []
    async with loopback_server(arrived) as url, HttpTransport(5.0) as transport:
        fence = Fence(ttl=1.0, margin=0.4)
        fence.renewed(time.monotonic())
        conn = _FreezingConnection(url, freeze=0.8)
        async with anyio.create_task_group() as tg:
            pipeline = Pipeline({"c": ("p", conn)}, RateLimiter(lambda key: 100.0), transport.send, fence=fence)
            tg.start_soon(pipeline.read, "c", Call("Describe", {}))
            await anyio.sleep(1.2)  # the freeze is over; the call waits at the closed fence
            assert arrived == [] and pipeline.stats.sent["Describe"] == 0
            renewed = time.monotonic()
            fence.renewed(renewed)
        assert len(arrived) == 1 and arrived[0] >= renewed and pipeline.stats.sent["Describe"] == 1


@pytest.mark.anyio
async def test_a_create_of_an_instance_taken_over_never_leaves_once_the_fence_reopens(tmp_path: Path) -> None:
    """A zombie wakes with a create already in its shielded send; the renewal finds the
    instance taken over, cancels its task (the shield defers that) and reopens the
    fence for the instances still held: the create must not pass the reopened fence,
    since the new owner has reconciled it and sent it itself."""
    arrived: list[float] = []
    journal = Journal.open(tmp_path / "journal.sqlite", create=True)
    journal.add_instances([PlannedRow("i-1", 0, "p", "w")])
    journal.start_writer()
    step = CallStep("create", lambda outputs: Call("Create", {}, mutating=True, resource="x"),
                    reconcile=lambda caller, outputs: _nothing())
    try:
        async with loopback_server(arrived) as url, HttpTransport(5.0) as transport:
            fence = Fence(ttl=60.0, margin=4.0)
            fence.renewed(time.monotonic())
            conn = HeldConnection(url)
            pipeline = Pipeline({"c": ("p", conn)}, RateLimiter(lambda key: 100.0), transport.send,
                                journal=journal, fence=fence)
            outcome: list[LeaseLost] = []

            async def create() -> None:  # as the engine's instance task, which ends on LeaseLost
                try:
                    await pipeline.mutate("c", "i-1", 0, step, {})
                except LeaseLost as exc:
                    outcome.append(exc)

            async with anyio.create_task_group() as tg:
                with anyio.CancelScope() as scope:
                    tg.start_soon(create)
                    await conn.waiting.wait()  # its intent is journaled; it is in the shielded send
                    scope.cancel()  # what the heartbeat does for a lost lease ...
                    try:
                        fence.renewed(time.monotonic(), lost={"i-1"})  # ... then it reopens the fence
                    finally:
                        conn.go.set()
            assert arrived == [] and pipeline.stats.sent["Create"] == 0
            assert len(outcome) == 1
            # Claimed here again later, the instance's new calls leave (only the stale one was kept in).
            await pipeline.mutate("c", "i-1", 0, step, {})
        assert len(arrived) == 1 and pipeline.stats.sent["Create"] == 1
    finally:
        journal.close()


async def _nothing() -> None:
    return None


# --------------------------------------------------------- the limiter's SQL


def test_exact_reservations_never_exceed_the_cap_in_a_window(postgres_dsn: str, tmp_path: Path) -> None:
    """45 reservations of a key at 20 per 1.05 s (a window and its margin), asked for at once:
    each slot comes at least a twentieth of 1.05 s after the one before, no 21 slots fall
    within 1.05 s, the log keeps the last 20, and each caller is told to wait until its slot.

    Read on the database's own clock, around each call: how long the 45 calls take is no
    part of it. (Comparing the delays, the 45th at least 2 s longer than the first, held only
    while the calls took under 0.3 s in all: it failed once at load 27.)"""
    store, _ = _new_run(postgres_dsn, fleet_plan(1), tmp_path)
    slots, delays, answered = [], [], []
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        for _ in range(45):
            before = conn.execute("SELECT clock_timestamp()").fetchone()[0]
            delays.append(conn.execute("SELECT batchmig_reserve('k', 20, 1.0, 0.05, 1.0)").fetchone()[0])
            slot, after = conn.execute(
                "SELECT slots[cardinality(slots)], clock_timestamp() FROM batchmig_rate_keys WHERE key = 'k'"
            ).fetchone()
            slots.append(slot.timestamp())
            answered.append((before.timestamp(), after.timestamp()))
        kept = conn.execute("SELECT cardinality(slots) FROM batchmig_rate_keys WHERE key = 'k'").fetchone()[0]
    assert kept == 20
    assert all(b - a >= 1.05 / 20 - 1e-6 for a, b in itertools.pairwise(slots))  # evenly spaced
    assert all(slots[n + 20] - slots[n] >= 1.05 - 1e-6 for n in range(len(slots) - 20))  # never 21 in a window
    for slot, delay, (before, after) in zip(slots, delays, answered, strict=True):
        # the delay counts from a moment within the call: who waits it leaves at its slot
        assert before - 1e-6 <= slot - delay <= after + 1e-6, (slot, delay, before, after)
    store.close()


@asynccontextmanager
async def _exact_limiter(
    postgres_dsn: str, tmp_path: Path, clock: FakeClock | None = None
) -> AsyncIterator[tuple[ExactLimiter, LimitKey]]:
    """An exact limiter at a cap of 2 on a fresh run's shared journal, and its key."""
    store, run = _new_run(postgres_dsn, fleet_plan(1), tmp_path)
    journal = SharedJournal(store, run, "exact", ttl=30, margin=1)
    await journal.open()
    try:
        yield ExactLimiter(lambda key: 2.0, journal, clock=clock), LimitKey("testcloud", "acct", "r1", "CreateJob")
    finally:
        await journal.aclose()
        store.close()


@pytest.mark.anyio
async def test_an_exact_slot_is_also_held_to_the_runners_own_window(postgres_dsn: str, tmp_path: Path):
    """The database spaces a cap of 2 at 0.55 s; the local check holds the third call
    until a window after the first call's answer, and an unanswered first call counts
    as arriving as late as the check allows (0.5 s): at least 1.5 s after it left."""
    async with _exact_limiter(postgres_dsn, tmp_path) as (limiter, key):
        first = await limiter.acquire(key)
        assert first is not None  # departures and answers are measured, as for one runner
        first.left()
        left = time.monotonic()
        second = await limiter.acquire(key)
        assert second is not None
        second.left()
        second.answered()
        assert await limiter.acquire(key) is not None
        assert time.monotonic() - left >= 1.5 - 0.01


@pytest.mark.anyio
async def test_an_exact_slot_must_be_used_soon_after_it_comes(postgres_dsn: str, tmp_path: Path):
    """Another runner's calls take the slots after this one's: a call written later
    than its slot plus the tolerance could share their window, so its release carries a
    deadline no later than that (read before the reservation was asked for).

    On the runner's clock, injected: with the real one, a database round trip or a
    wake-up later than the tolerance (50 ms, exceeded at load 15+) made a call that
    left at once look late."""
    clock = FakeClock(start=time.monotonic())
    async with _exact_limiter(postgres_dsn, tmp_path, clock) as (limiter, key):
        for _ in range(3):  # the third waits for its slot
            before = clock.now()
            release = await limiter.acquire(key)
            assert release is not None and release.deadline is not None
            assert release.deadline <= clock.now() + SLOT_TOLERANCE
            assert release.deadline >= before + SLOT_TOLERANCE
            release.check_on_time()
            release.left()
            release.answered()
        assert clock.slept and max(clock.slept) > 0.5  # the third waited for its slot (a cap of 2)
        clock.advance(SLOT_TOLERANCE + 0.01)
        with pytest.raises(SlotMissed):
            release.check_on_time()


@pytest.mark.anyio
async def test_shares_shrink_before_grow_and_return_after_lease(postgres_dsn: str, tmp_path: Path):
    store, run = _new_run(postgres_dsn, fleet_plan(1), tmp_path)
    journals = [SharedJournal(store, run, name, ttl=3, margin=1) for name in ("a", "b")]
    for journal in journals:
        await journal.open()
    a, b = (ShareLimiter(lambda key: 20.0, journal) for journal in journals)
    key = LimitKey("testcloud", "acct", "r1", "CreateJob")
    try:
        assert await a.rebalance(key, 20) == 20
        assert await b.rebalance(key, 20) == 0  # a still holds it all
        assert await a.rebalance(key, 20) == 10  # a shrinks to its fair share at once...
        assert await b.rebalance(key, 20) == 0  # ...but b grows only a window later
        await anyio.sleep(1.4)
        assert await b.rebalance(key, 20) == 10
        assert a._shares[key].share + b._shares[key].share <= 20
        # a dies: its share returns after its lease (3 s) plus one window, not at expiry
        await anyio.sleep(2.0)
        assert await b.rebalance(key, 20) == 10
        await anyio.sleep(1.2)
        assert await b.rebalance(key, 20) == 20
        # a throttle lowers the key for everyone
        await b._penalize_shared(key, 2.0)
        assert await b.rebalance(key, 20) == 10
    finally:
        for journal in journals:
            await journal.aclose()
        store.close()


def test_unknown_limiter_mode_is_a_usage_error() -> None:
    from batchmig.scaleout import StoreOptions

    with pytest.raises(UsageError):
        StoreOptions("postgresql://x", limiter="fast")
