"""Keep what explains a failed campaign run, named in its failure message.

A campaign that fails once under load and passes on rerun is worth nothing without
what it saw: the sandbox's audit log (what the cloud received, and when), every
runner's output and events, and — for a store campaign — the store's own rows
(leases, epochs, intents and outcomes of calls, runners). ``kept_on_failure`` copies
the test's working directory to ``BATCHMIG_CAMPAIGN_KEEP`` (default
``$TMPDIR/batchmig-campaign-failures``) when the campaign fails, and adds the place to
the failure's message; a passing run leaves nothing there. ``dump_store`` writes the
store's tables into the working directory while the server is still up, so they are
among what is kept.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg

KEEP_ROOT = Path(os.environ.get("BATCHMIG_CAMPAIGN_KEEP") or Path(tempfile.gettempdir()) / "batchmig-campaign-failures")
ACTIVITY = {
    "pg_stat_activity": "SELECT pid, state, wait_event_type, wait_event, backend_start, xact_start, query_start,"
                        " state_change, pg_blocking_pids(pid) AS blocked_by, left(query, 300) AS query"
                        " FROM pg_stat_activity WHERE datname = current_database()",
    "pg_locks": "SELECT l.pid, l.locktype, l.relation::regclass AS relation, l.mode, l.granted, l.waitstart"
                " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE a.datname = current_database()",
}
"""Who waits for whom in the store, at a moment worth keeping (e.g. runners that stopped progressing)."""
STORE_TABLES = ("batchmig_runs", "batchmig_instances", "batchmig_calls", "batchmig_steps", "batchmig_runners",
                "batchmig_rate_keys", "batchmig_rate_shares")
"""Leases and epochs (instances), intents and outcomes (calls), runners and rate shares."""


@contextlib.contextmanager
def kept_on_failure(workdir: Path, name: str, before_copy: Callable[[], None] = lambda: None) -> Iterator[None]:
    """On an exception: ``before_copy()`` (e.g. kill what still writes there), copy
    ``workdir`` to a new directory under ``KEEP_ROOT`` and name it in the exception's notes."""
    try:
        yield
    except Exception as exc:
        before_copy()
        target = KEEP_ROOT / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        try:
            KEEP_ROOT.mkdir(mode=0o700, parents=True, exist_ok=True)
            shutil.copytree(workdir, target, symlinks=True)
            exc.add_note(f"evidence kept in {target} (sandbox audit and state, runners' output and events, "
                         "store dump in store/)")
        except OSError as copy_error:
            exc.add_note(f"could not keep the evidence in {target}: {copy_error}")
        raise


def dump_store(dsn: str, target: Path, queries: dict[str, str] | None = None) -> None:
    """Each of ``STORE_TABLES`` (or each of ``queries``: name -> SELECT) as
    ``target/NAME.csv`` (with a header). What cannot be read is said in ``target/ERROR``
    (e.g. the campaign failed while the store was down)."""
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    selects = queries or {table: f"SELECT * FROM {table}" for table in STORE_TABLES}
    try:
        with psycopg.connect(dsn, connect_timeout=5, autocommit=True) as conn:
            for name, select in selects.items():
                with conn.cursor() as cursor, open(target / f"{name}.csv", "wb") as out, \
                        cursor.copy(f"COPY ({select}) TO STDOUT WITH (FORMAT csv, HEADER)") as copy:
                    for data in copy:
                        out.write(bytes(data))
    except (psycopg.Error, OSError) as exc:
        (target / "ERROR").write_text(f"{type(exc).__name__}: {exc}\n")
