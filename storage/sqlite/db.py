"""SQLite connection, unit of work and store assembly.

Owns the connection pragmas and the transaction discipline every repository
relies on (details in ``SqliteStore``; opening and migrations are in ``opening``):

* ONE aiosqlite connection per ``SqliteStore`` for writes; an ``asyncio.Lock`` is
  held for the whole ``async with store.transaction()`` block so statements of two
  coroutines never interleave inside one logical transaction.
* Group commit: consecutive logical transactions share one physical transaction,
  each inside its own SAVEPOINT; the batch COMMITs (one fsync) when nobody else is
  queued or a bound is hit, and no block returns before its COMMIT completed.
* Writers use ``BEGIN IMMEDIATE``: the database write lock is taken up front, so two
  OS processes on the same file serialise (``busy_timeout`` makes the second wait)
  instead of failing with SQLITE_BUSY on lock upgrade halfway through.
* If any statement fails with a driver error the logical transaction is poisoned:
  it is rolled back (to its savepoint) at exit even if the caller swallowed the
  error, because a repository method may already have applied part of its writes.
* ``store.read()`` runs on separate read-only connections: committed data only,
  never queued behind the writer's fsync.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import aiosqlite

from storage.errors import StorageError
from storage.interfaces import AuditRepo, FlagRepo, JobRepo, LedgerRepo, Tx

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


# --------------------------------------------------------------------------- unit of work

SAVEPOINT = "logical_tx"

MAX_BATCH = 64
"""Most logical transactions one physical COMMIT may carry."""
MAX_BATCH_DELAY = 0.020
"""Seconds after its BEGIN IMMEDIATE after which a batch commits even if others queue."""
READ_CONNECTIONS = 2
"""Read-only connections serving ``store.read()`` (file databases only)."""


@dataclass(slots=True)
class SqliteStats:
    """Counters for tests and benchmarks (``store.stats``).  Monotonic; never reset."""

    commits: int = 0
    """Physical COMMITs that carried at least one logical transaction."""
    logical_commits: int = 0
    """Logical transactions made durable by those COMMITs."""
    rollbacks: int = 0
    """Logical transactions rolled back (exception, poisoned, or their batch failed)."""
    failed_batches: int = 0
    """Physical transactions lost (COMMIT failed, or SQLite rolled the batch back)."""
    max_batch: int = 0
    """Most logical transactions seen in one physical COMMIT."""


class _Batch:
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
    made the ledger ~5x slower than raw sqlite3 (see bench/ledger.py).
    """

    __slots__ = ("_aconn", "_active", "_batch", "_begun", "_failed", "_writable")

    def __init__(
        self, aconn: aiosqlite.Connection, writable: bool, batch: _Batch | None = None
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


async def _shielded(aw: Awaitable[T]) -> tuple[T, bool]:
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


# Outcomes of the hop that ends a logical transaction (``SqliteStore._finish``).
_KEEP = "keep"  # batch stays open for others to join
_COMMITTED = "committed"
_ROLLED_BACK = "rolled_back"  # physical transaction ended with no member in it
_LOST = "lost"  # physical transaction gone: every member fails


class _WriteContext:
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
            batch = store._batch = _Batch(asyncio.get_running_loop())
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
                    ended = _KEEP
                    if store._should_commit(batch):
                        ended, cancelled = await _shielded(store._end(batch, tx, undo=False))
                    if ended == _KEEP:
                        batch.unreleased = True
                elif batch.begun and store._waiting == 0:
                    # We joined an open batch but wrote nothing: still the last one
                    # in line, so the batch is ours to commit (or end).
                    _, cancelled = await _shielded(store._end(batch, None, undo=False))
            else:
                store.stats.rollbacks += 1
                # Always hop, even if no statement was seen to run: a cancelled caller
                # may have abandoned a hop that is still queued on the connection.
                _, cancelled = await _shielded(store._end(batch, tx, undo=True))
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


class _ReadContext:
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
        self._conn = store._idle_readers.pop()
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
                await _shielded(store._end(batch, None, undo=False, force=True))
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
        aconn = tx._aconn

        def end(con: sqlite3.Connection) -> None:
            if con.in_transaction:
                con.execute("ROLLBACK")  # read-only: nothing to commit

        cancelled = False
        try:
            with contextlib.suppress(sqlite3.Error):
                _, cancelled = await _shielded(aconn._execute(end, aconn._conn))
        finally:
            if self._conn is None:
                store._lock.release()
            else:
                store._idle_readers.append(self._conn)
                store._read_slots.release()
        if exc_type is None and tx._failed and tx._begun:
            raise StorageError(
                "transaction rolled back: a statement failed inside it "
                "(the error was caught, but the snapshot is no longer trustworthy)"
            )
        if cancelled and exc_type is None:
            raise asyncio.CancelledError


# --------------------------------------------------------------------------- store


@dataclass(frozen=True, slots=True)
class StoreInfo:
    path: str
    schema_version: int
    journal_mode: str


class SqliteStore:
    """SQLite implementation of ``storage.interfaces.Store``, with group commit.

    Writes: ONE connection.  ``transaction()`` blocks are *logical* transactions;
    they run one at a time on the connection (an ``asyncio.Lock`` is held for the
    whole block) but several consecutive ones share one *physical* transaction:

    * The first logical transaction of a batch sends ``BEGIN IMMEDIATE`` (so two OS
      processes still serialise on the database write lock, ``busy_timeout`` making
      the second wait).  Each logical transaction runs inside its own
      ``SAVEPOINT``; an exception, or a driver error even if swallowed (a
      repository method may have applied part of its writes), makes it
      ``ROLLBACK TO`` + ``RELEASE`` its savepoint, undoing only its own writes.
    * When a logical transaction ends successfully while others are queued for the
      lock, it leaves the batch open, releases the lock and waits; the last one in
      line (nobody waiting), or the one that hits ``max_batch`` logical
      transactions or ``max_batch_delay`` seconds since the BEGIN, sends ``COMMIT``
      (one fsync with synchronous=FULL for the whole batch).  An uncontended
      transaction therefore commits at once, exactly as before.
    * ``async with`` does not return before the COMMIT containing the block has
      completed: a caller that saw its block exit will find its writes after a
      power cut.  If that COMMIT fails, every logical transaction of the batch
      raises ``StorageError``.
    * Later members of a batch see earlier members' writes (they run strictly
      after them); if the batch's COMMIT then fails, they fail too, so nothing
      built on lost writes is reported as committed.  A block that raised may have
      based its decision (e.g. ``InsufficientFunds``) on such writes.
    * Cancelling a caller while it waits for its batch's COMMIT raises
      ``CancelledError`` at once, but its writes are already in the batch and WILL
      be committed with it (like cancelling after COMMIT was sent).  A caller
      cancelled inside its block is rolled back as before.
    * A logical transaction that holds the lock for long (awaits something slow
      inside its block) delays the COMMIT acknowledgement of the batch it joined.

    Reads: ``read()`` uses a small pool of separate read-only connections (WAL: a
    snapshot of committed data only, never waiting for the writer's fsync).
    """

    def __init__(
        self,
        conn: aiosqlite.Connection,
        info: StoreInfo,
        clock: Clock,
        readers: Sequence[aiosqlite.Connection] = (),
    ) -> None:
        # Local import: the repositories import this module for SqliteTx.
        from storage.sqlite.audit import SqliteAudit, SqliteFlags
        from storage.sqlite.jobs import SqliteJobs
        from storage.sqlite.ledger import SqliteLedger

        self._conn = conn
        self._lock = asyncio.Lock()
        self._waiting = 0  # tasks inside _lock.acquire() for a logical transaction
        self._batch: _Batch | None = None
        self._active: set[asyncio.Task[Any]] = set()  # tasks inside a block
        self._flusher: asyncio.Task[None] | None = None
        self._readers = tuple(readers)
        self._idle_readers = list(self._readers)
        self._read_slots = asyncio.Semaphore(len(self._readers))
        self._closed = False
        self.max_batch = MAX_BATCH
        self.max_batch_delay = MAX_BATCH_DELAY
        self.stats = SqliteStats()
        self.info = info
        self.clock = clock
        self.ledger: LedgerRepo = SqliteLedger(clock)
        self.jobs: JobRepo = SqliteJobs(clock)
        self.audit: AuditRepo = SqliteAudit(clock)
        self.flags: FlagRepo = SqliteFlags(clock)

    @property
    def path(self) -> str:
        return self.info.path

    def transaction(self) -> _WriteContext:
        return _WriteContext(self)

    def read(self) -> _ReadContext:
        return _ReadContext(self)

    # ------------------------------------------------------------- group commit

    async def _acquire_write(self) -> None:
        self._waiting += 1
        try:
            await self._lock.acquire()
        except BaseException:
            # Those who left the batch open may have counted on us to commit it.
            if not self._lock.locked():
                self._schedule_flush()
            raise
        finally:
            self._waiting -= 1

    def _should_commit(self, batch: _Batch) -> bool:
        return (
            self._waiting == 0
            or batch.members >= self.max_batch
            or time.monotonic() - batch.started >= self.max_batch_delay
        )

    async def _end(
        self, batch: _Batch, tx: SqliteTx | None, *, undo: bool, force: bool = False
    ) -> str:
        """End logical transaction ``tx`` (``undo``: roll it back) and settle the batch.

        One worker-thread hop.  Decides there (where the flags set by earlier hops
        are final) whether to COMMIT the batch, ROLLBACK an empty one, or keep it
        open for the callers queued behind us.  Caller holds the write lock.
        """
        no_waiters = force or self._waiting == 0
        aconn = self._conn

        def run(con: sqlite3.Connection) -> tuple[str, str | None]:
            if undo and tx is not None and tx._begun:
                try:
                    con.execute(f"ROLLBACK TO {SAVEPOINT}")
                    con.execute(f"RELEASE {SAVEPOINT}")
                except sqlite3.Error as e:
                    with contextlib.suppress(sqlite3.Error):
                        if con.in_transaction:
                            con.execute("ROLLBACK")
                    return _LOST, f"could not roll back to savepoint: {e}"
            if not batch.begun:
                return _KEEP, None
            if not con.in_transaction:
                return _LOST, "the shared transaction was rolled back by SQLite after an error"
            if batch.members == 0:
                if no_waiters:
                    with contextlib.suppress(sqlite3.Error):
                        con.execute("ROLLBACK")
                    return _ROLLED_BACK, None
                return _KEEP, None
            if not (
                no_waiters
                or batch.members >= self.max_batch
                or time.monotonic() - batch.started >= self.max_batch_delay
            ):
                return _KEEP, None
            try:
                con.execute("COMMIT")
            except sqlite3.Error as e:
                with contextlib.suppress(sqlite3.Error):
                    if con.in_transaction:
                        con.execute("ROLLBACK")
                return _LOST, f"commit failed: {e}"
            return _COMMITTED, None

        outcome, why = await aconn._execute(run, aconn._conn)
        if outcome != _KEEP:
            if self._batch is batch:
                self._batch = None
            if outcome == _COMMITTED:
                self.stats.commits += 1
                self.stats.logical_commits += batch.members
                self.stats.max_batch = max(self.stats.max_batch, batch.members)
                batch.resolve(None)
            elif outcome == _LOST:
                if batch.members:
                    self.stats.failed_batches += 1
                batch.resolve(StorageError(f"transaction batch rolled back: {why}"))
            else:
                batch.resolve(None)
        return outcome

    def _schedule_flush(self) -> None:
        batch = self._batch
        if batch is None or not batch.begun or self._closed:
            return
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        """Commit a batch whose members all wait while nobody holds the lock."""
        async with self._lock:
            batch = self._batch
            if batch is not None and batch.begun and not self._closed:
                await _shielded(self._end(batch, None, undo=False, force=True))

    async def close(self) -> None:
        if self._closed:
            return
        # Wait for a running transaction to finish rather than cutting it off, and
        # make an open batch durable: its members were promised a COMMIT.
        async with self._lock:
            if self._closed:
                return
            batch = self._batch
            if batch is not None and batch.begun:
                await _shielded(self._end(batch, None, undo=False, force=True))
            self._batch = None
            self._closed = True
            await self._conn.close()
        for _ in self._readers:  # wait for running reads
            await self._read_slots.acquire()
        for reader in self._readers:
            with contextlib.suppress(Exception):
                await reader.close()
