"""SQLite's way of running the dashboard's report queries (``storage.reports``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from storage.interfaces import Tx
from storage.reports import RollupReports
from storage.sqlite.tx import sqlite_tx


class SqliteReports(RollupReports):
    """SQLite implementation of ``storage.interfaces.ReportRepo``."""

    # The planner would take jobs_state_updated and read each row; the partial
    # index of the jobs not ended covers the queue query.
    queue_index_hint = "INDEXED BY jobs_active"

    async def _rows(self, tx: Tx, sql: str, *args: Any) -> Sequence[Sequence[Any]]:
        return await sqlite_tx(tx).fetchall(sql, args)
