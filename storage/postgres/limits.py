"""PostgreSQL shared concurrency limits: the ``limits`` table, one row per limit.

Every process on the database claims under the same row (``PgJobs.claim`` locks it
``FOR UPDATE``), so a limit holds for all workers together.  Each change here is
one UPDATE, atomic on its row."""

from __future__ import annotations

from storage.interfaces import Limit, Tx
from storage.postgres.store import Clock, pg_tx
from storage.rows import LIMIT_COLS, limit_from_row


class PgLimits:
    """PostgreSQL implementation of ``storage.interfaces.LimitRepo``."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def ensure(self, tx: Tx, name: str, *, initial: int, ceiling: int) -> Limit:
        ceiling = max(1, ceiling)
        initial = min(max(1, initial), ceiling)
        row = await pg_tx(tx, write=True).fetchrow(
            "INSERT INTO limits (name, value, ceiling, updated_at) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (name) DO UPDATE SET ceiling = EXCLUDED.ceiling, "
            "value = LEAST(limits.value, EXCLUDED.ceiling), updated_at = EXCLUDED.updated_at "
            f"RETURNING {LIMIT_COLS}",
            name,
            initial,
            ceiling,
            self._clock(),
        )
        limit = limit_from_row(row)
        assert limit is not None
        return limit

    async def get(self, tx: Tx, name: str) -> Limit | None:
        return limit_from_row(
            await pg_tx(tx).fetchrow(f"SELECT {LIMIT_COLS} FROM limits WHERE name = $1", name)
        )

    async def grow(self, tx: Tx, name: str, step: int = 1) -> Limit | None:
        t = pg_tx(tx, write=True)
        row = await t.fetchrow(
            "UPDATE limits SET value = LEAST(ceiling, value + $1), updated_at = $2 "
            f"WHERE name = $3 AND value < ceiling RETURNING {LIMIT_COLS}",
            max(1, step),
            self._clock(),
            name,
        )
        return limit_from_row(row) or await self.get(t, name)

    async def cut(
        self, tx: Tx, name: str, *, now: float, not_before: float = 0.0, window: float = 1.0
    ) -> Limit | None:
        row = await pg_tx(tx, write=True).fetchrow(
            "UPDATE limits SET "
            "value = CASE WHEN cut_at <= $1::float8 - $2::float8 "
            "        THEN GREATEST(1, value / 2) ELSE value END, "
            "cut_at = CASE WHEN cut_at <= $1::float8 - $2::float8 THEN $1::float8 "
            "         ELSE cut_at END, "
            "not_before = GREATEST(not_before, $3::float8), updated_at = $4 "
            f"WHERE name = $5 RETURNING {LIMIT_COLS}",
            now,
            window,
            not_before,
            self._clock(),
            name,
        )
        return limit_from_row(row)
