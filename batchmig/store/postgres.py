"""The PostgreSQL store: runs, instances, steps, calls and cutovers shared by runners.

Two halves. ``PostgresStore`` is synchronous: the operator's commands (``store
init|upgrade``, ``status``, ``cutover``, ``runners``), creating a run and reading it
back. ``SharedJournal`` is one runner's asynchronous journal for one run: the same
methods as the SQLite ``Journal`` (so the engine and the pipeline use either), plus
claims, lease renewal and release.

Every write a runner makes for an instance is *fenced*: it names the epoch the
runner got when it claimed the instance, and a write that matches no row means the
lease was lost (another runner took the instance over); the instance's task is then
cancelled and nothing more is sent for it. An intent is only recorded while the
lease has more than the self-fencing margin left on the database's clock, so a call
whose intent is durable finishes before anyone may take the instance over.

PgBouncer in transaction mode: connections are in autocommit mode with server-side
prepared statements off (``prepare_threshold=None``); every unit of work is one
transaction on one pooled connection, and nothing relies on session state (no
``SET``, no session advisory locks, no temporary tables). Only LISTEN needs a session:
``SharedRateLimiter`` opens it on its own connection and treats it as a hint.

Writes are queued and committed in batches by one writer task (as the SQLite
journal's group commit does); while the database is unreachable the queue is kept and
retried, so outcomes of calls already on the wire are not lost, and new intents —
hence new mutating calls — wait. Past ``patience`` seconds the runner gives up
(exit 3, resumable).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from batchmig.errors import Failure, JournalError, UsageError
from batchmig.journal import (
    UNRESOLVED_CALL_SQL,
    InstanceRecord,
    OperatorRequestRow,
    Requester,
    UnresolvedCall,
    _private_json,
)
from batchmig.store.fence import LeaseLost
from batchmig.store.schema import MIGRATION_LOCK, MIGRATIONS, SCHEMA_VERSION

log = structlog.get_logger("batchmig.store")

CONNECT_TIMEOUT = 5.0
IDLE_GUARD = "SELECT set_config('idle_in_transaction_session_timeout', '5s', true)"
"""First in every runner transaction of several statements: a runner that freezes in the
middle of one (SIGSTOP, a paused VM) would otherwise hold its row locks — and keep other
runners from taking its instances over — for as long as it is frozen. Transaction-scoped,
so safe behind PgBouncer in transaction mode. Use ``transaction_guard``."""

FROZEN_PIPELINE_TIMEOUT = "15s"
"""``transaction_timeout`` of a runner transaction, on PostgreSQL 17 and later. The idle
guard does not fire for a runner frozen in the middle of a pipeline: its statements are
on the server, but the Sync that ends them is not, so the session stays ``active`` and
holds its row locks — every other runner's claim queued behind them, the whole fleet
still for as long as one runner was stopped (seen in the scale-out campaign). Several
times the longest batch seen under load; a batch cut by it is retried whole."""


def transaction_guard(conn: Any) -> str:
    """The guard statement for ``conn``'s server: the idle guard, and on PostgreSQL 17+
    the transaction timeout (unknown to older servers, which refuse it)."""
    if conn.info.server_version >= 170000:
        return IDLE_GUARD + f", set_config('transaction_timeout', '{FROZEN_PIPELINE_TIMEOUT}', true)"
    return IDLE_GUARD


class StoreUnavailable(JournalError):
    """The store cannot be reached (now, or for longer than the runner waits)."""

    hint = "once the store answers again, `batchmig join RUN --store URL` goes on where the run stopped"


def _psycopg() -> Any:
    try:
        import psycopg
        import psycopg_pool  # noqa: F401 - checked here so the error names the extra
    except ImportError:
        raise UsageError(
            "the PostgreSQL store needs psycopg 3 and psycopg_pool",
            "pip install 'batchmig[postgres]'",
        ) from None
    return psycopg


class StoreRefused(JournalError):
    """The store answered a runner's statement with an error that retrying will not fix
    (a privilege revoked, the schema changed under the runner, a constraint broken)."""

    hint = ("fix what the store refused (the database's message above), then "
            "`batchmig join RUN --store URL` goes on where the run stopped")


UNREACHABLE = "unreachable"
TRANSIENT = "transient"
PERMANENT = "permanent"


def classify(exc: BaseException) -> str | None:
    """What a database error means to batchmig: the one place that decides it.

    ``unreachable``: the store cannot be used now — a lost or refused connection (a
    restart, a failover, ``pg_terminate_backend``, too many connections), a pool
    without a connection in time, a session the server ended
    (``idle_in_transaction_session_timeout`` after a runner froze mid-transaction), a
    server that became read-only (a failover in progress).
    ``transient``: the server is there but gave up on this statement —
    ``statement_timeout`` or ``lock_timeout`` (``QueryCanceled``, ``LockNotAvailable``),
    a serialization failure or a deadlock (``TransactionRollback``); the same
    statement may well pass the next time.
    Both are retried (and written in the log once per episode); past the runner's
    patience it stops, resumable (exit 3).
    ``permanent``: any other error the server answered (a privilege, the schema, a
    bug): retrying cannot help, the runner stops at once with the database's message
    (exit 3, resumable once fixed).
    None: not a database error at all.
    """
    psycopg = _psycopg()
    from psycopg_pool import PoolTimeout

    errors = psycopg.errors
    if isinstance(exc, errors.QueryCanceled | errors.LockNotAvailable | errors.TransactionRollback):
        return TRANSIENT
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError | PoolTimeout
                  | errors.IdleInTransactionSessionTimeout | errors.ReadOnlySqlTransaction):
        return UNREACHABLE
    if isinstance(exc, psycopg.Error):
        return PERMANENT
    return None


def store_errors() -> tuple[type[BaseException], ...]:
    """Every exception ``classify`` has a verdict for (to catch them in one clause)."""
    psycopg = _psycopg()
    from psycopg_pool import PoolTimeout

    return (psycopg.Error, PoolTimeout)


def store_error(exc: BaseException, where: str) -> JournalError:
    """The error a store failure becomes: ``StoreUnavailable`` (retry) or ``StoreRefused`` (stop)."""
    kind = classify(exc)
    if kind == PERMANENT:
        return StoreRefused(f"{where} refused a statement: {_first_line(exc)}")
    if kind == TRANSIENT:
        return StoreUnavailable(f"{where} gave up on a statement: {_first_line(exc)}")
    return StoreUnavailable(f"{where} is unreachable: {_first_line(exc)}")


def redact_url(url: str) -> str:
    """The store URL without its password, for messages."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def connection_kwargs() -> dict[str, Any]:
    """Autocommit and no server-side prepared statements: safe behind PgBouncer."""
    return {"autocommit": True, "prepare_threshold": None, "connect_timeout": CONNECT_TIMEOUT}


def _epoch_seconds(value: Any) -> float | None:
    return None if value is None else float(value.timestamp())


@dataclass(frozen=True)
class RunnerRow:
    id: str
    host: str
    pid: int
    version: str
    limiter: str
    started: float
    heartbeat: float
    stopped: float | None
    holds: tuple[str, ...]


@dataclass(frozen=True)
class Claim:
    """An instance this runner now holds, with what it needs to go on with it."""

    record: InstanceRecord
    epoch: int
    unresolved: tuple[UnresolvedCall, ...]
    """Its mutating calls whose effect nobody knows: reconciled before anything is sent."""


class PostgresStore:
    """The store's synchronous side: schema, runs, and reading a run back."""

    def __init__(self, url: str) -> None:
        psycopg = _psycopg()
        self.url = url
        try:
            self._db = psycopg.connect(url, **connection_kwargs())
        except psycopg.Error as exc:
            raise StoreUnavailable(f"cannot reach the store {redact_url(url)}: {_first_line(exc)}") from None
        self._db.execute("SELECT 1")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        psycopg = _psycopg()
        try:
            if self._db.closed:
                self._db = psycopg.connect(self.url, **connection_kwargs())
            with self._db.transaction():
                yield self._db
        except store_errors() as exc:
            raise store_error(exc, f"the store {redact_url(self.url)}") from None

    def _query(self, sql: str, params: Any = ()) -> list[Any]:
        psycopg = _psycopg()
        for attempt in (1, 2):
            try:
                if self._db.closed:
                    self._db = psycopg.connect(self.url, **connection_kwargs())
                cursor = self._db.execute(sql, params)
                return list(cursor.fetchall()) if cursor.description else []
            except store_errors() as exc:
                if attempt == 2 or not self._db.closed:  # a connection lost earlier: one fresh try
                    raise store_error(exc, f"the store {redact_url(self.url)}") from None
        raise AssertionError("unreachable")

    # ------------------------------------------------------------- schema

    def schema_version(self) -> int | None:
        exists = self._query("SELECT to_regclass('batchmig_schema') IS NOT NULL")[0][0]
        if not exists:
            return None
        row = self._query("SELECT max(version) FROM batchmig_schema")
        return int(row[0][0]) if row and row[0][0] is not None else None

    def check_schema(self) -> None:
        """Refuse a store this batchmig does not know."""
        version = self.schema_version()
        where = redact_url(self.url)
        if version is None:
            raise UsageError(f"the store {where} has no batchmig schema", f"run `batchmig store init --store {where}`")
        if version > SCHEMA_VERSION:
            raise UsageError(
                f"the store {where} has schema version {version}; this batchmig knows up to {SCHEMA_VERSION}",
                "upgrade batchmig on this machine",
            )
        if version < SCHEMA_VERSION:
            raise UsageError(
                f"the store {where} has schema version {version}; this batchmig needs {SCHEMA_VERSION}",
                f"run `batchmig store upgrade --store {where}`",
            )

    def migrate(self, *, create: bool) -> tuple[int | None, int]:
        """Create (``create``) or upgrade the schema; returns (version before, version after)."""
        with self._transaction() as db:
            db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            before = self.schema_version()
            if before is None and not create:
                raise UsageError(f"the store {redact_url(self.url)} has no batchmig schema",
                                 "run `batchmig store init` first")
            if before is not None and before > SCHEMA_VERSION:
                raise UsageError(f"the store has schema version {before}, newer than this batchmig "
                                 f"({SCHEMA_VERSION})", "upgrade batchmig on this machine")
            current = before or 0
            for version in range(current + 1, SCHEMA_VERSION + 1):
                db.execute(MIGRATIONS[version])
                db.execute("INSERT INTO batchmig_schema (version) VALUES (%s)", (version,))
            return before, SCHEMA_VERSION

    # --------------------------------------------------------------- runs

    def create_run(self, run_id: str, plan: Any, meta: Mapping[str, str]) -> None:
        """Record a new run with its plan (the text: plans hold no secrets) and instances."""
        from psycopg.types.json import Jsonb

        canaries = {iid for wave in plan.waves for iid in wave.instances[: wave.canary]}
        wave_index = {wave.name: index for index, wave in enumerate(plan.waves)}
        with self._transaction() as db:
            waves = json.dumps([wave.name for wave in plan.waves])  # their order, for the report
            db.execute(
                "INSERT INTO batchmig_runs (id, plan_name, plan_text, plan_sha256, meta) VALUES (%s, %s, %s, %s, %s)",
                (run_id, plan.name, plan.text, plan.sha256, Jsonb({**meta, "waves": waves})),
            )
            with db.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO batchmig_instances (run, id, position, provider, wave, wave_index, canary, tags, "
                    "cutover) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [(run_id, i.id, i.index, i.provider, i.wave, wave_index[i.wave], i.id in canaries,
                      Jsonb(dict(i.tags)), i.cutover) for i in plan.instances],
                )

    def find_run(self, reference: str) -> str:
        """A run id from an id or a unique prefix of one."""
        rows = self._query(
            "SELECT id FROM batchmig_runs WHERE id = %s OR id LIKE %s ORDER BY id",
            (reference, reference.replace("%", r"\%").replace("_", r"\_") + "%"),
        )
        ids = [row[0] for row in rows]
        if reference in ids:
            return reference
        if len(ids) == 1:
            return str(ids[0])
        if not ids:
            raise UsageError(f"no run {reference!r} in the store {redact_url(self.url)}",
                             "give the run id that `batchmig run --store` printed (a unique prefix is enough)")
        raise UsageError(f"{reference!r} matches several runs: {', '.join(ids[:5])}")

    def run_ids(self) -> list[tuple[str, str, float]]:
        return [(r[0], r[1], r[2].timestamp())
                for r in self._query("SELECT id, plan_name, created FROM batchmig_runs ORDER BY created")]

    def plan_text(self, run: str) -> tuple[bytes, str]:
        row = self._query("SELECT plan_text, plan_sha256 FROM batchmig_runs WHERE id = %s", (run,))[0]
        return bytes(row[0]), str(row[1])

    def meta(self, run: str) -> dict[str, str]:
        rows = self._query("SELECT meta, created, blocked FROM batchmig_runs WHERE id = %s", (run,))
        if not rows:
            raise UsageError(f"no run {run!r} in the store")
        meta, created, blocked = rows[0]
        result = {str(k): str(v) for k, v in meta.items()}
        result.setdefault("created", created.isoformat(timespec="seconds"))
        if blocked:
            result["blocked"] = blocked
        return result

    def instances(self, run: str) -> dict[str, InstanceRecord]:
        rows = self._query(
            "SELECT id, position, provider, wave, status, step, step_name, outputs, error, updated, tags, cutover "
            "FROM batchmig_instances WHERE run = %s ORDER BY position", (run,))
        return {r[0]: InstanceRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], dict(r[7]), _failure(r[8]),
                                     r[9].timestamp(), None if r[11] is None else dict(r[10]), r[11])
                for r in rows}

    def unresolved_calls(self, run: str) -> dict[str, list[UnresolvedCall]]:
        result: dict[str, list[UnresolvedCall]] = {}
        for row in self._query("SELECT c.id, c.instance, c.step, c.action, c.resource, c.state FROM batchmig_calls c "
                               "JOIN batchmig_instances i ON i.run = c.run AND i.id = c.instance "
                               f"WHERE c.run = %s AND {UNRESOLVED_CALL_SQL} ORDER BY c.id", (run,)):
            result.setdefault(row[1], []).append(UnresolvedCall(*row))
        return result

    def steps(self, run: str) -> list[tuple[str, int, str, float | None, float | None, str]]:
        rows = self._query("SELECT instance, step, name, started, ended, status FROM batchmig_steps "
                           "WHERE run = %s ORDER BY instance, step", (run,))
        return [(r[0], r[1], r[2], _epoch_seconds(r[3]), _epoch_seconds(r[4]), r[5]) for r in rows]

    def calls(self, run: str) -> list[tuple[Any, ...]]:
        rows = self._query("SELECT instance, step, action, resource, state, sent, finished, request_id, error "
                           "FROM batchmig_calls WHERE run = %s ORDER BY sent, id", (run,))
        return [(*r[:5], _epoch_seconds(r[5]), _epoch_seconds(r[6]), r[7], json.dumps(r[8]) if r[8] else None)
                for r in rows]

    def released_cutovers(self, run: str) -> set[str]:
        return {r[0] for r in self._query("SELECT instance FROM batchmig_cutovers WHERE run = %s", (run,))}

    def released_cutover_times(self, run: str) -> dict[str, float]:
        return {r[0]: r[1].timestamp()
                for r in self._query("SELECT instance, released FROM batchmig_cutovers WHERE run = %s", (run,))}

    def release_cutovers(
        self, run: str, instances: Mapping[str, str], requester: Requester | None = None, selection: str = ""
    ) -> int:
        """Release the cutover of ``instances`` (id -> status now) and journal who asked,
        in one transaction (``Journal.release_cutovers`` in the store). Returns the request's id."""
        with self._transaction() as db:
            request = self._request(db, run, "cutover", instances, requester, selection)
            with db.cursor() as cursor:
                cursor.executemany("INSERT INTO batchmig_cutovers (run, instance) VALUES (%s, %s) "
                                   "ON CONFLICT DO NOTHING", [(run, i) for i in instances])
            return request

    def request_retry(
        self, run: str, instances: Mapping[str, str], requester: Requester | None = None, selection: str = ""
    ) -> int:
        """Make ``instances`` (id -> status now) runnable again from the step where they
        stopped — outputs and journaled calls stay — and journal who asked, in one
        transaction (``Journal.request_retry`` in the store); any runner may claim them.
        An instance a runner still holds is refused (nothing is changed). Returns the
        request's id."""
        with self._transaction() as db:
            held = [r[0] for r in db.execute(
                "SELECT id FROM batchmig_instances WHERE run = %s AND id = ANY(%s) AND lease_until >= now() "
                "ORDER BY position FOR UPDATE", (run, list(instances))).fetchall()]
            if held:
                raise UsageError(f"a runner still holds {', '.join(held[:5])}",
                                 "retry it once its runner has let it go (`batchmig runners RUN`)")
            request = self._request(db, run, "retry", instances, requester, selection)
            db.execute("UPDATE batchmig_instances SET status = 'pending', error = NULL, owner = NULL, "
                       "lease_until = NULL, updated = clock_timestamp() WHERE run = %s AND id = ANY(%s)",
                       (run, list(instances)))
            return request

    @staticmethod
    def _request(db: Any, run: str, kind: str, instances: Mapping[str, str], requester: Requester | None,
                 selection: str) -> int:
        from psycopg.types.json import Jsonb

        who = requester or Requester.current()
        row = db.execute(
            "INSERT INTO batchmig_requests (run, kind, username, host, selection, instances) "
            "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (run, kind, who.user, who.host, selection, Jsonb(dict(instances)))).fetchone()
        return int(row[0])

    def requests(self, run: str) -> list[OperatorRequestRow]:
        """Every operator request of the run, oldest first."""
        return [OperatorRequestRow(r[0], r[1], r[2].timestamp(), r[3], r[4], r[5], dict(r[6])) for r in self._query(
            "SELECT id, kind, at, username, host, selection, instances FROM batchmig_requests "
            "WHERE run = %s ORDER BY id", (run,))]

    def runners(self, run: str) -> list[RunnerRow]:
        rows = self._query(
            "SELECT r.id, r.host, r.pid, r.version, r.limiter, r.started, r.heartbeat, r.stopped, "
            "       coalesce(array_agg(i.id ORDER BY i.position) FILTER (WHERE i.id IS NOT NULL), '{}') "
            "  FROM batchmig_runners r LEFT JOIN batchmig_instances i "
            "    ON i.run = r.run AND i.owner = r.id AND i.lease_until >= now() "
            " WHERE r.run = %s GROUP BY r.run, r.id ORDER BY r.started", (run,))
        return [RunnerRow(r[0], r[1], r[2], r[3], r[4], r[5].timestamp(), r[6].timestamp(),
                          _epoch_seconds(r[7]), tuple(r[8])) for r in rows]

    def active_runners(self, run: str, within: float) -> int:
        """Runners that renewed their leases in the last ``within`` seconds (the database's clock)."""
        return int(self._query(
            "SELECT count(*) FROM batchmig_runners WHERE run = %s AND stopped IS NULL "
            "AND heartbeat > now() - make_interval(secs => %s)", (run, within))[0][0])

    def view(self, run: str) -> RunView:
        return RunView(self, run)


class RunView:
    """One run of the store, used like a run's journal: ``report.build_run_report``
    reads it, and ``batchmig cutover``/``retry`` journal their requests through it."""

    def __init__(self, store: PostgresStore, run: str) -> None:
        self.store = store
        self.run = run

    def meta(self) -> dict[str, str]:
        return self.store.meta(self.run)

    def instances(self) -> dict[str, InstanceRecord]:
        return self.store.instances(self.run)

    def steps(self) -> list[tuple[str, int, str, float | None, float | None, str]]:
        return self.store.steps(self.run)

    def calls(self) -> list[tuple[Any, ...]]:
        return self.store.calls(self.run)

    def unresolved_calls(self) -> dict[str, list[UnresolvedCall]]:
        return self.store.unresolved_calls(self.run)

    def released_cutovers(self) -> set[str]:
        return self.store.released_cutovers(self.run)

    def released_cutover_times(self) -> dict[str, float]:
        return self.store.released_cutover_times(self.run)

    def requests(self) -> list[OperatorRequestRow]:
        return self.store.requests(self.run)

    def release_cutovers(
        self, instances: Mapping[str, str], requester: Requester | None = None, selection: str = ""
    ) -> int:
        return self.store.release_cutovers(self.run, instances, requester, selection)

    def request_retry(
        self, instances: Mapping[str, str], requester: Requester | None = None, selection: str = ""
    ) -> int:
        return self.store.request_retry(self.run, instances, requester, selection)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# ---------------------------------------------------------------- the runner side


@dataclass
class _Write:
    sql: str
    params: tuple[Any, ...]
    instance: str | None
    """Fenced by this instance's lease: zero rows updated (or, for a write that returns
    a row, NULL in its last column) means the lease on it is lost."""
    waiter: asyncio.Future[Any] | None = None
    returns: bool = False


class SharedJournal:
    """One runner's journal of one run in the store (the ``Journal`` methods, fenced)."""

    def __init__(
        self,
        store: PostgresStore,
        run: str,
        runner: str,
        *,
        ttl: float,
        margin: float,
        patience: float = 300.0,
        pool_size: int = 6,
        pool_reset: str | None = None,
    ) -> None:
        """``pool_reset``: SQL run on every connection returned to the pool (tests use
        ``DISCARD ALL`` to prove nothing depends on session state, as behind PgBouncer)."""
        self.store = store
        self.run = run
        self.runner = runner
        self.ttl = ttl
        self.margin = margin
        self.patience = patience
        self.epochs: dict[str, int] = {}
        self.on_lost: Callable[[str], None] = lambda iid: None
        self.on_failure: Callable[[JournalError], None] = lambda error: None
        """Told once when the runner must stop: the store refused a statement, or was
        unusable for longer than ``patience``."""
        self.trips: Counter[str] = Counter()
        """Store round trips by what they were for (``writes``, ``claims``, ``renewals``, ...)."""
        self.statements = 0
        """Statements sent (several go out in one round trip when writes are batched)."""
        self.commits = 0
        self._pool_size = pool_size
        self._pool_reset = pool_reset
        self._pool: Any = None
        self._queue: asyncio.Queue[_Write] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._failure: JournalError | None = None
        self._down_since: float | None = None
        # The writer's batches and the lease renewal update the same instance rows in
        # different orders: one at a time, or PostgreSQL breaks the deadlock by failing one.
        self._exclusive = asyncio.Lock()
        self._renewed = asyncio.Event()

    @property
    def round_trips(self) -> int:
        return sum(self.trips.values())

    # ------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        from psycopg_pool import AsyncConnectionPool

        # store.unreachable says it once (psycopg would also warn of every broken pool
        # connection and every pipeline it could not end on a lost connection)
        logging.getLogger("psycopg").setLevel(logging.ERROR)
        reset_sql = self._pool_reset

        async def reset(conn: Any) -> None:
            if reset_sql:
                await conn.execute(reset_sql)

        self._pool = AsyncConnectionPool(
            self.store.url, min_size=1, max_size=self._pool_size, kwargs=connection_kwargs(),
            open=False, timeout=CONNECT_TIMEOUT, reconnect_timeout=max(self.patience, 60.0),
            name=f"batchmig-{self.runner}", reset=reset if reset_sql else None,
        )
        await self._pool.open(wait=False)
        self._queue = asyncio.Queue()
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    def start_writer(self) -> None:
        """The writer starts with ``open()`` (kept for the journal interface)."""

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.flush()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(BaseException):
                await self._writer
        if self._pool is not None:
            await self._pool.close()

    def close(self) -> None:
        """Synchronous close (the journal interface): the pool is closed by ``aclose``."""

    # ------------------------------------------------------------- reading

    def meta(self) -> dict[str, str]:
        return self.store.meta(self.run)

    def instances(self) -> dict[str, InstanceRecord]:
        return self.store.instances(self.run)

    def unresolved_calls(self) -> dict[str, list[UnresolvedCall]]:
        return self.store.unresolved_calls(self.run)

    def released_cutovers(self) -> set[str]:
        return self.store.released_cutovers(self.run)

    def steps(self) -> list[tuple[str, int, str, float | None, float | None, str]]:
        return self.store.steps(self.run)

    def calls(self) -> list[tuple[Any, ...]]:
        return self.store.calls(self.run)

    # --------------------------------------------------------- one transaction

    async def execute(self, sql: str, params: tuple[Any, ...] = (), *, fetch: bool = True,
                      purpose: str = "other") -> list[Any]:
        """One statement in its own transaction (autocommit); raises ``StoreUnavailable``
        (retry later) or ``StoreRefused`` (stop): see ``failed``. ``purpose`` names it in ``trips``."""
        try:
            async with self._pool.connection() as conn:
                self.trips[purpose] += 1
                self.statements += 1
                cursor = await conn.execute(sql, params)
                rows = list(await cursor.fetchall()) if fetch and cursor.description else []
            self.store_usable()
            return rows
        except store_errors() as exc:
            raise self.failed(exc) from None

    def failed(self, exc: BaseException) -> JournalError:
        """Book a database error of this runner (every runner statement's error comes
        here) and return what to raise: ``StoreUnavailable`` (retry it later) or
        ``StoreRefused`` (the runner stops)."""
        error = store_error(exc, "the store")
        if isinstance(error, StoreRefused):
            refused = StoreRefused(f"run {self.run} stopped on this runner: {error}")
            log.error("store.refused", error=_first_line(exc))
            self._give_up(refused)
            return refused
        self._store_unreachable(exc)
        return error

    def store_usable(self) -> None:
        if self._down_since is not None:
            log.warning("store.reachable_again", after=round(time.monotonic() - self._down_since, 1))
            self._down_since = None

    def _store_unreachable(self, exc: BaseException) -> None:
        """An episode of an unusable store (unreachable, or giving up on statements:
        ``classify``) begins or goes on: written in the log once, when it begins; past
        ``patience`` the runner stops. The next statement that passes ends it."""
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
            event = "store.unreachable" if classify(exc) != TRANSIENT else "store.statement_failed"
            log.warning(event, error=_first_line(exc))
        elif now - self._down_since > self.patience and self._failure is None:
            self._give_up(StoreUnavailable(f"run {self.run} stopped on this runner: the store was unusable for "
                                           f"more than {self.patience:g}s: {_first_line(exc)}"))

    def _give_up(self, failure: JournalError) -> None:
        """Stop for good: writes fail with ``failure`` and the runner is told (``on_failure``)."""
        if self._failure is not None:
            return
        self._failure = failure
        self._renewed.set()  # intents waiting for a renewal fail now
        self.on_failure(failure)

    @property
    def unreachable_for(self) -> float:
        return 0.0 if self._down_since is None else time.monotonic() - self._down_since

    # --------------------------------------------------------------- writer

    async def _write_loop(self) -> None:
        assert self._queue is not None
        failures = store_errors()
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            delay = 0.1
            while True:
                if self._failure is not None:
                    for write in batch:
                        if write.waiter is not None and not write.waiter.done():
                            write.waiter.set_exception(self._failure)
                    break
                try:
                    await self._commit(batch)
                    self.store_usable()
                    break
                except failures as exc:
                    # Kept and retried: the batch is one transaction, so nothing of it is half-written
                    # (refused: the loop fails its waiters with the failure ``failed`` set).
                    self.failed(exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)

    async def _commit(self, batch: list[_Write]) -> None:
        """The batch as one transaction in one round trip: BEGIN, the guard, every write
        and COMMIT go out together (libpq's pipeline mode) and their results are read
        once the commit is answered. Nothing waits on a result before it is durable."""
        lost: set[str] = set()
        async with self._exclusive, self._pool.connection() as conn:
            async with conn.pipeline(), conn.transaction():
                await conn.execute(transaction_guard(conn))
                cursors = [await conn.execute(write.sql, write.params) for write in batch]
            self.trips["writes"] += 1
            self.statements += len(batch) + 3  # with BEGIN, the guard and COMMIT
            results: list[Any] = []
            for write, cursor in zip(batch, cursors, strict=True):
                if write.returns:
                    row = await cursor.fetchone()
                    results.append(row)
                    if (row is None or row[-1] is None) and write.instance is not None:
                        lost.add(write.instance)
                else:
                    results.append(cursor.rowcount)
                    if cursor.rowcount == 0 and write.instance is not None:
                        lost.add(write.instance)
        self.commits += 1
        for write, result in zip(batch, results, strict=True):
            if write.waiter is None or write.waiter.done():
                continue
            if write.instance in lost:
                write.waiter.set_exception(LeaseLost(f"the lease on {write.instance} was lost"))
            else:
                write.waiter.set_result(result)
        for iid in lost:
            if self.epochs.pop(iid, None) is not None:
                log.warning("lease.lost", instance=iid)
                self.on_lost(iid)

    def _fence(self, instance: str) -> int:
        if self._failure is not None:
            raise self._failure
        epoch = self.epochs.get(instance)
        if epoch is None:
            raise LeaseLost(f"this runner does not hold {instance}")
        return epoch

    def _enqueue(self, write: _Write) -> None:
        assert self._queue is not None, "open() the journal first"
        self._queue.put_nowait(write)

    async def _enqueue_and_wait(self, write: _Write) -> Any:
        loop = asyncio.get_running_loop()
        write.waiter = loop.create_future()
        self._enqueue(write)
        return await asyncio.shield(write.waiter)

    async def flush(self) -> None:
        if self._failure is not None:
            raise self._failure
        await self._enqueue_and_wait(_Write("SELECT 1", (), None))

    # ------------------------------------------------------- engine writes

    _FENCE = ("EXISTS (SELECT 1 FROM batchmig_instances f "
              "WHERE f.run = %s AND f.id = %s AND f.epoch = %s AND f.owner = %s)")

    _INTENT = (
        "WITH f AS (SELECT run, id, epoch, lease_until > clock_timestamp() + make_interval(secs => %s) AS roomy "
        "             FROM batchmig_instances WHERE run = %s AND id = %s AND epoch = %s AND owner = %s FOR SHARE), "
        "ins AS (INSERT INTO batchmig_calls (run, id, instance, step, action, resource, state, sent, runner, epoch) "
        "        SELECT f.run, %s, f.id, %s, %s, %s, 'intent', clock_timestamp(), %s, f.epoch FROM f WHERE f.roomy "
        "        ON CONFLICT (run, id) DO UPDATE SET state = batchmig_calls.state RETURNING id) "
        "SELECT (SELECT id FROM ins), (SELECT roomy FROM f)"
    )

    async def intent(self, instance: str, step: int, action: str, resource: object) -> int:
        """Record a mutating call about to be sent, only while the lease has the margin left.

        A lease still held but with less than the margin left (a renewal is late) is
        not lost: the intent waits for the next renewal and is tried again; if that
        renewal finds the lease lost, ``LeaseLost`` ends the instance's task here.
        """
        while True:
            epoch = self._fence(instance)
            renewed = self._renewed
            params = (self.margin, self.run, instance, epoch, self.runner, secrets.randbits(62), step, action,
                      None if resource is None else str(resource), self.runner)
            row = await self._enqueue_and_wait(_Write(self._INTENT, params, instance, returns=True))
            if row[0] is not None:
                return int(row[0])
            log.info("lease.renewal_awaited", instance=instance)
            await renewed.wait()

    def outcome(
        self,
        call_id: int,
        state: str,
        *,
        outputs: Mapping[str, Any] | None = None,
        request_id: str | None = None,
        error: Failure | None = None,
        instance: str | None = None,
    ) -> None:
        """What became of an intent. Fenced through the call's own instance and epoch."""
        sql = (
            "UPDATE batchmig_calls c SET state = %s, finished = clock_timestamp(), outputs = %s::jsonb, "
            "request_id = %s, error = %s::jsonb WHERE c.run = %s AND c.id = %s AND EXISTS ("
            "SELECT 1 FROM batchmig_instances f WHERE f.run = c.run AND f.id = c.instance "
            "AND f.epoch = c.epoch AND f.owner = %s)"
        )
        error_json = _private_json(error.as_dict() if error else None)
        params = (state, _private_json(outputs or {}), request_id, error_json, self.run, call_id,
                  self.runner)
        self._enqueue(_Write(sql, params, instance))

    def set_instance(
        self,
        instance: str,
        status: str,
        *,
        step: int | None = None,
        step_name: str | None = None,
        outputs: Mapping[str, Any] | None = None,
        error: Failure | None = None,
    ) -> None:
        epoch = self.epochs.get(instance)
        if epoch is None:
            return  # not (or no longer) ours: nothing to write
        sets = ["status = %s", "updated = clock_timestamp()", "error = %s::jsonb"]
        values: list[Any] = [status, _private_json(error.as_dict() if error else None)]
        if step is not None:
            sets += ["step = %s", "step_name = %s"]
            values += [step, step_name]
        if outputs is not None:
            sets.append("outputs = %s::jsonb")
            values.append(_private_json(outputs))
        sql = (f"UPDATE batchmig_instances SET {', '.join(sets)} "
               "WHERE run = %s AND id = %s AND epoch = %s AND owner = %s")
        self._enqueue(_Write(sql, (*values, self.run, instance, epoch, self.runner), instance))

    def step_finished(self, instance: str, step: int, name: str, started: float, status: str) -> None:
        epoch = self.epochs.get(instance)
        if epoch is None:
            return
        sql = (
            "INSERT INTO batchmig_steps (run, instance, step, name, started, ended, status) "
            "SELECT %s, %s, %s, %s, clock_timestamp() - make_interval(secs => %s), clock_timestamp(), %s "
            f"WHERE {self._FENCE} "
            "ON CONFLICT (run, instance, step) DO UPDATE SET name = EXCLUDED.name, started = EXCLUDED.started, "
            "ended = EXCLUDED.ended, status = EXCLUDED.status"
        )
        # The step's start is given as its age (this runner's clock only measures the duration).
        age = max(0.0, time.time() - started)
        params = (self.run, instance, step, name, age, status, self.run, instance, epoch, self.runner)
        self._enqueue(_Write(sql, params, instance))

    def resolve(self, instance: str, call_ids: list[int], state: str, outputs: Mapping[str, Any] | None = None) -> None:
        """What a reconcile found out about calls of ``instance`` (fenced: only while it is held here)."""
        epoch = self.epochs.get(instance)
        if epoch is None:
            return
        sql = (
            "UPDATE batchmig_calls SET state = %s, finished = clock_timestamp(), outputs = %s::jsonb "
            f"WHERE run = %s AND id = ANY(%s) AND {self._FENCE}"
        )
        params = (state, json.dumps(dict(outputs or {})), self.run, list(call_ids), self.run, instance, epoch,
                  self.runner)
        self._enqueue(_Write(sql, params, instance))

    def release(self, instance: str) -> None:
        """Let go of an instance this runner is done with (others may claim it at once)."""
        epoch = self.epochs.pop(instance, None)
        if epoch is None:
            return
        sql = ("UPDATE batchmig_instances SET owner = NULL, lease_until = NULL "
               "WHERE run = %s AND id = %s AND epoch = %s AND owner = %s")
        self._enqueue(_Write(sql, (self.run, instance, epoch, self.runner), None))

    # ------------------------------------------------------ claims and leases

    async def register(self, host: str, pid: int, version: str, limiter: str) -> None:
        await self.execute(
            "INSERT INTO batchmig_runners (run, id, host, pid, version, limiter) VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (run, id) DO UPDATE SET heartbeat = now(), stopped = NULL",
            (self.run, self.runner, host, pid, version, limiter), fetch=False, purpose="runners",
        )

    async def unregister(self) -> None:
        with contextlib.suppress(JournalError):
            await self.execute("UPDATE batchmig_runners SET stopped = now() WHERE run = %s AND id = %s",
                               (self.run, self.runner), fetch=False, purpose="runners")

    async def claim(self, wave: int, want: int, wave_cap: int, run_cap: int, max_failed: int) -> list[Claim]:
        rows = await self.execute(
            "SELECT * FROM batchmig_claim(%s, %s, %s, %s, %s, %s, %s, %s)",
            (self.run, self.runner, wave, want, self.ttl, wave_cap, run_cap, max_failed), purpose="claims",
        )
        claims = []
        for iid, epoch, status, step, step_name, outputs, error, intents in rows:
            self.epochs[iid] = int(epoch)
            record = InstanceRecord(iid, 0, "", "", status, step, step_name, dict(outputs), _failure(error), 0.0)
            unresolved = tuple(UnresolvedCall(int(i["id"]), iid, int(i["step"]), i["action"], i["resource"],
                                              i.get("state", "intent")) for i in intents)
            claims.append(Claim(record, int(epoch), unresolved))
        return claims

    async def renew(self) -> set[str]:
        """Extend every held lease by ``ttl`` (the database's clock); return the ones lost."""
        held = dict(self.epochs)
        async with self._exclusive:
            rows = await self.execute(
                "WITH beat AS (UPDATE batchmig_runners SET heartbeat = now() WHERE run = %s AND id = %s) "
                "UPDATE batchmig_instances i SET lease_until = now() + make_interval(secs => %s) "
                "  FROM unnest(%s::text[], %s::bigint[]) AS h(id, epoch) "
                " WHERE i.run = %s AND i.id = h.id AND i.epoch = h.epoch AND i.owner = %s RETURNING i.id",
                (self.run, self.runner, self.ttl, list(held), list(held.values()), self.run, self.runner),
                purpose="renewals",
            )
        kept = {row[0] for row in rows}
        lost = {iid for iid, epoch in held.items() if iid not in kept and self.epochs.get(iid) == epoch}
        for iid in lost:
            self.epochs.pop(iid, None)
        renewed, self._renewed = self._renewed, asyncio.Event()
        renewed.set()  # intents that waited for more lease than was left go on (or find it lost)
        return lost

    async def wave_state(self, wave: int) -> WaveState:
        rows = await self.execute(
            "SELECT (SELECT blocked FROM batchmig_runs WHERE id = %s), "
            "  count(*) FILTER (WHERE status IN ('pending', 'running', 'interrupted')), "
            "  count(*) FILTER (WHERE status = 'failed'), "
            "  count(*), "
            "  coalesce(bool_and(status IN ('succeeded', 'failed', 'skipped')) FILTER (WHERE canary), true), "
            "  coalesce(bool_and(status = 'succeeded') FILTER (WHERE canary), true), "
            "  (array_agg(id ORDER BY position) FILTER (WHERE canary AND status IN ('failed', 'skipped')))[1], "
            "  count(*) FILTER (WHERE status = 'awaiting_cutover'), "
            "  (SELECT count(*) FROM batchmig_runners WHERE run = %s AND stopped IS NULL "
            "     AND heartbeat > now() - make_interval(secs => %s)), "
            "  count(*) FILTER (WHERE status IN ('pending', 'running', 'interrupted') AND lease_until < now()), "
            "  count(*) FILTER (WHERE status IN ('pending', 'running', 'interrupted') "
            "                     AND (owner IS NULL OR lease_until < now())) "
            "FROM batchmig_instances WHERE run = %s AND wave_index = %s",
            (self.run, self.run, self.ttl, self.run, wave), purpose="wave checks",
        )
        (blocked, unsettled, failed, total, canaries_done, canaries_ok, bad_canary, awaiting, live, orphaned,
         claimable) = rows[0]
        return WaveState(blocked, int(unsettled), int(failed), int(total), bool(canaries_done),
                         bool(canaries_ok), bad_canary, int(awaiting), max(1, int(live)), int(orphaned),
                         int(claimable))

    async def block(self, reason: str, from_wave: int, skip_wave: int | None) -> None:
        """Stop the run's later waves (first reason wins); skip what has not started."""
        await self.execute(
            "WITH b AS (UPDATE batchmig_runs SET blocked = coalesce(blocked, %s) WHERE id = %s RETURNING blocked) "
            "UPDATE batchmig_instances SET status = 'skipped', updated = clock_timestamp(), error = "
            "       jsonb_build_object('kind', 'skipped', 'code', 'Skipped', 'message', (SELECT blocked FROM b)) "
            " WHERE run = %s AND (owner IS NULL OR lease_until < now()) AND ("
            "       (wave_index > %s AND status NOT IN ('succeeded', 'failed', 'skipped'))"
            "    OR (wave_index = %s AND status IN ('pending', 'interrupted')))",
            (reason, self.run, self.run, from_wave, -1 if skip_wave is None else skip_wave), fetch=False,
            purpose="wave checks",
        )

    async def run_unsettled(self) -> tuple[int, int]:
        """(instances not yet final or awaiting cutover, awaiting cutover) across the run."""
        rows = await self.execute(
            "SELECT count(*) FILTER (WHERE status IN ('pending', 'running', 'interrupted')), "
            "       count(*) FILTER (WHERE status = 'awaiting_cutover') FROM batchmig_instances WHERE run = %s",
            (self.run,), purpose="wave checks",
        )
        return int(rows[0][0]), int(rows[0][1])

    async def status_counts(self) -> dict[str, int]:
        """The run's instances by status, across every runner."""
        rows = await self.execute("SELECT status, count(*) FROM batchmig_instances WHERE run = %s "
                                  "GROUP BY status ORDER BY status", (self.run,))
        return {str(status): int(count) for status, count in rows}

    async def released_now(self) -> set[str]:
        rows = await self.execute("SELECT instance FROM batchmig_cutovers WHERE run = %s", (self.run,),
                                  purpose="cutover checks")
        return {row[0] for row in rows}


@dataclass(frozen=True)
class WaveState:
    blocked: str | None
    unsettled: int
    failed: int
    total: int
    canaries_done: bool
    canaries_ok: bool
    bad_canary: str | None
    awaiting: int
    runners: int
    """Runners whose heartbeat is recent: only to share the work out, never to decide liveness."""
    orphaned: int
    """Unsettled instances whose lease ran out (their runner died or froze): anyone takes them."""
    claimable: int
    """Unsettled instances nobody holds (never claimed, handed back, or orphaned)."""


def _failure(error: Any) -> Failure | None:
    """A journaled error (JSON) as the engine's typed ``Failure``."""
    if not error:
        return None
    return Failure.from_dict(json.loads(error) if isinstance(error, str) else error)
