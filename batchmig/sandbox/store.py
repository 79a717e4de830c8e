"""Durable state for emulators: a SQLite key-value file with an in-memory mirror.

The emulated cloud must outlive the runner (a run killed with SIGKILL and resumed
finds the cloud as it left it), so every write goes to disk at once; reads come
from memory, so listing thousands of jobs costs no I/O. ``where`` finds the records
whose field has a value through an index kept up to date by every write, so that a
describe of one instance's tasks does not scan every task of a 100,000-instance run.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Hashable, Iterator
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
        self._indexes: dict[tuple[str, str], dict[Hashable, dict[str, None]]] = {}
        """(kind, field) -> the field's value -> the keys of the records holding it, each
        value's keys in the order ``values`` gives them (built by the first ``where``)."""
        for kind, key, value in db.execute("SELECT kind, key, value FROM state WHERE emulator = ?", (emulator,)):
            self._data.setdefault(kind, {})[key] = json.loads(value)

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        return self._data.get(kind, {}).get(key)

    def put(self, kind: str, key: str, value: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?)", (self._emulator, kind, key, json.dumps(value))
        )
        records = self._data.setdefault(kind, {})
        earlier = records.get(key)
        records[key] = value
        for (indexed_kind, field), index in self._indexes.items():
            if indexed_kind == kind:
                self._reindex(index, records, key, earlier, value, field)

    def delete(self, kind: str, key: str) -> None:
        self._db.execute("DELETE FROM state WHERE emulator = ? AND kind = ? AND key = ?", (self._emulator, kind, key))
        earlier = self._data.get(kind, {}).pop(key, None)
        if earlier is not None:
            for (indexed_kind, field), index in self._indexes.items():
                if indexed_kind == kind:
                    _unindex(index, key, earlier.get(field))

    def values(self, kind: str) -> Iterator[dict[str, Any]]:
        return iter(list(self._data.get(kind, {}).values()))

    def where(self, kind: str, field: str, value: Hashable) -> Iterator[dict[str, Any]]:
        """The records of ``kind`` whose ``field`` equals ``value``, in ``values``' order."""
        index = self._indexes.get((kind, field))
        if index is None:
            index = self._indexes[(kind, field)] = {}
            for key, record in self._data.get(kind, {}).items():
                index.setdefault(record.get(field), {})[key] = None
        records = self._data.get(kind, {})
        return iter([records[key] for key in index.get(value, ())])

    @staticmethod
    def _reindex(
        index: dict[Hashable, dict[str, None]], records: dict[str, dict[str, Any]], key: str,
        earlier: dict[str, Any] | None, value: dict[str, Any], field: str,
    ) -> None:
        new = value.get(field)
        if earlier is not None:
            old = earlier.get(field)
            if old == new:
                return  # the record keeps its place, in ``values`` as in the index
            _unindex(index, key, old)
        keys = index.setdefault(new, {})
        keys[key] = None
        if earlier is not None and len(keys) > 1:  # a record moved here keeps its place in ``values``
            place = {name: n for n, name in enumerate(records)}
            index[new] = dict.fromkeys(sorted(keys, key=place.__getitem__))

    def next_id(self, kind: str) -> int:
        row = self._db.execute(
            "INSERT INTO counters VALUES (?, ?, 1) ON CONFLICT (emulator, kind) DO UPDATE SET value = value + 1 "
            "RETURNING value",
            (self._emulator, kind),
        ).fetchone()
        return int(row[0])


def _unindex(index: dict[Hashable, dict[str, None]], key: str, value: Hashable) -> None:
    keys = index.get(value)
    if keys is not None:
        keys.pop(key, None)
        if not keys:
            del index[value]
