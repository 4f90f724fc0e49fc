"""PostgreSQL report queries for the dashboard (``storage.interfaces.ReportRepo``).

Every windowed figure is read from the daily rollups of the ``0006_rollups``
migration (kept by triggers in the writing transaction), so a page reads a few
thousand rows whatever the number of jobs; windows are whole UTC days. Job-time
percentiles are nearest-rank over a log-spaced histogram (within ~5 %)."""

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
from storage.postgres.store import pg_tx
from storage.report_rows import account_label, day_jobs, day_money, day_range, job_times

_ACTIVE = ", ".join(f"'{s}'" for s in ACTIVE_STATES)


class PgReports:
    """PostgreSQL implementation of ``storage.interfaces.ReportRepo``."""

    async def jobs_per_day(self, tx: Tx, since: float, until: float) -> list[DayJobs]:
        rows = await pg_tx(tx).fetch(
            "SELECT day, jobs, succeeded, failed FROM job_created_days "
            "WHERE day >= $1 AND day < $2 AND jobs > 0 ORDER BY day",
            *day_range(since, until),
        )
        return day_jobs(tuple(r) for r in rows)

    async def money_per_day(self, tx: Tx, since: float, until: float) -> list[DayMoney]:
        rows = await pg_tx(tx).fetch(
            "SELECT day, kind, transfers, amount FROM money_days WHERE day >= $1 AND day < $2",
            *day_range(since, until),
        )
        return day_money(tuple(r) for r in rows)

    async def job_times(self, tx: Tx, since: float, until: float) -> list[JobTimes]:
        rows = await pg_tx(tx).fetch(
            "SELECT vendor, tier, bucket, SUM(jobs) FROM job_days "
            "WHERE day >= $1 AND day < $2 AND state = 'SUCCEEDED' GROUP BY vendor, tier, bucket",
            *day_range(since, until),
        )
        return job_times(tuple(r) for r in rows)

    async def top_users(self, tx: Tx, since: float, until: float, limit: int = 10) -> list[TopUser]:
        rows = await pg_tx(tx).fetch(
            "WITH c AS ("
            "  SELECT account_id AS id, SUM(jobs) AS jobs, SUM(charged) AS charged"
            "  FROM user_days WHERE day >= $1 AND day < $2"
            "  GROUP BY account_id ORDER BY charged DESC, jobs DESC, id LIMIT $3) "
            "SELECT c.id, a.platform, a.external_id, a.username, c.jobs, c.charged "
            "FROM c JOIN accounts a ON a.id = c.id ORDER BY c.charged DESC, c.jobs DESC, c.id",
            *day_range(since, until),
            limit,
        )
        return [
            TopUser(int(i), account_label(p, e, u), int(j), int(c)) for i, p, e, u, j, c in rows
        ]

    async def failures(self, tx: Tx, since: float, until: float) -> list[FailureCount]:
        rows = await pg_tx(tx).fetch(
            "SELECT error, SUM(jobs) AS n FROM job_days "
            "WHERE day >= $1 AND day < $2 AND state = 'FAILED' "
            "GROUP BY error ORDER BY n DESC, error",
            *day_range(since, until),
        )
        return [FailureCount(str(e), int(n)) for e, n in rows]

    async def queue_now(self, tx: Tx) -> list[QueueNow]:
        rows = await pg_tx(tx).fetch(
            "SELECT queue,"
            " SUM(CASE WHEN state = 'RESERVED' AND claimed_by IS NULL THEN 1 ELSE 0 END),"
            " SUM(CASE WHEN claimed_by IS NOT NULL THEN 1 ELSE 0 END),"
            " MIN(CASE WHEN state = 'RESERVED' AND claimed_by IS NULL THEN created_at END) "
            f"FROM jobs WHERE state IN ({_ACTIVE}) GROUP BY queue ORDER BY queue"
        )
        return [
            QueueNow(str(q), int(w), int(r), None if o is None else float(o)) for q, w, r, o in rows
        ]
