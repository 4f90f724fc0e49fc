"""SQLite connection pragmas, group commit and store assembly.

Owns the transaction discipline every repository relies on (details in
``SqliteStore``; one logical transaction is ``tx.SqliteTx``, the ``async with``
blocks are in ``contexts``, opening and migrations in ``opening``):

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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from storage.errors import StorageError
from storage.interfaces import (
    AuditRepo,
    FlagRepo,
    JobRepo,
    LedgerRepo,
    LimitRepo,
    PaymentRepo,
    ReportRepo,
)
from storage.sqlite.audit import SqliteAudit, SqliteFlags
from storage.sqlite.contexts import (
    COMMITTED,
    KEEP,
    LOST,
    ROLLED_BACK,
    ReadContext,
    WriteContext,
    end_snapshot,
)
from storage.sqlite.jobs import SqliteJobs
from storage.sqlite.ledger import SqliteLedger
from storage.sqlite.limits import SqliteLimits
from storage.sqlite.payments import SqlitePayments
from storage.sqlite.reports import SqliteReports
from storage.sqlite.tx import SAVEPOINT, Batch, Clock, SqliteTx, shielded

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


# --------------------------------------------------------------------------- group commit

MAX_BATCH = 64
"""Most logical transactions one physical COMMIT may carry."""
MAX_BATCH_DELAY = 0.020
"""Seconds after its BEGIN IMMEDIATE after which a batch commits even if others queue."""
JOB_POLL_INTERVAL = 0.1
"""Seconds between looks for work queued by another process: SQLite cannot signal
across processes, and a look is one indexed read on a reader connection."""
READ_CONNECTIONS = 2
"""Read-only connections serving ``store.read()`` (file databases only)."""
READ_SNAPSHOT_LINGER = 0.05
"""Seconds a finished read may leave its snapshot open on an idle reader connection.
Ending it takes a worker-thread hop, and under load every hop waits a full turn of
the event loop; the next read on that connection ends it in its own first hop
instead. Bounded, because an open snapshot keeps checkpoints from emptying the WAL."""


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
        self._conn = conn
        self._lock = asyncio.Lock()
        self._waiting = 0  # tasks inside _lock.acquire() for a logical transaction
        self._batch: Batch | None = None
        self._active: set[asyncio.Task[Any]] = set()  # tasks inside a block
        self._flusher: asyncio.Task[None] | None = None
        self._readers = tuple(readers)
        self._idle_readers = list(self._readers)
        self._read_slots = asyncio.Semaphore(len(self._readers))
        self._lingering: set[aiosqlite.Connection] = set()  # idle, snapshot still open
        self._linger_task: asyncio.Task[None] | None = None
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
        self.limits: LimitRepo = SqliteLimits(clock)
        self.payments: PaymentRepo = SqlitePayments(clock)
        self.reports: ReportRepo = SqliteReports()
        # Replaced on every notify, so each waiter sees the notifies after it began.
        self._work = asyncio.Event()

    @property
    def path(self) -> str:
        return self.info.path

    def transaction(self) -> WriteContext:
        return WriteContext(self)

    def read(self) -> ReadContext:
        return ReadContext(self)

    # ------------------------------------------------------------- transactions

    async def begin_write(self) -> SqliteTx:
        """Enter a logical write transaction (``async with store.transaction()``)."""
        if self._closed:
            raise StorageError("store is closed")
        task = asyncio.current_task()
        if task is not None and task in self._active:
            # Would deadlock on our own lock; SQLite has no nested transactions anyway.
            raise StorageError("nested transaction on the same store in the same task")
        await self._acquire_write()
        if self._closed:
            self._lock.release()
            raise StorageError("store is closed")
        batch = self._batch
        if batch is None:
            batch = self._batch = Batch(asyncio.get_running_loop())
        if task is not None:
            self._active.add(task)
        return SqliteTx(self._conn, True, batch)

    async def end_write(self, tx: SqliteTx, exc_type: type[BaseException] | None) -> None:
        """Leave a logical write transaction: join the batch's COMMIT, or roll back."""
        assert tx._batch is not None
        tx._active = False
        batch = tx._batch
        task = asyncio.current_task()
        if task is not None:
            self._active.discard(task)
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
                    if self._should_commit(batch):
                        ended, cancelled = await shielded(self._end(batch, tx, undo=False))
                    if ended == KEEP:
                        batch.unreleased = True
                elif batch.begun and self._waiting == 0:
                    # We joined an open batch but wrote nothing: still the last one
                    # in line, so the batch is ours to commit (or end).
                    _, cancelled = await shielded(self._end(batch, None, undo=False))
            else:
                self.stats.rollbacks += 1
                # Always hop, even if no statement was seen to run: a cancelled caller
                # may have abandoned a hop that is still queued on the connection.
                _, cancelled = await shielded(self._end(batch, tx, undo=True))
                if exc_type is None:
                    error = StorageError(
                        "transaction rolled back: a statement failed inside it "
                        "(the error was caught, but partial writes cannot be committed)"
                    )
        finally:
            if self._batch is batch and not batch.begun:
                self._batch = None  # nothing was ever sent for it
            self._lock.release()
        if member:
            if batch.done.done():
                outcome = batch.done.result()
            else:
                # Cancellation here is safe: our writes are already in the batch
                # and will be committed (or rolled back with it) regardless.
                outcome = await asyncio.shield(batch.done)
            if outcome is not None:
                self.stats.rollbacks += 1
                error = StorageError(str(outcome))
        if error is not None:
            raise error
        if cancelled and exc_type is None:
            raise asyncio.CancelledError

    async def begin_read(self) -> tuple[SqliteTx, aiosqlite.Connection | None]:
        """Enter a read snapshot (``async with store.read()``); the reader connection
        it took, if any, goes back with ``end_read``."""
        if self._closed:
            raise StorageError("store is closed")
        task = asyncio.current_task()
        if task is not None and task in self._active:
            raise StorageError("nested transaction on the same store in the same task")
        if not self._readers:
            return await self._begin_shared_read(task), None
        await self._read_slots.acquire()
        if self._closed:
            self._read_slots.release()
            raise StorageError("store is closed")
        conn = self._take_reader()
        if task is not None:
            self._active.add(task)
        return SqliteTx(conn, False), conn

    async def _begin_shared_read(self, task: asyncio.Task[Any] | None) -> SqliteTx:
        # ':memory:' has no second connection: read on the writer, under its lock,
        # after making any pending batch durable (a read must not see it early).
        await self._acquire_write()
        try:
            if self._closed:
                raise StorageError("store is closed")
            batch = self._batch
            if batch is not None and batch.begun:
                await shielded(self._end(batch, None, undo=False, force=True))
            self._batch = None
        except BaseException:
            self._lock.release()
            raise
        if task is not None:
            self._active.add(task)
        return SqliteTx(self._conn, False)

    async def end_read(
        self,
        tx: SqliteTx,
        conn: aiosqlite.Connection | None,
        exc_type: type[BaseException] | None,
    ) -> None:
        """Leave a read snapshot (its reader goes back to the pool)."""
        tx._active = False
        task = asyncio.current_task()
        if task is not None:
            self._active.discard(task)
        cancelled = False
        if conn is not None:
            # No hop to end the snapshot: the next read on this connection rolls it
            # back in its own first hop, or the store does soon if none comes.
            self._return_reader(conn, lingering=tx._begun)
        else:
            aconn = tx._aconn
            try:
                with contextlib.suppress(sqlite3.Error):
                    _, cancelled = await shielded(aconn._execute(end_snapshot, aconn._conn))
            finally:
                self._lock.release()
        if exc_type is None and tx._failed and tx._begun:
            raise StorageError(
                "transaction rolled back: a statement failed inside it "
                "(the error was caught, but the snapshot is no longer trustworthy)"
            )
        if cancelled and exc_type is None:
            raise asyncio.CancelledError

    # ------------------------------------------------------------- read pool

    def _take_reader(self) -> aiosqlite.Connection:
        """An idle reader; the caller holds a read slot. Most recently used first, so
        a lingering snapshot is usually ended by the next read's first hop."""
        conn = self._idle_readers.pop()
        self._lingering.discard(conn)
        return conn

    def _return_reader(self, conn: aiosqlite.Connection, *, lingering: bool) -> None:
        self._idle_readers.append(conn)
        if lingering:
            self._lingering.add(conn)
            if self._linger_task is None or self._linger_task.done():
                self._linger_task = asyncio.get_running_loop().create_task(self._end_lingering())
        self._read_slots.release()

    async def _end_lingering(self) -> None:
        """End the snapshots no later read picked up within ``READ_SNAPSHOT_LINGER``."""
        await asyncio.sleep(READ_SNAPSHOT_LINGER)
        while self._lingering and not self._closed:
            await self._read_slots.acquire()
            try:
                idle = [c for c in self._idle_readers if c in self._lingering]
                if not idle:
                    return
                conn = idle[0]
                self._idle_readers.remove(conn)
                self._lingering.discard(conn)
                cancelled = False
                try:
                    with contextlib.suppress(sqlite3.Error):
                        _, cancelled = await shielded(conn._execute(end_snapshot, conn._conn))
                finally:
                    self._idle_readers.append(conn)
            finally:
                self._read_slots.release()
            if cancelled:
                raise asyncio.CancelledError

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

    def _should_commit(self, batch: Batch) -> bool:
        return (
            self._waiting == 0
            or batch.members >= self.max_batch
            or time.monotonic() - batch.started >= self.max_batch_delay
        )

    async def _end(
        self, batch: Batch, tx: SqliteTx | None, *, undo: bool, force: bool = False
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
                    return LOST, f"could not roll back to savepoint: {e}"
            if not batch.begun:
                return KEEP, None
            if not con.in_transaction:
                return LOST, "the shared transaction was rolled back by SQLite after an error"
            if batch.members == 0:
                if no_waiters:
                    with contextlib.suppress(sqlite3.Error):
                        con.execute("ROLLBACK")
                    return ROLLED_BACK, None
                return KEEP, None
            if not (
                no_waiters
                or batch.members >= self.max_batch
                or time.monotonic() - batch.started >= self.max_batch_delay
            ):
                return KEEP, None
            try:
                con.execute("COMMIT")
            except sqlite3.Error as e:
                with contextlib.suppress(sqlite3.Error):
                    if con.in_transaction:
                        con.execute("ROLLBACK")
                return LOST, f"commit failed: {e}"
            return COMMITTED, None

        outcome, why = await aconn._execute(run, aconn._conn)
        if outcome != KEEP:
            if self._batch is batch:
                self._batch = None
            if outcome == COMMITTED:
                self.stats.commits += 1
                self.stats.logical_commits += batch.members
                self.stats.max_batch = max(self.stats.max_batch, batch.members)
                batch.resolve(None)
            elif outcome == LOST:
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
                await shielded(self._end(batch, None, undo=False, force=True))

    async def notify_jobs(self) -> None:
        work, self._work = self._work, asyncio.Event()
        work.set()

    async def wait_jobs(self, timeout: float) -> None:  # noqa: ASYNC109 (the Store protocol)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._work.wait(), min(timeout, JOB_POLL_INTERVAL))

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
                await shielded(self._end(batch, None, undo=False, force=True))
            self._batch = None
            self._closed = True
            await self._conn.close()
        if self._linger_task is not None:
            self._linger_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._linger_task
        for _ in self._readers:  # wait for running reads
            await self._read_slots.acquire()
        for reader in self._readers:
            with contextlib.suppress(Exception):
                await reader.close()
