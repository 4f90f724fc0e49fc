"""One logical SQLite transaction (``SqliteTx``) and the physical batch it joins.

How batches form and commit (group commit) is ``SqliteStore``'s business, in
``storage.sqlite.db``; the ``async with`` blocks that open and end them are in
``storage.sqlite.contexts``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aiosqlite

from storage.errors import StorageError
from storage.interfaces import Tx

Params = Sequence[Any] | dict[str, Any]
T = TypeVar("T")
Clock = Callable[[], float]

SAVEPOINT = "logical_tx"


class Batch:
    """One physical write transaction shared by several logical ones (group commit).

    ``begun``/``started`` are set on the connection's worker thread by the first
    statement of the batch; everything else is touched on the event loop by the
    holder of the store's write lock.
    """

    __slots__ = ("begun", "done", "members", "started", "unreleased")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.begun = False
        self.started = 0.0
        self.members = 0
        # The last member's savepoint is still open (released by the next member's
        # first hop, or simply committed): saves a thread hop per member.
        self.unreleased = False
        # Result: None once COMMIT completed, or the StorageError every member raises.
        # Set with set_result (never set_exception) so an unawaited future never logs.
        self.done: asyncio.Future[StorageError | None] = loop.create_future()

    def resolve(self, error: StorageError | None) -> None:
        if not self.done.done():
            self.done.set_result(error)


class SqliteTx:
    """A logical transaction.  See ``storage.interfaces.Tx`` and ``SqliteStore``.

    ``BEGIN IMMEDIATE`` (when the batch is new) and ``SAVEPOINT`` are sent lazily,
    in the same worker-thread hop as the first statement, and every repository
    operation runs as ONE synchronous function on aiosqlite's connection thread
    (``call``).  Each thread hop costs tens of microseconds, more than a typical
    statement; doing a reserve as BEGIN + 2 statements + COMMIT in separate hops
    made the ledger several times slower than raw sqlite3 (``bench/ledger.py``).
    """

    __slots__ = ("_aconn", "_active", "_batch", "_begun", "_failed", "_writable")

    def __init__(
        self, aconn: aiosqlite.Connection, writable: bool, batch: Batch | None = None
    ) -> None:
        self._aconn = aconn
        self._writable = writable
        self._batch = batch
        self._active = True
        # Both set on the worker thread (so they are right even when a cancelled
        # caller stopped waiting for a hop that still ran).
        self._begun = False
        self._failed = False

    @property
    def writable(self) -> bool:
        return self._writable

    @property
    def active(self) -> bool:
        return self._active

    def _begin(self, con: sqlite3.Connection) -> None:
        """Worker thread: open this logical transaction."""
        batch = self._batch
        if batch is None:  # read-only snapshot
            if con.in_transaction:
                con.execute("ROLLBACK")  # left over from an interrupted exit
            con.execute("BEGIN")
        else:
            if not batch.begun:
                if con.in_transaction:
                    con.execute("ROLLBACK")  # left over from an interrupted exit
                con.execute("BEGIN IMMEDIATE")
                batch.begun = True
                batch.started = time.monotonic()
            elif not con.in_transaction:
                raise sqlite3.OperationalError(
                    "the shared transaction was rolled back by SQLite after an error"
                )
            elif batch.unreleased:
                # The previous member left without a hop of its own; merge its
                # savepoint into the batch now (open nested savepoints make every
                # later write ~2x slower).  COMMIT would make it durable either way.
                con.execute(f"RELEASE {SAVEPOINT}")
                batch.unreleased = False
            # ROLLBACK TO this savepoint undoes only this logical transaction.
            con.execute(f"SAVEPOINT {SAVEPOINT}")
        self._begun = True

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the connection's worker thread, inside this tx.

        ``fn`` must only touch the connection it is given.  Driver errors poison
        the transaction (it will be rolled back) and surface as ``StorageError``;
        other exceptions (domain errors) pass through unchanged.
        """
        aconn = self._aconn

        def run() -> T:
            con: sqlite3.Connection = aconn._conn  # the sqlite3 connection aiosqlite wraps
            try:
                if not self._begun:
                    self._begin(con)
                elif not con.in_transaction:
                    # SQLite rolled the whole transaction back (disk full, I/O error):
                    # never let later statements run in autocommit mode.
                    raise sqlite3.OperationalError(
                        "the transaction was rolled back by SQLite after an error"
                    )
                return fn(con)
            except sqlite3.Error:
                self._failed = True
                raise

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


async def shielded(aw: Awaitable[T]) -> tuple[T, bool]:
    """Await ``aw`` to completion even if the calling task is cancelled meanwhile.

    Returns ``(result, cancelled)``; the caller re-raises ``CancelledError`` once it
    has put the connection back into a known state.  Used for the hops that end a
    logical or physical transaction: abandoning them half way would leave the
    shared connection in a state nobody tracks.
    """
    task = asyncio.ensure_future(aw)
    cancelled = False
    while True:
        try:
            return await asyncio.shield(task), cancelled
        except asyncio.CancelledError:
            if task.done():
                if task.cancelled():
                    raise  # the operation itself was cancelled (loop shutting down)
                return task.result(), True
            cancelled = True
