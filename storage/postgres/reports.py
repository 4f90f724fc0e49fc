"""PostgreSQL's way of running the dashboard's report queries (``storage.reports``)."""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Sequence
from typing import Any

from storage.interfaces import Tx
from storage.postgres.store import pg_tx
from storage.reports import RollupReports


@functools.cache
def numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2, ...`` (the report SQL has no
    ``?`` inside a literal)."""
    counter = itertools.count(1)
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


class PgReports(RollupReports):
    """PostgreSQL implementation of ``storage.interfaces.ReportRepo``."""

    async def _rows(self, tx: Tx, sql: str, *args: Any) -> Sequence[Sequence[Any]]:
        return await pg_tx(tx).fetch(numbered(sql), *args)
