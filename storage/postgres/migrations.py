"""PostgreSQL schema migrations.

The scripts are plain SQL files in ``storage/postgres/sql/``, applied in name order:
``MIGRATIONS[i]`` brings the schema from version ``i`` to ``i + 1``.  Append new
files; never edit a released one.  Applied versions are rows of ``schema_version``.

Each script runs in its own transaction together with its ``schema_version`` row,
after taking a transaction-level advisory lock: two processes starting at once
queue on the lock, and the second re-reads the version under it, so every script
is applied exactly once and a crash mid-script leaves the previous version intact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import resources

import asyncpg

from storage.errors import StorageError


def _load() -> list[str]:
    folder = resources.files("storage.postgres") / "sql"
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(folder / name).read_text(encoding="utf-8") for name in names]


MIGRATIONS: list[str] = _load()
"""Ordered migration scripts (``sql/NNNN_*.sql``); the schema version equals the
number applied."""

SCHEMA_VERSION = len(MIGRATIONS)

MIGRATION_LOCK = 0x1A6E_0001
"""``pg_advisory_xact_lock`` key serialising migrations of one database."""

_CREATE_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    " version    INTEGER          PRIMARY KEY,"
    " applied_at DOUBLE PRECISION NOT NULL)"
)


async def current_version(conn: asyncpg.Connection) -> int:
    """The applied schema version (0 for an empty database)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))


async def apply_migrations(
    conn: asyncpg.Connection, clock: Callable[[], float], scripts: Sequence[str] = ()
) -> int:
    """Bring the database on ``conn`` up to date; returns the schema version."""
    scripts = list(scripts) or MIGRATIONS
    version = await current_version(conn)
    if version > len(scripts):
        raise StorageError(
            f"database schema version {version} is newer than this code supports "
            f"({len(scripts)}); upgrade imagine-bot"
        )
    for target, script in enumerate(scripts, start=1):
        if version >= target:
            continue
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            # Under the lock: creating the table, and re-reading the version another
            # process may have advanced meanwhile, cannot race.
            await conn.execute(_CREATE_VERSION_TABLE)
            if await current_version(conn) < target:
                # No arguments: the simple query protocol runs the whole script.
                await conn.execute(script)
                await conn.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)",
                    target,
                    clock(),
                )
        version = target
    return version
