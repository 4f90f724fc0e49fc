"""SQLite connection, unit of work and store assembly.

Owns: URL parsing, connection pragmas, running migrations, and the transaction
discipline every repository relies on:

* ONE aiosqlite connection per ``SqliteStore``; an ``asyncio.Lock`` is held for the
  whole ``async with store.transaction()`` block so statements of two coroutines
  never interleave inside one SQLite transaction.
* Writers use ``BEGIN IMMEDIATE``: the database write lock is taken up front, so two
  OS processes on the same file serialise (``busy_timeout`` makes the second wait)
  instead of failing with SQLITE_BUSY on lock upgrade halfway through.
* If any statement fails with a driver error the transaction is poisoned: it is
  rolled back at exit even if the caller swallowed the error, because a repository
  method may already have applied part of its writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import aiosqlite

from storage.errors import StorageError
from storage.interfaces import AuditRepo, FlagRepo, JobRepo, LedgerRepo, Tx
from storage.sqlite.migrations import MIGRATIONS, SCHEMA_VERSION, split_statements

Params = Sequence[Any] | dict[str, Any]
T = TypeVar("T")
Clock = Callable[[], float]

BUSY_TIMEOUT_MS = 10_000

# Applied on every connection.  journal_mode=WAL lets readers proceed while one
# writer commits; synchronous=FULL fsyncs the WAL on every commit so a committed
# charge survives power loss; foreign_keys is per-connection and off by default.
PRAGMAS: tuple[str, ...] = (
    f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
)


# --------------------------------------------------------------------------- URLs


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
        raise StorageError(
            "PostgreSQL support is not built yet; use a sqlite:/// URL or a file path"
        )
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


# --------------------------------------------------------------------------- unit of work


class SqliteTx:
    """A transaction on the store's single connection.  See ``storage.interfaces.Tx``.

    ``BEGIN`` is sent lazily, in the same worker-thread hop as the first statement,
    and every repository operation runs as ONE synchronous function on aiosqlite's
    connection thread (``call``).  Each thread hop costs tens of microseconds, more
    than a typical statement; doing a reserve as BEGIN + 2 statements + COMMIT in
    separate hops made the ledger ~5x slower than raw sqlite3 (see bench/ledger.py).
    """

    __slots__ = ("_aconn", "_active", "_begin_sql", "_begun", "_failed", "_writable")

    def __init__(self, aconn: aiosqlite.Connection, writable: bool) -> None:
        self._aconn = aconn
        self._writable = writable
        self._begin_sql = "BEGIN IMMEDIATE" if writable else "BEGIN"
        self._active = True
        self._begun = False
        self._failed = False

    @property
    def writable(self) -> bool:
        return self._writable

    @property
    def active(self) -> bool:
        return self._active

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the connection's worker thread, inside this tx.

        ``fn`` must only touch the connection it is given.  Driver errors poison
        the transaction (it will be rolled back) and surface as ``StorageError``;
        other exceptions (domain errors) pass through unchanged.
        """
        aconn = self._aconn

        def run() -> T:
            con: sqlite3.Connection = aconn._conn  # the sqlite3 connection aiosqlite wraps
            if not self._begun:
                con.execute(self._begin_sql)
                self._begun = True
            return fn(con)

        try:
            # aiosqlite has no public "run this callable on the connection thread";
            # _execute is that primitive (checked for in open_sqlite_store).
            result: T = await aconn._execute(run)
        except sqlite3.Error as e:
            self._failed = True
            raise StorageError(f"database error: {e}") from e
        return result

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return await self.call(lambda con: con.execute(sql, params).fetchall())

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        row: sqlite3.Row | None = await self.call(lambda con: con.execute(sql, params).fetchone())
        return row

    async def execute(self, sql: str, params: Params = ()) -> None:
        await self.call(lambda con: con.execute(sql, params).fetchall())


def sqlite_tx(tx: Tx, *, write: bool = False) -> SqliteTx:
    """Narrow a backend-neutral ``Tx`` to ours and check it may be used."""
    if not isinstance(tx, SqliteTx):
        raise StorageError(f"transaction of type {type(tx).__name__} is not a SQLite transaction")
    if not tx._active:
        raise StorageError("transaction is no longer active (used outside its async with block)")
    if write and not tx._writable:
        raise StorageError("write attempted in a read-only transaction; use store.transaction()")
    return tx


class _TxContext:
    """``async with`` helper returned by ``SqliteStore.transaction()`` / ``read()``."""

    __slots__ = ("_store", "_tx", "_writable")

    def __init__(self, store: SqliteStore, writable: bool) -> None:
        self._store = store
        self._writable = writable
        self._tx: SqliteTx | None = None

    async def __aenter__(self) -> SqliteTx:
        store = self._store
        if store._closed:
            raise StorageError("store is closed")
        task = asyncio.current_task()
        if task is not None and store._owner is task:
            # Would deadlock on our own lock; SQLite has no nested transactions anyway.
            raise StorageError("nested transaction on the same store in the same task")
        await store._lock.acquire()
        conn = store._conn
        try:
            if conn.in_transaction:
                # Left over from a rollback that was interrupted by cancellation.
                await conn.rollback()
        except sqlite3.Error as e:
            store._lock.release()
            raise StorageError(f"could not reset connection: {e}") from e
        except BaseException:
            store._lock.release()
            raise
        store._owner = task
        self._tx = SqliteTx(conn, self._writable)
        return self._tx

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        store = self._store
        tx = self._tx
        assert tx is not None
        tx._active = False
        conn = store._conn
        try:
            if not tx._begun:
                # No statement was ever sent: nothing to commit or roll back.
                if exc_type is None and tx._failed:
                    raise StorageError("transaction failed to begin")
            elif exc_type is None and not tx._failed:
                try:
                    await conn.commit()
                except sqlite3.Error as e:
                    await _quiet_rollback(conn)
                    raise StorageError(f"commit failed: {e}") from e
            else:
                await _quiet_rollback(conn)
                if exc_type is None:
                    raise StorageError(
                        "transaction rolled back: a statement failed inside it "
                        "(the error was caught, but partial writes cannot be committed)"
                    )
        finally:
            store._owner = None
            store._lock.release()


async def _quiet_rollback(conn: aiosqlite.Connection) -> None:
    # The connection may already be outside a transaction (SQLite auto-rolls back
    # on some errors); the next BEGIN checks in_transaction again.
    with contextlib.suppress(sqlite3.Error):
        await conn.rollback()


# --------------------------------------------------------------------------- store


@dataclass(frozen=True, slots=True)
class StoreInfo:
    path: str
    schema_version: int
    journal_mode: str


class SqliteStore:
    """SQLite implementation of ``storage.interfaces.Store``."""

    def __init__(self, conn: aiosqlite.Connection, info: StoreInfo, clock: Clock) -> None:
        # Local import: the repositories import this module for SqliteTx.
        from storage.sqlite.audit import SqliteAudit, SqliteFlags
        from storage.sqlite.jobs import SqliteJobs
        from storage.sqlite.ledger import SqliteLedger

        self._conn = conn
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self._closed = False
        self.info = info
        self.clock = clock
        self.ledger: LedgerRepo = SqliteLedger(clock)
        self.jobs: JobRepo = SqliteJobs(clock)
        self.audit: AuditRepo = SqliteAudit(clock)
        self.flags: FlagRepo = SqliteFlags(clock)

    @property
    def path(self) -> str:
        return self.info.path

    def transaction(self) -> _TxContext:
        return _TxContext(self, writable=True)

    def read(self) -> _TxContext:
        return _TxContext(self, writable=False)

    async def close(self) -> None:
        if self._closed:
            return
        # Wait for a running transaction to finish rather than cutting it off.
        async with self._lock:
            self._closed = True
            await self._conn.close()


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
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(f"cannot create database directory {p.parent}: {e}") from e
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
    return SqliteStore(
        conn, StoreInfo(path=path, schema_version=version, journal_mode=journal), clock
    )
