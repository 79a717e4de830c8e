"""Where a run's journal lives: the embedded SQLite file (one runner) or a shared
PostgreSQL store (several runners, one plan, one rate budget).

``batchmig.journal.Journal`` is the SQLite backend and ``batchmig.store.postgres``
the PostgreSQL one; both offer the methods of ``JournalStore``, which is all the
engine and the call pipeline use. The PostgreSQL store is named by a URL
(``--store postgresql://...`` or ``BATCHMIG_STORE``).
"""

from __future__ import annotations

from batchmig.store.base import STORE_ENV, JournalStore, is_store_url

__all__ = ["STORE_ENV", "JournalStore", "is_store_url"]
