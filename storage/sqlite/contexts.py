"""``async with store.transaction()`` and ``async with store.read()``: the context
managers of ``SqliteStore``. What entering and leaving does is the store's own
business (``begin_write``/``end_write``, ``begin_read``/``end_read`` in
``storage.sqlite.db``); these only hold the transaction between the two."""

from __future__ import annotations

import sqlite3
from types import TracebackType
from typing import TYPE_CHECKING

import aiosqlite

from storage.sqlite.tx import SqliteTx

if TYPE_CHECKING:
    from storage.sqlite.db import SqliteStore

# Outcomes of the hop that ends a logical transaction (``SqliteStore._end``).
KEEP = "keep"  # batch stays open for others to join
COMMITTED = "committed"
ROLLED_BACK = "rolled_back"  # physical transaction ended with no member in it
LOST = "lost"  # physical transaction gone: every member fails


def end_snapshot(con: sqlite3.Connection) -> None:
    """Worker thread: end a read-only transaction (nothing to commit)."""
    if con.in_transaction:
        con.execute("ROLLBACK")


class WriteContext:
    """``async with store.transaction()``: one logical transaction of a group commit."""

    __slots__ = ("_store", "_tx")

    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        self._tx: SqliteTx | None = None

    async def __aenter__(self) -> SqliteTx:
        self._tx = await self._store.begin_write()
        return self._tx

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tx is not None
        await self._store.end_write(self._tx, exc_type)


class ReadContext:
    """``async with store.read()``: a snapshot on a read-only connection.

    Readers never see a pending batch's writes (WAL readers only see committed
    transactions) and never wait for the writer's fsync.
    """

    __slots__ = ("_conn", "_store", "_tx")

    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        self._tx: SqliteTx | None = None
        self._conn: aiosqlite.Connection | None = None

    async def __aenter__(self) -> SqliteTx:
        self._tx, self._conn = await self._store.begin_read()
        return self._tx

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tx is not None
        await self._store.end_read(self._tx, self._conn, exc_type)
