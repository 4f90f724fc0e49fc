"""SQLite audit log and key-value flags.

``SqliteAudit`` owns the append-only ``audit`` table (who tried which admin action,
and whether it was allowed).  ``SqliteFlags`` owns the small ``flags`` key-value
table core uses for operational switches (e.g. the vendor-402 pause) and per-user
settings JSON keyed like ``settings:telegram:123``.
"""

from __future__ import annotations

from storage.interfaces import AuditEntry, Tx
from storage.rows import AUDIT_COLS, audit_from_row
from storage.sqlite.tx import Clock, sqlite_tx


class SqliteAudit:
    """SQLite implementation of ``storage.interfaces.AuditRepo``."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def record(
        self,
        tx: Tx,
        actor: str,
        action: str,
        target: str | None,
        detail: str | None,
        allowed: bool,
    ) -> None:
        await sqlite_tx(tx, write=True).execute(
            "INSERT INTO audit (at, actor, action, target, detail, allowed) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (self._clock(), actor, action, target, detail, 1 if allowed else 0),
        )

    async def recent(self, tx: Tx, limit: int = 20) -> list[AuditEntry]:
        rows = await sqlite_tx(tx).fetchall(
            f"SELECT {AUDIT_COLS} FROM audit ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [audit_from_row(r) for r in rows]


class SqliteFlags:
    """SQLite implementation of ``storage.interfaces.FlagRepo``."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def get(self, tx: Tx, key: str) -> str | None:
        row = await sqlite_tx(tx).fetchone("SELECT value FROM flags WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    async def set(self, tx: Tx, key: str, value: str) -> None:
        await sqlite_tx(tx, write=True).execute(
            "INSERT INTO flags (key, value, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
            "updated_at = excluded.updated_at",
            (key, value, self._clock()),
        )

    async def delete(self, tx: Tx, key: str) -> bool:
        row = await sqlite_tx(tx, write=True).fetchone(
            "DELETE FROM flags WHERE key = ? RETURNING key", (key,)
        )
        return row is not None

    async def purge(self, tx: Tx, prefix: str, before: float) -> int:
        # substr, not LIKE: a prefix is text, never a pattern.
        rows = await sqlite_tx(tx, write=True).fetchall(
            "DELETE FROM flags WHERE substr(key, 1, ?) = ? AND updated_at < ? RETURNING key",
            (len(prefix), prefix, before),
        )
        return len(rows)
