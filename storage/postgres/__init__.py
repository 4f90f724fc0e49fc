"""PostgreSQL backend for the storage interfaces (asyncpg, no ORM).

Chosen by ``storage.open_store`` for ``postgresql://`` and ``postgres://`` URLs.
Importing this package loads asyncpg; ``storage`` itself imports it lazily.
"""

from storage.postgres.audit import PgAudit, PgFlags
from storage.postgres.jobs import PgJobs
from storage.postgres.ledger import PgLedger
from storage.postgres.limits import PgLimits
from storage.postgres.store import PgTx, PostgresStore, is_postgres_url, open_postgres_store, pg_tx

__all__ = [
    "PgAudit",
    "PgFlags",
    "PgJobs",
    "PgLedger",
    "PgLimits",
    "PgTx",
    "PostgresStore",
    "is_postgres_url",
    "open_postgres_store",
    "pg_tx",
]
