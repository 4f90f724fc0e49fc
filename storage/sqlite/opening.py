"""Opening a SQLite store: the database URL, the file, pragmas, migrations at start
and the read-only reader connections."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

import aiosqlite

from storage.errors import StorageError
from storage.sqlite.db import PRAGMAS, READ_CONNECTIONS, Clock, SqliteStore, StoreInfo
from storage.sqlite.migrations import MIGRATIONS, SCHEMA_VERSION, split_statements


def parse_sqlite_url(url: str) -> str:
    """Return the filesystem path (or ``:memory:``) for a database URL.

    Accepts ``sqlite:///relative/path``, ``sqlite:////absolute/path`` and plain paths.
    """
    url = url.strip()
    if not url:
        raise StorageError("empty database URL")
    scheme, sep, rest = url.partition("://")
    if not sep:
        # A plain path (also covers Windows 'C:\\...' which has no '://').
        return url
    scheme = scheme.lower()
    if scheme in ("postgres", "postgresql") or scheme.startswith("postgresql+"):
        raise StorageError("a PostgreSQL URL is not a SQLite one: open it with storage.open_store")
    if scheme not in ("sqlite", "sqlite3", "file"):
        raise StorageError(
            f"unsupported database URL scheme {scheme!r}: expected sqlite:///path or a file path"
        )
    if not rest.startswith("/"):
        raise StorageError(
            f"bad SQLite URL {url!r}: use sqlite:///relative/path or sqlite:////absolute/path"
        )
    path = rest[1:]  # 'sqlite:///x' -> 'x', 'sqlite:////abs' -> '/abs'
    if not path:
        raise StorageError(f"bad SQLite URL {url!r}: no path")
    return path


async def _quiet_rollback(conn: aiosqlite.Connection) -> None:
    # The connection may already be outside a transaction (SQLite auto-rolls back
    # on some errors); the next BEGIN checks in_transaction again.
    with contextlib.suppress(sqlite3.Error):
        await conn.rollback()


async def _apply_migrations(conn: aiosqlite.Connection, migrations: Iterable[str]) -> int:
    rows = list(await conn.execute_fetchall("PRAGMA user_version"))
    version = int(rows[0][0])
    scripts = list(migrations)
    if version > len(scripts):
        raise StorageError(
            f"database schema version {version} is newer than this code supports "
            f"({len(scripts)}); upgrade imagine-bot"
        )
    for target, script in enumerate(scripts, start=1):
        if version >= target:
            continue
        await conn.execute_fetchall("BEGIN IMMEDIATE")
        try:
            # Re-read under the write lock: another process may have migrated meanwhile.
            rows = list(await conn.execute_fetchall("PRAGMA user_version"))
            if int(rows[0][0]) < target:
                for stmt in split_statements(script):
                    await conn.execute_fetchall(stmt)
                await conn.execute_fetchall(f"PRAGMA user_version = {target}")
            await conn.commit()
        except BaseException:
            await _quiet_rollback(conn)
            raise
        version = target
    return version


def _prepare_path(path: str) -> str:
    p = Path(path).expanduser()
    try:
        p.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # The ledger is the operator's alone; SQLite gives its -wal and -shm files the
        # same mode as the database file.
        os.close(os.open(p, os.O_RDWR | os.O_CREAT, 0o600))
    except OSError as e:
        raise StorageError(f"cannot create database {p}: {e}") from e
    return os.fspath(p)


async def open_sqlite_store(path: str, *, clock: Clock = time.time) -> SqliteStore:
    """Open (creating if needed) the database at ``path`` and migrate it."""
    if path != ":memory:" and not path.startswith("file:"):
        path = await asyncio.to_thread(_prepare_path, path)
    try:
        # isolation_level=None: the sqlite3 module must not open implicit
        # transactions; we issue BEGIN IMMEDIATE / COMMIT ourselves.
        conn = await aiosqlite.connect(path, isolation_level=None)
    except sqlite3.Error as e:
        raise StorageError(f"cannot open database {path}: {e}") from e
    try:
        if not (hasattr(conn, "_execute") and hasattr(conn, "_conn")):
            raise StorageError(
                "this aiosqlite version lacks Connection._execute/_conn, which the store "
                "uses to run one operation per worker-thread hop"
            )
        conn.row_factory = sqlite3.Row
        journal = "memory"
        for pragma in PRAGMAS:
            rows = list(await conn.execute_fetchall(pragma))
            if "journal_mode" in pragma and rows:
                journal = str(rows[0][0]).lower()
        if path != ":memory:" and journal != "wal":
            raise StorageError(f"could not enable WAL journal mode on {path} (got {journal!r})")
        version = await _apply_migrations(conn, MIGRATIONS)
    except sqlite3.Error as e:
        await conn.close()
        raise StorageError(f"cannot initialise database {path}: {e}") from e
    except BaseException:
        await conn.close()
        raise
    assert version == SCHEMA_VERSION
    readers: list[aiosqlite.Connection] = []
    if path not in (":memory:", "") and "mode=memory" not in path:
        try:
            for _ in range(READ_CONNECTIONS):
                readers.append(await _open_reader(path))
        except BaseException:
            for r in readers:
                await r.close()
            await conn.close()
            raise
    return SqliteStore(
        conn,
        StoreInfo(path=path, schema_version=version, journal_mode=journal),
        clock,
        readers,
    )


async def _open_reader(path: str) -> aiosqlite.Connection:
    """A connection for ``store.read()``: same file, query_only (SQLite refuses writes)."""
    try:
        conn = await aiosqlite.connect(path, isolation_level=None)
    except sqlite3.Error as e:
        raise StorageError(f"cannot open database {path}: {e}") from e
    try:
        conn.row_factory = sqlite3.Row
        for pragma in PRAGMAS:
            if "journal_mode" not in pragma:  # persistent in the file; set by the writer
                await conn.execute_fetchall(pragma)
        await conn.execute_fetchall("PRAGMA query_only = ON")
    except sqlite3.Error as e:
        await conn.close()
        raise StorageError(f"cannot initialise read connection to {path}: {e}") from e
    except BaseException:
        await conn.close()
        raise
    return conn
