"""SQLite backend for the storage interfaces (the only backend built so far)."""

from storage.sqlite.audit import SqliteAudit, SqliteFlags
from storage.sqlite.db import SqliteStore
from storage.sqlite.jobs import SqliteJobs
from storage.sqlite.ledger import SqliteLedger
from storage.sqlite.opening import open_sqlite_store, parse_sqlite_url
from storage.sqlite.tx import SqliteTx

__all__ = [
    "SqliteAudit",
    "SqliteFlags",
    "SqliteJobs",
    "SqliteLedger",
    "SqliteStore",
    "SqliteTx",
    "open_sqlite_store",
    "parse_sqlite_url",
]
