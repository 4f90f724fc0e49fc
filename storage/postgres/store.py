"""The PostgreSQL store: the asyncpg pool, transactions, and LISTEN/NOTIFY wake-ups.

Owns ``PgTx`` (one transaction on one pooled connection), ``PostgresStore`` (the
``storage.interfaces.Store``) and ``open_postgres_store``.  The SQL of each table
lives in the repository modules next to it.

Transactions:

* ``transaction()`` takes a connection from the pool and runs ``BEGIN`` (READ
  COMMITTED).  That is enough because every ledger operation locks the rows it
  changes (``SELECT ... FOR UPDATE``: accounts in ascending id order, the hold it
  resolves) and decides under those locks, and every queue claim under a limit
  locks the limit's row first.  Contention therefore waits on row locks instead of
  failing with serialization errors, which matters because a ``transaction()``
  block runs caller code and cannot be retried here.
* ``read()`` is ``REPEATABLE READ READ ONLY``: one consistent snapshot, and
  PostgreSQL itself refuses writes.
* A driver error inside a block poisons it (PostgreSQL aborts the transaction
  anyway): it is rolled back at exit and ``StorageError`` is raised even if the
  caller swallowed the error, as the SQLite store does.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from storage.errors import StorageError
from storage.interfaces import (
    AuditRepo,
    FlagRepo,
    JobRepo,
    LedgerRepo,
    LimitRepo,
    PaymentRepo,
    ReportRepo,
    Tx,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], float]

POOL_MAX_SIZE = 10
"""Connections per store: one per concurrently open transaction (the bot's job
tasks, frontends and sweeper together), not per job. Every process has a store:
``run --workers K`` needs (K + 1) x (10 + 1 listener) connections, well inside
PostgreSQL's default max_connections of 100 for K up to 7."""
COMMAND_TIMEOUT = 30.0
"""Seconds any one statement may take before it fails (a lock wait included)."""
CONNECT_TIMEOUT = 10.0
JOBS_CHANNEL = "imagine_jobs"
"""The NOTIFY channel ``notify_jobs`` signals and ``wait_jobs`` listens on."""
LISTEN_RETRY = 1.0
"""Seconds between attempts to (re)open the LISTEN connection while it is down;
meanwhile ``wait_jobs`` polls at this interval."""

# Errors a statement can fail with that are the database's, not the caller's.
DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
)

# ... and when connecting: asyncpg raises ValueError for a malformed URL.
CONNECT_ERRORS: tuple[type[BaseException], ...] = (*DRIVER_ERRORS, ValueError)


class PgTx:
    """One transaction on one pooled connection.  See ``storage.interfaces.Tx``.

    Repository methods run their SQL through ``fetch``/``fetchrow``/``fetchval``/
    ``execute``, which turn driver errors into ``StorageError`` and remember that
    the transaction failed.
    """

    __slots__ = ("_active", "_conn", "_failed", "_writable")

    def __init__(self, conn: asyncpg.Connection, writable: bool) -> None:
        self._conn = conn
        self._writable = writable
        self._active = True
        self._failed = False

    @property
    def writable(self) -> bool:
        return self._writable

    @property
    def active(self) -> bool:
        return self._active

    async def _run(self, aw: Awaitable[T]) -> T:
        try:
            return await aw
        except DRIVER_ERRORS as e:
            self._failed = True
            raise StorageError(f"database error: {e}") from e

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        rows: list[Any] = await self._run(self._conn.fetch(sql, *args))
        return rows

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        return await self._run(self._conn.fetchrow(sql, *args))

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self._run(self._conn.fetchval(sql, *args))

    async def execute(self, sql: str, *args: Any) -> str:
        status: str = await self._run(self._conn.execute(sql, *args))
        return status


def pg_tx(tx: Tx, *, write: bool = False) -> PgTx:
    """Narrow a backend-neutral ``Tx`` to ours and check it may be used."""
    if not isinstance(tx, PgTx):
        raise StorageError(
            f"transaction of type {type(tx).__name__} is not a PostgreSQL transaction"
        )
    if not tx._active:
        raise StorageError("transaction is no longer active (used outside its async with block)")
    if write and not tx._writable:
        raise StorageError("write attempted in a read-only transaction; use store.transaction()")
    return tx


async def _shielded(aw: Awaitable[T]) -> tuple[T, bool]:
    """Await ``aw`` to completion even if the caller is cancelled meanwhile.

    Returns ``(result, cancelled)``: ending a transaction and returning its
    connection must not be abandoned half way (the pool would get a connection in
    an unknown state); the caller re-raises ``CancelledError`` afterwards.
    """
    task = asyncio.ensure_future(aw)
    cancelled = False
    while True:
        try:
            return await asyncio.shield(task), cancelled
        except asyncio.CancelledError:
            if task.done():
                if task.cancelled():
                    raise
                return task.result(), True
            cancelled = True


BEGIN_WRITE = "BEGIN ISOLATION LEVEL READ COMMITTED"
BEGIN_READ = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"


class TxContext:
    """``async with store.transaction()`` / ``async with store.read()``."""

    __slots__ = ("_conn", "_store", "_tx", "_writable")

    def __init__(self, store: PostgresStore, writable: bool) -> None:
        self._store = store
        self._writable = writable
        self._conn: asyncpg.Connection | None = None
        self._tx: PgTx | None = None

    async def __aenter__(self) -> PgTx:
        store = self._store
        if store._closed:
            raise StorageError("store is closed")
        task = asyncio.current_task()
        if task is not None and task in store._active:
            # Another connection would not deadlock on a lock of ours at once, but
            # it would as soon as it touched a row the outer block locked; and the
            # SQLite store refuses it too, so code stays portable.
            raise StorageError("nested transaction on the same store in the same task")
        try:
            conn = await store._pool.acquire()
        except DRIVER_ERRORS as e:
            raise StorageError(f"cannot get a database connection: {e}") from e
        try:
            await conn.execute(BEGIN_WRITE if self._writable else BEGIN_READ)
        except BaseException as e:
            await _shielded(store._discard(conn))
            if isinstance(e, DRIVER_ERRORS):
                raise StorageError(f"cannot begin a transaction: {e}") from e
            raise
        self._conn = conn
        if task is not None:
            store._active.add(task)
        self._tx = PgTx(conn, self._writable)
        return self._tx

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        store = self._store
        tx, conn = self._tx, self._conn
        assert tx is not None and conn is not None
        tx._active = False
        task = asyncio.current_task()
        if task is not None:
            store._active.discard(task)
        commit = exc_type is None and not tx._failed
        error, cancelled = await _shielded(store._finish(conn, commit=commit))
        if error is None and exc_type is None and tx._failed:
            error = StorageError(
                "transaction rolled back: a statement failed inside it "
                "(the error was caught, but partial writes cannot be committed)"
            )
        if error is not None and exc_type is None:
            raise error
        if cancelled and exc_type is None:
            raise asyncio.CancelledError


@dataclass(frozen=True, slots=True)
class PgStoreInfo:
    url: str
    """The database URL without its password."""
    schema_version: int


def redact(url: str) -> str:
    """``url`` with the password replaced by ``***`` (for logs and ``info``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


class PostgresStore:
    """PostgreSQL implementation of ``storage.interfaces.Store`` (see module doc)."""

    def __init__(self, pool: asyncpg.Pool, dsn: str, info: PgStoreInfo, clock: Clock) -> None:
        from storage.postgres.audit import PgAudit, PgFlags
        from storage.postgres.jobs import PgJobs
        from storage.postgres.ledger import PgLedger
        from storage.postgres.limits import PgLimits
        from storage.postgres.payments import PgPayments
        from storage.postgres.reports import PgReports

        self._pool = pool
        self._dsn = dsn
        self._closed = False
        self._active: set[asyncio.Task[Any]] = set()  # tasks inside a block
        self.info = info
        self.clock = clock
        self.ledger: LedgerRepo = PgLedger(clock)
        self.jobs: JobRepo = PgJobs(clock)
        self.audit: AuditRepo = PgAudit(clock)
        self.flags: FlagRepo = PgFlags(clock)
        self.limits: LimitRepo = PgLimits(clock)
        self.payments: PaymentRepo = PgPayments(clock)
        self.reports: ReportRepo = PgReports()
        # Replaced on every wake-up, so each waiter sees the ones after it began.
        self._work = asyncio.Event()
        # Our NOTIFYs carry this token so our own listener can skip them: the
        # local waiters were already woken directly.
        self._token = secrets.token_hex(8)
        self._listener: asyncpg.Connection | None = None
        self._listener_lock = asyncio.Lock()
        self._listen_retry_at = 0.0
        self._listened_before = False

    def transaction(self) -> TxContext:
        return TxContext(self, True)

    def read(self) -> TxContext:
        return TxContext(self, False)

    # ------------------------------------------------------------- connections

    async def _finish(self, conn: asyncpg.Connection, *, commit: bool) -> StorageError | None:
        """End the transaction on ``conn`` and return it to the pool.  Never raises
        a driver error: returns the ``StorageError`` a failed COMMIT becomes."""
        error: StorageError | None = None
        try:
            if commit:
                try:
                    await conn.execute("COMMIT")
                except DRIVER_ERRORS as e:
                    error = StorageError(f"commit failed, transaction rolled back: {e}")
                    raise
            else:
                await conn.execute("ROLLBACK")
        except DRIVER_ERRORS:
            # The connection is in an unknown state (lost, or a cancelled statement
            # still running): close it; the server rolls back what it held.
            await self._discard(conn)
            return error
        try:
            await self._pool.release(conn)
        except DRIVER_ERRORS as e:  # pragma: no cover - the pool closes it itself
            log.warning("could not return a connection to the pool: %s", e)
        return error

    async def _discard(self, conn: asyncpg.Connection) -> None:
        conn.terminate()
        with contextlib.suppress(*DRIVER_ERRORS):
            await self._pool.release(conn)

    # ------------------------------------------------------------- LISTEN/NOTIFY

    def _wake(self) -> None:
        work, self._work = self._work, asyncio.Event()
        work.set()

    def _on_notify(self, conn: object, pid: int, channel: str, payload: str) -> None:
        if payload != self._token:
            self._wake()

    def _on_listener_lost(self, conn: object) -> None:
        if self._listener is conn:
            self._listener = None

    async def _ensure_listener(self) -> bool:
        """Open the LISTEN connection if it is down (at most every ``LISTEN_RETRY``
        seconds); True when it is up."""
        listener = self._listener
        if listener is not None and not listener.is_closed():
            return True
        if time.monotonic() < self._listen_retry_at or self._closed:
            return False
        async with self._listener_lock:
            if self._listener is not None and not self._listener.is_closed():
                return True
            self._listen_retry_at = time.monotonic() + LISTEN_RETRY
            try:
                conn = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT)
            except DRIVER_ERRORS as e:
                log.warning("cannot open the LISTEN connection (will poll): %s", e)
                return False
            try:
                await conn.add_listener(JOBS_CHANNEL, self._on_notify)
                conn.add_termination_listener(self._on_listener_lost)
            except DRIVER_ERRORS as e:
                conn.terminate()
                log.warning("cannot LISTEN on %s (will poll): %s", JOBS_CHANNEL, e)
                return False
            if self._closed:
                conn.terminate()
                return False
            self._listener = conn
            if self._listened_before:
                # Notifications sent while we were not listening are lost: look once.
                self._wake()
            self._listened_before = True
            return True

    async def notify_jobs(self) -> None:
        self._wake()
        if self._closed:
            return
        try:
            await self._pool.execute("SELECT pg_notify($1, $2)", JOBS_CHANNEL, self._token)
        except DRIVER_ERRORS as e:
            # Other processes' workers still look at their wait timeout.
            log.warning("NOTIFY %s failed: %s", JOBS_CHANNEL, e)

    # The Store protocol names the parameter: a deadline is the caller's to give.
    async def wait_jobs(self, timeout: float) -> None:  # noqa: ASYNC109
        work = self._work
        if not await self._ensure_listener():
            timeout = min(timeout, LISTEN_RETRY)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(work.wait(), timeout)

    # ------------------------------------------------------------- closing

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake()
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(*DRIVER_ERRORS):
                await asyncio.wait_for(listener.close(), 5)
            listener.terminate()
        try:
            # Waits for running transactions to return their connections.
            await asyncio.wait_for(self._pool.close(), COMMAND_TIMEOUT)
        except DRIVER_ERRORS:
            self._pool.terminate()


# --------------------------------------------------------------------------- opening


def is_postgres_url(url: str) -> bool:
    scheme = url.strip().partition("://")[0].lower()
    return scheme in ("postgres", "postgresql") or scheme.startswith("postgresql+")


def _dsn(url: str) -> str:
    url = url.strip()
    scheme, _, rest = url.partition("://")
    # 'postgresql+asyncpg://' (SQLAlchemy spelling) is the same database to us.
    return f"postgresql://{rest}" if scheme.lower().startswith("postgresql+") else url


async def _reset(conn: asyncpg.Connection) -> None:
    # Replaces asyncpg's reset-on-release (a round trip per transaction): our
    # connections carry no session state, and every block ends its transaction.
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def open_postgres_store(
    url: str,
    *,
    clock: Clock = time.time,
    max_size: int = POOL_MAX_SIZE,
    command_timeout: float = COMMAND_TIMEOUT,
) -> PostgresStore:
    """Connect to the database named by ``url``, migrate it, and open the pool."""
    from storage.postgres.migrations import SCHEMA_VERSION, apply_migrations

    dsn = _dsn(url)
    shown = redact(dsn)
    server_settings = {"application_name": "imagine-bot", "jit": "off"}
    try:
        conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT, server_settings=server_settings)
    except CONNECT_ERRORS as e:
        raise StorageError(f"cannot connect to {shown}: {e}") from e
    try:
        version = await apply_migrations(conn, clock)
    except DRIVER_ERRORS as e:
        raise StorageError(f"cannot migrate {shown}: {e}") from e
    finally:
        await conn.close()
    assert version == SCHEMA_VERSION
    options: dict[str, Any] = {}
    if "reset" in inspect.signature(asyncpg.create_pool).parameters:  # not in every asyncpg
        options["reset"] = _reset
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min(2, max_size),
            max_size=max_size,
            command_timeout=command_timeout,
            timeout=CONNECT_TIMEOUT,
            server_settings=server_settings,
            **options,
        )
    except DRIVER_ERRORS as e:
        raise StorageError(f"cannot connect to {shown}: {e}") from e
    assert pool is not None
    return PostgresStore(pool, dsn, PgStoreInfo(url=shown, schema_version=version), clock)
