"""The store interface: what the engine and the call pipeline need from a journal.

Both backends implement it: ``batchmig.journal.Journal`` (SQLite, one runner, the
default) and ``batchmig.store.postgres.SharedJournal`` (PostgreSQL, several runners;
its writes are fenced by the lease epoch of the instance they concern). Reads return
typed records; the engine never sees SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from batchmig.errors import Failure
from batchmig.journal import InstanceRecord, UnresolvedCall

STORE_ENV = "BATCHMIG_STORE"
"""The environment variable naming the shared store (the same as ``--store``)."""


def is_store_url(value: str) -> bool:
    return value.startswith(("postgresql://", "postgres://"))


class JournalStore(Protocol):
    """A run's journal as the engine and the pipeline use it."""

    def meta(self) -> dict[str, str]: ...

    def instances(self) -> dict[str, InstanceRecord]: ...

    def unresolved_calls(self) -> dict[str, list[UnresolvedCall]]:
        """Per instance, the mutating calls whose effect nobody knows (reconciled before anything is sent)."""
        ...

    def released_cutovers(self) -> set[str]: ...

    def steps(self) -> Iterable[tuple[str, int, str, float | None, float | None, str]]: ...

    async def released_now(self) -> set[str]:
        """The released cutovers as committed now (another process releases them)."""
        ...

    def start_writer(self) -> None: ...

    def close(self) -> None: ...

    async def flush(self) -> None: ...

    async def intent(self, instance: str, step: int, action: str, resource: object) -> int:
        """Record a mutating call about to be sent; return once it is durable."""
        ...

    def outcome(
        self,
        call_id: int,
        state: str,
        *,
        outputs: Mapping[str, Any] | None = None,
        request_id: str | None = None,
        error: Failure | None = None,
    ) -> None: ...

    def set_instance(
        self,
        instance: str,
        status: str,
        *,
        step: int | None = None,
        step_name: str | None = None,
        outputs: Mapping[str, Any] | None = None,
        error: Failure | None = None,
    ) -> None: ...

    def step_finished(self, instance: str, step: int, name: str, started: float, status: str) -> None: ...

    def resolve(self, instance: str, call_ids: list[int], state: str, outputs: Mapping[str, Any] | None = None) -> None:
        """What a reconcile found out about ``instance``'s unresolved calls: ``reconciled`` or ``absent``."""
        ...
