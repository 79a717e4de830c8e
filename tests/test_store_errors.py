"""What a runner does when the store answers with an error rather than a result: one
classification (``batchmig.store.postgres.classify``), provoked for real on the
throw-away PostgreSQL — a statement_timeout, a backend terminated mid-rebalance, a
statement the store refuses for good."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import anyio
import psycopg
import pytest
from store_helpers import fleet_plan
from structlog.testing import capture_logs

from batchmig.errors import JournalError
from batchmig.plan.loader import load_plan
from batchmig.ratelimit import LimitKey
from batchmig.sharedlimit import ShareLimiter
from batchmig.store.postgres import (
    PERMANENT,
    TRANSIENT,
    UNREACHABLE,
    PostgresStore,
    SharedJournal,
    StoreRefused,
    StoreUnavailable,
    classify,
    connection_kwargs,
    transaction_guard,
)
from batchmig.testing import make_registry
from batchmig.testing.testcloud import TestcloudPlugin

KEY = LimitKey("testcloud", "acct", "r1", "CreateJob")


@asynccontextmanager
async def _runner(dsn: str, tmp_path: Path, **kwargs: float) -> AsyncIterator[tuple[SharedJournal, ShareLimiter]]:
    store = PostgresStore(dsn)
    store.migrate(create=True)
    path = tmp_path / "plan.yaml"
    path.write_text(fleet_plan(1))
    store.create_run("run-1", load_plan(str(path), make_registry(TestcloudPlugin())), {"run_id": "run-1"})
    journal = SharedJournal(store, "run-1", "a", ttl=30, margin=5, **kwargs)
    stopped: list[JournalError] = []
    journal.on_failure = stopped.append
    await journal.open()
    try:
        yield journal, ShareLimiter(lambda key: 20.0, journal)
    finally:
        await journal.aclose()
        store.close()


@contextmanager
def _key_row_locked(dsn: str) -> Iterator[psycopg.Connection]:
    """Another session holds the key's row, as a runner frozen mid-rebalance would."""
    with psycopg.connect(dsn) as admin:
        admin.execute("SELECT 1 FROM batchmig_rate_keys WHERE key = %s FOR UPDATE", (str(KEY),))
        yield admin
        admin.rollback()


def _shares(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT coalesce(sum(share), 0) FROM batchmig_rate_shares").fetchone()
        assert row is not None
        return int(row[0])


def test_one_classification_of_database_errors(postgres_dsn: str) -> None:
    """Errors raised by the server itself, each provoked for real."""
    with psycopg.connect(postgres_dsn, autocommit=True) as conn, psycopg.connect(postgres_dsn) as other:
        conn.execute("SET statement_timeout = '50ms'")
        with pytest.raises(psycopg.Error) as timeout:
            conn.execute("SELECT pg_sleep(1)")
        assert classify(timeout.value) == TRANSIENT
        conn.execute("SET statement_timeout = 0")
        with pytest.raises(psycopg.Error) as missing:
            conn.execute("SELECT batchmig_no_such_function()")
        assert classify(missing.value) == PERMANENT
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert pid is not None
        other.execute("SELECT pg_terminate_backend(%s)", pid)
        other.commit()
        with pytest.raises(psycopg.Error) as terminated:
            conn.execute("SELECT 1")
        assert classify(terminated.value) == UNREACHABLE
    assert classify(ValueError("not a database error")) is None


@pytest.mark.anyio
async def test_a_rebalance_that_times_out_keeps_the_share_and_is_retried(postgres_dsn: str, tmp_path: Path):
    """A statement_timeout while the key's row is held elsewhere: the rebalance fails,
    the runner keeps the share it had (never more), says so once, and the next
    rebalance after the row is free goes through."""
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute("SELECT set_config('statement_timeout', '150ms', false)")
        database = admin.info.dbname
        admin.execute(f'ALTER DATABASE "{database}" SET statement_timeout = \'150ms\'')  # the pool's sessions
    async with _runner(postgres_dsn, tmp_path) as (journal, limiter):
        assert await limiter.rebalance(KEY, 8) == 8
        with capture_logs() as events, _key_row_locked(postgres_dsn):
            for _ in range(3):
                with pytest.raises(StoreUnavailable, match="gave up on a statement: canceling statement"):
                    await limiter.rebalance(KEY, 20)
                assert limiter._shares[KEY].share == 8 and _shares(postgres_dsn) == 8
        assert [e["event"] for e in events] == ["store.statement_failed"]  # once, not per failure
        with capture_logs() as events:
            assert await limiter.rebalance(KEY, 20) == 20
        assert [e["event"] for e in events] == ["store.reachable_again"]
        assert journal._failure is None


@pytest.mark.anyio
async def test_the_rebalance_loop_survives_a_terminated_backend(postgres_dsn: str, tmp_path: Path):
    """The runner's connection is ended (``pg_terminate_backend``) while its rebalance
    waits for the key's row: the limiter's loop goes on, the share held stays in force
    meanwhile, and the key is rebalanced once the store answers again."""
    async with _runner(postgres_dsn, tmp_path) as (journal, limiter):
        assert await limiter.rebalance(KEY, 5) == 5
        with capture_logs() as events:
            async with anyio.create_task_group() as tg:
                with (_key_row_locked(postgres_dsn),
                      psycopg.connect(postgres_dsn, autocommit=True) as admin):
                    limiter._share(KEY).wanted = True
                    tg.start_soon(limiter.run)
                    for _ in range(50):  # until the rebalance waits for the row
                        await anyio.sleep(0.05)
                        waiting = admin.execute(
                            "SELECT pid FROM pg_stat_activity WHERE query LIKE '%%batchmig_rebalance%%' "
                            "AND wait_event_type = 'Lock'").fetchall()
                        if waiting:
                            break
                    assert waiting
                    admin.execute("SELECT pg_terminate_backend(%s)", waiting[0])
                    await anyio.sleep(0.3)
                    assert limiter._shares[KEY].share == 5
                for _ in range(60):
                    if limiter.rebalances > 1:
                        break
                    limiter._share(KEY).wanted = True
                    limiter._wake.set()
                    await anyio.sleep(0.1)
                tg.cancel_scope.cancel()
        assert limiter.rebalances > 1, "rebalanced again once the connection was back"
        names = [e["event"] for e in events]
        assert names.count("store.unreachable") == 1 and "store.reachable_again" in names, names
        assert limiter._shares[KEY].share <= 20 and _shares(postgres_dsn) <= 20
        assert journal._failure is None


@pytest.mark.anyio
async def test_a_refused_statement_stops_the_runner_with_one_line(postgres_dsn: str, tmp_path: Path):
    """A statement the store refuses for good (here its function was renamed away): the
    runner is told to stop with the database's message on one line, and the loop that
    hit it does not crash."""
    async with _runner(postgres_dsn, tmp_path) as (journal, limiter):
        stopped: list[JournalError] = []
        journal.on_failure = stopped.append
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            admin.execute("ALTER FUNCTION batchmig_rebalance RENAME TO batchmig_rebalance_away")
        with pytest.raises(StoreRefused) as refused:
            await limiter.rebalance(KEY, 5)
        assert len(stopped) == 1 and stopped[0] is refused.value
        message = str(refused.value)
        assert "\n" not in message and message.startswith("run run-1 stopped on this runner: the store refused")
        assert "batchmig_rebalance" in message and "batchmig join" in refused.value.hint
        with pytest.raises(StoreRefused):
            await journal.flush()  # nothing more is written
        assert limiter._share(KEY).share == 0
        with anyio.move_on_after(1.5):  # the limiter's own loop meets it too, and goes on
            limiter._share(KEY).wanted = True
            await limiter.run()
        assert len(stopped) == 1


@pytest.mark.anyio
async def test_a_runner_frozen_mid_pipeline_lets_go_of_its_locks(
    postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runner stopped after its batch's statements reached the server but before the
    Sync that ends them: the session is ``active``, not idle, so only the transaction
    timeout frees the rows it locked — without it every other runner's claim waits for
    as long as that one runner stays stopped (here: the other's lock_timeout fails)."""
    monkeypatch.setattr("batchmig.store.postgres.FROZEN_PIPELINE_TIMEOUT", "1s")
    with psycopg.connect(postgres_dsn, autocommit=True) as other:
        other.execute("CREATE TABLE frozen_rows (id int PRIMARY KEY, n int)")
        other.execute("INSERT INTO frozen_rows VALUES (1, 0)")
        frozen = await psycopg.AsyncConnection.connect(postgres_dsn, **connection_kwargs())
        with pytest.raises(psycopg.Error):  # the frozen session is gone when it wakes
            async with frozen.pipeline():
                await frozen.execute("BEGIN")
                await frozen.execute(transaction_guard(frozen))
                await frozen.execute("UPDATE frozen_rows SET n = n + 1 WHERE id = 1")
                # Frozen here: no COMMIT, no Sync. The update has reached the server and holds the row.
                assert _waits_for_client(other, frozen.info.backend_pid, "UPDATE frozen_rows")
                other.execute("SET lock_timeout = '20s'")
                other.execute("UPDATE frozen_rows SET n = n + 10 WHERE id = 1")
                # The frozen runner's update went with its session.
                assert other.execute("SELECT n FROM frozen_rows WHERE id = 1").fetchone() == (10,)
        await frozen.close()
        other.execute("DROP TABLE frozen_rows")


def _waits_for_client(observer: psycopg.Connection, pid: int, statement: str) -> bool:
    """Whether session ``pid`` ran ``statement`` and is reading from its client, in a transaction."""
    for _ in range(100):
        row = observer.execute(
            "SELECT query, wait_event, xact_start IS NOT NULL FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()
        if row is not None and row[0].startswith(statement) and row[1] == "ClientRead" and row[2]:
            return True
        time.sleep(0.05)
    return False
