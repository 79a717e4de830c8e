"""Durable state for emulators: a SQLite key-value file with an in-memory mirror.

The emulated cloud must outlive the runner (a run killed with SIGKILL and resumed
finds the cloud as it left it), so every write goes to disk at once; reads come
from memory, so listing thousands of jobs costs no I/O.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from batchmig.private_files import create_private_file

_SCHEMA = """
CREATE TABLE IF NOT EXISTS state (
    emulator TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (emulator, kind, key)
);
CREATE TABLE IF NOT EXISTS counters (emulator TEXT NOT NULL, kind TEXT NOT NULL, value INTEGER NOT NULL,
    PRIMARY KEY (emulator, kind));
"""


class StateFile:
    """The sandbox's state file, shared by all emulators of one sandbox."""

    def __init__(self, path: Path | None) -> None:
        if path is not None:
            create_private_file(path)  # 0600; its -wal and -shm inherit that
        self._db = sqlite3.connect(path or ":memory:", isolation_level=None, check_same_thread=False)
        if path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def store(self, emulator: str) -> EmulatorStore:
        return EmulatorStore(self._db, emulator)

    def close(self) -> None:
        self._db.close()


class EmulatorStore:
    """One emulator's view of the state file (implements ``batchmig.emulator.StateStore``)."""

    def __init__(self, db: sqlite3.Connection, emulator: str) -> None:
        self._db = db
        self._emulator = emulator
        self._data: dict[str, dict[str, dict[str, Any]]] = {}
        for kind, key, value in db.execute("SELECT kind, key, value FROM state WHERE emulator = ?", (emulator,)):
            self._data.setdefault(kind, {})[key] = json.loads(value)

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        return self._data.get(kind, {}).get(key)

    def put(self, kind: str, key: str, value: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?)", (self._emulator, kind, key, json.dumps(value))
        )
        self._data.setdefault(kind, {})[key] = value

    def delete(self, kind: str, key: str) -> None:
        self._db.execute("DELETE FROM state WHERE emulator = ? AND kind = ? AND key = ?", (self._emulator, kind, key))
        self._data.get(kind, {}).pop(key, None)

    def values(self, kind: str) -> Iterator[dict[str, Any]]:
        return iter(list(self._data.get(kind, {}).values()))

    def next_id(self, kind: str) -> int:
        row = self._db.execute(
            "INSERT INTO counters VALUES (?, ?, 1) ON CONFLICT (emulator, kind) DO UPDATE SET value = value + 1 "
            "RETURNING value",
            (self._emulator, kind),
        ).fetchone()
        return int(row[0])
