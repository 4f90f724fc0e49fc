"""Persistence for imagine-bot: the credit ledger, jobs, audit log and flags.

This package is the only place that speaks SQL.  Callers depend on the Protocols
and value types in ``storage.interfaces`` and obtain a ``Store`` from
``open_store(url)``; the backend (SQLite or PostgreSQL) is chosen by the URL
scheme.  It must never import ``core``, ``bots`` or a chat SDK.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from storage.errors import (
    AccountNotFound,
    HoldNotFound,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    StorageError,
)
from storage.interfaces import (
    ACTIVE_STATES,
    JOB_KINDS,
    JOB_STATES,
    SYSTEM_ACCOUNTS,
    SYSTEM_REVENUE,
    SYSTEM_TOPUP,
    SYSTEM_VENDOR_LOSS,
    SYSTEM_WELCOME,
    TERMINAL_STATES,
    Account,
    AuditEntry,
    AuditRepo,
    Balance,
    FlagRepo,
    Hold,
    JobRecord,
    JobRepo,
    JobState,
    LedgerRepo,
    Resolution,
    Store,
    Transfer,
    Tx,
)


async def open_store(url: str, *, clock: Callable[[], float] = time.time) -> Store:
    """Open the database named by ``url`` and bring its schema up to date.

    Accepts ``sqlite:///relative/path.sqlite3``, ``sqlite:////absolute/path`` or a
    plain path (parent directories are created), and
    ``postgresql://user:password@host:5432/dbname`` (or ``postgres://``).
    ``clock`` supplies the unix timestamps written to rows (tests inject a fake
    clock).
    """
    # Imported lazily so importing storage.interfaces never loads a driver.
    scheme = url.strip().partition("://")[0].lower()
    if scheme in ("postgres", "postgresql") or scheme.startswith("postgresql+"):
        from storage.postgres.store import open_postgres_store

        return await open_postgres_store(url, clock=clock)
    from storage.sqlite.opening import open_sqlite_store, parse_sqlite_url

    return await open_sqlite_store(parse_sqlite_url(url), clock=clock)


__all__ = [
    "ACTIVE_STATES",
    "JOB_KINDS",
    "JOB_STATES",
    "SYSTEM_ACCOUNTS",
    "SYSTEM_REVENUE",
    "SYSTEM_TOPUP",
    "SYSTEM_VENDOR_LOSS",
    "SYSTEM_WELCOME",
    "TERMINAL_STATES",
    "Account",
    "AccountNotFound",
    "AuditEntry",
    "AuditRepo",
    "Balance",
    "FlagRepo",
    "Hold",
    "HoldNotFound",
    "IdempotencyConflict",
    "InsufficientFunds",
    "InvalidAmount",
    "JobRecord",
    "JobRepo",
    "JobState",
    "LedgerRepo",
    "Resolution",
    "StorageError",
    "Store",
    "Transfer",
    "Tx",
    "open_store",
]
