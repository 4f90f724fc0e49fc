"""``async with store.transaction()`` and ``async with store.read()``: entering and
leaving one logical transaction of ``SqliteStore``'s group commit."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from types import TracebackType
from typing import TYPE_CHECKING, Any

import aiosqlite

from storage.errors import StorageError
from storage.sqlite.tx import Batch, SqliteTx, shielded

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
        store = self._store
        if store._closed:
            raise StorageError("store is closed")
        task = asyncio.current_task()
        if task is not None and task in store._active:
            # Would deadlock on our own lock; SQLite has no nested transactions anyway.
            raise StorageError("nested transaction on the same store in the same task")
        await store._acquire_write()
        if store._closed:
            store._lock.release()
            raise StorageError("store is closed")
        batch = store._batch
        if batch is None:
            batch = store._batch = Batch(asyncio.get_running_loop())
        if task is not None:
            store._active.add(task)
        self._tx = SqliteTx(store._conn, True, batch)
        return self._tx

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        store = self._store
        tx = self._tx
        assert tx is not None and tx._batch is not None
        tx._active = False
        batch = tx._batch
        task = asyncio.current_task()
        if task is not None:
            store._active.discard(task)
        ok = exc_type is None and not tx._failed
        member = False  # our writes are in the batch: we must wait for its COMMIT
        cancelled = False
        error: StorageError | None = None
        try:
            if ok:
                if tx._begun:
                    member = True
                    batch.members += 1
                    ended = KEEP
                    if store._should_commit(batch):
                        ended, cancelled = await shielded(store._end(batch, tx, undo=False))
                    if ended == KEEP:
                        batch.unreleased = True
                elif batch.begun and store._waiting == 0:
                    # We joined an open batch but wrote nothing: still the last one
                    # in line, so the batch is ours to commit (or end).
                    _, cancelled = await shielded(store._end(batch, None, undo=False))
            else:
                store.stats.rollbacks += 1
                # Always hop, even if no statement was seen to run: a cancelled caller
                # may have abandoned a hop that is still queued on the connection.
                _, cancelled = await shielded(store._end(batch, tx, undo=True))
                if exc_type is None:
                    error = StorageError(
                        "transaction rolled back: a statement failed inside it "
                        "(the error was caught, but partial writes cannot be committed)"
                    )
        finally:
            if store._batch is batch and not batch.begun:
                store._batch = None  # nothing was ever sent for it
            store._lock.release()
        if member:
            if batch.done.done():
                outcome = batch.done.result()
            else:
                # Cancellation here is safe: our writes are already in the batch
                # and will be committed (or rolled back with it) regardless.
                outcome = await asyncio.shield(batch.done)
            if outcome is not None:
                store.stats.rollbacks += 1
                error = StorageError(str(outcome))
        if error is not None:
            raise error
        if cancelled and exc_type is None:
            raise asyncio.CancelledError


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
        store = self._store
        if store._closed:
            raise StorageError("store is closed")
        task = asyncio.current_task()
        if task is not None and task in store._active:
            raise StorageError("nested transaction on the same store in the same task")
        if not store._readers:
            return await self._enter_shared(task)
        await store._read_slots.acquire()
        if store._closed:
            store._read_slots.release()
            raise StorageError("store is closed")
        self._conn = store._take_reader()
        if task is not None:
            store._active.add(task)
        self._tx = SqliteTx(self._conn, False)
        return self._tx

    async def _enter_shared(self, task: asyncio.Task[Any] | None) -> SqliteTx:
        # ':memory:' has no second connection: read on the writer, under its lock,
        # after making any pending batch durable (a read must not see it early).
        store = self._store
        await store._acquire_write()
        try:
            if store._closed:
                raise StorageError("store is closed")
            batch = store._batch
            if batch is not None and batch.begun:
                await shielded(store._end(batch, None, undo=False, force=True))
            store._batch = None
        except BaseException:
            store._lock.release()
            raise
        if task is not None:
            store._active.add(task)
        self._tx = SqliteTx(store._conn, False)
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
        task = asyncio.current_task()
        if task is not None:
            store._active.discard(task)
        cancelled = False
        if self._conn is not None:
            # No hop to end the snapshot: the next read on this connection rolls it
            # back in its own first hop, or the store does soon if none comes.
            store._return_reader(self._conn, lingering=tx._begun)
        else:
            aconn = tx._aconn
            try:
                with contextlib.suppress(sqlite3.Error):
                    _, cancelled = await shielded(aconn._execute(end_snapshot, aconn._conn))
            finally:
                store._lock.release()
        if exc_type is None and tx._failed and tx._begun:
            raise StorageError(
                "transaction rolled back: a statement failed inside it "
                "(the error was caught, but the snapshot is no longer trustworthy)"
            )
        if cancelled and exc_type is None:
            raise asyncio.CancelledError
