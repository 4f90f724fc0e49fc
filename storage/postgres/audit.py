"""PostgreSQL audit log and key-value flags.

``PgAudit`` owns the append-only ``audit`` table (who tried which admin action, and
whether it was allowed).  ``PgFlags`` owns the small ``flags`` key-value table core
uses for operational switches and per-user settings JSON.
"""

from __future__ import annotations

from storage.interfaces import AuditEntry, Tx
from storage.postgres.store import Clock, pg_tx
from storage.rows import AUDIT_COLS, audit_from_row


class PgAudit:
    """PostgreSQL implementation of ``storage.interfaces.AuditRepo``."""

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
        await pg_tx(tx, write=True).execute(
            "INSERT INTO audit (at, actor, action, target, detail, allowed) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            self._clock(),
            actor,
            action,
            target,
            detail,
            bool(allowed),
        )

    async def recent(self, tx: Tx, limit: int = 20) -> list[AuditEntry]:
        rows = await pg_tx(tx).fetch(
            f"SELECT {AUDIT_COLS} FROM audit ORDER BY id DESC LIMIT $1",
            limit,
        )
        return [audit_from_row(r) for r in rows]


class PgFlags:
    """PostgreSQL implementation of ``storage.interfaces.FlagRepo``."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def get(self, tx: Tx, key: str) -> str | None:
        value = await pg_tx(tx).fetchval("SELECT value FROM flags WHERE key = $1", key)
        return None if value is None else str(value)

    async def set(self, tx: Tx, key: str, value: str) -> None:
        await pg_tx(tx, write=True).execute(
            "INSERT INTO flags (key, value, updated_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, "
            "updated_at = EXCLUDED.updated_at",
            key,
            value,
            self._clock(),
        )

    async def delete(self, tx: Tx, key: str) -> bool:
        found = await pg_tx(tx, write=True).fetchval(
            "DELETE FROM flags WHERE key = $1 RETURNING key", key
        )
        return found is not None

    async def purge(self, tx: Tx, prefix: str, before: float) -> int:
        # starts_with, not LIKE: a prefix is text, never a pattern.
        rows = await pg_tx(tx, write=True).fetch(
            "DELETE FROM flags WHERE starts_with(key, $1) AND updated_at < $2 RETURNING key",
            prefix,
            before,
        )
        return len(rows)
