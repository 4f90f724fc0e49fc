"""SQLite report queries for the dashboard (``storage.interfaces.ReportRepo``).

Each is one grouped read over an index of the ``0004_stats`` migration or an older
one; percentiles are nearest-rank, computed with window functions so SQLite and
PostgreSQL give the same answer."""

from __future__ import annotations

from storage.interfaces import (
    ACTIVE_STATES,
    DayJobs,
    DayMoney,
    FailureCount,
    JobTimes,
    QueueNow,
    TopUser,
    Tx,
)
from storage.report_rows import DAY, MONEY_KINDS, account_label, day_jobs, day_money
from storage.sqlite.tx import sqlite_tx

_ACTIVE = ", ".join(f"'{s}'" for s in ACTIVE_STATES)
_KINDS = ", ".join(f"'{k}'" for k in MONEY_KINDS)


class SqliteReports:
    """SQLite implementation of ``storage.interfaces.ReportRepo``."""

    async def jobs_per_day(self, tx: Tx, since: float, until: float) -> list[DayJobs]:
        rows = await sqlite_tx(tx).fetchall(
            f"SELECT CAST(created_at / {DAY} AS INTEGER) AS day, state, COUNT(*) "
            "FROM jobs WHERE created_at >= ? AND created_at < ? GROUP BY day, state",
            (since, until),
        )
        return day_jobs(tuple(r) for r in rows)

    async def money_per_day(self, tx: Tx, since: float, until: float) -> list[DayMoney]:
        rows = await sqlite_tx(tx).fetchall(
            f"SELECT CAST(created_at / {DAY} AS INTEGER) AS day, kind, COUNT(*), SUM(amount) "
            f"FROM transfers WHERE kind IN ({_KINDS}) AND created_at >= ? AND created_at < ? "
            "GROUP BY day, kind",
            (since, until),
        )
        return day_money(tuple(r) for r in rows)

    async def job_times(self, tx: Tx, since: float, until: float) -> list[JobTimes]:
        rows = await sqlite_tx(tx).fetchall(
            "WITH d AS ("
            "  SELECT COALESCE(json_extract(params, '$.vendor'), '') AS vendor,"
            "         COALESCE(json_extract(params, '$.resolution'), '') AS tier,"
            "         updated_at - created_at AS took"
            "  FROM jobs WHERE state = 'SUCCEEDED' AND updated_at >= ? AND updated_at < ?),"
            " r AS ("
            "  SELECT vendor, tier, took,"
            "         ROW_NUMBER() OVER (PARTITION BY vendor, tier ORDER BY took) AS rn,"
            "         COUNT(*) OVER (PARTITION BY vendor, tier) AS n"
            "  FROM d) "
            "SELECT vendor, tier, n,"
            "       MAX(CASE WHEN rn = (n * 50 + 99) / 100 THEN took END),"
            "       MAX(CASE WHEN rn = (n * 95 + 99) / 100 THEN took END) "
            "FROM r GROUP BY vendor, tier, n ORDER BY vendor, tier",
            (since, until),
        )
        return [
            JobTimes(str(v), str(t), int(n), float(p50), float(p95)) for v, t, n, p50, p95 in rows
        ]

    async def top_users(self, tx: Tx, since: float, until: float, limit: int = 10) -> list[TopUser]:
        rows = await sqlite_tx(tx).fetchall(
            "WITH c AS ("
            "  SELECT debit_account_id AS id, COUNT(*) AS jobs, SUM(amount) AS charged"
            "  FROM transfers WHERE kind = 'charge' AND created_at >= ? AND created_at < ?"
            "  GROUP BY debit_account_id ORDER BY charged DESC, jobs DESC, id LIMIT ?) "
            "SELECT c.id, a.platform, a.external_id, a.username, c.jobs, c.charged "
            "FROM c JOIN accounts a ON a.id = c.id ORDER BY c.charged DESC, c.jobs DESC, c.id",
            (since, until, limit),
        )
        return [
            TopUser(int(i), account_label(p, e, u), int(j), int(c)) for i, p, e, u, j, c in rows
        ]

    async def failures(self, tx: Tx, since: float, until: float) -> list[FailureCount]:
        rows = await sqlite_tx(tx).fetchall(
            "SELECT COALESCE(error, '') AS e, COUNT(*) AS n FROM jobs "
            "WHERE state = 'FAILED' AND updated_at >= ? AND updated_at < ? "
            "GROUP BY e ORDER BY n DESC, e",
            (since, until),
        )
        return [FailureCount(str(e), int(n)) for e, n in rows]

    async def queue_now(self, tx: Tx) -> list[QueueNow]:
        rows = await sqlite_tx(tx).fetchall(
            "SELECT queue,"
            " SUM(CASE WHEN state = 'RESERVED' AND claimed_by IS NULL THEN 1 ELSE 0 END),"
            " SUM(CASE WHEN claimed_by IS NOT NULL THEN 1 ELSE 0 END),"
            " MIN(CASE WHEN state = 'RESERVED' AND claimed_by IS NULL THEN created_at END) "
            f"FROM jobs WHERE state IN ({_ACTIVE}) GROUP BY queue ORDER BY queue"
        )
        return [
            QueueNow(str(q), int(w), int(r), None if o is None else float(o)) for q, w, r, o in rows
        ]
