"""SQLite shared concurrency limits: the ``limits`` table, one row per limit.

Every process on the database file claims under the same row (see
``SqliteJobs.claim``), so a limit holds for all workers together."""

from __future__ import annotations

from storage.interfaces import Limit, Tx
from storage.rows import LIMIT_COLS, limit_from_row
from storage.sqlite.tx import Clock, sqlite_tx


class SqliteLimits:
    """SQLite implementation of ``storage.interfaces.LimitRepo``."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def ensure(self, tx: Tx, name: str, *, initial: int, ceiling: int) -> Limit:
        ceiling = max(1, ceiling)
        initial = min(max(1, initial), ceiling)
        row = await sqlite_tx(tx, write=True).fetchone(
            "INSERT INTO limits (name, value, ceiling, updated_at) VALUES (:n, :v, :c, :now) "
            "ON CONFLICT (name) DO UPDATE SET ceiling = :c, value = MIN(value, :c), "
            "updated_at = :now "
            f"RETURNING {LIMIT_COLS}",
            {"n": name, "v": initial, "c": ceiling, "now": self._clock()},
        )
        limit = limit_from_row(row)
        assert limit is not None
        return limit

    async def get(self, tx: Tx, name: str) -> Limit | None:
        return limit_from_row(
            await sqlite_tx(tx).fetchone(f"SELECT {LIMIT_COLS} FROM limits WHERE name = ?", (name,))
        )

    async def grow(self, tx: Tx, name: str, step: int = 1) -> Limit | None:
        t = sqlite_tx(tx, write=True)
        row = await t.fetchone(
            "UPDATE limits SET value = MIN(ceiling, value + :step), updated_at = :now "
            f"WHERE name = :n AND value < ceiling RETURNING {LIMIT_COLS}",
            {"n": name, "step": max(1, step), "now": self._clock()},
        )
        return limit_from_row(row) or await self.get(t, name)

    async def cut(
        self, tx: Tx, name: str, *, now: float, not_before: float = 0.0, window: float = 1.0
    ) -> Limit | None:
        row = await sqlite_tx(tx, write=True).fetchone(
            "UPDATE limits SET "
            "value = CASE WHEN cut_at <= :now - :window THEN MAX(1, value / 2) ELSE value END, "
            "cut_at = CASE WHEN cut_at <= :now - :window THEN :now ELSE cut_at END, "
            "not_before = MAX(not_before, :nb), updated_at = :now "
            f"WHERE name = :n RETURNING {LIMIT_COLS}",
            {"n": name, "now": now, "window": window, "nb": not_before},
        )
        return limit_from_row(row)
